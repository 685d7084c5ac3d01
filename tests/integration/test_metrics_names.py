"""``GET /metrics`` keeps its metric names, types, HELP texts and label names.

Dashboards and alert rules are written against these: the test reads a real response
(runs of several statuses, a cron slot fired late and one missed, enabled schedules, a
daemon, an open alert incident) and compares what it declares with
the checked-in ``EXPECTED``, parsing the text by hand (independent of any client
library). A metric renamed or a label added or dropped fails here; update ``EXPECTED``
only on purpose (and docs/operations.md with it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.engine import Engine

from jobsys.alerts import Alerter, AlertSettings
from tests.daemon_helpers import close_daemons, make_daemon, settle
from tests.web_helpers import Web, web_harness

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

#: (family, type, HELP, [(sample name, label names)]) in the order served.
Declared = list[tuple[str, str, str, list[tuple[str, tuple[str, ...]]]]]

EXPECTED: Declared = [
    (
        "jobsys_job_runs_total",
        "counter",
        "Finished job runs by job and final status (pruned history included).",
        [("jobsys_job_runs_total", ("job", "status"))],
    ),
    (
        "jobsys_job_run_duration_seconds",
        "histogram",
        "Duration of the job runs that finished in the last 24 hours (a sliding window).",
        [
            ("jobsys_job_run_duration_seconds_bucket", ("job", "le")),
            ("jobsys_job_run_duration_seconds_count", ("job",)),
            ("jobsys_job_run_duration_seconds_sum", ("job",)),
        ],
    ),
    (
        "jobsys_firing_lateness_seconds",
        "histogram",
        "How late cron slots fired, over the slots fired in the last 24 hours (a sliding window).",
        [
            ("jobsys_firing_lateness_seconds_bucket", ("le", "schedule")),
            ("jobsys_firing_lateness_seconds_count", ("schedule",)),
            ("jobsys_firing_lateness_seconds_sum", ("schedule",)),
        ],
    ),
    (
        "jobsys_slots_skipped_total",
        "counter",
        "Cron slots recorded as SKIPPED, by schedule and reason (missed, overlap, "
        "superseded, other; pruned history included).",
        [("jobsys_slots_skipped_total", ("reason", "schedule"))],
    ),
    (
        "jobsys_job_runs_queued",
        "gauge",
        "Job runs waiting to start.",
        [("jobsys_job_runs_queued", ())],
    ),
    (
        "jobsys_job_runs_running",
        "gauge",
        "Job runs executing now.",
        [("jobsys_job_runs_running", ())],
    ),
    (
        "jobsys_schedules_enabled",
        "gauge",
        "Enabled schedules that can fire (defined in code, active in this environment).",
        [("jobsys_schedules_enabled", ())],
    ),
    (
        "jobsys_schedule_consecutive_failures",
        "gauge",
        "Batches of an enabled schedule that failed in a row.",
        [("jobsys_schedule_consecutive_failures", ("schedule",))],
    ),
    (
        "jobsys_daemon_heartbeat_age_seconds",
        "gauge",
        "Seconds since each daemon that is not stopped last heartbeated.",
        [("jobsys_daemon_heartbeat_age_seconds", ("worker",))],
    ),
    (
        "jobsys_daemons_alive",
        "gauge",
        "Daemons that heartbeated within the critical age (5 minutes).",
        [("jobsys_daemons_alive", ())],
    ),
    (
        "jobsys_health_status",
        "gauge",
        "Health as `jobsys health` judges it: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        [("jobsys_health_status", ())],
    ),
    (
        "jobsys_alerts_firing",
        "gauge",
        "Open alert incidents by kind (see JOBSYS_ALERT_*).",
        [("jobsys_alerts_firing", ("kind",))],
    ),
    # Added with the outage answer (issue 12): 0 while the scrape cannot read the database.
    (
        "jobsys_database_up",
        "gauge",
        "1 when this scrape could read the database, else 0.",
        [("jobsys_database_up", ())],
    ),
]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def declared(text: str) -> Declared:
    """Families in order, each with its HELP, TYPE and the (sample name, label names)
    its samples use."""
    out: Declared = []
    helps: dict[str, str] = {}
    samples: dict[str, set[tuple[str, tuple[str, ...]]]] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[len("# HELP ") :].partition(" ")
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, kind = line[len("# TYPE ") :].split(" ")
            out.append((name, kind, helps[name], []))
            samples[name] = set()
        elif line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            labels = tuple(sorted(k for k, _ in _LABEL.findall(match.group(2) or "")))
            samples[out[-1][0]].add((match.group(1), labels))
    return [(n, k, h, sorted(samples[n])) for n, k, h, _ in out]


@pytest.fixture(autouse=True)
def _close_daemons() -> Iterator[None]:
    yield
    close_daemons()


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch) as harness:
        yield harness


def _quiet(url: str, body: dict[str, Any]) -> None:
    return None


def test_metrics_keep_their_names_types_help_and_labels(web: Web) -> None:
    daemon = make_daemon(web.engine, web.app, web.clock)
    assert web.post("/schedules/nightly/enable").status_code == 200
    # a missed slot, then one fired 250 ms late: its runs succeed, except report's (a
    # required param is missing), so the schedule has failed once
    web.clock.set(datetime(2030, 1, 8, 2, 5, tzinfo=UTC))
    settle(daemon)
    web.clock.set(datetime(2030, 1, 9, 2, 0, tzinfo=UTC) + timedelta(milliseconds=250))
    settle(daemon)
    # a run still queued at scrape time
    assert web.post("/jobs/cleanup/run", {}).status_code == 202
    # an open incident: the failing schedule (threshold 1)
    alerter = Alerter(
        web.engine,
        AlertSettings("http://127.0.0.1:9/hook", failures=1),
        worker_id=daemon.worker_id,
        sender=_quiet,
    )
    assert alerter.check(web.clock.now()).opened

    response = web.client.get("/metrics", headers=web.viewer)
    assert response.status_code == 200, response.text
    text = response.text
    # the data made every labelled family have samples, so label names are compared
    for needle in (
        'status="SUCCESS"',
        'status="FAILED"',
        'reason="missed"',
        'kind="schedule_failing"',
        "jobsys_firing_lateness_seconds_count{",
        "jobsys_job_run_duration_seconds_count{",
        f'worker="{daemon.worker_id}"',
        "jobsys_schedule_consecutive_failures{",
    ):
        assert needle in text, f"{needle} not served:\n{text}"
    assert declared(text) == EXPECTED


def test_declared_reads_names_labels_and_escapes() -> None:
    """The hand parser above: it must see labels inside escaped values correctly."""
    text = (
        "# HELP a_total A counter.\n# TYPE a_total counter\n"
        'a_total{job="x\\"y,z=\\"1",status="OK"} 1.0\n'
        "# HELP b B.\n# TYPE b gauge\nb 2\n"
    )
    assert declared(text) == [
        ("a_total", "counter", "A counter.", [("a_total", ("job", "status"))]),
        ("b", "gauge", "B.", [("b", ())]),
    ]


def openmetrics_families(text: str) -> Iterator[Metric]:
    """prometheus_client's OpenMetrics parser (untyped, unlike its text format parser)."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    families: Iterator[Metric] = text_string_to_metric_families(text)  # type: ignore[no-untyped-call]
    return families


