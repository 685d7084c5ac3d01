"""A claim's cost does not grow with the queue's depth (issue 12 item 8): with 10,000
runs of one job queued, each claim runs as few statements as with 100 queued."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, insert
from sqlalchemy.engine import Engine

from jobsys.definitions import App
from jobsys.store import runs
from jobsys.store.db import write_engine
from jobsys.store.hotpath import HotConnection
from jobsys.store.models import JobBatch, JobRun
from jobsys.store.schedules import sync_definitions

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def queue_runs(engine: Engine, job: str, count: int) -> None:
    """``count`` Run Now batches of one job, queued (bulk: the setup, not the subject)."""
    app = App("depth")
    app.job(job, group="g")(lambda ctx: None)
    sync_definitions(engine, app.validate(), "development", NOW)
    with write_engine(engine).begin() as conn:
        conn.execute(
            insert(JobBatch),
            [
                {
                    "trigger": "MANUAL",
                    "status": "QUEUED",
                    "mode": "JOB",
                    "total_runs": 1,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for _ in range(count)
            ],
        )
        ids = [
            row[0]
            for row in conn.exec_driver_sql(
                f"SELECT id FROM job_batch ORDER BY id DESC LIMIT {int(count)}"
            )
        ]
        conn.execute(
            insert(JobRun),
            [
                {
                    "batch_id": bid,
                    "job_name": job,
                    "status": "QUEUED",
                    "trigger": "MANUAL",
                    "depends_on": [],
                    "position": 0,
                    "queued_at": NOW,
                    "updated_at": NOW,
                }
                for bid in sorted(ids)
            ],
        )


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def statements_per_claim(engine: Engine, claims: int) -> list[int]:
    queue = runs.RunQueue()
    hot = HotConnection(engine)  # the claim's own statements bypass SQLAlchemy's events
    out: list[int] = []
    for _ in range(claims):
        before = hot.statements
        with counting(engine) as seen:
            (got,) = runs.claim_runnable(
                engine,
                worker_id="w1",
                limit=4,
                clock=lambda: NOW,
                known_jobs={"noop"},
                queue=queue,
                hot=hot,
            )
        out.append(len(seen) + hot.statements - before)
        finished = runs.Finished(got.run_id, got.batch_id, "noop", "SUCCESS", None, 0, NOW)
        runs.finish_runs(engine, [finished], worker_id="w1", now=NOW)
    return out


@pytest.mark.parametrize("depth", [100, 10_000])
def test_a_claim_from_a_deep_queue_costs_what_it_does_from_a_short_one(
    engine: Engine, depth: int
) -> None:
    queue_runs(engine, "noop", depth)
    counts = statements_per_claim(engine, 60)
    # The first claim reads the snapshot; the others only claim from it: one mutex
    # UPDATE, one run UPDATE, the batch UPDATE (BEGIN and COMMIT not counted). Before
    # the fix a claim re-read the queue and tried the job's mutex once per queued run
    # (up to 500 statements).
    assert max(counts[1:]) <= 5, counts
