"""A small app for the metrics, alerts and retention process tests: an every-minute
schedule of one quick job."""

from typing import Any

from jobsys import App

app = App("ops")


@app.job(group="ops", description="logs one line")
def tick(ctx: Any) -> None:
    ctx.log.info("tick")


@app.job(group="ops", depends_on=["tick"], description="logs one line after tick")
def tock(ctx: Any) -> None:
    ctx.log.info("tock")


app.schedule("every-minute", cron="* * * * *", mode="GROUP", group="ops")
