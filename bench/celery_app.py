"""The Celery application of the comparison: ``celery -A bench.celery_app beat|worker``.

Configured by environment variables (set by bench/run.py):

``BENCH_CELERY_BROKER``  broker URL (default ``redis://127.0.0.1:6379/0``)
``BENCH_CELERY_PREFIX``  a key prefix for every Redis key, so that concurrent users of
                         the same Redis (other benchmarks, tests) are never touched
``BENCH_CELERY_BEAT_N``  how many beat entries ``c0000``, ``c0001``, ...
``BENCH_CELERY_CRON``    their crontab (five fields, UTC; default ``* * * * *``)
``BENCH_MARKS``          file each task appends ``<name> <start> <end>`` to

No result backend: completion is observed through the marks file.
"""

from __future__ import annotations

import os
import time

from celery import Celery
from celery.schedules import crontab

PREFIX = os.environ.get("BENCH_CELERY_PREFIX", "jobsys_bench:")
QUEUE = "jobsys_bench"

app = Celery(
    "jobsys_bench", broker=os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/0")
)
app.conf.update(
    broker_transport_options={"global_keyprefix": PREFIX},
    broker_connection_retry_on_startup=True,
    task_default_queue=QUEUE,
    task_ignore_result=True,
    timezone="UTC",
    enable_utc=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop(name: str) -> None:
    start = time.time()
    path = os.environ.get("BENCH_MARKS")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{name} {start:.6f} {time.time():.6f}\n".encode())
        finally:
            os.close(fd)


def _beat_schedule() -> dict[str, dict[str, object]]:
    count = int(os.environ.get("BENCH_CELERY_BEAT_N", "0"))
    minute, hour, dom, month, dow = os.environ.get("BENCH_CELERY_CRON", "* * * * *").split()
    return {
        f"c{i:04d}": {
            "task": "bench.noop",
            "schedule": crontab(
                minute=minute,
                hour=hour,
                day_of_month=dom,
                month_of_year=month,
                day_of_week=dow,
            ),
            "args": (f"c{i:04d}",),
        }
        for i in range(count)
    }


app.conf.beat_schedule = _beat_schedule()
