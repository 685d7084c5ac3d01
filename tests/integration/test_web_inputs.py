"""Every route against missing credentials, the viewer role, unknown ids, malformed and
mistyped bodies and hostile query strings: each gets a 4xx JSON error, never a 500.

The routes come from ``api_routes()``, so a new route is covered as soon as it exists.
The test client re-raises any exception the app does not handle, so a 500 cannot hide.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from jobsys.store import users
from jobsys.web.api import api_routes
from jobsys.web.openapi import SCHEMAS
from jobsys.web.routing import Access, ApiRoute
from tests.web_helpers import API, T0, Web, audit_rows, login, web_harness

ROUTES = api_routes()
ACTING = [r for r in ROUTES if r.access is Access.ACT]
PROTECTED = [r for r in ROUTES if r.access is not Access.PUBLIC]
WITH_BODY = [r for r in ROUTES if r.reads_body]
WITH_ID = [r for r in ROUTES if "{" in r.path]
EXTRA_GETS = [f"{API}/events", f"{API}/openapi.json"]


def rid(route: ApiRoute) -> str:
    return f"{route.method} {route.path.removeprefix(API)}"


#: Ids the fixture makes for the routes that act on finished work or on accounts, so
#: that a valid request succeeds (a retry needs a run that ended, a re-run a finished
#: batch) and acting on them never touches the admin and viewer the tests call with.
RETRY_RUN, RERUN_BATCH = "6", "3"
ACCOUNT, TOKEN_ACCOUNT = "3", "4"


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch) as harness:
        created = harness.post("/jobs/run-all", {})
        assert created.status_code == 202  # batch 1, runs 1-5
        for _ in range(2):  # batches 2 and 3 (runs 6 and 7), cancelled while queued
            run_id = harness.post("/jobs/cleanup/run", {}).json()["job_run_ids"][0]
            assert harness.post(f"/job-runs/{run_id}/cancel").status_code == 200
        for email in ("third@example.com", "fourth@example.com"):  # accounts 3 and 4
            users.create_user(engine, email, "a long password", "viewer", now=harness.clock.now())
        token = users.create_token(engine, "fourth@example.com", now=harness.clock.now())
        assert users.user_for_token(engine, token, now=harness.clock.now()) is not None
        assert _token_id(engine, "fourth@example.com") == 3  # real_path's {token_id}
        yield harness


def _token_id(engine: Engine, email: str) -> int:
    [info] = [u for u in users.list_users(engine, now=T0) if u.email == email]
    return info.tokens[0].id


def real_path(route: ApiRoute, **override: str) -> str:
    """The route's path with ids that exist (or ``override``)."""
    values = {"group": "maintenance", "name": "cleanup", "token_id": "3"}
    if route.path.startswith(f"{API}/schedules/"):
        values["id"] = "nightly"
    elif route.path.endswith("/retry"):
        values["id"] = RETRY_RUN
    elif route.path.endswith("/rerun"):
        values["id"] = RERUN_BATCH
    elif route.path.startswith(f"{API}/users/{{id}}/tokens/"):
        values["id"] = TOKEN_ACCOUNT
    elif route.path.startswith(f"{API}/users/"):
        values["id"] = ACCOUNT
    else:
        values["id"] = "1"  # run 1 and batch 1
    values.update(override)
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], route.path)


VALID_BODIES: dict[str, Any] = {
    "Login": {"email": "admin@example.com", "password": "correct horse battery"},
    "ScheduleToggle": {"enabled": True},
    "CronCheck": {"cron": "0 * * * *", "timezone": "UTC"},
    "CronPreviewRequest": {"cron": "0 * * * *", "count": 2},
    "JobRunRequest": {"params": {}},
    "BulkRun": {"skip_dependencies": False},
    "ScheduleDisable": {"note": "paused for the test"},
    "BackfillRequest": {
        "from": "2030-01-05T00:00:00Z",
        "to": "2030-01-06T00:00:00Z",
        "dry_run": True,
    },
    "UserCreate": {"email": "new@example.com", "role": "viewer", "password": "a long password"},
    "UserUpdate": {"role": "admin"},
    "PasswordReset": {"password": "another long password"},
}


def valid_body(route: ApiRoute) -> Any:
    return VALID_BODIES.get(route.request_schema or "", {})


def send(web: Web, route: ApiRoute, path: str | None = None, **kw: Any) -> Any:
    return web.client.request(route.method, path or real_path(route), **kw)


