"""Jobs that misbehave in every way a job can, for the daemon's isolation tests."""

import ctypes
import os
import signal
import sys
import time
from typing import Any

from jobsys import App

app = App("isolation")


@app.job(group="ok")
def ok(ctx: Any) -> None:
    ctx.log.info("all good")
    ctx.progress(1, 1)


@app.job(group="bad")
def raises(ctx: Any) -> None:
    raise ValueError("bad input 42")


@app.job(group="bad")
def exits(ctx: Any) -> None:
    sys.exit(3)


@app.job(group="bad")
def segfaults(ctx: Any) -> None:
    ctypes.string_at(0)


@app.job(group="bad", timeout="1s")
def hangs(ctx: Any) -> None:
    time.sleep(120)


@app.job(group="long", params={"seconds": {"type": "number", "default": 60}})
def cooperative(ctx: Any) -> None:
    deadline = time.monotonic() + float(ctx.params["seconds"])
    while time.monotonic() < deadline:
        if ctx.cancelled:
            ctx.log.warning("stopping: cancel asked")
            return
        ctx.progress(int(time.monotonic() % 1000), 1000)
        time.sleep(0.05)


@app.job(group="long")
def stubborn(ctx: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ctx.log.info(f"stubborn pid {os.getpid()}")
    time.sleep(120)


app.schedule("every-minute", cron="* * * * *", mode="GROUP", group="ok")
