"""Accounts, sessions, CSRF, API tokens, roles and the login rate limit (design 8), on a
real database through the real app; time moves on the injected fake clock."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.errors import ConfigError, Conflict, NotFound
from jobsys.store import users
from jobsys.store.db import write_engine
from jobsys.store.models import AdminUser, ApiToken
from jobsys.web.auth import (
    LOGIN_MAX_FAILURES,
    LOGIN_MAX_PER_ADDRESS,
    LOGIN_WINDOW,
    SESSION_MAX_AGE,
    dump_session,
    new_session,
)
from jobsys.web.errors import SESSION_COOKIE
from tests.web_helpers import (
    ADMIN,
    API,
    PASSWORD,
    SECRET,
    VIEWER,
    TestClient,
    Web,
    audit_rows,
    login,
    settings_for,
    web_harness,
)


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch) as harness:
        yield harness


def set_cookie_header(response: object) -> str:
    headers = response.headers  # type: ignore[attr-defined]
    values = [v for k, v in headers.multi_items() if k == "set-cookie"]
    assert len(values) == 1, values
    return str(values[0])


# -- login, me, logout ----------------------------------------------------------------
def test_login_sets_a_hardened_session_cookie(web: Web) -> None:
    response = web.client.post(f"{API}/login", json={"email": ADMIN, "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["email"] == ADMIN and body["role"] == "admin" and body["auth"] == "session"
    assert len(body["csrf_token"]) >= 32
    assert body["expires_at"] == "2030-01-08T00:00:00Z"  # 12 h after the fake clock's now
    cookie = set_cookie_header(response).lower()
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for flag in ("httponly", "samesite=lax", "path=/", "max-age=43200"):
        assert flag in cookie
    assert "secure" not in cookie  # plain http
    me = web.client.get(f"{API}/me")
    assert me.status_code == 200
    assert me.json()["csrf_token"] == body["csrf_token"]
    assert me.json()["email"] == ADMIN
    with web.engine.connect() as conn:
        last = conn.execute(
            select(col(AdminUser.last_login_at)).where(col(AdminUser.email) == ADMIN)
        ).scalar_one()
    assert last == web.clock.now()


def test_cookie_is_secure_over_https(web: Web) -> None:
    with TestClient(web.web, base_url="https://testserver") as client:
        response = client.post(f"{API}/login", json={"email": ADMIN, "password": PASSWORD})
        assert response.status_code == 200
        assert "secure" in set_cookie_header(response).lower()


def test_email_is_case_insensitive(web: Web) -> None:
    response = web.client.post(
        f"{API}/login", json={"email": "  Admin@Example.COM ", "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.json()["email"] == ADMIN


def test_token_me_has_no_csrf(web: Web) -> None:
    me = web.get("/me", headers=web.viewer).json()
    assert me == {
        "email": VIEWER,
        "role": "viewer",
        "auth": "token",
        "csrf_token": None,
        "expires_at": None,
    }


def test_logout_needs_csrf_and_ends_the_session(web: Web) -> None:
    csrf = login(web.client)
    assert web.client.post(f"{API}/logout").status_code == 403
    response = web.client.post(f"{API}/logout", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 204
    assert f'{SESSION_COOKIE}=""' in set_cookie_header(response) or "max-age=0" in (
        set_cookie_header(response).lower()
    )
    assert web.client.get(f"{API}/me").status_code == 401


def test_failed_logins_are_audited_and_say_nothing_about_accounts(web: Web) -> None:
    wrong = web.client.post(f"{API}/login", json={"email": ADMIN, "password": "nope-nope"})
    unknown = web.client.post(f"{API}/login", json={"email": "who@x.org", "password": "nope-nope"})
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.json()["error"] == {
            "code": "invalid_credentials",
            "message": "wrong email or password",
        }
        assert "set-cookie" not in response.headers
    rows = audit_rows(web.engine, "login.failed")
    assert [(r.actor, r.ip, r.at) for r in rows] == [
        (ADMIN, "203.0.113.7", web.clock.now()),
        ("who@x.org", "203.0.113.7", web.clock.now()),
    ]


def test_secrets_are_never_logged(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    web.client.post(f"{API}/login", json={"email": ADMIN, "password": "a-wrong-secret"})
    csrf = login(web.client)
    web.client.post(f"{API}/jobs/run-all", json={}, headers={"X-CSRF-Token": csrf})
    web.get("/me")
    text = caplog.text + " ".join(str(r.args) for r in caplog.records)
    for secret in ("a-wrong-secret", PASSWORD, csrf, web.admin_token, SECRET):
        assert secret not in text
    stored = [r for r in audit_rows(web.engine)]
    assert all(PASSWORD not in str(r.detail) and PASSWORD not in str(r.after) for r in stored)


# -- sessions -------------------------------------------------------------------------
def test_session_expires_after_twelve_hours(web: Web) -> None:
    login(web.client)
    web.clock.advance(SESSION_MAX_AGE - timedelta(seconds=1))
    assert web.client.get(f"{API}/me").status_code == 200
    web.clock.advance(2)
    expired = web.client.get(f"{API}/me")
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "unauthenticated"
    assert "expired" in expired.json()["error"]["message"]
    assert SESSION_COOKIE in set_cookie_header(expired)  # the dead cookie is removed
    assert web.client.get(f"{API}/me").status_code == 401


def test_forged_and_foreign_cookies_are_refused(web: Web) -> None:
    login(web.client)
    good = web.client.cookies[SESSION_COOKIE]
    account = users.get_user_by_email(web.engine, ADMIN)
    assert account is not None
    foreign = dump_session("another-secret", new_session(account, web.clock.now()))
    for value in (good[:-2] + "xx", foreign, "garbage", "a" * 5000, good + "." + good):
        client = web.new_client()
        client.cookies.set(SESSION_COOKIE, value)
        response = client.get(f"{API}/me")
        assert response.status_code == 401, value
        assert response.json()["error"]["code"] == "unauthenticated"


def test_session_of_a_future_time_is_refused(web: Web) -> None:
    account = users.get_user_by_email(web.engine, ADMIN)
    assert account is not None
    future = dump_session(SECRET, new_session(account, web.clock.now() + timedelta(hours=1)))
    client = web.new_client()
    client.cookies.set(SESSION_COOKIE, future)
    assert client.get(f"{API}/me").status_code == 401


def test_password_change_and_disabling_end_sessions_and_tokens(web: Web) -> None:
    login(web.client)
    assert web.client.get(f"{API}/me").status_code == 200
    account = users.set_password(web.engine, ADMIN, "a brand new password", now=web.clock.now())
    assert account.email == ADMIN
    assert [a.target_id for a in audit_rows(web.engine, "admin.set_password")] == [ADMIN]
    assert web.client.get(f"{API}/me").status_code == 401
    assert web.get("/me").status_code == 200  # the token is not tied to the password
    with write_engine(web.engine).begin() as conn:
        conn.execute(update(AdminUser).where(col(AdminUser.email) == ADMIN).values(disabled=True))
    assert web.get("/me").status_code == 401
    disabled = web.client.post(
        f"{API}/login", json={"email": ADMIN, "password": "a brand new password"}
    )
    assert disabled.status_code == 401


# -- CSRF -----------------------------------------------------------------------------
def test_cookie_sessions_need_the_csrf_header_to_act(web: Web) -> None:
    csrf = login(web.client)
    missing = web.client.post(f"{API}/schedules/nightly/enable")
    assert missing.status_code == 403
    assert missing.json()["error"]["code"] == "csrf_failed"
    wrong = web.client.post(f"{API}/schedules/nightly/enable", headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    other = web.new_client()
    other_csrf = login(other, VIEWER)
    stolen = web.client.post(
        f"{API}/schedules/nightly/enable", headers={"X-CSRF-Token": other_csrf}
    )
    assert stolen.status_code == 403
    assert web.client.put(f"{API}/schedules/nightly", json={"enabled": True}).status_code == 403
    assert audit_rows(web.engine, "schedule.enable") == []  # nothing happened
    ok = web.client.post(f"{API}/schedules/nightly/enable", headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json()["enabled"] is True
    # reads need no token; read-only POSTs need it like any other
    assert web.client.get(f"{API}/schedules").status_code == 200
    assert (
        web.client.post(f"{API}/schedules/validate-cron", json={"cron": "@daily"}).status_code
        == 403
    )


def test_bearer_tokens_need_no_csrf(web: Web) -> None:
    response = web.post("/schedules/nightly/enable")
    assert response.status_code == 200


def test_a_token_wins_over_a_cookie(web: Web) -> None:
    login(web.client)
    me = web.client.get(f"{API}/me", headers=web.viewer).json()
    assert me["email"] == VIEWER and me["auth"] == "token"


# -- tokens ---------------------------------------------------------------------------
def test_bad_tokens_and_schemes_are_refused(web: Web) -> None:
    for header in (
        "Bearer jbs_" + "A" * 43,
        "Bearer nonsense",
        "Bearer ",
        "Basic YWRtaW46cGFzcw==",
        web.admin_token,
        f"Bearer {web.admin_token}x",
    ):
        response = web.client.get(f"{API}/me", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.json()["error"]["code"] == "unauthenticated"


def test_revoked_tokens_stop_working(web: Web) -> None:
    assert web.get("/me").status_code == 200
    assert users.revoke_tokens(web.engine, ADMIN) == 1
    assert web.get("/me").status_code == 401
    assert web.get("/me", headers=web.viewer).status_code == 200


def test_tokens_are_stored_hashed_and_touched_at_most_once_a_minute(web: Web) -> None:
    with web.engine.connect() as conn:
        rows = conn.execute(select(col(ApiToken.token_hash), col(ApiToken.last_used_at))).all()
    hashes = {h for h, _ in rows}
    assert web.admin_token not in hashes and web.admin_token[4:] not in hashes
    assert users.hash_token(web.admin_token) in hashes
    web.get("/me")
    web.clock.advance(30)
    web.get("/me")

    def last_used() -> object:
        with web.engine.connect() as conn:
            return conn.execute(
                select(col(ApiToken.last_used_at)).where(
                    col(ApiToken.token_hash) == users.hash_token(web.admin_token)
                )
            ).scalar_one()

    assert last_used() == web.clock.now() - timedelta(seconds=30)
    web.clock.advance(31)
    web.get("/me")
    assert last_used() == web.clock.now()


# -- roles ----------------------------------------------------------------------------
def test_viewers_read_but_do_not_act(web: Web) -> None:
    csrf = login(web.client, VIEWER)
    assert web.client.get(f"{API}/schedules").status_code == 200
    refused = web.client.post(f"{API}/jobs/run-all", json={}, headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 403
    assert refused.json()["error"] == {
        "code": "forbidden",
        "message": f"{VIEWER} has the viewer role; this needs admin",
    }
    assert web.post("/jobs/run-all", {}, headers=web.viewer).status_code == 403
    assert web.get("/job-runs").json()["runs"] == []


# -- login rate limit -----------------------------------------------------------------
def fail_login(client: TestClient, email: str) -> int:
    response = client.post(f"{API}/login", json={"email": email, "password": "wrong-password"})
    status: int = response.status_code
    return status


def test_five_failures_for_an_account_lock_it_from_that_address(web: Web) -> None:
    for _ in range(5):
        assert fail_login(web.client, ADMIN) == 401
        web.clock.advance(10)
    locked = web.client.post(f"{API}/login", json={"email": ADMIN, "password": PASSWORD})
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "rate_limited"
    # the window began with the first failure, 300 s before it ends, 50 s ago
    assert locked.headers["retry-after"] == "250"
    assert len(audit_rows(web.engine, "login.failed")) == 5  # refused attempts are not tried
    assert login(web.new_client("198.51.100.9")) != ""  # the owner elsewhere is not locked
    assert login(web.client, VIEWER) != ""  # nor are other accounts from this address
    web.clock.advance(249)
    assert (
        web.client.post(f"{API}/login", json={"email": ADMIN, "password": PASSWORD}).headers.get(
            "retry-after"
        )
        == "1"
    )
    web.clock.advance(1)
    assert login(web.client) != ""


def test_failures_for_made_up_accounts_do_not_lock_an_address(web: Web) -> None:
    for i in range(5):
        assert fail_login(web.client, f"guess{i}@example.com") == 401
    assert login(web.client) != ""  # five made-up accounts did not lock the address
    assert LOGIN_MAX_PER_ADDRESS > LOGIN_MAX_FAILURES
    for i in range(5, LOGIN_MAX_PER_ADDRESS):  # the successful login gave its attempt back
        assert fail_login(web.client, f"guess{i}@example.com") == 401
    # the address's own, higher limit: nothing more from it, even the right password
    locked = web.client.post(f"{API}/login", json={"email": ADMIN, "password": PASSWORD})
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) == int(LOGIN_WINDOW.total_seconds())
    assert login(web.new_client("192.0.2.99")) != ""  # the owner elsewhere still logs in


def test_the_limit_holds_across_web_replicas(web: Web) -> None:
    from jobsys.web.app import create_app

    replica = create_app(
        settings=settings_for(web.engine),
        app=web.app,
        engine=web.engine,
        clock=web.clock,
    )
    with TestClient(replica, client=("203.0.113.7", 50000)) as other:
        for _ in range(3):
            assert fail_login(web.client, ADMIN) == 401
        for _ in range(2):
            assert fail_login(other, ADMIN) == 401
        assert (
            other.post(f"{API}/login", json={"email": ADMIN, "password": PASSWORD}).status_code
            == 429
        )
        assert fail_login(web.client, ADMIN) == 429


# -- accounts in the store ------------------------------------------------------------
def test_accounts_store(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.web_helpers import T0, cheap_hashing

    cheap_hashing(monkeypatch)
    account = users.create_user(engine, " Ops@Example.org ", "long enough", "viewer", now=T0)
    assert (account.email, account.role, account.is_admin) == ("ops@example.org", "viewer", False)
    assert account.password_hash.startswith("$argon2id$")
    with pytest.raises(Conflict, match="already exists"):
        users.create_user(engine, "OPS@example.org", "long enough", "admin", now=T0)
    for email in ("nope", "a@b@c", "a b@c.d", "", "x" * 250 + "@example.org", "a@-x.org"):
        with pytest.raises(ConfigError, match="not a valid email"):
            users.create_user(engine, email, "long enough", "admin", now=T0)
    with pytest.raises(ConfigError, match="at least 8"):
        users.create_user(engine, "new@example.org", "short", "admin", now=T0)
    with pytest.raises(ConfigError, match="role 'root'"):
        users.create_user(engine, "new@example.org", "long enough", "root", now=T0)
    assert users.verify_login(engine, "ops@example.org", "long enough", now=T0) is not None
    assert users.verify_login(engine, "ops@example.org", "long enougH", now=T0) is None
    assert users.verify_login(engine, "nobody@example.org", "long enough", now=T0) is None
    assert users.verify_login(engine, "not an email", "long enough", now=T0) is None
    token = users.create_token(engine, "OPS@example.org", now=T0)
    assert token.startswith("jbs_") and len(token) > 40
    found = users.user_for_token(engine, token, now=T0)
    assert found is not None and found.email == "ops@example.org"
    assert users.user_for_token(engine, token + "x", now=T0) is None
    with pytest.raises(NotFound, match="no admin account"):
        users.create_token(engine, "ghost@example.org", now=T0)
    with pytest.raises(NotFound, match="no admin account"):
        users.set_password(engine, "ghost@example.org", "long enough", now=T0)
    with pytest.raises(ConfigError, match="at least 8"):
        users.set_password(engine, "ops@example.org", "short", now=T0)
    users.set_password(engine, "ops@example.org", "a new secret", now=T0)
    assert users.verify_login(engine, "ops@example.org", "long enough", now=T0) is None
    assert users.verify_login(engine, "ops@example.org", "a new secret", now=T0) is not None
    assert users.count_users(engine) == 1


def test_outdated_hashes_are_upgraded_at_login(engine: Engine) -> None:
    from argon2 import PasswordHasher

    from tests.web_helpers import T0

    old = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    with write_engine(engine).begin() as conn:
        conn.execute(
            AdminUser.__table__.insert().values(  # type: ignore[attr-defined]
                email="old@example.org",
                password_hash=old.hash("long enough"),
                role="admin",
                created_at=T0,
                disabled=False,
            )
        )
    account = users.verify_login(engine, "old@example.org", "long enough", now=T0)
    assert account is not None
    assert not users._hasher().check_needs_rehash(account.password_hash)
    again = users.verify_login(engine, "old@example.org", "long enough", now=T0)
    assert again is not None and again.password_hash == account.password_hash
