"""``jobsys demo``: a working system on a laptop in one command.

Migrates a local SQLite file, syncs the demo app, enables ``dev-quick-test``, makes an
admin account (printing its login), then runs ``web`` and ``daemon`` as two child
processes until Ctrl-C, which stops both cleanly (SIGTERM, then a deadline).
"""

from __future__ import annotations

import errno
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from jobsys.clock import Clock
from jobsys.config import Settings
from jobsys.definitions import App

DEMO_EMAIL = "admin@jobsys.demo"
DEMO_SCHEDULE = "dev-quick-test"
STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class DemoOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    email: str = DEMO_EMAIL


def _child_command(subcommand: list[str]) -> list[str]:
    # Works from a checkout, an installed wheel and the zipapp alike: the child imports
    # jobsys from the folder this jobsys was imported from (shiv's extracted
    # site-packages for the zipapp, which also holds every dependency), put first on
    # PYTHONPATH by _child_env. -P: with -c Python would otherwise put the working
    # directory first on sys.path, and a checkout's ./jobsys/ would run instead of the
    # artifact's code.
    return [
        sys.executable,
        "-P",
        "-c",
        "import sys; from jobsys.cli import main; sys.exit(main())",
        *subcommand,
    ]


def _child_env(environ: Mapping[str, str], settings: Settings, secret_key: str) -> dict[str, str]:
    import jobsys

    package_parent = str(Path(jobsys.__file__).resolve().parent.parent)
    env = dict(environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    env["DATABASE_URL"] = settings.database_url
    env["SECRET_KEY"] = secret_key
    env.setdefault("JOBSYS_ENV", settings.env)
    env.setdefault("JOBSYS_WAKE_HOST", "127.0.0.1")
    return env


def check_port_free(host: str, port: int) -> None:
    """Raise ``ConfigError`` if the web could not listen on ``host:port``.

    Checked before anything is printed: otherwise the demo would announce a URL (and a
    password) that leads to whatever other program holds the port.
    """
    import socket

    from jobsys.errors import ConfigError

    bind_host = host or "0.0.0.0"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            bind_host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:
        raise ConfigError(f"--host {host!r} cannot be resolved: {exc}") from None
    with socket.socket(family, kind, proto) as sock:
        # As uvicorn does: a port left in TIME_WAIT by an earlier run is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
            return
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            reason = exc.strerror or str(exc)
    if not in_use:
        raise ConfigError(f"the demo cannot listen on {bind_host}:{port}: {reason}")
    hint = ""
    with socket.socket(family, kind, proto) as sock:
        try:
            sock.bind((address[0], 0, *address[2:]))
            hint = f", e.g. --port {sock.getsockname()[1]}"
        except OSError:
            pass
    raise ConfigError(
        f"port {port} on {bind_host} is already in use by another program; "
        f"choose another with --port{hint}"
    )


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def prepare(settings: Settings, app: App, clock: Clock, email: str) -> str:
    """Migrate, sync, enable the quick schedule and (re)set the demo admin; returns the
    password."""
    from jobsys.errors import Conflict
    from jobsys.store import users
    from jobsys.store.db import make_engine
    from jobsys.store.migrate import upgrade
    from jobsys.store.schedules import set_enabled, sync_definitions

    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        now = clock.now()
        sync_definitions(engine, app, settings.env, now)
        if DEMO_SCHEDULE in app.schedules and app.schedules[DEMO_SCHEDULE].active_in(settings.env):
            set_enabled(engine, app, settings.env, DEMO_SCHEDULE, True, now=now, actor="demo")
        password = secrets.token_urlsafe(12)
        try:
            users.create_user(engine, email, password, "admin", now=now, actor="demo")
        except Conflict:
            users.set_password(engine, email, password, now=now, actor="demo")
        return password
    finally:
        engine.dispose()


def run_demo(
    settings: Settings, app: App, clock: Clock, environ: Mapping[str, str], options: DemoOptions
) -> int:
    check_port_free(options.host, options.port)
    password = prepare(settings, app, clock, options.email)
    secret_key = settings.secret_key or secrets.token_urlsafe(32)
    env = _child_env(environ, settings, secret_key)
    stopping = False

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    # Children ignore the terminal's Ctrl-C (their own session) and are stopped by us,
    # so they shut down in order instead of racing on the same SIGINT.
    daemon = subprocess.Popen(_child_command(["daemon"]), env=env, start_new_session=True)
    web = subprocess.Popen(
        _child_command(["web", "--host", options.host, "--port", str(options.port)]),
        env=env,
        start_new_session=True,
    )
    children = {"web": web, "daemon": daemon}
    base = (
        f"http://{'127.0.0.1' if options.host in ('0.0.0.0', '') else options.host}:{options.port}"
    )
    code = 0
    try:
        # Alive after answering: the answer came from our web, not from a program that
        # took the port after check_port_free.
        if not _wait_healthy(f"{base}/healthz", web) or web.poll() is not None:
            print(
                "jobsys demo: the web process did not start (see its output above)", file=sys.stderr
            )
            return 1
        print(
            "\n"
            "jobsys demo is running\n"
            f"  admin UI : {base}/admin\n"
            f"  login    : {options.email}\n"
            f"  password : {password}\n"
            f"  database : {settings.database_url}\n"
            f"  schedule '{DEMO_SCHEDULE}' is enabled (every 5 minutes)\n"
            "  Ctrl-C stops both processes\n",
            flush=True,
        )
        while not stopping:
            for name, proc in children.items():
                if proc.poll() is not None:
                    print(
                        f"jobsys demo: the {name} process exited ({proc.returncode}); stopping",
                        file=sys.stderr,
                    )
                    code = 1
                    stopping = True
            time.sleep(0.2)
    finally:
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in children.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("jobsys demo stopped", file=sys.stderr)
    return code
