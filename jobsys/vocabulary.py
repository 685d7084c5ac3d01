"""The words definitions and the store share: batch modes, missed-slot and overlap
policies, and the values the store's status columns take.

One definition of each, as enums: ``jobsys.definitions`` validates against them and
``jobsys.store`` writes their values. This module imports nothing heavy (the CLI loads
the definitions, and so this, for every subcommand).
"""

from __future__ import annotations

from enum import StrEnum


class BatchMode(StrEnum):
    """What a batch runs: every job, a group, or one job (a schedule may use any)."""

    ALL_JOBS = "ALL_JOBS"
    GROUP = "GROUP"
    JOB = "JOB"

    @property
    def schedulable(self) -> bool:
        """Whether a schedule may use this mode (all may: JOB since issue 10 item 5)."""
        return True


class MissedPolicy(StrEnum):
    SKIP = "SKIP"
    RUN_ONCE = "RUN_ONCE"


class OverlapPolicy(StrEnum):
    """What a slot does when the schedule's previous batch is still running (design 6.4)."""

    SKIP = "SKIP"  # the slot is skipped and recorded
    BUFFER_ONE = "BUFFER_ONE"  # runs once right after the running batch ends; more are skipped
    ALLOW = "ALLOW"  # runs concurrently (a job still never runs twice at once)
    CANCEL_OTHER = "CANCEL_OTHER"  # the running batch is cancelled, then the slot starts


class RunStatus(StrEnum):
    """Status of a job run and of a batch."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


class Trigger(StrEnum):
    CRON = "CRON"
    MANUAL = "MANUAL"
    EVENT = "EVENT"
    BACKFILL = "BACKFILL"  # one past slot, asked for by an admin (``schedules backfill``)


class WorkerStatus(StrEnum):
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"


class Role(StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    """The values ``enum`` allows, in definition order, for checks and messages
    (``"x" in SomeEnum`` raises TypeError before Python 3.12)."""
    return tuple(member.value for member in enum)
