"""What the read queries return: frozen rows with real (aware UTC) datetimes.

The store does not format anything: ``jobsys.present`` turns these rows into the JSON
the API and the CLI print, and into text for people.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Generic, TypeVar


class _ByKey:
    """Also read a field as ``row["name"]``: the queries returned dicts before, and
    tests and scripts still read a run that way. Only fields, never methods."""

    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in fields(self)}:  # type: ignore[arg-type]
            raise KeyError(key)
        return getattr(self, key)


@dataclass(frozen=True)
class LogLineRow(_ByKey):
    id: int
    ts: datetime
    level: str
    message: str


@dataclass(frozen=True)
class LogPage:
    """Consecutive log lines of one run, oldest first, and where they sit in the log."""

    lines: list[LogLineRow]
    earlier: int  # lines stored before the first one here
    later: int  # lines stored after the last one here

    @property
    def total(self) -> int:
        return self.earlier + len(self.lines) + self.later


@dataclass(frozen=True)
class RunRow(_ByKey):
    """One ``job_run`` as the API shows it (not its lease internals such as ``pid``)."""

    id: int
    job_name: str
    status: str
    trigger: str
    schedule_id: str | None
    batch_id: int
    scheduled_for: datetime | None
    params: dict[str, Any] | None
    triggered_by: str | None
    depends_on: list[str]
    position: int
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    error: str | None
    timeout_s: int | None
    worker_id: str | None
    exit_code: int | None
    cancel_requested: bool
    progress_done: int | None
    progress_total: int | None
    attempt: int
    retry_of: int | None  # the chain's first attempt
    not_before: datetime | None  # a retry waits until then
    next_attempt_id: int | None  # set once this attempt failed and was retried


@dataclass(frozen=True)
class AttemptRow:
    """One attempt of a run's retry chain."""

    id: int
    batch_id: int
    attempt: int
    status: str
    not_before: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class RunWithLogs(RunRow):
    """A run and the tail of its log: ``logs`` oldest first, ``log_count`` stored in all."""

    logs: list[LogLineRow]
    log_count: int


@dataclass(frozen=True)
class RunSummary:
    """The short form of a run (the jobs list's "last run")."""

    id: int
    batch_id: int
    status: str
    trigger: str
    triggered_by: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    error: str | None


@dataclass(frozen=True)
class JobActivity:
    """A job's newest run, the run holding its mutex and its active runs per status."""

    last_run: RunSummary | None
    running_run_id: int | None
    active: dict[str, int]


@dataclass(frozen=True)
class BatchRow(_ByKey):
    id: int
    schedule_id: str | None
    trigger: str
    scheduled_for: datetime | None
    status: str
    reason: str | None
    mode: str
    job_group: str | None
    skip_dependencies: bool
    triggered_by: str | None
    fired_by: str | None
    lateness_ms: int | None
    jitter_ms: int | None  # the delay a jittered slot got
    total_runs: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    rerun_of: int | None  # the batch this one re-runs the failures of


@dataclass(frozen=True)
class BatchWithRuns(BatchRow):
    """A batch and its runs in dependency order."""

    runs: list[RunRow]


@dataclass(frozen=True)
class BatchWithCounts(BatchRow):
    """A batch of a schedule's history and how many of its runs are in each status."""

    counts: dict[str, int]


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor: str | None
    action: str
    target_type: str | None
    target_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    ip: str | None
    detail: str | None


T = TypeVar("T")


@dataclass(frozen=True)
class SearchStop:
    """Where a bounded search stopped: it searched ``runs`` runs, back to (and including)
    id ``last_id``, the oldest of them queued at ``last_queued_at`` (None if none is left
    there); the page's cursor continues from there."""

    runs: int
    last_id: int
    last_queued_at: datetime | None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page, newest first; ``next_cursor`` is the id to pass for the next page.
    ``searched`` is set when a bounded search (``list_runs``'s error text) stopped before
    the page was full: fewer items than asked for, yet older ones may match."""

    items: list[T]
    next_cursor: int | None
    searched: SearchStop | None = None


def field_names(cls: type[Any]) -> tuple[str, ...]:
    """The fields of a row class, in order (what a query reads into it)."""
    return tuple(f.name for f in fields(cls))