def assert_json_error(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    error: dict[str, Any] = body["error"]
    assert error["message"]
    return error


def test_the_route_table_is_what_the_design_lists() -> None:
    listed = {rid(r) for r in ROUTES}
    assert listed >= {
        "GET /schedules",
        "GET /schedules/{id}",
        "PUT /schedules/{id}",
        "POST /schedules/{id}/enable",
        "POST /schedules/{id}/disable",
        "POST /schedules/{id}/trigger",
        "GET /schedules/{id}/history",
        "POST /schedules/validate-cron",
        "POST /schedules/preview-runs",
        "GET /jobs",
        "POST /jobs/{name}/run",
        "POST /jobs/run-all",
        "POST /jobs/run-group/{group}",
        "GET /job-runs",
        "GET /job-runs/{id}",
        "POST /job-runs/{id}/cancel",
        "GET /batches/{id}",
        "GET /daemon/status",
        "GET /audit",
        "POST /login",
        "POST /logout",
        "GET /me",
    }
    assert {rid(r) for r in ACTING} == {
        "PUT /schedules/{id}",
        "POST /schedules/{id}/enable",
        "POST /schedules/{id}/disable",
        "POST /schedules/{id}/trigger",
        "POST /jobs/{name}/run",
        "POST /jobs/run-all",
        "POST /jobs/run-group/{group}",
        "POST /job-runs/{id}/cancel",
        "POST /job-runs/{id}/retry",
        "POST /batches/{id}/rerun",
        "POST /batches/{id}/cancel",
        "POST /schedules/{id}/backfill",
        "GET /users",
        "POST /users",
        "GET /users/{id}",
        "PATCH /users/{id}",
        "POST /users/{id}/password",
        "POST /users/{id}/revoke",
        "DELETE /users/{id}/tokens/{token_id}",
    }


def test_every_route_answers_a_valid_request(web: Web) -> None:
    for route in ROUTES:
        headers = {} if route.access is Access.PUBLIC else web.admin
        response = send(web, route, json=valid_body(route), headers=headers)
        assert response.status_code == route.status, (rid(route), response.text)


def test_every_protected_route_needs_authentication(web: Web) -> None:
    for route in PROTECTED:
        for headers in ({}, {"Authorization": "Bearer jbs_wrongwrongwrongwrongwrong"}):
            response = send(web, route, json=valid_body(route), headers=headers)
            error = assert_json_error(response, 401)
            assert error["code"] == "unauthenticated", rid(route)
    for path in EXTRA_GETS:
        assert_json_error(web.client.get(path), 401)
    assert web.client.get("/metrics").status_code == 401  # plain text: not under /api


def test_viewers_are_forbidden_on_every_acting_route(web: Web) -> None:
    before = len(audit_rows(web.engine))
    for route in ACTING:
        response = send(web, route, json=valid_body(route), headers=web.viewer)
        error = assert_json_error(response, 403)
        assert error["code"] == "forbidden", rid(route)
    csrf = login(web.client, "viewer@example.com")
    for route in ACTING:
        response = send(web, route, json=valid_body(route), headers={"X-CSRF-Token": csrf})
        assert assert_json_error(response, 403)["code"] == "forbidden", rid(route)
    assert len(audit_rows(web.engine)) == before  # nothing was done
    for route in ROUTES:
        if route.access is Access.READ and route.method == "GET":
            assert send(web, route, headers=web.viewer).status_code == 200, rid(route)


def test_unknown_ids_are_404_on_every_route_with_an_id(web: Web) -> None:
    for route in WITH_ID:
        for unknown in ("999999", "does-not-exist", "0", "9" * 30, "%20", "%C3%A9t%C3%A9"):
            path = real_path(route, id=unknown, name=unknown, group=unknown)
            response = send(web, route, path, json=valid_body(route), headers=web.admin)
            error = assert_json_error(response, 404)
            assert error["code"] == "not_found", (rid(route), unknown)


MALFORMED: list[bytes] = [
    b"{",
    b"{'single': 'quotes'}",
    b"[1, 2]",
    b'"a string"',
    b"null",
    b"123",
    b"true",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"x": NaN}',
    b'{"x": Infinity}',
    b'{"x": "\\ud800"}',
    b'{"x": 1' + b"0" * 5000 + b"}",
    b"\xff\xfe\x00{",
    b'{"a": 1} trailing',
    b"\x00",
]


def test_malformed_bodies_are_400_on_every_route_with_a_body(web: Web) -> None:
    for route in WITH_BODY:
        headers = {"Content-Type": "application/json"}
        if route.access is not Access.PUBLIC:
            headers |= web.admin
        for raw in MALFORMED:
            response = send(web, route, content=raw, headers=headers)
            error = assert_json_error(response, 400)
            assert error["code"] == "bad_request", (rid(route), raw[:20])
        too_big = send(web, route, content=b" " * (1024 * 1024 + 1), headers=headers)
        assert assert_json_error(too_big, 413)["code"] == "payload_too_large"


