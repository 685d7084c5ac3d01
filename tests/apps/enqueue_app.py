"""The application of ``tests/system/test_enqueue.py``: one job with declared params, queued
from a separate process with ``jobsys.enqueue``."""

from __future__ import annotations

from typing import Any

from jobsys import App

app = App("enqueue")


@app.job(group="events", params={"name": {"type": "string", "required": True}, "times": int})
def greet(ctx: Any) -> None:
    ctx.log.info(f"hello {ctx.params['name']} x{ctx.params.get('times', 1)}")
