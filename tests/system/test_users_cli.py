"""Issue 11 item 1: account management from the command line (``jobsys admin list``,
``role``, ``passwd``, ``disable``/``enable``, ``revoke``), as real ``jobsys`` processes on
a real database (SQLite, and MariaDB when ``JOBSYS_TEST_MYSQL_URL`` is set)."""

from __future__ import annotations

import json

import pytest

from jobsys.clock import SystemClock
from jobsys.store import users
from jobsys.store.db import make_engine
from tests.system.test_web_process import run_admin
from tests.web_helpers import audit_rows

pytestmark = pytest.mark.slow  # real CLI processes, tens of seconds

ALICE = "alice@example.com"
BOB = "bob@example.com"


def test_admin_list_role_passwd_and_the_last_admin(db_url: str) -> None:
    empty = run_admin(["list"], db_url)
    assert empty.returncode == 0 and "no accounts yet" in empty.stdout
    assert json.loads(run_admin(["list", "--json"], db_url).stdout) == []
    for email, role in ((ALICE, "admin"), (BOB, "viewer")):
        made = run_admin(
            ["create", email, "--role", role, "--password-stdin"], db_url, "long enough\n"
        )
        assert made.returncode == 0, made.stderr
    assert run_admin(["token", BOB, "--name", "ci"], db_url).returncode == 0

    listed = run_admin(["list"], db_url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["EMAIL", "ROLE", "STATE", "LAST", "LOGIN", "SESSIONS", "TOKENS"]
    assert lines[1].split() == [ALICE, "admin", "active", "never", "0", "0"]
    assert lines[2].split() == [BOB, "viewer", "active", "never", "0", "1"]
    data = json.loads(run_admin(["list", "--json"], db_url).stdout)
    assert [(u["email"], u["role"], u["disabled"]) for u in data] == [
        (ALICE, "admin", False),
        (BOB, "viewer", False),
    ]
    assert [t["name"] for t in data[1]["tokens"]] == ["ci"]
    assert "password_hash" not in data[0]

    # The last active admin: neither demoted nor disabled (exit 2, one clear line).
    for args, doing in (
        (["role", ALICE, "viewer"], "demoted to viewer"),
        (["disable", ALICE], "disabled"),
    ):
        refused = run_admin(args, db_url)
        assert refused.returncode == 2, refused
        assert refused.stderr == (
            f"jobsys: error: {ALICE} is the last active admin and cannot be {doing}; "
            "make another account admin first\n"
        )
    bad_role = run_admin(["role", BOB, "root"], db_url)
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr

    promoted = run_admin(["role", BOB, "admin"], db_url)
    assert (promoted.returncode, promoted.stdout) == (0, f"{BOB} now has the admin role\n")
    again = run_admin(["role", BOB, "admin"], db_url)
    assert again.stdout == f"{BOB} already has the admin role\n"
    demoted = run_admin(["role", ALICE, "viewer"], db_url)  # Bob is an admin now
    assert demoted.returncode == 0, demoted.stderr

    short = run_admin(["passwd", ALICE, "--password-stdin"], db_url, "short\n")
    assert short.returncode == 2 and "at least 8" in short.stderr
    ghost = run_admin(["passwd", "ghost@example.com", "--password-stdin"], db_url, "long enough\n")
    assert ghost.returncode == 2 and "no admin account" in ghost.stderr
    changed = run_admin(["passwd", ALICE, "--password-stdin"], db_url, "a brand new one\n")
    assert changed.returncode == 0, changed.stderr
    assert "password changed" in changed.stdout

    engine = make_engine(db_url)
    try:
        now = SystemClock().now()
        assert users.verify_login(engine, ALICE, "a brand new one", now=now) is not None
        assert users.verify_login(engine, ALICE, "long enough", now=now) is None
        changes = [
            (r.action, r.actor, r.target_id, r.before, r.after)
            for r in audit_rows(engine)
            if r.action in ("admin.role", "admin.set_password", "admin.disable")
        ]
        assert changes == [
            ("admin.role", "cli", BOB, {"role": "viewer"}, {"role": "admin"}),
            ("admin.role", "cli", ALICE, {"role": "admin"}, {"role": "viewer"}),
            ("admin.set_password", "cli", ALICE, None, None),
        ]
    finally:
        engine.dispose()