def test_openmetrics_when_the_scraper_asks_for_it(web: Web) -> None:
    """prometheus_client's negotiation: Prometheus asks for OpenMetrics first."""
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    response = web.client.get("/metrics", headers={**web.viewer, "Accept": accept})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/openmetrics-text;")
    assert response.text.endswith("# EOF\n")
    names = {f.name for f in openmetrics_families(response.text)}
    # OpenMetrics names a counter family without its _total (samples keep it)
    assert {"jobsys_job_runs", "jobsys_health_status", "jobsys_firing_lateness_seconds"} <= names
    plain = web.client.get("/metrics", headers=web.viewer)
    assert plain.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_each_app_has_its_own_registry(web: Web) -> None:
    """Nothing lands in prometheus_client's global registry, so two apps in one process
    (or an application that registers its own metrics there) do not collide."""
    from prometheus_client import REGISTRY, generate_latest
    from starlette.testclient import TestClient

    from jobsys.web.app import create_app
    from tests.web_helpers import settings_for

    other = create_app(
        settings=settings_for(web.engine), app=web.app, engine=web.engine, clock=web.clock
    )
    with TestClient(other) as client:
        assert client.get("/metrics", headers=web.viewer).status_code == 200
    assert web.client.get("/metrics", headers=web.viewer).status_code == 200
    assert b"jobsys_" not in generate_latest(REGISTRY)
