"""A single-job schedule whose params do not match its job: every subcommand that loads
the application must exit 2 naming the schedule."""

from typing import Any

from jobsys import App

app = App()


@app.job(group="g", params={"days": int})
def purge(ctx: Any) -> None: ...


app.schedule("purge-nightly", cron="0 3 * * *", mode="JOB", job="purge", params={"days": "7"})
