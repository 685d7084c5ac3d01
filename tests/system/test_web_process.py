"""The real ``jobsys web`` process (uvicorn) and the ``admin`` commands, run as
``python -m jobsys`` child processes against SQLite and MariaDB."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from tests.process_helpers import ROOT, jobsys_env, run_cli
from tests.web_helpers import API, free_port

APP = str(ROOT / "tests" / "apps" / "isolation_app.py")


def run_admin(args: list[str], db_url: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobsys", "admin", *args],
        env=jobsys_env(db_url, JOBSYS_APP=APP),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextmanager
def web_process(
    db_url: str, tmp_path: Path, *args: str, **env: str
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    log_path = tmp_path / "web.log"
    extra = {"JOBSYS_APP": APP, "SECRET_KEY": "process-test-secret", **env}
    cli_args = list(args) or ["--host", "127.0.0.1", "--port", str(port)]
    if "PORT" in env:
        port = int(env["PORT"])
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobsys", "web", *cli_args],
            env=jobsys_env(db_url, **extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            yield proc, url
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_admin_create_token_and_the_served_api(db_url: str, engine: Engine, tmp_path: Path) -> None:
    created = run_admin(
        ["create", "Ops@Example.org", "--password-stdin"], db_url, "s3cret-enough\n"
    )
    assert created.returncode == 0, created.stderr
    assert "ops@example.org created (role admin)" in created.stdout
    duplicate = run_admin(
        ["create", "ops@example.org", "--password-stdin"], db_url, "another-one\n"
    )
    assert duplicate.returncode == 2
    assert "already exists" in duplicate.stderr
    short = run_admin(["create", "new@example.org", "--password-stdin"], db_url, "short\n")
    assert short.returncode == 2 and "at least 8" in short.stderr
    bad_email = run_admin(["create", "not-an-email", "--password-stdin"], db_url, "long-enough\n")
    assert bad_email.returncode == 2 and "not a valid email" in bad_email.stderr
    viewer = run_admin(
        ["create", "look@example.org", "--role", "viewer", "--password-stdin"],
        db_url,
        "looking-only\n",
    )
    assert viewer.returncode == 0 and "role viewer" in viewer.stdout
    issued = run_admin(["token", "ops@example.org"], db_url)
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token.startswith("jbs_") and "\n" not in token
    assert "shown once" in issued.stderr
    unknown = run_admin(["token", "ghost@example.org"], db_url)
    assert unknown.returncode == 2 and "no admin account" in unknown.stderr

    with web_process(db_url, tmp_path) as (proc, url), httpx.Client(base_url=url) as client:
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert client.get(f"{API}/schedules").status_code == 401
        bearer = {"Authorization": f"Bearer {token}"}
        schedules = client.get(f"{API}/schedules", headers=bearer)
        assert schedules.status_code == 200
        # the web synced the definitions on start
        assert [s["id"] for s in schedules.json()["schedules"]] == ["every-minute"]
        run = client.post(f"{API}/jobs/ok/run", json={}, headers=bearer)
        assert run.status_code == 202
        # a browser session with the password typed into `admin create`
        login = client.post(
            f"{API}/login", json={"email": "ops@example.org", "password": "s3cret-enough"}
        )
        assert login.status_code == 200
        csrf = login.json()["csrf_token"]
        assert client.get(f"{API}/me").json()["email"] == "ops@example.org"
        refused = client.post(f"{API}/schedules/every-minute/enable")
        assert refused.status_code == 403
        enabled = client.post(
            f"{API}/schedules/every-minute/enable", headers={"X-CSRF-Token": csrf}
        )
        assert enabled.status_code == 200 and enabled.json()["enabled"] is True
        assert client.get("/admin/login").status_code == 200
        # SIGTERM with an event stream open: a prompt, clean stop
        with client.stream("GET", f"{API}/events", headers=bearer) as stream:
            assert stream.status_code == 200
            next(stream.iter_lines())
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
            assert time.monotonic() - started < 5


def test_web_listens_on_port_from_the_environment(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    with web_process(db_url, tmp_path, "--host", "127.0.0.1", PORT=str(port)) as (proc, url):
        assert url.endswith(f":{port}")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0


def test_web_refuses_production_without_secret_key(sqlite_url: str) -> None:
    result = run_cli(
        ["web", "--port", str(free_port())],
        sqlite_url,
        JOBSYS_ENV="production",
        SECRET_KEY="",
        JOBSYS_APP=APP,
    )
    assert result.returncode == 2
    assert "SECRET_KEY is not set" in result.stderr


def test_web_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = run_cli(
        ["web", "--port", str(free_port())],
        f"sqlite:///{tmp_path / 'empty.db'}",
        SECRET_KEY="x",
        JOBSYS_APP=APP,
    )
    assert result.returncode == 2
    assert "run `jobsys migrate`" in result.stderr


@pytest.mark.parametrize("args", [["web", "--port", "nope"], ["admin"], ["admin", "create"]])
def test_usage_errors_exit_2(args: list[str], sqlite_url: str) -> None:
    assert run_cli(args, sqlite_url).returncode == 2
