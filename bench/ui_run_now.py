"""Run-Now latency from the admin UI: click "Run Now" (and confirm) in a real headless
Chromium until the schedule's first job is RUNNING.

    .venv/bin/python bench/ui_run_now.py [--runs 20] [--warmup 2]
                                         [--mysql-url mysql://root@127.0.0.1:3306/x]
                                         [--json OUT.json]

``jobsys web`` and ``jobsys daemon`` run as two separate real processes (default poll
interval, 60 s, so only the wake-up path can start the run fast) on a throw-away SQLite
file and, with ``--mysql-url``, on the MariaDB/MySQL server it names (in a database
``jobsys_bench_ui`` created for the run and dropped after it; the URL's own database is
not touched). The app is ``tests/apps/ui_app.py``; the schedule is ``nightly-etl``
(extract, then load).

Per click, three instants, all on this host's wall clock:
  click       the browser's ``Date.now()`` when the confirm button is clicked
  started_at  the first run's ``started_at`` as the daemon wrote it (read from the API)
  UI shows    the browser's ``Date.now()`` when the page first shows that run as started
              (RUNNING or later) without a reload
and the table reports click -> 202 (the trigger request), click -> started_at and
click -> UI shows: median and p95 of ``--runs`` clicks after ``--warmup`` unmeasured ones.
Target: click -> started_at under 500 ms. Needs ``/usr/bin/chromium`` (never downloaded).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench``, ``tests``, ``jobsys`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import math
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tests.ui_helpers import CHROMIUM, launch_chromium, login, running_jobsys

SCHEDULE = "nightly-etl"
MYSQL_DATABASE = "jobsys_bench_ui"
TARGET_MS = 500.0
#: Record, in the page, the click on the dialog's confirm button and the first moment
#: the schedule's batch strip shows the first job as started.
_INSTRUMENT = """() => {
    const strip = '#schedule-nightly-etl .strip-run[data-job="extract"]';
    window.__bench = {click: null, shown: null, after: 0};
    document.addEventListener('click', (event) => {
        if (event.target.closest('#dialog [data-confirm]')) {
            const ids = [...document.querySelectorAll(strip)].map((li) => +li.dataset.runId);
            window.__bench = {click: Date.now(), shown: null, after: Math.max(0, ...ids)};
        }
    }, true);
    const look = () => {
        const b = window.__bench;
        if (!b.click || b.shown) return;
        for (const li of document.querySelectorAll(strip)) {
            if (Number(li.dataset.runId) > b.after && li.dataset.status !== 'QUEUED') {
                b.shown = Date.now();
            }
        }
    };
    new MutationObserver(look).observe(document.body,
        {subtree: true, childList: true, attributes: true, attributeFilter: ['data-status']});
}"""


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return math.nan
    data = sorted(values)
    k = (len(data) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def _epoch_ms(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000.0


def _mysql_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    from jobsys.store.db import normalize_url

    parsed = make_url(normalize_url(url))
    return parsed.set(database=MYSQL_DATABASE).render_as_string(hide_password=False)


def _mysql_database(url: str, *, create: bool) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    server = create_engine(make_url(url).set(database="information_schema"), poolclass=NullPool)
    try:
        with server.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{MYSQL_DATABASE}`")
            if create:
                conn.exec_driver_sql(
                    f"CREATE DATABASE `{MYSQL_DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                )
    finally:
        server.dispose()


def _migrate(db_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobsys", "migrate"],
        env={**_base_env(), "DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"jobsys migrate failed on {db_url}: {done.stdout}{done.stderr}")


def _base_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JOBSYS_", "DATABASE_"))},
        "PYTHONPATH": root,
    }


def _one_click(page: Any, timeout_s: float = 20.0) -> dict[str, float]:
    """Click Run Now + confirm; wait until the batch finished; return the three delays."""
    row = page.locator(f"#schedule-{SCHEDULE}")
    with page.expect_response(
        lambda r: r.url.endswith(f"/schedules/{SCHEDULE}/trigger") and r.request.method == "POST"
    ) as answer:
        row.get_by_role("button", name="Run Now: Nightly ETL").click()
        page.locator("#dialog [data-confirm]").click()
    timing = answer.value.request.timing
    response_at = (
        timing["startTime"] + timing["responseEnd"]
        if timing.get("responseEnd", -1) >= 0
        else page.evaluate("Date.now()")
    )
    created = answer.value.json()
    batch_id = created["batch_id"]
    first_run = created["job_run_ids"][0]
    deadline = time.monotonic() + timeout_s
    started_at: str | None = None
    while time.monotonic() < deadline:
        run = page.evaluate(
            "id => fetch('/api/admin/job-runs/' + id).then(r => r.json())", first_run
        )
        started_at = run.get("started_at")
        if started_at:
            break
        time.sleep(0.05)
    if not started_at:
        raise SystemExit(f"run {first_run} did not start within {timeout_s:.0f} s")
    page.wait_for_function("() => window.__bench.shown !== null", timeout=timeout_s * 1000)
    marks = page.evaluate("window.__bench")
    # Let the batch finish (a job never runs twice at once) before the next click.
    while time.monotonic() < deadline:
        batch = page.evaluate(
            "id => fetch('/api/admin/batches/' + id).then(r => r.json())", batch_id
        )
        if batch["status"] in ("SUCCESS", "FAILED", "CANCELLED", "SKIPPED"):
            break
        time.sleep(0.1)
    else:
        raise SystemExit(f"batch {batch_id} did not finish within {timeout_s:.0f} s")
    click = float(marks["click"])
    return {
        "response_ms": response_at - click,
        "started_ms": _epoch_ms(started_at) - click,
        "ui_ms": float(marks["shown"]) - click,
    }


def measure(db_url: str, label: str, runs: int, warmup: int, sleep_s: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    _migrate(db_url)
    samples: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="jobsys-ui-bench-") as tmp:
        extra = {
            "SCHEDULE_POLL_INTERVAL_MS": "60000",
            "JOBSYS_LOG_LEVEL": "INFO",
            "UI_APP_SLEEP": str(sleep_s),
        }
        with running_jobsys(db_url, Path(tmp), **extra) as system, sync_playwright() as p:
            browser = launch_chromium(p)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                login(page, system)
                page.evaluate(_INSTRUMENT)
                for i in range(warmup + runs):
                    sample = _one_click(page)
                    if i >= warmup:
                        samples.append(sample)
                    print(
                        f"  {label} click {i + 1 - warmup if i >= warmup else 'warm-up'}: "
                        f"202 {sample['response_ms']:.0f} ms, started {sample['started_ms']:.0f}"
                        f" ms, UI {sample['ui_ms']:.0f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
            finally:
                browser.close()
    result: dict[str, Any] = {"backend": label, "n": len(samples)}
    for key in ("response_ms", "started_ms", "ui_ms"):
        values = [s[key] for s in samples]
        result[key] = {
            "median": round(percentile(values, 50), 1),
            "p95": round(percentile(values, 95), 1),
            "max": round(max(values), 1) if values else math.nan,
        }
    return result


def table(results: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| backend | n | click→202 median / p95 | click→RUNNING (started_at) median / p95 "
        "| click→UI shows RUNNING median / p95 | target |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        ok = r["started_ms"]["median"] < TARGET_MS
        lines.append(
            f"| {r['backend']} | {r['n']} "
            f"| {r['response_ms']['median']:.0f} / {r['response_ms']['p95']:.0f} ms "
            f"| {r['started_ms']['median']:.0f} / {r['started_ms']['p95']:.0f} ms "
            f"| {r['ui_ms']['median']:.0f} / {r['ui_ms']['p95']:.0f} ms "
            f"| {'< 500 ms: yes' if ok else '< 500 ms: NO'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="measured clicks (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured first clicks")
    parser.add_argument(
        "--sleep", type=float, default=1.0, help="seconds each job of the schedule sleeps"
    )
    parser.add_argument("--mysql-url", help="also measure on this MariaDB/MySQL server")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="jobsys-ui-bench-db-") as tmp:
        sqlite_url = f"sqlite:///{tmp}/bench.db"
        results.append(measure(sqlite_url, "sqlite", args.runs, args.warmup, args.sleep))
    if args.mysql_url:
        url = _mysql_url(args.mysql_url)
        _mysql_database(url, create=True)
        try:
            results.append(measure(url, "mariadb", args.runs, args.warmup, args.sleep))
        finally:
            _mysql_database(url, create=False)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
