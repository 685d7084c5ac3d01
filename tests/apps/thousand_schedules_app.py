"""1,000 no-op jobs, each alone in a group, and 1,000 schedules on them (cron that never
comes due during a test): the admin-write load tests."""

from typing import Any

from jobsys import App

app = App("thousand")


def noop(ctx: Any) -> None:
    pass


for i in range(1000):
    app.job(f"noop_{i:04d}", group=f"g{i:04d}")(noop)
    app.schedule(f"s_{i:04d}", cron="0 0 1 1 *", mode="GROUP", group=f"g{i:04d}")
