"""Prometheus metrics, computed from the database (``GET /metrics`` on the web).

Every figure is read from the database when scraped (``jobsys.store.metrics``, and
``jobsys.health`` for the health gauges), so any web replica answers the same and nothing
is lost when a process restarts. ``prometheus_client`` writes the exposition: each web app
has its own registry holding one ``StoreCollector``, which reads the figures per scrape;
the text format 0.0.4 by default, OpenMetrics or text 1.0.0 when the scraper asks for it.

=====================================================  =========  ==========================
metric                                                 type       from
=====================================================  =========  ==========================
``jobsys_job_runs_total{job,status}``                  counter    finished runs (SUCCESS,
                                                                  FAILED, CANCELLED,
                                                                  SKIPPED) + ``pruned_count``
``jobsys_job_run_duration_seconds{job}``               histogram  ``job_run.duration_ms`` of
                                                                  runs finished in the last
                                                                  24 h (``WINDOW``)
``jobsys_firing_lateness_seconds{schedule}``           histogram  ``job_batch.lateness_ms``
                                                                  of CRON slots fired in the
                                                                  last 24 h
``jobsys_slots_skipped_total{schedule,reason}``        counter    SKIPPED batches (reason
                                                                  missed, overlap,
                                                                  superseded, other) +
                                                                  ``pruned_count``
``jobsys_job_runs_queued`` / ``_running``              gauge      runs in that status now
``jobsys_schedules_enabled``                           gauge      enabled schedules that can
                                                                  fire (in code, active here)
``jobsys_schedule_consecutive_failures{schedule}``     gauge      per enabled schedule
``jobsys_daemon_heartbeat_age_seconds{worker}``        gauge      daemons not STOPPED
``jobsys_daemons_alive``                               gauge      heartbeat within 5 min
``jobsys_health_status``                               gauge      0 OK, 1 WARNING,
                                                                  2 CRITICAL, 3 UNKNOWN (as
                                                                  ``jobsys health``)
``jobsys_alerts_firing{kind}``                         gauge      open alert incidents
``jobsys_database_up``                                 gauge      1 when the scrape could read
                                                                  the database, else 0
=====================================================  =========  ==========================

While the database cannot be reached, a scrape still answers (200) with what is known:
``jobsys_health_status 3`` (UNKNOWN, as ``jobsys health``) and ``jobsys_database_up 0``
(``unreachable_exposition``), so an alert on either fires instead of the scrape failing.

The two ``_total`` counters only grow: a run is counted once it has finished, and
retention adds what it deletes to ``pruned_count`` in the same transaction. The two
histograms describe a sliding 24-hour window, not all time: read them without
``rate()``, e.g. ``histogram_quantile(0.95, sum by (le) (jobsys_job_run_duration_seconds_bucket))``.

Cost: see ``jobsys.store.metrics`` (index-only counts, the last 24 h through the
``updated_at`` indexes, small tables).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from jobsys import health
from jobsys.clock import Clock
from jobsys.store.metrics import Distribution, read_metric_figures

#: What a plain scrape gets (no Accept header asking for OpenMetrics or text 1.0.0).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: The histograms cover runs and slots of this recent period.
WINDOW = timedelta(hours=24)

#: Bucket bounds, in seconds.
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600)
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

HEALTH_VALUES = {health.OK: 0, health.WARNING: 1, health.CRITICAL: 2, health.UNKNOWN: 3}

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    suffix: str  # "" or "_bucket", "_sum", "_count"
    labels: Labels
    value: float


@dataclass
class Family:
    """One metric as served: its full name (a counter's with ``_total``), type, HELP."""

    name: str
    kind: str  # counter, gauge, histogram
    help: str
    samples: list[Sample] = field(default_factory=list)

    def add(self, value: float, suffix: str = "", **labels: str) -> None:
        self.samples.append(Sample(suffix, tuple(labels.items()), value))

    def to_prometheus(self) -> Metric:
        # prometheus_client names a counter family without ``_total`` and adds it back
        # when writing; its samples keep the full name.
        base = self.name.removesuffix("_total") if self.kind == "counter" else self.name
        metric = Metric(base, self.help, self.kind)
        for s in self.samples:
            metric.add_sample(self.name + s.suffix, dict(s.labels), s.value)
        return metric


def _bound(seconds: float) -> str:
    """A bucket's ``le`` as served so far: "1", "0.25", "10800" (not "1.0")."""
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def _histogram(
    fam: Family, bounds: Sequence[float], label: str, rows: Iterable[Distribution]
) -> None:
    for row in rows:
        labels = {label: row.key}
        for bound, n in zip(bounds, row.cumulative, strict=True):
            fam.add(n, "_bucket", **labels, le=_bound(bound))
        fam.add(row.count, "_bucket", **labels, le="+Inf")
        fam.add(row.sum_s, "_sum", **labels)
        fam.add(row.count, "_count", **labels)


# -- collection ------------------------------------------------------------------------
def collect(
    engine: Engine, now: datetime, thresholds: health.Thresholds | None = None
) -> list[Family]:
    """Read every metric (a few indexed queries); raises on database errors."""
    runs_total = Family(
        "jobsys_job_runs_total",
        "counter",
        "Finished job runs by job and final status (pruned history included).",
    )
    skipped_total = Family(
        "jobsys_slots_skipped_total",
        "counter",
        "Cron slots recorded as SKIPPED, by schedule and reason (missed, overlap, "
        "superseded, other; pruned history included).",
    )
    duration = Family(
        "jobsys_job_run_duration_seconds",
        "histogram",
        "Duration of the job runs that finished in the last 24 hours (a sliding window).",
    )
    lateness = Family(
        "jobsys_firing_lateness_seconds",
        "histogram",
        "How late cron slots fired, over the slots fired in the last 24 hours (a sliding window).",
    )
    queued = Family("jobsys_job_runs_queued", "gauge", "Job runs waiting to start.")
    running = Family("jobsys_job_runs_running", "gauge", "Job runs executing now.")
    enabled = Family(
        "jobsys_schedules_enabled",
        "gauge",
        "Enabled schedules that can fire (defined in code, active in this environment).",
    )
    failures = Family(
        "jobsys_schedule_consecutive_failures",
        "gauge",
        "Batches of an enabled schedule that failed in a row.",
    )
    heartbeat = Family(
        "jobsys_daemon_heartbeat_age_seconds",
        "gauge",
        "Seconds since each daemon that is not stopped last heartbeated.",
    )
    alive = Family(
        "jobsys_daemons_alive",
        "gauge",
        "Daemons that heartbeated within the critical age (5 minutes).",
    )
    alerts_firing = Family(
        "jobsys_alerts_firing", "gauge", "Open alert incidents by kind (see JOBSYS_ALERT_*)."
    )
    database_up = _database_up(1)

    report = health.evaluate(engine, now, thresholds)  # its own queries; UNKNOWN on failure
    health_status = _health_family(report.status)
    for w in report.workers:
        heartbeat.add(float(w["heartbeat_age_s"]), worker=str(w["id"]))
    alive.add(sum(1 for w in report.workers if w["alive"]))

    figures = read_metric_figures(
        engine,
        since=now - WINDOW,
        duration_bounds_s=DURATION_BUCKETS,
        lateness_bounds_s=LATENESS_BUCKETS,
    )
    for r in figures.run_totals:
        runs_total.add(r.count, job=r.job, status=r.status)
    for k in figures.skipped_totals:
        skipped_total.add(k.count, schedule=k.schedule, reason=k.reason)
    _histogram(duration, DURATION_BUCKETS, "job", figures.durations)
    _histogram(lateness, LATENESS_BUCKETS, "schedule", figures.lateness)
    queued.add(figures.queued)
    running.add(figures.running)
    enabled.add(len(figures.runnable_schedules))
    for sf in figures.runnable_schedules:
        failures.add(sf.consecutive_failures, schedule=sf.schedule)
    for kind, n in figures.open_incidents.items():
        alerts_firing.add(n, kind=kind)

    return [
        runs_total,
        duration,
        lateness,
        skipped_total,
        queued,
        running,
        enabled,
        failures,
        heartbeat,
        alive,
        health_status,
        alerts_firing,
        database_up,
    ]


class StoreCollector(Collector):
    """Reads the figures from the database at each scrape (``collect``)."""

    def __init__(
        self, engine: Engine, clock: Clock, thresholds: health.Thresholds | None = None
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.thresholds = thresholds

    def collect(self) -> Iterator[Metric]:
        for fam in collect(self.engine, self.clock.now(), self.thresholds):
            yield fam.to_prometheus()


class _Fixed(Collector):
    def __init__(self, families: Iterable[Family]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        for fam in self.families:
            yield fam.to_prometheus()


def registry(engine: Engine, clock: Clock) -> CollectorRegistry:
    """A registry of its own (not prometheus_client's global one) per web app: it holds
    only jobsys's figures, and two apps in one process do not collide."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StoreCollector(engine, clock))
    return reg


def encode(reg: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The body and content type for a scraper's Accept header; reads the database
    (raises on its errors)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(reg), content_type


def render(families: Iterable[Family]) -> str:
    """The text format 0.0.4 of these families."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Fixed(families))
    return generate_latest(reg).decode("utf-8")


def _health_family(status: str) -> Family:
    fam = Family(
        "jobsys_health_status",
        "gauge",
        "Health as `jobsys health` judges it: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    )
    fam.add(HEALTH_VALUES[status])
    return fam


def _database_up(value: int) -> Family:
    fam = Family(
        "jobsys_database_up", "gauge", "1 when this scrape could read the database, else 0."
    )
    fam.add(value)
    return fam


def exposition(engine: Engine, now: datetime) -> str:
    """What ``GET /metrics`` returns; raises on database errors (see
    ``unreachable_exposition``)."""
    return render(collect(engine, now))


def unreachable_families() -> list[Family]:
    """All that is known while the database cannot be reached: health is UNKNOWN and the
    database is down."""
    return [_health_family(health.UNKNOWN), _database_up(0)]


def unreachable_exposition() -> str:
    """What a plain ``GET /metrics`` returns while the database cannot be reached."""
    return render(unreachable_families())


def unreachable_registry() -> CollectorRegistry:
    """``unreachable_families`` as a registry, to encode for any Accept header."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Fixed(unreachable_families()))
    return reg
