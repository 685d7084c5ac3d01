"""Issue 11 item 1: user management over the JSON API (``/api/admin/users``).

The real app in-process on a real database (SQLite, and MariaDB when
``JOBSYS_TEST_MYSQL_URL`` is set) with a fake clock (``tests.web_helpers``); the
concurrency test runs real threads against the store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from jobsys.errors import Conflict
from jobsys.store import users
from jobsys.store.users import LastAdmin
from jobsys.web.api import api_routes
from jobsys.web.openapi import build_openapi
from tests.web_helpers import (
    ADMIN,
    API,
    PASSWORD,
    VIEWER,
    Web,
    audit_rows,
    login,
    web_harness,
)

OTHER = "ops@example.com"


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch) as harness:
        yield harness


def user_id(web: Web, email: str) -> int:
    found = {u["email"]: u for u in web.get("/users").json()["users"]}
    return int(found[email]["id"])


def patch(web: Web, path: str, body: Any, **kw: Any) -> Any:
    kw.setdefault("headers", web.admin)
    return web.client.patch(API + path, json=body, **kw)


def delete(web: Web, path: str, **kw: Any) -> Any:
    kw.setdefault("headers", web.admin)
    return web.client.delete(API + path, **kw)


def user_actions(web: Web) -> list[tuple[str, str | None, str | None]]:
    """(action, actor, target) of every account change in the audit log."""
    return [
        (r.action, r.actor, r.target_id)
        for r in audit_rows(web.engine)
        if r.action.startswith(("admin.", "token."))
    ]


# -- listing ----------------------------------------------------------------------------
def test_admins_list_accounts_with_role_state_last_login_and_tokens(web: Web) -> None:
    users.create_token(web.engine, VIEWER, now=web.clock.now(), name="ci")
    web.clock.advance(60)
    browser = web.new_client("192.0.2.10")
    login(browser, VIEWER)
    assert web.get("/me", headers=web.viewer).status_code == 200  # touches last_used_at
    listed = web.get("/users")
    assert listed.status_code == 200, listed.text
    by_email = {u["email"]: u for u in listed.json()["users"]}
    assert list(by_email) == [ADMIN, VIEWER]  # by email
    viewer = by_email[VIEWER]
    assert viewer["role"] == "viewer" and viewer["disabled"] is False
    assert viewer["last_login_at"] == "2030-01-07T12:01:00Z"
    assert viewer["active_sessions"] == 1
    assert viewer["created_at"] == "2030-01-07T12:00:00Z"
    assert [t["name"] for t in viewer["tokens"]] == [None, "ci"]
    first = viewer["tokens"][0]
    assert first["last_used_at"] == "2030-01-07T12:01:00Z"
    assert first["expires_at"] is None and first["expired"] is False
    assert "password_hash" not in viewer and "token_hash" not in first
    assert by_email[ADMIN]["last_login_at"] is None
    one = web.get(f"/users/{viewer['id']}")
    assert one.status_code == 200 and one.json() == viewer
    assert web.get("/users/999999").status_code == 404
    assert web.get("/users/abc").status_code == 404


def test_viewers_get_403_on_every_users_route_and_strangers_401(web: Web) -> None:
    target = user_id(web, VIEWER)
    token_id = users.list_users(web.engine, now=web.clock.now())[0].tokens[0].id
    calls = [
        ("GET", "/users", None),
        ("POST", "/users", {"email": OTHER, "password": PASSWORD, "role": "admin"}),
        ("GET", f"/users/{target}", None),
        ("PATCH", f"/users/{target}", {"role": "admin"}),
        ("POST", f"/users/{target}/password", {"password": "whatever-long"}),
        ("POST", f"/users/{target}/revoke", None),
        ("DELETE", f"/users/{target}/tokens/{token_id}", None),
    ]
    documented = {(r.method, r.path.removeprefix(API)) for r in api_routes() if r.tag == "users"}
    assert len(documented) == len(calls)  # every users route is tried below
    for method, path, body in calls:
        kw: dict[str, Any] = {"headers": web.viewer}
        if body is not None:
            kw["json"] = body
        refused = web.client.request(method, API + path, **kw)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json()["error"]["code"] == "forbidden"
        stranger = web.client.request(
            method, API + path, headers={}, **({"json": body} if body else {})
        )
        assert stranger.status_code == 401, (method, path)
    # Nothing changed.
    assert users.get_user_by_email(web.engine, OTHER) is None
    assert web.get(f"/users/{target}").json()["role"] == "viewer"
    assert user_actions(web) == [
        ("admin.create", "cli", ADMIN),
        ("admin.create", "cli", VIEWER),
        ("token.create", "cli", ADMIN),
        ("token.create", "cli", VIEWER),
    ]


def test_cookie_sessions_need_the_csrf_token_to_change_accounts(web: Web) -> None:
    csrf = login(web.client)
    target = user_id(web, VIEWER)
    refused = web.client.patch(f"{API}/users/{target}", json={"role": "admin"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    done = web.client.patch(
        f"{API}/users/{target}", json={"role": "admin"}, headers={"X-CSRF-Token": csrf}
    )
    assert done.status_code == 200 and done.json()["role"] == "admin"


# -- create -----------------------------------------------------------------------------
def test_create_an_account(web: Web) -> None:
    created = web.post(
        "/users", {"email": " Ops@Example.com ", "role": "viewer", "password": "long enough"}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["email"], body["role"], body["disabled"], body["tokens"]) == (
        OTHER,
        "viewer",
        False,
        [],
    )
    assert users.verify_login(web.engine, OTHER, "long enough", now=web.clock.now())
    [row] = audit_rows(web.engine, "admin.create")[-1:]
    assert (row.actor, row.target_id, row.after, row.ip) == (
        ADMIN,
        OTHER,
        {"role": "viewer"},
        "203.0.113.7",
    )
    default = web.post("/users", {"email": "second@example.com", "password": "long enough"})
    assert default.status_code == 201 and default.json()["role"] == "admin"

    again = web.post("/users", {"email": "OPS@example.com", "password": "long enough"})
    assert again.status_code == 409 and "already exists" in again.json()["error"]["message"]
    for body_, why in (
        ({"email": "not-an-email", "password": "long enough"}, "not a valid email"),
        ({"email": "x@example.com", "password": "short"}, "at least 8"),
        ({"email": "x@example.com", "password": "long enough", "role": "root"}, "role 'root'"),
        ({"email": "x@example.com"}, "'password' is required"),
        ({"email": "x@example.com", "password": "long enough", "admin": True}, "unknown field"),
        ({"email": 5, "password": "long enough"}, "must be a string"),
    ):
        refused = web.post("/users", body_)
        assert refused.status_code == 422, (body_, refused.text)
        assert why in refused.json()["error"]["message"], refused.text
    assert users.get_user_by_email(web.engine, "x@example.com") is None


# -- role and state ---------------------------------------------------------------------
def test_change_role_and_state_each_audited(web: Web) -> None:
    target = user_id(web, VIEWER)
    promoted = patch(web, f"/users/{target}", {"role": "admin"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    assert web.get("/jobs", headers=web.viewer).status_code == 200
    assert web.post("/jobs/run-all", headers=web.viewer).status_code == 202  # acts now
    both = patch(web, f"/users/{target}", {"role": "viewer", "disabled": True})
    assert both.status_code == 200
    assert (both.json()["role"], both.json()["disabled"]) == ("viewer", True)
    enabled = patch(web, f"/users/{target}", {"disabled": False})
    assert enabled.status_code == 200 and enabled.json()["disabled"] is False
    same = patch(web, f"/users/{target}", {"disabled": False})  # no change, no audit row
    assert same.status_code == 200
    rows = [
        r
        for r in audit_rows(web.engine)
        if r.action in ("admin.role", "admin.disable", "admin.enable")
    ]
    assert [(r.action, r.actor, r.target_id, r.before, r.after) for r in rows] == [
        ("admin.role", ADMIN, VIEWER, {"role": "viewer"}, {"role": "admin"}),
        ("admin.role", ADMIN, VIEWER, {"role": "admin"}, {"role": "viewer"}),
        (
            "admin.disable",
            ADMIN,
            VIEWER,
            {"disabled": False},
            {"disabled": True, "sessions_ended": 0},
        ),
        (
            "admin.enable",
            ADMIN,
            VIEWER,
            {"disabled": True},
            {"disabled": False, "sessions_ended": 0},
        ),
    ]
    assert all(r.ip == "203.0.113.7" for r in rows)
    for body, why in (
        ({}, "send 'role'"),
        ({"role": "root"}, "role 'root'"),
        ({"disabled": "yes"}, "true or false"),
        ({"email": "x@example.com"}, "unknown field"),
    ):
        refused = patch(web, f"/users/{target}", body)
        assert refused.status_code == 422 and why in refused.json()["error"]["message"], body
    assert patch(web, "/users/999999", {"disabled": True}).status_code == 404


def test_a_disabled_users_open_session_and_token_get_401_at_once(web: Web) -> None:
    browser = web.new_client("192.0.2.20")
    login(browser, VIEWER)
    assert browser.get(f"{API}/me").status_code == 200
    assert web.get("/me", headers=web.viewer).status_code == 200
    done = patch(web, f"/users/{user_id(web, VIEWER)}", {"disabled": True})
    assert done.status_code == 200 and done.json()["active_sessions"] == 0
    assert browser.get(f"{API}/me").status_code == 401
    assert web.get("/schedules", headers=web.viewer).status_code == 401
    relogin = browser.post(f"{API}/login", json={"email": VIEWER, "password": PASSWORD})
    assert relogin.status_code == 401
    [row] = audit_rows(web.engine, "admin.disable")
    assert row.after == {"disabled": True, "sessions_ended": 1}


def test_the_last_active_admin_cannot_be_disabled_or_demoted(web: Web) -> None:
    me = user_id(web, ADMIN)
    before = len(audit_rows(web.engine))
    for body, doing in (({"disabled": True}, "disabled"), ({"role": "viewer"}, "demoted")):
        refused = patch(web, f"/users/{me}", body)
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["code"] == "conflict"
        assert error["message"] == (
            f"{ADMIN} is the last active admin and cannot be {doing}"
            + (" to viewer" if doing == "demoted" else "")
            + "; make another account admin first"
        )
    assert len(audit_rows(web.engine)) == before  # refusals change nothing
    assert web.get("/me").json()["role"] == "admin"
    # A disabled admin does not count: promoting then disabling the viewer leaves one.
    other = user_id(web, VIEWER)
    assert patch(web, f"/users/{other}", {"role": "admin", "disabled": True}).status_code == 200
    assert patch(web, f"/users/{me}", {"disabled": True}).status_code == 409
    # With a second active admin, either may go.
    assert patch(web, f"/users/{other}", {"disabled": False}).status_code == 200
    assert patch(web, f"/users/{me}", {"role": "viewer"}).status_code == 200
    assert patch(web, f"/users/{other}", {"role": "viewer"}, headers=web.viewer).status_code == 409


@pytest.mark.parametrize("change", ["disable", "demote"])
def test_concurrent_changes_never_leave_no_admin(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Two admins, each removed by its own thread at the same moment: one must win."""
    from tests.web_helpers import T0, cheap_hashing

    cheap_hashing(monkeypatch)
    emails = [f"a{n}@example.com" for n in range(2)]
    for email in emails:
        users.create_user(engine, email, PASSWORD, "admin", now=T0)

    def remove(email: str, start: threading.Barrier, outcomes: list[str]) -> None:
        start.wait()
        try:
            if change == "disable":
                users.set_disabled(engine, email, True, now=T0)
            else:
                users.set_role(engine, email, "viewer", now=T0)
            outcomes.append("done")
        except LastAdmin:
            outcomes.append("refused")

    for _ in range(5):
        start = threading.Barrier(2)
        outcomes: list[str] = []
        threads = [threading.Thread(target=remove, args=(e, start, outcomes)) for e in emails]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(outcomes) == ["done", "refused"]
        active = [
            u for u in users.list_users(engine, now=T0) if u.role == "admin" and not u.disabled
        ]
        assert len(active) == 1
        for email in emails:  # back to two admins for the next round
            users.update_account(engine, email, role="admin", disabled=False, now=T0)


