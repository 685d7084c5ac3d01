"""How many passwords concurrent guessers get checked: 200 wrong-password logins for one
account, sent from 64 threads at once to a real ``jobsys web`` process.

    .venv/bin/python bench/login_guesses.py [--guesses 200] [--threads 64]
                                            [--mysql-url mysql://root@127.0.0.1:3306/DB]

Runs on a throw-away SQLite file and, with ``--mysql-url``, on the database it names
(emptied: dropped and recreated, then migrated; dropped at the end). For each backend it
prints the answers by status and the audited failures (``login.failed``): every 401 is
a password that was checked. The limit is ``LOGIN_MAX_FAILURES`` (5) per account and
address, so the figure should be 5. A second scenario sends 39 wrong passwords and the
right one last, and says whether the right one got a session (it should get 429).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` and ``jobsys`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import func, select
from sqlmodel import col

from bench.common import (
    PYTHON,
    ROOT,
    Processes,
    base_env,
    drop_mysql_database,
    recreate_mysql_database,
    say,
)
from jobsys.clock import SystemClock
from jobsys.store import migrate, users
from jobsys.store.db import make_engine
from jobsys.store.models import AuditLog

EMAIL = "owner@example.org"
PASSWORD = "the-right-password"
APP = str(ROOT / "tests" / "apps" / "isolation_app.py")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def send(url: str, passwords: list[str], threads: int, delay_last: float = 0) -> list[int]:
    """One login per password, ``threads`` at a time, all released by one barrier."""
    barrier = threading.Barrier(min(threads, len(passwords)))
    local = threading.local()
    clients: list[httpx.Client] = []

    def one(index: int) -> int:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=url, timeout=300)
            clients.append(client)
            barrier.wait(60)
        if index == len(passwords) - 1 and delay_last:
            time.sleep(delay_last)
        response = client.post(
            "/api/admin/login", json={"email": EMAIL, "password": passwords[index]}
        )
        return response.status_code

    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, range(len(passwords))))
    finally:
        for client in clients:
            client.close()


def audited_failures(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            query = select(func.count()).where(col(AuditLog.action) == "login.failed")
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def fresh_database(db_url: str) -> None:
    """Migrate and create the account (real argon2 costs, as in production)."""
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        users.create_user(engine, EMAIL, PASSWORD, "admin", now=SystemClock().now())
    finally:
        engine.dispose()


def scenario(
    db_url: str, workdir: Path, passwords: list[str], threads: int, delay: float
) -> dict[str, int]:
    fresh_database(db_url)
    procs = Processes(workdir / "logs")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = base_env(DATABASE_URL=db_url, JOBSYS_APP=APP, SECRET_KEY="bench-secret-key")
    web = procs.start(
        "web", [PYTHON, "-m", "jobsys", "web", "--host", "127.0.0.1", "--port", str(port)], env
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if not web.alive() or time.monotonic() > deadline:
                raise SystemExit(f"the web did not start:\n{web.log_tail()}")
            time.sleep(0.1)
        statuses = send(url, passwords, threads, delay)
    finally:
        procs.stop_all()
    counts = Counter(statuses)
    return {
        "checked_401": counts[401],
        "refused_429": counts[429],
        "other": sum(n for s, n in counts.items() if s not in (401, 429, 200)),
        "sessions_200": counts[200],
        "audited_failures": audited_failures(db_url),
        "last_status": statuses[-1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--guesses", type=int, default=200)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--mysql-url", help="also run on this MariaDB/MySQL database (emptied)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="jobsys-login-") as tmp:
        targets = [("sqlite", lambda name: f"sqlite:///{Path(tmp) / name}.db")]
        if args.mysql_url:
            targets.append(("mysql", lambda name: args.mysql_url))
        print("| backend | scenario | checked (401) | refused (429) | sessions (200) | audited |")
        print("|---|---|---|---|---|---|")
        for backend, url_for in targets:
            runs = [
                ("wrong", [f"wrong-{i}" for i in range(args.guesses)], args.threads, 0.0),
                ("right-last", [f"wrong-{i}" for i in range(39)] + [PASSWORD], 40, 0.3),
            ]
            for name, passwords, threads, delay in runs:
                db_url = url_for(name)
                if backend == "mysql":
                    recreate_mysql_database(db_url)
                say(f"{backend}: {name}: {len(passwords)} logins from {threads} threads")
                try:
                    result = scenario(db_url, Path(tmp) / backend / name, passwords, threads, delay)
                finally:
                    if backend == "mysql":
                        drop_mysql_database(db_url)
                label = (
                    f"{len(passwords)} wrong, {threads} threads"
                    if name == "wrong"
                    else f"39 wrong + right one last (last got {result['last_status']})"
                )
                print(
                    f"| {backend} | {label} | {result['checked_401']} | {result['refused_429']} "
                    f"| {result['sessions_200']} | {result['audited_failures']} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
