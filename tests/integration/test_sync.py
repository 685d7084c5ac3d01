"""Definitions sync (design 6.7) on SQLite and MariaDB."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from jobsys import present
from jobsys.definitions import App
from jobsys.errors import NotFound
from jobsys.store.db import session
from jobsys.store.models import AuditLog, JobDefinition, JobSchedule
from jobsys.store.schedules import get_view, schedule_views, set_enabled, sync_definitions

NOW = datetime(2027, 1, 1, 10, 7, 30, tzinfo=UTC)


def noop(ctx: Any) -> None:
    return None


def make_app(cron: str = "0 * * * *", tz: str = "UTC", with_dev: bool = True) -> App:
    app = App()
    app.job("a", group="g")(noop)
    app.job("b", group="g", depends_on=["a"])(noop)
    app.schedule("hourly", cron=cron, timezone=tz, mode="GROUP", group="g")
    app.schedule("nightly", cron="0 2 * * *", name="Nightly")
    if with_dev:
        app.schedule("dev-only", cron="*/5 * * * *", environments=["development"])
    return app.validate()


def rows(engine: Engine) -> dict[str, JobSchedule]:
    with session(engine) as s:
        return {r.id: r for r in s.exec(select(JobSchedule))}


def test_new_schedules_start_disabled(engine: Engine) -> None:
    report = sync_definitions(engine, make_app(), "development", NOW)
    assert sorted(report.created) == ["dev-only", "hourly", "nightly"]
    assert sorted(report.jobs_created) == ["a", "b"]
    got = rows(engine)
    assert all(not r.enabled and r.next_run_at is None for r in got.values())
    assert got["hourly"].execution_mode == "GROUP" and got["hourly"].job_group == "g"
    with session(engine) as s:
        job_b = s.get(JobDefinition, "b")
    assert job_b is not None and job_b.depends_on == ["a"]
    # A second sync changes nothing.
    again = sync_definitions(engine, make_app(), "development", NOW)
    assert again.created == [] and again.updated == [] and again.removed == []


def test_enable_computes_next_run_from_now_and_disable_clears_it(engine: Engine) -> None:
    app = make_app()
    view = set_enabled(engine, app, "development", "hourly", True, now=NOW, actor="tester")
    assert view.enabled and view.next_run_at == datetime(2027, 1, 1, 11, 0, tzinfo=UTC)
    view = set_enabled(engine, app, "development", "hourly", False, now=NOW, actor="tester")
    assert not view.enabled and view.next_run_at is None
    with session(engine) as s:
        actions = [a.action for a in s.exec(select(AuditLog).order_by(AuditLog.id))]  # type: ignore[arg-type]
    assert actions == ["schedule.enable", "schedule.disable"]


def test_changed_cron_recomputes_next_run(engine: Engine) -> None:
    set_enabled(engine, make_app(), "development", "hourly", True, now=NOW, actor=None)
    later = NOW + timedelta(minutes=1)
    report = sync_definitions(engine, make_app(cron="30 * * * *"), "development", later)
    assert report.updated == ["hourly"]
    assert rows(engine)["hourly"].next_run_at == datetime(2027, 1, 1, 10, 30, tzinfo=UTC)
    sync_definitions(engine, make_app(cron="30 * * * *", tz="Asia/Kolkata"), "development", later)
    # 10:08:30Z is 15:38:30 IST; the next :30 is 16:30 IST = 11:00Z.
    assert rows(engine)["hourly"].next_run_at == datetime(2027, 1, 1, 11, 0, tzinfo=UTC)


def test_removed_schedule_is_kept_marked_and_never_fires(engine: Engine) -> None:
    app = make_app()
    set_enabled(engine, app, "development", "dev-only", True, now=NOW, actor=None)
    report = sync_definitions(engine, make_app(with_dev=False), "development", NOW)
    assert report.removed == ["dev-only"]
    row = rows(engine)["dev-only"]
    assert row.in_code is False and row.next_run_at is None
    views = {v.id: v for v in schedule_views(engine, make_app(with_dev=False), "development")}
    assert present.schedule_note(views["dev-only"]) == "not in code"
    assert not views["dev-only"].enabled
    with pytest.raises(NotFound, match="not in code"):
        set_enabled(
            engine, make_app(with_dev=False), "development", "dev-only", True, now=NOW, actor=None
        )
    # It comes back when the code has it again.
    sync_definitions(engine, app, "development", NOW)
    assert rows(engine)["dev-only"].in_code is True


def test_environment_filter(engine: Engine) -> None:
    app = make_app()
    sync_definitions(engine, app, "production", NOW)
    assert rows(engine)["dev-only"].env_active is False
    assert [v.id for v in schedule_views(engine, app, "production")] == ["hourly", "nightly"]
    with pytest.raises(NotFound, match="not active in environment 'production'"):
        set_enabled(engine, app, "production", "dev-only", True, now=NOW, actor=None)


def test_views_before_sync_show_code_definitions_disabled(engine: Engine) -> None:
    views = schedule_views(engine, make_app(), "development")
    assert [v.id for v in views] == ["hourly", "nightly", "dev-only"]
    assert all(not v.enabled and not v.synced for v in views)
    assert present.schedule_json(views[0])["cron_description"]


def test_unknown_schedule(engine: Engine) -> None:
    with pytest.raises(NotFound, match="unknown schedule 'nope'"):
        get_view(engine, make_app(), "development", "nope")
    with pytest.raises(NotFound):
        set_enabled(engine, make_app(), "development", "nope", True, now=NOW, actor=None)