def test_last_admin_is_a_conflict() -> None:
    assert issubclass(LastAdmin, Conflict)


# -- password, revoke -------------------------------------------------------------------
def test_reset_a_password(web: Web) -> None:
    browser = web.new_client("192.0.2.30")
    login(browser, VIEWER)
    target = user_id(web, VIEWER)
    short = web.post(f"/users/{target}/password", {"password": "short"})
    assert short.status_code == 422 and "at least 8" in short.json()["error"]["message"]
    assert web.post(f"/users/{target}/password", {}).status_code == 422
    done = web.post(f"/users/{target}/password", {"password": "a brand new one"})
    assert done.status_code == 200 and done.json()["active_sessions"] == 0
    assert browser.get(f"{API}/me").status_code == 401  # the session ended
    assert web.get("/me", headers=web.viewer).status_code == 200  # tokens stay
    login(browser, VIEWER, "a brand new one")
    [row] = audit_rows(web.engine, "admin.set_password")
    assert (row.actor, row.target_id, row.ip) == (ADMIN, VIEWER, "203.0.113.7")
    assert "a brand new one" not in str(row.after) + str(row.before) + str(row.detail)
    assert web.post("/users/999999/password", {"password": "long enough"}).status_code == 404


def test_revoke_all_access(web: Web) -> None:
    users.create_token(web.engine, VIEWER, now=web.clock.now(), name="ci")
    browser = web.new_client("192.0.2.40")
    login(browser, VIEWER)
    target = user_id(web, VIEWER)
    done = web.post(f"/users/{target}/revoke")
    assert done.status_code == 200, done.text
    assert done.json() == {"sessions_revoked": 1, "tokens_revoked": 2}
    assert browser.get(f"{API}/me").status_code == 401
    assert web.get("/me", headers=web.viewer).status_code == 401
    assert web.get(f"/users/{target}").json()["tokens"] == []
    login(browser, VIEWER)  # the account itself still works
    [row] = audit_rows(web.engine, "admin.revoke")
    assert (row.actor, row.target_id, row.after) == (ADMIN, VIEWER, {"sessions": 1, "tokens": 2})
    assert web.post(f"/users/{target}/revoke", {"all": True}).status_code == 422


