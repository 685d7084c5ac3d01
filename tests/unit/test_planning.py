"""Pure batch planning (jobsys.planning): no database, no processes.

The store writes these plans as they are, so what a batch runs (order, waits, params,
timeouts) is decided and checked here.
"""

from __future__ import annotations

from typing import Any

import pytest

from jobsys.definitions import App
from jobsys.errors import DefinitionError, NotFound
from jobsys.planning import plan_batch, plan_manual, run_timeout, schedule_plans
from jobsys.store.types import BatchPlan, PlannedRun
from jobsys.vocabulary import BatchMode, MissedPolicy


def noop(ctx: Any) -> None:
    return None


def make_app() -> App:
    """feed waits for scores (matching) and quiz; scores waits for index (search)."""
    app = App()
    app.job("seed", group="maintenance", params={"full": {"type": "boolean", "default": False}})(
        noop
    )
    app.job("index", group="search", depends_on=["seed"], timeout="90s")(noop)
    app.job("scores", group="matching", depends_on=["index"], timeout=0.2)(noop)
    app.job("quiz", group="matching", params={"limit": {"type": "integer", "maximum": 10}})(noop)
    app.job("feed", group="feed", depends_on=["scores", "quiz"], timeout="30m")(noop)
    app.job("cleanup", group="maintenance")(noop)
    app.schedule("nightly", cron="0 2 * * *")
    app.schedule("matching", cron="*/15 * * * *", mode="GROUP", group="matching")
    app.schedule("matching-2", cron="*/30 * * * *", mode="GROUP", group="matching")
    app.schedule("dev", cron="*/5 * * * *", environments=["development"])
    return app.validate()


def names(plan: BatchPlan) -> list[str]:
    return [run.job_name for run in plan.runs]


def test_all_jobs_in_dependency_order_with_their_waits() -> None:
    plan = plan_batch(make_app(), mode="ALL_JOBS")
    assert names(plan) == ["seed", "index", "scores", "quiz", "feed", "cleanup"]
    waits = {run.job_name: run.depends_on for run in plan.runs}
    assert waits == {
        "seed": (),
        "index": ("seed",),
        "scores": ("index",),
        "quiz": (),
        "feed": ("scores", "quiz"),
        "cleanup": (),
    }
    assert (plan.mode, plan.group, plan.job, plan.params) == ("ALL_JOBS", None, None, None)
    assert plan.skip_dependencies is False


def test_dependency_order_does_not_follow_definition_order() -> None:
    app = App()
    app.job("last", group="g", depends_on=["middle"])(noop)
    app.job("middle", group="g", depends_on=["first"])(noop)
    app.job("first", group="g")(noop)
    plan = plan_batch(app.validate(), mode="GROUP", group="g")
    assert names(plan) == ["first", "middle", "last"]
    assert [run.depends_on for run in plan.runs] == [(), ("first",), ("middle",)]


def test_group_runs_only_its_jobs_and_drops_waits_outside_it() -> None:
    plan = plan_batch(make_app(), mode=BatchMode.GROUP, group="matching")
    assert names(plan) == ["scores", "quiz"]
    assert [run.depends_on for run in plan.runs] == [(), ()]  # index is not in the batch
    assert (plan.mode, plan.group) == ("GROUP", "matching")
    maintenance = plan_batch(make_app(), mode="GROUP", group="maintenance")
    assert names(maintenance) == ["seed", "cleanup"]


def test_params_are_the_declared_defaults_and_timeouts_whole_seconds() -> None:
    runs = {run.job_name: run for run in plan_batch(make_app(), mode="ALL_JOBS").runs}
    assert runs["seed"] == PlannedRun("seed", (), {"full": False}, None)
    assert runs["quiz"].params == {}  # declared params without defaults
    assert runs["cleanup"].params is None  # no declared params
    assert runs["index"].timeout_s == 90
    assert runs["feed"].timeout_s == 1800
    assert runs["scores"].timeout_s == 1  # a sub-second timeout is at least 1 s
    assert (run_timeout(None), run_timeout(2.4), run_timeout(2.6)) == (None, 2, 3)


