from typing import Any

import pytest

from jobsys.definitions import App, default_params, parse_duration, validate_params
from jobsys.errors import CronError, DefinitionError


def noop(ctx: Any) -> None:
    return None


def make_app() -> App:
    app = App()
    app.job("seed", group="maintenance")(noop)
    app.job("index", group="search", depends_on=["seed"])(noop)
    app.job("scores", group="matching", depends_on=["index"], timeout="30m")(noop)
    app.job("quiz", group="matching")(noop)
    app.job("feed", group="feed", depends_on=["scores", "quiz"])(noop)
    app.job("cleanup", group="maintenance")(noop)
    return app


def test_job_name_defaults_to_function_name() -> None:
    app = App()

    @app.job(group="g", description="does things")
    def profile_search_index(ctx: Any) -> None: ...

    assert "profile_search_index" in app.jobs
    assert app.jobs["profile_search_index"].description == "does things"


def test_timeout_parsing() -> None:
    assert parse_duration("30m", "x") == 1800
    assert parse_duration("1h", "x") == 3600
    assert parse_duration("90s", "x") == 90
    assert parse_duration("500ms", "x") == 0.5
    assert parse_duration(12, "x") == 12
    assert parse_duration(None, "x") is None
    for bad in ("soon", "0s", "-5", "1w"):
        with pytest.raises(DefinitionError, match="duration"):
            parse_duration(bad, "x")


def test_topological_order_is_deterministic() -> None:
    app = make_app().validate()
    order = app.ordered()
    assert order == ["seed", "index", "scores", "quiz", "feed", "cleanup"]
    for name in order:
        for dep in app.jobs[name].depends_on:
            assert order.index(dep) < order.index(name)


def test_plan_group_drops_outside_dependencies() -> None:
    app = make_app().validate()
    assert app.plan(mode="GROUP", group="matching") == [("scores", ()), ("quiz", ())]
    assert app.plan(mode="ALL_JOBS")[4] == ("feed", ("scores", "quiz"))
    assert all(deps == () for _, deps in app.plan(mode="ALL_JOBS", skip_dependencies=True))
    assert app.plan(mode="JOB", job="feed") == [("feed", ())]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda a: a.job("seed", group="x")(noop), "duplicate job name 'seed'"),
        (lambda a: a.job("bad name!", group="x")(noop), "job name 'bad name!' is not valid"),
        (lambda a: a.job("z", group="x", depends_on=["nope"])(noop), "unknown job 'nope'"),
        (lambda a: a.job("z", group="x", depends_on=["z"])(noop), "dependency cycle: z -> z"),
        (lambda a: a.job("z", group="x", timeout="forever")(noop), "timeout"),
        (lambda a: a.job("z", group="x", params={"n": list})(noop), "unsupported type"),
        (lambda a: a.schedule("s", cron="61 * * * *"), "minute"),
        (lambda a: a.schedule("s", cron="0 * * * *", timezone="Mars/Base"), "Mars/Base"),
        (lambda a: a.schedule("s", cron="0 * * * *", mode="GROUP"), "mode GROUP needs a group"),
        (
            lambda a: a.schedule("s", cron="0 * * * *", mode="GROUP", group="nope"),
            "unknown group 'nope'",
        ),
        (lambda a: a.schedule("s", cron="0 * * * *", mode="SOME"), "mode 'SOME'"),
        (lambda a: a.schedule("s", cron="0 * * * *", missed="LATER"), "missed 'LATER'"),
        (
            lambda a: (a.schedule("s", cron="0 * * * *"), a.schedule("s", cron="5 * * * *")),
            "duplicate schedule id 's'",
        ),
        (lambda a: a.schedule("s", cron="0 * * * *", environments=[]), "environments is empty"),
    ],
)
def test_validation_errors_name_the_offender(build: Any, message: str) -> None:
    app = make_app()
    with pytest.raises(DefinitionError) as info:
        build(app)
        app.validate()
    assert message in str(info.value)


def test_bad_cron_is_a_cron_error_naming_the_schedule() -> None:
    with pytest.raises(CronError, match=r"schedule 's'.*minute"):
        make_app().schedule("s", cron="61 * * * *")


def test_cycle_is_printed() -> None:
    app = App()
    app.job("a", group="g", depends_on=["b"])(noop)
    app.job("b", group="g", depends_on=["c"])(noop)
    app.job("c", group="g", depends_on=["a"])(noop)
    with pytest.raises(DefinitionError, match=r"dependency cycle: a -> b -> c -> a"):
        app.validate()


def test_schedule_defaults_and_environments() -> None:
    app = make_app()
    s = app.schedule("dev", cron="*/5 * * * *", environments=["development"])
    r = app.schedule("catch", cron="0 2 * * *", missed="RUN_ONCE")
    app.validate()
    assert s.name == "dev" and s.timezone == "UTC" and s.mode == "ALL_JOBS"
    assert s.missed == "SKIP" and s.grace_s == 60 and s.allow_overlap is False
    assert r.max_catch_up_s == 3600
    assert [x.id for x in app.schedules.values() if x.active_in("production")] == ["catch"]
    assert [x.id for x in app.schedules.values() if x.active_in("development")] == ["dev", "catch"]


def test_params_validation() -> None:
    app = App()
    app.job("p", group="g", params={"fail": bool, "limit": {"type": "integer", "default": 5}})(noop)
    job = app.jobs["p"]
    assert validate_params(job, None) == {"limit": 5}
    assert validate_params(job, {"fail": True}) == {"fail": True, "limit": 5}
    with pytest.raises(DefinitionError, match="unknown param"):
        validate_params(job, {"other": 1})
    with pytest.raises(DefinitionError, match="'limit': expected integer"):
        validate_params(job, {"limit": "5"})
    with pytest.raises(DefinitionError, match="JSON object"):
        validate_params(job, [1, 2])
    limited = App()
    limited.job(
        "l",
        group="g",
        params={
            "region": {"type": "string", "default": "all", "choices": ["all", "eu"]},
            "limit": {"type": "integer", "default": 5, "minimum": 1, "maximum": 10},
            "code": {"type": "string", "default": "ab", "pattern": "[a-z]+"},
        },
    )(noop)
    ljob = limited.jobs["l"]
    assert validate_params(ljob, {"region": "eu", "limit": 10, "code": "xy"})["limit"] == 10
    for bad, why in (
        ({"region": "us"}, "must be one of all, eu"),
        ({"limit": 0}, "must be at least 1"),
        ({"limit": 11}, "must be at most 10"),
        ({"code": "AB1"}, "must match the pattern"),
    ):
        with pytest.raises(DefinitionError, match=why):
            validate_params(ljob, bad)
    assert default_params(ljob) == {"region": "all", "limit": 5, "code": "ab"}
    free = App()
    free.job("f", group="g")(noop)
    assert validate_params(free.jobs["f"], {"anything": [1]}) == {"anything": [1]}


def test_isolation_is_pool_process_or_the_applications() -> None:
    app = App("t")
    app.job("a", group="g")(lambda ctx: None)
    app.job("b", group="g", isolation="process")(lambda ctx: None)
    app.job("c", group="g", isolation="pool")(lambda ctx: None)
    assert [app.jobs[n].isolation for n in "abc"] == [None, "process", "pool"]
    assert "isolation" not in app.jobs["a"].to_dict()  # definitions unchanged without it
    assert app.jobs["b"].to_dict()["isolation"] == "process"
    with pytest.raises(DefinitionError, match=r"^job 'd': isolation 'thread' is not one of"):
        app.job("d", group="g", isolation="thread")(lambda ctx: None)
