"""Issue 11's speed target: with 100,000 runs in MariaDB, every API call the overview, the
runs page (unfiltered and with each filter it offers) and a job page make answers in
under 100 ms p95, and each page renders in under 1 s.

    .venv/bin/python bench/ui_api.py [--mysql-url mysql://root@127.0.0.1:3306/jobsys_bench_ui]
                                     [--runs 100000] [--requests 200] [--renders 20]
                                     [--shots DIR]

Creates (and drops at the end) the database named in the URL, migrates it and bulk-inserts
``--runs`` job runs in batches of 50 spread over the last 10 days up to now (90% SUCCESS,
7% FAILED, 2% SKIPPED, 1% CANCELLED; 80% CRON from 5 schedules, 20% MANUAL;
``bench/job_runs_api.seed``), then starts a real ``jobsys web`` (the demo app) and:

- times every API call the pages make, over HTTP with a bearer token (keep-alive client,
  same machine), ``--requests`` times each after 5 warm-ups: p50, p95, p99, max. The
  runs page's calls are its list with each filter the page offers (job, status,
  trigger, schedule, queued from/to, error text) alone, a few together, a one-day
  window, error searches that match nothing, and the second page (cursor) of each kind
  of listing;
- opens each page in Debian's headless Chromium (logged in through the form)
  ``--renders`` times and reads, in the page, ``performance.now()`` at the moment
  ``main`` gets ``data-ready`` (the app sets it once the page's data is loaded and
  drawn): navigation start → content shown, including the app's own start (``/me``);
- with ``--shots DIR``, saves a full-page screenshot of each page at 1280 and 375 px.

Prints two markdown tables and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentile  # noqa: E402
from bench.job_runs_api import (  # noqa: E402
    SCHEDULES,
    drop_database,
    free_port,
    recreate_database,
    seed,
)
from jobsys.clock import iso_utc  # noqa: E402
from jobsys.loader import load_app  # noqa: E402
from jobsys.store import users  # noqa: E402
from jobsys.store.db import make_engine  # noqa: E402

EMAIL, PASSWORD = "bench@example.com", "bench-password"
API_TARGET_MS = 100.0
RENDER_TARGET_MS = 1000.0
#: The runs page asks for this many runs per page (ui/js/views/runs.js PAGE_SIZE).
RUNS_PAGE = 25

#: Records, in the page, when ``main`` first gets ``data-ready`` (ms since navigation).
READY_PROBE = """
new MutationObserver(() => {
  const main = document.getElementById("main");
  if (main && main.dataset.ready && window.__readyAt === undefined) {
    window.__readyAt = performance.now();
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-ready"] });
"""


def time_api(client: httpx.Client, path: str, requests: int) -> tuple[list[float], int]:
    """Milliseconds per request (after 5 warm-ups) and the rows of the last answer."""
    for _ in range(5):
        client.get(path).raise_for_status()
    times = []
    body: object = None
    for _ in range(requests):
        t = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - t) * 1000)
        response.raise_for_status()
        body = response.json()
    rows = -1
    if isinstance(body, dict):
        for key in ("runs", "jobs", "schedules", "batches", "slots"):
            if isinstance(body.get(key), list):
                rows = len(body[key])
                break
    return times, rows


def runs_path(**params: str | int) -> str:
    return "/api/admin/job-runs?" + urlencode({**params, "limit": RUNS_PAGE})


def next_cursor(client: httpx.Client, path: str) -> int | None:
    response = client.get(path)
    response.raise_for_status()
    cursor = response.json()["next_cursor"]
    return None if cursor is None else int(cursor)


def page_two(client: httpx.Client, **params: str) -> str | None:
    """The runs page's second page for these filters; None when there is none."""
    cursor = next_cursor(client, runs_path(**params))
    return None if cursor is None else runs_path(**params, cursor=cursor)


def api_calls(client: httpx.Client, job: str, now: datetime) -> list[tuple[str, str, str]]:
    """(page, call, path) for every API call the pages make."""
    day = (now - timedelta(days=5)).replace(hour=0, minute=0, second=0, microsecond=0)
    one_day = {"from": iso_utc(day), "to": iso_utc(day + timedelta(days=1))}
    week = {"from": iso_utc(now - timedelta(days=7))}
    schedule = SCHEDULES[1]
    calls: list[tuple[str, str, str | None]] = [
        ("every page", "GET /me (the app's start)", "/api/admin/me"),
        ("overview", "GET /overview", "/api/admin/overview"),
        ("runs, jobs", "GET /jobs (runs page's filter choices; jobs page)", "/api/admin/jobs"),
        ("runs, schedules", "GET /schedules (runs page's filter choices)", "/api/admin/schedules"),
        ("runs", "job-runs: no filter", runs_path()),
        ("runs", "job-runs: no filter, page 2", page_two(client)),
        ("runs", f"job-runs: job={job}", runs_path(job=job)),
        ("runs", "job-runs: status=FAILED", runs_path(status="FAILED")),
        ("runs", "job-runs: status=FAILED, page 2", page_two(client, status="FAILED")),
        ("runs", "job-runs: status=CANCELLED", runs_path(status="CANCELLED")),
        ("runs", "job-runs: status=QUEUED (none)", runs_path(status="QUEUED")),
        ("runs", "job-runs: trigger=MANUAL", runs_path(trigger="MANUAL")),
        ("runs", "job-runs: trigger=BACKFILL (none)", runs_path(trigger="BACKFILL")),
        ("runs", f"job-runs: schedule_id={schedule}", runs_path(schedule_id=schedule)),
        (
            "runs",
            "job-runs: schedule + trigger=MANUAL (none)",
            runs_path(schedule_id=schedule, trigger="MANUAL"),
        ),
        ("runs", "job-runs: job + status=CANCELLED", runs_path(job=job, status="CANCELLED")),
        ("runs", "job-runs: from/to, one day 5 days ago", runs_path(**one_day)),
        ("runs", "job-runs: from/to one day, page 2", page_two(client, **one_day)),
        ("runs", "job-runs: from (the last 7 days)", runs_path(**week)),
        ("runs", "job-runs: to (older than 5 days)", runs_path(to=one_day["from"])),
        ("runs", "job-runs: one day + job", runs_path(**one_day, job=job)),
        ("runs", "job-runs: one day + status=CANCELLED", runs_path(**one_day, status="CANCELLED")),
        ("runs", "job-runs: error='demo failure'", runs_path(error="demo failure")),
        ("runs", "job-runs: error, no match", runs_path(error="no such text")),
        ("runs", "job-runs: error, no match, next page", page_two(client, error="no such text")),
        ("runs", "job-runs: error, no match + job", runs_path(error="no such text", job=job)),
        ("runs", "job-runs: error, no match + one day", runs_path(error="no such text", **one_day)),
        (
            "runs",
            "job-runs: error, no match + last 7 days",
            runs_path(error="no such text", **week),
        ),
        ("runs", "job-runs: error + status=FAILED", runs_path(error="demo", status="FAILED")),
        ("job", f"GET /jobs/{job}", f"/api/admin/jobs/{job}"),
        ("schedule", "GET /daemon/status", "/api/admin/daemon/status"),
        ("schedule", f"GET /schedules/{schedule}", f"/api/admin/schedules/{schedule}"),
        (
            "schedule",
            "GET /schedules/ID/history?limit=20",
            f"/api/admin/schedules/{schedule}/history?limit=20",
        ),
        (
            "schedule",
            "GET /schedules/ID/slots?count=10",
            f"/api/admin/schedules/{schedule}/slots?count=10",
        ),
        (
            "schedule",
            "GET /schedules/ID/ledger (last day)",
            f"/api/admin/schedules/{schedule}/ledger",
        ),
    ]
    for _, name, path in calls:
        if path is None:
            print(f"(not measured: {name}: the first page has no next page)")
    return [(page, name, path) for page, name, path in calls if path is not None]


def time_pages(
    base: str, pages: dict[str, str], renders: int, shots: Path | None = None
) -> dict[str, list[float]]:
    """Navigation start → ``main[data-ready]`` in ms, per page, in headless Chromium;
    with ``shots``, a full-page screenshot of each page at 1280 and 375 px there."""
    from playwright.sync_api import sync_playwright

    from tests.ui_helpers import launch_chromium

    out: dict[str, list[float]] = {}
    with sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_init_script(READY_PROBE)
        page = context.new_page()
        page.goto(f"{base}/admin/schedules")
        page.fill("#login-email", EMAIL)
        page.fill("#login-password", PASSWORD)
        page.click("form.login-form button[type=submit]")
        page.wait_for_selector("h1:text-is('Schedules')")
        for name, path in pages.items():
            page.goto(f"{base}{path}")  # warm the browser's cache of the app's files
            page.wait_for_selector("main[data-ready]", timeout=30_000)
            times = []
            for _ in range(renders):
                page.goto(f"{base}{path}")
                page.wait_for_selector("main[data-ready]", timeout=30_000)
                times.append(float(page.evaluate("window.__readyAt")))
            out[name] = times
            if page.locator("main .notice-error:visible, main .error-box:visible").count():
                print(f"warning: {path} shows an error", file=sys.stderr)
            if shots is not None:
                shots.mkdir(parents=True, exist_ok=True)
                slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
                for width in (1280, 375):
                    page.set_viewport_size({"width": width, "height": 900})
                    page.goto(f"{base}{path}")
                    page.wait_for_selector("main[data-ready]", timeout=30_000)
                    page.wait_for_timeout(300)  # charts size themselves to their box
                    page.screenshot(path=str(shots / f"{slug}_{width}.png"), full_page=True)
                page.set_viewport_size({"width": 1280, "height": 900})
        browser.close()
    return out


def row(name: str, times: list[float], target: float, rows: int | None = None) -> str:
    p95, p99 = percentile(times, 95), percentile(times, 99)
    verdict = "ok" if p95 < target else "**OVER**"
    extra = "" if rows is None else f" {rows} |"
    return (
        f"| {name} | {percentile(times, 50):.1f} | {p95:.1f} | {p99:.1f} | {max(times):.1f} "
        f"| {verdict} |{extra}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--db",
        choices=["mysql", "sqlite"],
        default="mysql",
        help="MariaDB (the target) or a SQLite file in a temp dir (a sanity check)",
    )
    parser.add_argument("--mysql-url", default="mysql://root@127.0.0.1:3306/jobsys_bench_ui")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--renders", type=int, default=20)
    parser.add_argument("--shots", type=Path, default=None, help="save screenshots here")
    args = parser.parse_args()

    print(f"load average at start: {os.getloadavg()}")
    app = load_app(None)
    jobs = list(app.jobs)
    scratch = tempfile.TemporaryDirectory(prefix="jobsys-ui-bench-")
    if args.db == "sqlite":
        db_url = f"sqlite:///{scratch.name}/jobsys.db"
    else:
        db_url = args.mysql_url
        recreate_database(db_url)
    web: subprocess.Popen[bytes] | None = None
    try:
        now = datetime.now(UTC)
        span = timedelta(days=10)  # up to now: the overview's 24 h and 7 days have runs
        seed(
            db_url,
            args.runs,
            jobs,
            start=now - span,
            step=span / max(1, args.runs // 50),
            rng_seed=11,
            run_seconds=lambda position: 1 + position,
        )
        engine = make_engine(db_url)
        users.create_user(engine, EMAIL, PASSWORD, "admin", now=now)
        token = users.create_token(engine, EMAIL, now=now)
        engine.dispose()

        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBSYS_", "DATABASE_URL"))}
        env.update(
            PYTHONPATH=str(ROOT),
            DATABASE_URL=db_url,
            SECRET_KEY="b" * 32,
            JOBSYS_LOG_LEVEL="WARNING",
        )
        web = subprocess.Popen(
            [sys.executable, "-m", "jobsys", "web", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        job = jobs[3]
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("web did not start")
                time.sleep(0.2)
            # The first overview of a web process reads 7 days of counts (no closed
            # hours cached yet); the later ones read the open hours only.
            t = time.perf_counter()
            client.get("/api/admin/overview").raise_for_status()
            cold_ms = (time.perf_counter() - t) * 1000
            print(
                f"\nAPI on {args.runs:,} runs ({'MariaDB' if args.db == 'mysql' else 'SQLite'}), "
                f"{args.requests} requests each after "
                "5 warm-ups, keep-alive, bearer token; ms"
            )
            print(
                "| page | call | p50 | p95 | p99 | max | p95 < 100 ms | rows |\n"
                "|---|---|---|---|---|---|---|---|"
            )
            worst: tuple[float, str] = (0.0, "")
            worst99: tuple[float, str] = (0.0, "")
            for page_name, name, path in api_calls(client, job, now):
                times, rows = time_api(client, path, args.requests)
                worst = max(worst, (percentile(times, 95), name))
                worst99 = max(worst99, (percentile(times, 99), name))
                print(f"| {page_name} " + row(name, times, API_TARGET_MS, rows), flush=True)
            print(
                f"\nworst p95: {worst[0]:.1f} ms ({worst[1]}); "
                f"worst p99: {worst99[0]:.1f} ms ({worst99[1]})"
            )
            print(f"first GET /overview of the web process (cold cache): {cold_ms:.1f} ms")
        day = (now - timedelta(days=5)).replace(hour=0, minute=0, second=0, microsecond=0)
        window = urlencode({"from": iso_utc(day), "to": iso_utc(day + timedelta(days=1))})
        pages = {
            "/admin (overview)": "/admin",
            "/admin/runs": "/admin/runs",
            "/admin/runs, one-day window": f"/admin/runs?{window}",
            "/admin/runs, error search, no match": "/admin/runs?error=no+such+text",
            f"/admin/jobs/{job}": f"/admin/jobs/{job}",
            f"/admin/schedules/{SCHEDULES[1]}": f"/admin/schedules/{SCHEDULES[1]}",
            "/admin/jobs": "/admin/jobs",
            "/admin/schedules": "/admin/schedules",
        }
        rendered = time_pages(base, pages, args.renders, args.shots)
        print(
            f"\nRender in headless Chromium, 1280 px: navigation start → main[data-ready] "
            f"(performance.now() in the page), {args.renders} loads each; ms"
        )
        print("| page | p50 | p95 | p99 | max | p95 < 1 s |\n|---|---|---|---|---|---|")
        for name, times in rendered.items():
            print(row(name, times, RENDER_TARGET_MS))
    finally:
        if web is not None:
            web.terminate()
            web.wait(10)
        if args.db == "mysql":
            drop_database(db_url)
        scratch.cleanup()
    print(f"\nload average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
