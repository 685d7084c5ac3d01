"""Declared param limits are checked by the server, not only by the browser (issue 12,
item 14): ``choices``/``enum``, ``minimum``/``maximum`` (``min``/``max``) and ``pattern``
through the definitions, the JSON API (422, no run created) and the CLI (exit 2); bad
declarations fail when the app loads; explicit nulls are refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from jobsys.definitions import App, validate_params
from jobsys.errors import DefinitionError
from jobsys.loader import load_app
from jobsys.store.models import JobRun
from tests.process_helpers import ROOT, run_cli
from tests.web_helpers import Web, web_harness

LIMITS_APP = str(ROOT / "tests" / "apps" / "limits_app.py")


def noop(ctx: Any) -> None:
    pass


def runs(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(JobRun)).scalar_one())


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    app = load_app(LIMITS_APP)
    with web_harness(engine, monkeypatch, app=app) as harness:
        yield harness


BAD = [
    ({"region": "asia"}, "param 'region': must be one of all, eu, us"),
    ({"tier": "gold"}, "param 'tier': must be one of free, paid"),
    ({"limit": 0}, "param 'limit': must be at least 1"),
    ({"limit": 101}, "param 'limit': must be at most 100"),
    ({"ratio": -0.5}, "param 'ratio': must be at least 0"),
    ({"ratio": 1.5}, "param 'ratio': must be at most 1"),
    ({"day": "7 Jan"}, r"param 'day': must match the pattern \d{4}-\d\d-\d\d"),
    ({"day": "2030-01-07x"}, "param 'day': must match the pattern"),
    ({"limit": None}, "param 'limit': expected integer, got null"),
]


def test_the_ui_spellings_enum_min_max_are_checked_too() -> None:
    job = load_app(LIMITS_APP).jobs["report"]
    assert job.params is not None
    assert job.params["tier"]["choices"] == ["free", "paid"]  # one spelling on the server
    assert (job.params["ratio"]["minimum"], job.params["ratio"]["maximum"]) == (0, 1)
    good = {"region": "eu", "tier": "paid", "limit": 100, "ratio": 1, "day": "2030-01-07"}
    assert validate_params(job, good) == good
    for bad, why in BAD:
        with pytest.raises(DefinitionError, match=re.escape(why)):
            validate_params(job, bad)


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"type": "string", "pattern": "([a-z"}, "pattern '\\(\\[a-z' is not a valid regular"),
        ({"type": "string", "pattern": 5}, "pattern must be a string"),
        ({"type": "integer", "pattern": "[0-9]+"}, "pattern applies to string params only"),
        ({"type": "string", "choices": "abc"}, "choices must be a non-empty list"),
        ({"type": "string", "choices": []}, "choices must be a non-empty list"),
        ({"type": "integer", "choices": [1, "2"]}, "choice '2' is not of type integer"),
        ({"type": "string", "choices": ["a"], "enum": ["b"]}, "give 'choices' or 'enum'"),
        ({"type": "string", "minimum": 1}, "minimum applies to integer and number params"),
        ({"type": "integer", "maximum": "10"}, "maximum '10' is not a number"),
        ({"type": "number", "min": float("nan")}, "minimum nan is not a number"),
        ({"type": "integer", "minimum": 5, "maximum": 1}, "minimum 5 is above maximum 1"),
        ({"type": "integer", "default": 0, "minimum": 1}, "default must be at least 1"),
        ({"type": "string", "default": "x", "choices": ["a"]}, "default must be one of a"),
    ],
)
def test_bad_limit_declarations_fail_when_the_app_loads(spec: dict[str, Any], why: str) -> None:
    app = App()
    with pytest.raises(DefinitionError, match=f"job 'j': param 'p'.*{why}"):
        app.job("j", group="g", params={"p": spec})(noop)


def test_the_api_refuses_params_outside_their_limits(web: Web) -> None:
    for bad, why in BAD:
        response = web.post("/jobs/report/run", {"params": bad})
        assert response.status_code == 422, (bad, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid"
        assert error["message"].startswith("job 'report': param "), error
        assert "\n" not in error["message"]  # one line, as the UI shows it
        assert why in error["message"], error
    assert runs(web.engine) == 0
    ok = web.post("/jobs/report/run", {"params": {"tier": "free", "day": "2030-01-07"}})
    assert ok.status_code == 202, ok.text
    assert runs(web.engine) == 1


def test_explicit_nulls_are_refused(web: Web) -> None:
    for path, body, message in (
        ("/jobs/report/run", {"params": None}, "field 'params' must be a JSON object, not null"),
        (
            "/jobs/run-all",
            {"skip_dependencies": None},
            "field 'skip_dependencies' must be true or false, not null",
        ),
        (
            "/jobs/run-group/reports",
            {"skip_dependencies": None},
            "field 'skip_dependencies' must be true or false, not null",
        ),
        (
            "/schedules/preview-runs",
            {"cron": "* * * * *", "count": None},
            "field 'count' must be a whole number, not null",
        ),
    ):
        response = web.post(path, body)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["error"] == {"code": "invalid", "message": message}
    assert runs(web.engine) == 0
    # Leaving a field out still means its default.
    assert web.post("/jobs/run-all", {}).status_code == 202
    assert web.post("/jobs/report/run", {}).status_code == 202


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ('{"limit": 500}', "job 'report': param 'limit': must be at most 100"),
        ('{"tier": "gold"}', "job 'report': param 'tier': must be one of free, paid"),
        ('{"day": "soon"}', "job 'report': param 'day': must match the pattern"),
        ("null", """--params must be a JSON object like '{"limit": 10}', not null"""),
        ("[1, 2]", "--params must be a JSON object like '{\"limit\": 10}', not [1, 2]"),
    ],
)
def test_the_cli_exits_2_naming_the_param_and_the_rule(
    db_url: str, engine: Engine, params: str, message: str
) -> None:
    out = run_cli(["jobs", "run", "report", "--params", params], db_url, JOBSYS_APP=LIMITS_APP)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert runs(engine) == 0
