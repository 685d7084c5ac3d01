"""The API calls behind the overview, the runs page and a job page, and the render time
of those pages in headless Chromium, on 100,000 runs in MariaDB (issue 11: p95 < 100 ms
per API call, < 1 s per page render).

    .venv/bin/python bench/ui_api.py [--mysql-url mysql://root@127.0.0.1:3306/jobsys_bench_ui]
                                     [--runs 100000] [--requests 100] [--renders 20]

Creates (and drops at the end) the database named in the URL, migrates it and bulk-inserts
``--runs`` job runs in batches of 50 spread over the last 10 days up to now (90% SUCCESS,
7% FAILED, 2% SKIPPED, 1% CANCELLED; so the 7-day charts have data), then starts a real
``jobsys web`` (the demo app) and:

- times each API call over HTTP with a bearer token (keep-alive client, same machine):
  median, p95, max;
- opens each page in Debian's headless Chromium (logged in through the form) and times
  navigation start → the page's ``main[data-ready]`` (its data loaded and drawn).

Pages the build does not have (``/admin/runs``, ``/admin/jobs/NAME``: another change of
issue 11) are measured when ``GET /api/admin/runs`` answers, and reported as absent
otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentile  # noqa: E402
from bench.job_runs_api import drop_database, free_port, recreate_database, seed  # noqa: E402
from jobsys.loader import load_app  # noqa: E402
from jobsys.store import users  # noqa: E402
from jobsys.store.db import make_engine  # noqa: E402

EMAIL, PASSWORD = "bench@example.com", "bench-password"


def time_api(client: httpx.Client, path: str, requests: int) -> list[float] | None:
    """Milliseconds per request (after 5 warm-ups); None when the route does not exist."""
    if client.get(path).status_code == 404:
        return None
    for _ in range(4):
        client.get(path)
    times = []
    for _ in range(requests):
        t = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - t) * 1000)
        response.raise_for_status()
    return times


def time_pages(
    base: str, pages: dict[str, str], renders: int, shots: Path | None = None
) -> dict[str, list[float] | None]:
    """Navigation start → ``main[data-ready]`` in ms, per page, in headless Chromium;
    with ``shots``, a full-page screenshot of each page there."""
    from playwright.sync_api import sync_playwright

    from tests.ui_helpers import launch_chromium

    out: dict[str, list[float] | None] = {}
    with sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(f"{base}/admin/schedules")
        page.fill("#login-email", EMAIL)
        page.fill("#login-password", PASSWORD)
        page.click("form.login-form button[type=submit]")
        page.wait_for_selector("h1:text-is('Schedules')")
        for name, path in pages.items():
            page.goto(f"{base}{path}")
            page.wait_for_selector("main[data-ready], main h1:text-is('Not found')")
            if page.locator("h1").first.inner_text() == "Not found":
                out[name] = None
                continue
            times = []
            for _ in range(renders):
                t = time.perf_counter()
                page.goto(f"{base}{path}")
                page.wait_for_selector("main[data-ready]", timeout=30_000)
                times.append((time.perf_counter() - t) * 1000)
            out[name] = times
            if shots is not None:
                shots.mkdir(parents=True, exist_ok=True)
                slug = path.strip("/").replace("/", "_") or "admin"
                page.screenshot(path=str(shots / f"bench_{slug}.png"), full_page=True)
        browser.close()
    return out


def row(name: str, times: list[float] | None, target: float) -> str:
    if times is None:
        return f"| {name} | — | — | — | not in this build |"
    p95 = percentile(times, 95)
    verdict = "ok" if p95 < target else "OVER"
    return (
        f"| {name} | {percentile(times, 50):.1f} | {p95:.1f} | {max(times):.1f} "
        f"| {verdict} (< {target:.0f} ms) |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mysql-url", default="mysql://root@127.0.0.1:3306/jobsys_bench_ui")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--renders", type=int, default=20)
    parser.add_argument("--shots", type=Path, default=None, help="save screenshots here")
    args = parser.parse_args()

    app = load_app(None)
    jobs = list(app.jobs)
    recreate_database(args.mysql_url)
    web: subprocess.Popen[bytes] | None = None
    try:
        now = datetime.now(UTC)
        span = timedelta(days=10)  # up to now: the overview's 24 h and 7 days have runs
        seed(
            args.mysql_url,
            args.runs,
            jobs,
            start=now - span,
            step=span / max(1, args.runs // 50),
            rng_seed=11,
            run_seconds=lambda position: 1 + position,
        )
        engine = make_engine(args.mysql_url)
        users.create_user(engine, EMAIL, PASSWORD, "admin", now=now)
        token = users.create_token(engine, EMAIL, now=now)
        engine.dispose()

        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBSYS_", "DATABASE_URL"))}
        env.update(
            PYTHONPATH=str(ROOT),
            DATABASE_URL=args.mysql_url,
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
            calls = {
                "GET /overview (the overview page)": "/api/admin/overview",
                "GET /runs (the runs page)": "/api/admin/runs",
                "GET /jobs (jobs page, job page)": "/api/admin/jobs",
                f"GET /job-runs?job={job} (a job page's history)": f"/api/admin/job-runs?job={job}",
                "GET /job-runs?status=QUEUED,RUNNING (active runs)": (
                    "/api/admin/job-runs?status=QUEUED,RUNNING&limit=200"
                ),
                "GET /daemon/status": "/api/admin/daemon/status",
            }
            print(
                f"\nAPI on {args.runs:,} runs (MariaDB), {args.requests} requests each, "
                "keep-alive, bearer token"
            )
            print("| call | median ms | p95 ms | max ms | target |\n|---|---|---|---|---|")
            for name, path in calls.items():
                print(row(name, time_api(client, path, args.requests), 100), flush=True)
            print(f"\nfirst GET /overview of the web process (cold cache): {cold_ms:.1f} ms")
        pages = {
            "/admin (overview)": "/admin",
            "/admin/runs": "/admin/runs",
            f"/admin/jobs/{job}": f"/admin/jobs/{job}",
            "/admin/jobs": "/admin/jobs",
            "/admin/schedules": "/admin/schedules",
        }
        rendered = time_pages(base, pages, args.renders, args.shots)
        print(
            f"\nRender in headless Chromium (navigation → main[data-ready]), "
            f"{args.renders} loads each"
        )
        print("| page | median ms | p95 ms | max ms | target |\n|---|---|---|---|---|")
        for name, times in rendered.items():
            print(row(name, times, 1000))
    finally:
        if web is not None:
            web.terminate()
            web.wait(10)
        drop_database(args.mysql_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