def test_skip_dependencies_drops_every_wait() -> None:
    plan = plan_batch(make_app(), mode="ALL_JOBS", skip_dependencies=True)
    assert names(plan) == ["seed", "index", "scores", "quiz", "feed", "cleanup"]
    assert all(run.depends_on == () for run in plan.runs)
    assert plan.skip_dependencies is True


def test_one_job_alone_with_its_checked_params() -> None:
    plan = plan_manual(make_app(), mode="JOB", job="feed")
    assert names(plan) == ["feed"] and plan.runs[0].depends_on == ()
    assert (plan.mode, plan.job, plan.group, plan.params) == ("JOB", "feed", None, {})
    seed = plan_manual(make_app(), mode="JOB", job="seed", params={})
    assert seed.runs[0].params == {"full": False} and seed.params == {"full": False}
    quiz = plan_manual(make_app(), mode="JOB", job="quiz", params={"limit": 3})
    assert quiz.runs[0].params == {"limit": 3} and quiz.params == {"limit": 3}


def test_manual_requests_are_checked() -> None:
    app = make_app()
    with pytest.raises(DefinitionError, match=r"param 'limit': must be at most 10"):
        plan_manual(app, mode="JOB", job="quiz", params={"limit": 11})
    with pytest.raises(DefinitionError, match=r"unknown param\(s\): nope"):
        plan_manual(app, mode="JOB", job="quiz", params={"nope": 1})
    with pytest.raises(DefinitionError, match="unknown job 'ghost'"):
        plan_manual(app, mode="JOB", job="ghost")
    with pytest.raises(DefinitionError, match="params are only accepted when running one job"):
        plan_manual(app, mode="ALL_JOBS", params={})
    with pytest.raises(NotFound, match="unknown group 'ghost'"):
        plan_manual(app, mode="GROUP", group="ghost")
    with pytest.raises(DefinitionError, match="unknown mode 'SOME'"):
        plan_batch(app, mode="SOME")


def test_run_now_plans_the_schedules_own_mode_group_and_environments() -> None:
    app = make_app()
    plan = plan_manual(app, mode="ALL_JOBS", schedule_id="matching", env="production")
    assert (plan.mode, plan.group, names(plan)) == ("GROUP", "matching", ["scores", "quiz"])
    assert names(plan_manual(app, mode="ALL_JOBS", schedule_id="dev", env="development")) == [
        "seed",
        "index",
        "scores",
        "quiz",
        "feed",
        "cleanup",
    ]
    with pytest.raises(NotFound, match="not active in environment 'production'"):
        plan_manual(app, mode="ALL_JOBS", schedule_id="dev", env="production")
    with pytest.raises(NotFound, match="unknown schedule 'ghost'"):
        plan_manual(app, mode="ALL_JOBS", schedule_id="ghost")


def test_schedule_plans_cover_every_schedule_and_share_equal_ones() -> None:
    app = make_app()
    plans = schedule_plans(app)
    assert set(plans) == {"nightly", "matching", "matching-2", "dev"}
    assert plans["matching"] is plans["matching-2"]  # planned once per mode and group
    assert plans["nightly"] is plans["dev"]
    assert names(plans["matching"]) == ["scores", "quiz"]
    assert plans["nightly"] == plan_batch(app, mode="ALL_JOBS")
    assert plans["nightly"].runs[0].params == {"full": False}  # slots get the defaults


def test_vocabulary_is_the_enums() -> None:
    app = App()
    with pytest.raises(DefinitionError, match=r"mode 'ONE' is not one of ALL_JOBS, GROUP, JOB$"):
        app.schedule("a", cron="* * * * *", mode="ONE")
    with pytest.raises(DefinitionError, match=r"missed 'LATER' is not one of SKIP, RUN_ONCE$"):
        app.schedule("b", cron="* * * * *", missed="LATER")
    sched = app.schedule("c", cron="* * * * *", missed=MissedPolicy.RUN_ONCE)
    assert sched.missed == "RUN_ONCE" and type(sched.missed) is str
    assert sched.mode == BatchMode.ALL_JOBS
