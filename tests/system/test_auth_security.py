"""Issue 12: the login limit under concurrency, lock-outs by strangers, revocable
sessions and tokens, and login CSRF through non-JSON bodies.

The concurrency tests run real threads against a real ``jobsys web`` process (uvicorn,
real argon2 costs) on SQLite and MariaDB; the others use the real app in-process on a
real database with a fake clock (``tests.web_helpers``).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from jobsys.store import users
from jobsys.web.auth import LOGIN_MAX_FAILURES, LOGIN_WINDOW
from jobsys.web.errors import SESSION_COOKIE
from tests.system.test_web_process import run_admin, web_process
from tests.web_helpers import (
    ADMIN,
    API,
    PASSWORD,
    T0,
    VIEWER,
    TestClient,
    Web,
    audit_rows,
    login,
    web_harness,
)


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch) as harness:
        yield harness


def attempt(client: TestClient, email: str = ADMIN, password: str = "wrong-password") -> int:
    response = client.post(f"{API}/login", json={"email": email, "password": password})
    status: int = response.status_code
    return status


def retry_after(client: TestClient, email: str = ADMIN) -> int:
    response = client.post(f"{API}/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 429, response.text
    return int(response.headers["retry-after"])


# -- 1. concurrent guesses, real web process --------------------------------------------
OWNER = "owner@example.org"
OWNER_PASSWORD = "the-right-password"


def send_logins(
    url: str, passwords: list[str], threads: int, *, delay_last: float = 0
) -> list[int]:
    """POST one login per password from ``threads`` threads at once (after a barrier);
    the last one waits ``delay_last`` s more. Returns the statuses, in password order."""
    barrier = threading.Barrier(min(threads, len(passwords)))
    local = threading.local()
    clients: list[httpx.Client] = []

    def one(index: int) -> int:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=url, timeout=120)
            clients.append(client)
            barrier.wait(30)
        if index == len(passwords) - 1 and delay_last:
            time.sleep(delay_last)
        response = client.post(f"{API}/login", json={"email": OWNER, "password": passwords[index]})
        return response.status_code

    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, range(len(passwords))))
    finally:
        for client in clients:
            client.close()


@pytest.mark.slow
def test_concurrent_wrong_passwords_check_at_most_the_limit(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    users.create_user(engine, OWNER, OWNER_PASSWORD, "admin", now=T0)
    with web_process(db_url, tmp_path) as (_, url):
        statuses = send_logins(url, [f"wrong-{i}" for i in range(200)], threads=64)
    counts = Counter(statuses)
    print(f"\nconcurrent-guess count checked out of 200 ({engine.dialect.name}): {counts[401]}")
    assert counts == {401: LOGIN_MAX_FAILURES, 429: 200 - LOGIN_MAX_FAILURES}, counts
    assert len(audit_rows(engine, "login.failed")) == LOGIN_MAX_FAILURES


@pytest.mark.slow
def test_concurrent_guesses_do_not_reach_the_right_password(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    users.create_user(engine, OWNER, OWNER_PASSWORD, "admin", now=T0)
    guesses = [f"wrong-{i}" for i in range(39)] + [OWNER_PASSWORD]
    with web_process(db_url, tmp_path) as (_, url):
        statuses = send_logins(url, guesses, threads=40, delay_last=0.3)
        assert statuses[-1] == 429, statuses  # the right password was never checked
        counts = Counter(statuses)
        # (the order says which guesses got through, if a CI run ever counts otherwise)
        assert counts == {401: LOGIN_MAX_FAILURES, 429: 40 - LOGIN_MAX_FAILURES}, statuses
        # the owner, from another address, is not locked out (proxy headers from localhost)
        elsewhere = httpx.post(
            f"{url}{API}/login",
            json={"email": OWNER, "password": OWNER_PASSWORD},
            headers={"X-Forwarded-For": "192.0.2.44"},
        )
        assert elsewhere.status_code == 200, elsewhere.text


def test_a_copied_cookie_dies_with_logout_in_the_served_web(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    users.create_user(engine, OWNER, OWNER_PASSWORD, "admin", now=T0)
    with web_process(db_url, tmp_path) as (_, url), httpx.Client(base_url=url) as browser:
        logged = browser.post(f"{API}/login", json={"email": OWNER, "password": OWNER_PASSWORD})
        assert logged.status_code == 200
        csrf = logged.json()["csrf_token"]
        with httpx.Client(base_url=url, cookies=dict(browser.cookies)) as thief:
            assert thief.get(f"{API}/me").status_code == 200
            assert browser.post(f"{API}/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
            assert thief.get(f"{API}/me").status_code == 401
            write = thief.post(
                f"{API}/schedules/every-minute/enable", headers={"X-CSRF-Token": csrf}
            )
            assert write.status_code == 401


# -- 2. strangers cannot lock the owner out ---------------------------------------------
def test_failures_from_other_addresses_never_refuse_the_owner(web: Web) -> None:
    for i in range(3 * LOGIN_MAX_FAILURES):
        assert attempt(web.new_client(f"192.0.2.{i + 1}")) == 401
    for i in range(LOGIN_MAX_FAILURES):
        assert attempt(web.new_client("198.51.100.5"), f"made-up-{i}@example.org") == 401
    assert login(web.new_client("198.51.100.5")) != ""  # made-up accounts lock nothing
    assert login(web.new_client("203.0.113.200")) != ""  # a clean address: never refused
    assert len(audit_rows(web.engine, "login.failed")) == 4 * LOGIN_MAX_FAILURES


def test_a_login_does_not_reset_other_addresses(web: Web) -> None:
    attacker = web.new_client("192.0.2.66")
    for _ in range(LOGIN_MAX_FAILURES - 1):
        assert attempt(attacker) == 401
    assert login(web.client) != ""  # the owner, elsewhere
    assert attempt(attacker) == 401  # the attacker's last attempt in this window
    assert attempt(attacker) == 429


def test_the_owner_login_gives_its_attempts_back(web: Web) -> None:
    for _ in range(LOGIN_MAX_FAILURES - 1):
        assert attempt(web.client) == 401  # typos
    assert login(web.client) != ""
    for _ in range(LOGIN_MAX_FAILURES):  # a fresh budget after a successful login
        assert attempt(web.client) == 401
    assert attempt(web.client) == 429


def test_blocks_grow_when_the_budget_runs_out_again(web: Web) -> None:
    window = int(LOGIN_WINDOW.total_seconds())
    for _ in range(LOGIN_MAX_FAILURES):
        assert attempt(web.client) == 401
    assert retry_after(web.client) == window
    web.clock.advance(window)
    for _ in range(LOGIN_MAX_FAILURES):
        assert attempt(web.client) == 401
    assert retry_after(web.client) == 2 * window
    web.clock.advance(2 * window)
    for _ in range(LOGIN_MAX_FAILURES):
        assert attempt(web.client) == 401
    assert retry_after(web.client) == 4 * window
    # a quiet window forgets: the next block is the first length again
    web.clock.advance(4 * window)
    assert attempt(web.client) == 401
    web.clock.advance(window)
    for _ in range(LOGIN_MAX_FAILURES):
        assert attempt(web.client) == 401
    assert retry_after(web.client) == window


# -- 3. sessions and tokens are revocable -----------------------------------------------
def copy_of(web: Web, client: TestClient) -> TestClient:
    thief = web.new_client("192.0.2.200")
    thief.cookies.set(SESSION_COOKIE, client.cookies[SESSION_COOKIE])
    return thief


def test_logout_ends_a_copied_session(web: Web) -> None:
    csrf = login(web.client)
    thief = copy_of(web, web.client)
    assert thief.get(f"{API}/me").status_code == 200
    assert web.client.post(f"{API}/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    me = thief.get(f"{API}/me")
    assert me.status_code == 401
    assert "ended" in me.json()["error"]["message"]
    write = thief.post(f"{API}/jobs/run-all", json={}, headers={"X-CSRF-Token": csrf})
    assert write.status_code == 401
    assert audit_rows(web.engine, "jobs.run_all") == []


def test_logout_everywhere_ends_every_session_of_the_account(web: Web) -> None:
    csrf = login(web.client)
    laptop, phone = web.new_client("192.0.2.10"), web.new_client("192.0.2.11")
    login(laptop)
    login(phone)
    viewer = web.new_client("192.0.2.12")
    login(viewer, VIEWER)
    assert web.client.post(f"{API}/logout-all").status_code == 403  # needs the CSRF token
    done = web.client.post(f"{API}/logout-all", headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200
    assert done.json() == {"sessions_revoked": 3}
    for client in (web.client, laptop, phone):
        assert client.get(f"{API}/me").status_code == 401
    assert viewer.get(f"{API}/me").status_code == 200  # another account
    assert web.get("/me").status_code == 200  # API tokens stay
    [row] = audit_rows(web.engine, "admin.revoke")
    assert (row.actor, row.target_id, row.after) == (ADMIN, ADMIN, {"sessions": 3, "tokens": 0})


def test_password_reset_and_disabling_end_sessions_at_once(web: Web) -> None:
    # The last active admin cannot be disabled (issue 11): give it a colleague first.
    users.create_user(web.engine, "second@example.com", PASSWORD, "admin", now=web.clock.now())
    login(web.client)
    thief = copy_of(web, web.client)
    users.set_password(web.engine, ADMIN, "a brand new password", now=web.clock.now())
    assert thief.get(f"{API}/me").status_code == 401
    assert web.get("/me").status_code == 200  # tokens are not tied to the password

    browser = web.new_client("192.0.2.30")
    login(browser, ADMIN, "a brand new password")
    ended = users.set_disabled(web.engine, ADMIN, True, now=web.clock.now())
    assert ended.sessions == 1
    assert browser.get(f"{API}/me").status_code == 401
    assert web.get("/me").status_code == 401  # the token too, at once
    users.set_disabled(web.engine, ADMIN, False, now=web.clock.now())
    assert web.get("/me").status_code == 200  # the token comes back
    assert browser.get(f"{API}/me").status_code == 401  # the session does not
    actions = [r.action for r in audit_rows(web.engine) if r.action.startswith("admin.")]
    assert actions[-3:] == ["admin.set_password", "admin.disable", "admin.enable"]


def test_tokens_expire_and_are_revoked_with_the_sessions(web: Web) -> None:
    token = users.create_token(
        web.engine, VIEWER, now=web.clock.now(), lifetime=timedelta(hours=1), name="ci"
    )
    bearer = {"Authorization": f"Bearer {token}"}
    assert web.get("/me", headers=bearer).status_code == 200
    web.clock.advance(3599)
    assert web.get("/me", headers=bearer).status_code == 200
    web.clock.advance(1)
    expired = web.get("/me", headers=bearer)
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    assert web.get("/me", headers=web.viewer).status_code == 200  # no lifetime: no expiry

    viewer = web.new_client("192.0.2.40")
    login(viewer, VIEWER)
    revoked = users.revoke_access(web.engine, VIEWER, now=web.clock.now())
    assert (revoked.sessions, revoked.tokens) == (1, 2)
    assert viewer.get(f"{API}/me").status_code == 401
    assert web.get("/me", headers=web.viewer).status_code == 401


def test_admin_commands_token_lifetime_revoke_disable(sqlite_url: str) -> None:
    # A viewer: the last active admin could not be disabled below (issue 11).
    created = run_admin(
        ["create", OWNER, "--role", "viewer", "--password-stdin"], sqlite_url, "long-enough\n"
    )
    assert created.returncode == 0, created.stderr
    bad = run_admin(["token", OWNER, "--expires-in", "soon"], sqlite_url)
    assert bad.returncode == 2 and "--expires-in" in bad.stderr
    issued = run_admin(["token", OWNER, "--expires-in", "30d", "--name", "ci"], sqlite_url)
    assert issued.returncode == 0 and issued.stdout.startswith("jbs_"), issued.stderr
    revoked = run_admin(["revoke", OWNER], sqlite_url)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == f"{OWNER}: 0 session(s) ended, 1 API token(s) revoked"
    disabled = run_admin(["disable", OWNER], sqlite_url)
    assert disabled.returncode == 0 and "disabled" in disabled.stdout
    enabled = run_admin(["enable", OWNER], sqlite_url)
    assert enabled.returncode == 0 and "enabled" in enabled.stdout
    unknown = run_admin(["revoke", "ghost@example.org"], sqlite_url)
    assert unknown.returncode == 2 and "no admin account" in unknown.stderr


# -- 4. bodies must be JSON (login CSRF) -------------------------------------------------
CREDENTIALS = json.dumps({"email": ADMIN, "password": PASSWORD})
FORM_BODIES = [
    ("text/plain", CREDENTIALS),
    ("text/plain;charset=UTF-8", CREDENTIALS),
    ("application/x-www-form-urlencoded", f"email={ADMIN}&password={PASSWORD}"),
    ("multipart/form-data; boundary=x", "--x--"),
    (None, CREDENTIALS),
]


def test_login_refuses_bodies_an_html_form_can_send(web: Web) -> None:
    for content_type, body in FORM_BODIES:
        headers = {"Content-Type": content_type} if content_type else {}
        response = web.client.post(f"{API}/login", content=body, headers=headers)
        assert response.status_code == 415, (content_type, response.text)
        error = response.json()["error"]
        assert error["code"] == "unsupported_media_type"
        assert "Content-Type: application/json" in error["message"]
        assert "set-cookie" not in response.headers
    assert web.client.get(f"{API}/me").status_code == 401
    assert audit_rows(web.engine, "login.failed") == []
    ok = web.client.post(
        f"{API}/login",
        content=CREDENTIALS,
        headers={"Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert ok.status_code == 200


def test_every_json_route_refuses_other_bodies(web: Web) -> None:
    text = {"Content-Type": "text/plain", **web.admin}
    for path in ("/jobs/run-all", "/schedules/nightly/enable", "/schedules/validate-cron"):
        response = web.client.post(f"{API}{path}", content="{}", headers=text)
        assert response.status_code == 415, path
    assert web.client.put(f"{API}/schedules/nightly", content="{}", headers=text).status_code == 415
    # an empty body needs no type (curl -X POST with a token)
    assert web.client.post(f"{API}/schedules/nightly/enable", headers=web.admin).status_code == 200
    assert audit_rows(web.engine, "jobs.run_all") == []


def test_the_openapi_document_names_415(web: Web) -> None:
    doc = web.get("/openapi.json").json()
    login_op = doc["paths"]["/api/admin/login"]["post"]
    assert "415" in login_op["responses"]
    assert "application/json" in doc["info"]["description"]
    assert "post" in doc["paths"]["/api/admin/logout-all"]
