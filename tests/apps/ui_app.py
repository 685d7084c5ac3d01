"""The application the browser tests (``tests/system/test_ui_browser.py``) and the Run-Now bench
(``bench/ui_run_now.py``) run: short jobs so QUEUED -> RUNNING -> SUCCESS is visible,
one job with declared params, one that fails with a clear error, three schedules.

``UI_APP_SLEEP`` (seconds, default 1.5) sets how long the slow jobs sleep.
"""

from __future__ import annotations

import os
import time
from typing import Any

from jobsys import App

app = App("uitest")

SLEEP_S = float(os.environ.get("UI_APP_SLEEP", "1.5"))
STEPS = 5


def _work(ctx: Any, what: str) -> None:
    ctx.log.info(f"{what}: starting")
    for step in range(STEPS):
        ctx.progress(step, STEPS)
        time.sleep(SLEEP_S / STEPS)
    ctx.progress(STEPS, STEPS)
    ctx.log.info(f"{what}: done")


@app.job(group="etl", description="Extract the day's rows from the source")
def extract(ctx: Any) -> None:
    _work(ctx, "extract")


@app.job(group="etl", depends_on=["extract"], description="Load the rows into the warehouse")
def load(ctx: Any) -> None:
    _work(ctx, "load")


@app.job(
    group="reports",
    description="Build the report for one day",
    params={
        "day": {"type": "string", "required": True, "description": "day as YYYY-MM-DD"},
        "limit": {"type": "integer", "default": 10, "description": "rows in the report"},
        "ratio": {"type": "number", "default": 0.5},
        "dry_run": {"type": "boolean", "default": False, "description": "compute only"},
    },
)
def report(ctx: Any) -> None:
    ctx.log.info(f"report for {ctx.params['day']} (limit {ctx.params['limit']})")
    ctx.progress(1, 1)


@app.job(group="maintenance", description="Purge old sessions; always fails (for the tests)")
def purge(ctx: Any) -> None:
    ctx.log.info("purge: connecting to the session store")
    ctx.log.warning("purge: the session store is read-only")
    raise RuntimeError("session store is read-only: cannot purge")


@app.job(
    group="housekeeping",
    description="Compact tables (takes any JSON params)",
    isolation="process",
)
def compact(ctx: Any) -> None:
    ctx.log.info(f"compact with {ctx.params}")


app.schedule(
    "nightly-etl",
    name="Nightly ETL",
    cron="0 2 * * *",
    description="Extract and load every night",
    mode="GROUP",
    group="etl",
)
app.schedule(
    "hourly-compact",
    name="Hourly compaction",
    cron="15 * * * *",
    timezone="Europe/Paris",
    mode="GROUP",
    group="housekeeping",
    missed="RUN_ONCE",
    max_catch_up="2h",
)
app.schedule(
    "prod-maintenance",
    name="Production maintenance",
    cron="30 3 * * SUN",
    mode="GROUP",
    group="maintenance",
    environments=["production"],
    description="Weekly clean-up, production only",
)
