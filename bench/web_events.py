"""Memory of a real ``jobsys web`` process with many open event streams.

    .venv/bin/python bench/web_events.py [--streams 1000] [--hold 10] [--db-url URL]
                                         [--json OUT.json]

A throw-away SQLite file (or ``--db-url``, which must be migrated and empty of the
``bench-events-N@example.org`` accounts) is migrated; ``--streams / 20`` viewer
accounts get an API token each (20 streams per account is the default limit); ``jobsys
web`` starts with the test app (``tests/apps/isolation_app.py``). Then:

  baseline   VmRSS after 20 streams were opened and closed (the watcher has run once)
  open       VmRSS with ``--streams`` streams open for ``--hold`` seconds (plain
             sockets that read the stream's first bytes, then nothing: idle tabs)
  GET        the time of ``GET /api/admin/schedules`` while they are open
  closed     VmRSS 5 s after they were all closed
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench``, ``tests``, ``jobsys`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import contextlib
import json
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import httpx

from bench.web_writes import env_for, free_port, process, wait_http
from jobsys.clock import SystemClock
from jobsys.store import users
from jobsys.store.db import make_engine
from tests.event_load import open_streams, rss_mb

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "tests" / "apps" / "isolation_app.py"
PER_ACCOUNT = 20


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    db_url = args.db_url or f"sqlite:///{tmp / 'bench.db'}"
    env = env_for(db_url, APP)
    done = subprocess.run(
        [sys.executable, "-m", "jobsys", "migrate"], env=env, capture_output=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"migrate failed: {done.stdout!r}{done.stderr!r}")
    engine = make_engine(db_url, pool_size=1)
    tokens: list[str] = []
    try:
        now = SystemClock().now()
        for i in range(max(1, -(-args.streams // PER_ACCOUNT))):
            email = f"bench-events-{i}@example.org"
            users.create_user(engine, email, "bench-password", "viewer", now=now)
            tokens.append(users.create_token(engine, email, now=now))
    finally:
        engine.dispose()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    bearer = {"Authorization": f"Bearer {tokens[0]}"}
    with process(["web", "--host", "127.0.0.1", "--port", str(port)], env, tmp / "web.log") as web:
        wait_http(url, web, tmp / "web.log")
        start_rss = rss_mb(web.pid)
        with open_streams(url, tokens, min(20, args.streams)):
            time.sleep(2)
        time.sleep(2)
        baseline = rss_mb(web.pid)
        quiet = _timed_get(url, bearer)
        started = time.monotonic()
        with open_streams(url, tokens, args.streams):
            opened_s = time.monotonic() - started
            print(f"{args.streams} streams open in {opened_s:.1f} s", file=sys.stderr)
            time.sleep(args.hold)
            loaded = rss_mb(web.pid)
            busy = _timed_get(url, bearer)
        time.sleep(5)
        closed = rss_mb(web.pid)
        log_tail = ""
        with contextlib.suppress(OSError):
            log_tail = (tmp / "web.log").read_text(errors="replace")[-2000:]
    return {
        "streams": args.streams,
        "rss_start_mb": round(start_rss, 1),
        "rss_baseline_mb": round(baseline, 1),
        "rss_open_mb": round(loaded, 1),
        "rss_closed_mb": round(closed, 1),
        "open_s": round(opened_s, 1),
        "get_schedules_quiet_ms": round(quiet, 1),
        "get_schedules_open_ms": round(busy, 1),
        "web_log_tail": log_tail,
    }


def _timed_get(url: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    answer = httpx.get(f"{url}/api/admin/schedules", headers=headers, timeout=120)
    took = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise SystemExit(f"GET /schedules answered {answer.status_code}: {answer.text[:200]}")
    return took


def table(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            "| streams | RSS start | RSS baseline | RSS open | RSS after close "
            "| GET /schedules quiet / with streams |",
            "|---|---|---|---|---|---|",
            f"| {r['streams']} | {r['rss_start_mb']} MB | {r['rss_baseline_mb']} MB "
            f"| {r['rss_open_mb']} MB | {r['rss_closed_mb']} MB "
            f"| {r['get_schedules_quiet_ms']} / {r['get_schedules_open_ms']} ms |",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=10.0, help="seconds the streams stay open")
    parser.add_argument("--db-url", help="default: a throw-away SQLite file")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="jobsys-web-events-") as tmp:
        result = measure(args, Path(tmp))
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