def test_revoke_one_token(web: Web) -> None:
    ci = users.create_token(web.engine, VIEWER, now=web.clock.now(), name="ci")
    target = user_id(web, VIEWER)
    tokens = web.get(f"/users/{target}").json()["tokens"]
    first, second = (t["id"] for t in tokens)
    gone = delete(web, f"/users/{target}/tokens/{first}")
    assert gone.status_code == 204, gone.text
    assert web.get("/me", headers=web.viewer).status_code == 401  # the first token
    assert web.get("/me", headers={"Authorization": f"Bearer {ci}"}).status_code == 200
    assert [t["id"] for t in web.get(f"/users/{target}").json()["tokens"]] == [second]
    again = delete(web, f"/users/{target}/tokens/{first}")
    assert again.status_code == 404
    admin_id = user_id(web, ADMIN)
    assert delete(web, f"/users/{admin_id}/tokens/{second}").status_code == 404  # not its token
    assert delete(web, f"/users/{target}/tokens/nope").status_code == 404
    [row] = audit_rows(web.engine, "token.revoke")
    assert (row.actor, row.target_id, row.after) == (ADMIN, VIEWER, {"token_id": first})


# -- the description --------------------------------------------------------------------
def test_openapi_describes_the_users_routes(web: Web) -> None:
    doc = build_openapi(api_routes())
    paths = doc["paths"]
    assert paths["/api/admin/users"]["get"]["responses"]["200"]["content"]
    assert set(paths["/api/admin/users"]["post"]["responses"]) >= {
        "201",
        "401",
        "403",
        "409",
        "422",
    }
    patch_op = paths["/api/admin/users/{id}"]["patch"]
    assert patch_op["requestBody"]["required"] is True
    assert set(patch_op["responses"]) >= {"200", "403", "404", "409", "422"}
    delete_op = paths["/api/admin/users/{id}/tokens/{token_id}"]["delete"]
    assert "204" in delete_op["responses"] and "404" in delete_op["responses"]
    schemas = doc["components"]["schemas"]
    for name in ("User", "UserList", "UserCreate", "UserUpdate", "PasswordReset", "AccessRevoked"):
        assert name in schemas
    # Every field the API returns is in the schema (and every required one is returned).
    user = web.get(f"/users/{user_id(web, VIEWER)}").json()
    assert set(user) == set(schemas["User"]["properties"]) == set(schemas["User"]["required"])
    token = user["tokens"][0]
    info = schemas["ApiTokenInfo"]
    assert set(token) == set(info["properties"]) == set(info["required"])
