"""The words definitions and the store share: batch modes and missed-slot policies.

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


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    """The values ``enum`` allows, in definition order, for checks and messages
    (``"x" in SomeEnum`` raises TypeError before Python 3.12)."""
    return tuple(member.value for member in enum)
