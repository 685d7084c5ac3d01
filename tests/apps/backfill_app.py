"""A small app for the backfill CLI tests: an hourly schedule in New York."""

from typing import Any

from jobsys import App

app = App("backfill")


@app.job(group="ny", description="logs one line")
def hourly_report(ctx: Any) -> None:
    ctx.log.info(f"report for {ctx.scheduled_for}")


app.schedule("ny-hourly", cron="0 * * * *", timezone="America/New_York", mode="GROUP", group="ny")
