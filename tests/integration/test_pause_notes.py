"""Disabling with a note (issue 10 item 4) through the API and the CLI, the schedule
options shown by both, and a bad single-job schedule exiting 2 for every command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from jobsys.store.schedules import set_enabled
from tests.process_helpers import ROOT, run_cli
from tests.web_helpers import ADMIN, T0, Web, audit_rows, make_app, web_harness

BAD_APP = str(ROOT / "tests" / "apps" / "bad_job_schedule_app.py")
UI_APP = str(ROOT / "tests" / "apps" / "ui_app.py")


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch) as harness:
        yield harness


def test_disable_with_a_note_records_who_when_and_why(web: Web) -> None:
    assert web.post("/schedules/nightly/enable").status_code == 200
    disabled = web.post("/schedules/nightly/disable", {"note": "  waiting for the new DB  "})
    assert disabled.status_code == 200, disabled.text
    body = disabled.json()
    assert body["enabled"] is False
    assert body["paused_note"] == "waiting for the new DB"
    assert body["paused_by"] == ADMIN and body["paused_at"] == "2030-01-07T12:00:00Z"
    assert T0.isoformat().startswith("2030-01-07T12:00:00")
    listed = {s["id"]: s for s in web.get("/schedules").json()["schedules"]}
    assert listed["nightly"]["paused_note"] == "waiting for the new DB"
    assert web.get("/schedules/nightly").json()["paused_by"] == ADMIN
    # a new note on a disabled schedule replaces the old one
    again = web.put("/schedules/nightly", {"enabled": False, "note": "moved to Friday"})
    assert again.status_code == 200 and again.json()["paused_note"] == "moved to Friday"
    rows = [r for r in audit_rows(web.engine) if r.action == "schedule.disable"]
    assert [(r.after or {}).get("note") for r in rows] == [
        "waiting for the new DB",
        "moved to Friday",
    ]
    assert rows[1].before is not None and rows[1].before["note"] == "waiting for the new DB"
    # enabling clears it
    enabled = web.put("/schedules/nightly", {"enabled": True}).json()
    assert (enabled["paused_note"], enabled["paused_by"], enabled["paused_at"]) == (None,) * 3
    # no note: who and when all the same
    plain = web.post("/schedules/nightly/disable").json()
    assert plain["paused_note"] is None and plain["paused_by"] == ADMIN


@pytest.mark.parametrize(
    ("method", "body", "message"),
    [
        ("post", {"note": 5}, "field 'note' must be a string, not a number"),
        ("post", {"note": "x" * 1001}, "field 'note' is longer than 1000 characters"),
        ("post", {"why": "x"}, "unknown field(s): why"),
        (
            "put",
            {"enabled": True, "note": "x"},
            "field 'note' is only accepted with enabled: false",
        ),
    ],
)
def test_bad_notes_are_422(web: Web, method: str, body: dict[str, object], message: str) -> None:
    if method == "post":
        response = web.post("/schedules/nightly/disable", body)
    else:
        response = web.put("/schedules/nightly", body)
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith(message)


def test_a_viewer_cannot_disable(web: Web) -> None:
    response = web.post("/schedules/nightly/disable", {"note": "no"}, headers=web.viewer)
    assert response.status_code == 403
    assert web.get("/schedules/nightly").json()["paused_note"] is None


def test_schedule_options_are_shown(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app()
    app.schedule("one", cron="0 * * * *", mode="JOB", job="report", pause_on_failure=3,
                 jitter="45s")  # fmt: skip
    with web_harness(engine, monkeypatch, app=app) as harness:
        body = harness.get("/schedules/one").json()
    assert body["execution_mode"] == "JOB" and body["job_name"] == "report"
    assert (body["pause_on_failure"], body["jitter_s"]) == (3, 45)


# -- the CLI ----------------------------------------------------------------------------
def test_cli_disable_with_note_and_list(engine: Engine, db_url: str) -> None:
    from jobsys.loader import load_app

    app = load_app(UI_APP)
    set_enabled(engine, app, "development", "nightly-etl", True, now=T0, actor="t")
    args = ["--app", UI_APP, "schedules", "disable", "nightly-etl"]
    out = run_cli([*args, "--note", "flaky upstream"], db_url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "schedule 'nightly-etl' disabled (flaky upstream)"
    listed = run_cli(["--app", UI_APP, "schedules", "list"], db_url)
    line = next(x for x in listed.stdout.splitlines() if x.startswith("nightly-etl"))
    assert "disabled by cli at " in line and ": flaky upstream" in line
    as_json = run_cli(["--app", UI_APP, "schedules", "list", "--json"], db_url)
    entry = next(s for s in json.loads(as_json.stdout) if s["id"] == "nightly-etl")
    assert entry["paused_note"] == "flaky upstream" and entry["paused_by"] == "cli"
    too_long = run_cli([*args, "--note", "x" * 1001], db_url)
    assert too_long.returncode == 2
    assert too_long.stderr.strip().endswith("--note is longer than 1000 characters")
    assert "Traceback" not in too_long.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["jobs", "list"],
        ["schedules", "list"],
        ["schedules", "disable", "x"],
        ["health"],
        ["daemon"],
    ],
)
def test_bad_job_schedule_exits_2_naming_it(args: list[str], tmp_path: Path) -> None:
    out = run_cli(["--app", BAD_APP, *args], f"sqlite:///{tmp_path}/c.db")
    message = "schedule 'purge-nightly': job 'purge': param 'days': expected integer"
    if args == ["health"]:  # the monitoring-plugin convention: UNKNOWN is 3, on stdout
        assert out.returncode == 3 and message in out.stdout
        return
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr
