"""30 schedules firing every minute over shared job groups, plus one long job, for the
multi-daemon exactly-once test."""

import time
from typing import Any

from jobsys import App

app = App("many")


def _make(seconds: float) -> Any:
    def job(ctx: Any) -> None:
        time.sleep(seconds)
        ctx.log.info(f"slept {seconds}s")

    return job


for g in range(5):
    app.job(f"g{g}_first", group=f"g{g}")(_make(0.2))
    app.job(f"g{g}_second", group=f"g{g}", depends_on=[f"g{g}_first"])(_make(0.1))

app.job("long_job", group="long")(_make(25))

for i in range(30):
    app.schedule(f"s{i:02d}", cron="* * * * *", mode="GROUP", group=f"g{i % 5}")
app.schedule("long", cron="* * * * *", mode="GROUP", group="long")
