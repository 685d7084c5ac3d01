"""What every measurement needs: where to put files, which databases, the processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from bench.common import Processes


@dataclass
class Sizes:
    """How big each measurement is (full run, or ``--quick``)."""

    fire_counts: tuple[int, ...]
    fire_c8_counts: tuple[int, ...]
    jobs: int  # no-op jobs in the main app = burst size
    idle_schedules: int
    idle_window_s: float
    idle_poll_ms: int
    runnow_tries: int
    runnow_nowake_poll_ms: int
    memory_schedules: int
    memory_idle_s: float
    burst_concurrency: tuple[int, ...]
    celery_worker_idle_s: float
    #: Runs of a 1-second job for the scaling measurement (one daemon, then three).
    scaling_runs: int = 1000


FULL = Sizes(
    fire_counts=(1, 100, 1000),
    fire_c8_counts=(1000,),
    jobs=1000,
    idle_schedules=100,
    idle_window_s=40.0,
    idle_poll_ms=5000,
    runnow_tries=20,
    runnow_nowake_poll_ms=5000,
    memory_schedules=10_000,
    memory_idle_s=60.0,
    burst_concurrency=(4, 8),
    celery_worker_idle_s=30.0,
)

QUICK = Sizes(
    fire_counts=(20,),
    fire_c8_counts=(),
    jobs=100,
    idle_schedules=100,
    idle_window_s=10.0,
    idle_poll_ms=2000,
    runnow_tries=5,
    runnow_nowake_poll_ms=2000,
    memory_schedules=1000,
    memory_idle_s=20.0,
    burst_concurrency=(4,),
    celery_worker_idle_s=5.0,
    scaling_runs=48,
)


@dataclass
class Bench:
    procs: Processes
    tmp: Path
    quick: bool
    sizes: Sizes
    mysql_url: str
    main_app: Path = field(default=Path())
    memory_app: Path = field(default=Path())
    #: MySQL databases created, dropped at the end
    mysql_created: set[str] = field(default_factory=set)

    @property
    def mysql_db(self) -> str:
        return make_url(self.mysql_url).database or "jobsys_bench"

    def mysql_name(self, purpose: str) -> str:
        """``jobsys_bench`` for the foreground measurements; ``jobsys_bench_<purpose>``
        for those that run next to them (idle and memory daemons, APScheduler stores)."""
        if purpose in ("fire", "runnow", "burst"):
            return self.mysql_db
        return f"{self.mysql_db}_{purpose}"