def test_unknown_fields_are_refused(web: Web) -> None:
    for route in WITH_BODY:
        headers = {} if route.access is Access.PUBLIC else web.admin
        body = {**valid_body(route), "surprise": 1}
        error = assert_json_error(send(web, route, json=body, headers=headers), 422)
        assert "surprise" in error["message"], rid(route)


WRONG_VALUES: list[Any] = [
    None,
    "",
    "x" * 5000,
    0,
    -1,
    2**70,
    1.5,
    True,
    [],
    ["a"],
    {},
    {"nested": {"deep": [1]}},
]


def test_wrong_types_and_missing_fields_are_4xx(web: Web) -> None:
    for route in WITH_BODY:
        schema = SCHEMAS.get(route.request_schema or "")
        if schema is None:
            continue
        headers = {} if route.access is Access.PUBLIC else web.admin
        for field in schema["properties"]:
            for value in WRONG_VALUES:
                body = {**valid_body(route), field: value}
                response = send(web, route, json=body, headers=headers)
                if response.status_code < 300:
                    continue  # e.g. count=1 or params={} are valid
                assert 400 <= response.status_code < 500, (rid(route), field, value)
                assert response.json()["error"]["code"]
            missing = {k: v for k, v in valid_body(route).items() if k != field}
            response = send(web, route, json=missing, headers=headers)
            if field in schema["required"]:
                assert 400 <= response.status_code < 500, (rid(route), field)
    # the wrong-type answers name the field
    error = assert_json_error(web.put("/schedules/nightly", {"enabled": "yes"}), 422)
    assert error == {
        "code": "invalid",
        "message": "field 'enabled' must be true or false, not a string",
    }
    assert_json_error(web.put("/schedules/nightly", {}), 422)
    assert_json_error(web.post("/jobs/run-all", {"skip_dependencies": 1}), 422)
    assert_json_error(web.post("/jobs/cleanup/run", {"params": "{}"}), 422)
    assert_json_error(
        web.post("/schedules/preview-runs", {"cron": "* * * * *", "count": True}), 422
    )
    assert_json_error(
        web.post("/schedules/preview-runs", {"cron": "* * * * *", "after": "soon"}), 422
    )
    assert_json_error(web.client.post(f"{API}/login", json={"email": 5, "password": "x"}), 422)


HOSTILE = [
    "'; DROP TABLE job_run; --",
    "%00",
    "%ff%fe",
    "%ED%A0%80",
    "..%2F..%2Fetc%2Fpasswd",
    "%F0%9F%92%A9",
    "x" * 3000,
    "-0",
    "1e3",
    "0x10",
    "%20%20",
    "NaN",
    "QUEUED,,RUNNING",
    "[]",
]


def test_hostile_query_strings_never_break_a_read(web: Web) -> None:
    names = ["job", "status", "trigger", "schedule_id", "batch_id", "limit", "cursor", "actor"]
    names += ["action", "target", "logs_after"]
    for route in ROUTES:
        if route.method != "GET":
            continue
        for value in HOSTILE:
            query = "&".join(f"{n}={value}" for n in names)
            response = web.client.get(f"{real_path(route)}?{query}", headers=web.admin)
            assert response.status_code in (200, 400), (rid(route), value, response.text)
            if response.status_code == 400:
                assert response.json()["error"]["code"] == "bad_request"


def test_hostile_path_segments_are_404(web: Web) -> None:
    for value in HOSTILE:
        for template in ("/schedules/{}", "/job-runs/{}", "/batches/{}", "/schedules/{}/history"):
            response = web.get(template.format(value))
            assert response.status_code == 404, (template, value)
        for template in ("/jobs/{}/run", "/jobs/run-group/{}", "/job-runs/{}/cancel"):
            response = web.post(template.format(value), {})
            assert response.status_code in (404, 405), (template, value)


def test_odd_but_valid_inputs(web: Web) -> None:
    """Unicode, empty bodies and large params are accepted where they make sense."""
    empty = web.client.post(f"{API}/jobs/run-all", content=b"", headers=web.admin)
    assert empty.status_code == 202
    spaces = web.client.post(f"{API}/schedules/nightly/disable", content=b"  \n", headers=web.admin)
    assert spaces.status_code == 200
    text = web.post("/jobs/cleanup/run", {"params": {"note": "héllo 🌍 \u0000 " + "x" * 10_000}})
    assert text.status_code == 202
    run = web.get(f"/job-runs/{text.json()['job_run_ids'][0]}").json()
    assert run["params"]["note"].startswith("héllo 🌍 \u0000")
    big = web.post("/jobs/cleanup/run", {"params": {"n": 2**70, "f": 1e300}})
    assert big.status_code == 202
    unicode_login = web.client.post(f"{API}/login", json={"email": "é@é.fr", "password": "x" * 9})
    assert unicode_login.status_code in (401, 422)
    assert json.loads(web.get("/job-runs?job=cleanup").text)["runs"]
