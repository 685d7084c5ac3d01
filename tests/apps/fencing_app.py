"""Jobs for the lease-fencing, memory-limit and outage tests (tests/system/test_run_fencing.py)."""

import os
import time
from typing import Any

from jobsys import App

app = App("fencing")


@app.job(group="fence", params={"path": str, "seconds": {"type": "number", "default": 10.0}})
def writer(ctx: Any) -> None:
    """Appends ``run_id wall_time pid`` to ``path`` every 20 ms for ``seconds``."""
    deadline = time.monotonic() + float(ctx.params["seconds"])
    with open(ctx.params["path"], "a", buffering=1) as f:
        while time.monotonic() < deadline:
            f.write(f"{ctx.run_id} {time.time():.3f} {os.getpid()}\n")
            time.sleep(0.02)


@app.job(group="mem", memory_limit="64M")
def hog(ctx: Any) -> None:
    """Grows by 16 MB every 50 ms until stopped."""
    chunks = []
    for _ in range(200):
        chunks.append(bytearray(16 << 20))
        time.sleep(0.05)


@app.job(group="mem", memory_limit="512M")
def modest(ctx: Any) -> None:
    data = bytearray(8 << 20)
    ctx.log.info(f"used {len(data)} bytes")


@app.job(group="fence", params={"seconds": {"type": "number", "default": 1.0}})
def pause(ctx: Any) -> None:
    time.sleep(float(ctx.params.get("seconds", 1.0)))
