"""The command line: a thin layer that parses arguments, builds ``Settings`` and calls
the core. It is the only module that wires everything, and it imports heavy modules
(SQLAlchemy, croniter, uvicorn) only inside the subcommand that needs them, so
``jobsys --help`` stays fast.

Exit codes: 0 done; 2 bad input, configuration or definitions (``JobsysError``);
``health`` uses 0/1/2/3 (OK/WARNING/CRITICAL/UNKNOWN); ``migrate --check`` exits 1 when
migrations are pending.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jobsys import __version__
from jobsys.config import Settings
from jobsys.errors import JobsysError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from jobsys.definitions import App


class Context:
    """What a subcommand needs, built lazily so that cheap commands stay cheap."""

    def __init__(self, args: argparse.Namespace, settings: Settings) -> None:
        self.args = args
        self.settings = settings
        self._engine: Engine | None = None
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            from jobsys.loader import load_app

            self._app = load_app(getattr(self.args, "app", None) or self.settings.app)
        return self._app

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from jobsys.store.db import make_engine

            self._engine = make_engine(self.settings.database_url)
        return self._engine

    def current_engine(self) -> Engine:
        """The engine, after checking the schema is migrated (``migrate`` tells how)."""
        from jobsys.store.migrate import ensure_current

        ensure_current(self.engine)
        return self.engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False, default=str))


def _table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


# -- cron -----------------------------------------------------------------------------
def cmd_cron_next(ctx: Context) -> int:
    from jobsys import cron
    from jobsys.clock import SystemClock, iso_utc, parse_iso

    args = ctx.args
    if args.count < 1 or args.count > 1000:
        raise _usage("--count must be between 1 and 1000")
    try:
        after = parse_iso(args.after) if args.after else SystemClock().now()
    except ValueError:
        raise _usage(f"--after {args.after!r} is not an ISO-8601 instant") from None
    slots = cron.next_slots(args.expr, args.tz, after, args.count)
    texts = [iso_utc(s) for s in slots]
    if args.json:
        print(json.dumps(texts))
    else:
        print("\n".join(t or "" for t in texts))
    return 0


def cmd_cron_validate(ctx: Context) -> int:
    from jobsys import cron

    cron.validate(ctx.args.expr, ctx.args.tz)
    print(f"valid: {cron.describe(ctx.args.expr)} ({ctx.args.tz})")
    return 0


# -- migrate --------------------------------------------------------------------------
def cmd_migrate(ctx: Context) -> int:
    from jobsys.store import migrate

    if ctx.args.check:
        todo = migrate.pending(ctx.engine)
        if todo:
            print(f"pending migrations: {', '.join(todo)}")
            return 1
        print(f"database is up to date (revision {migrate.head_revision()})")
        return 0
    applied = migrate.upgrade(ctx.engine)
    if applied:
        print(f"applied migrations: {', '.join(applied)}")
    else:
        print(f"database is up to date (revision {migrate.head_revision()})")
    return 0


# -- schedules ------------------------------------------------------------------------
def cmd_schedules_list(ctx: Context) -> int:
    from jobsys.store import schedules

    app = ctx.app  # definitions are checked before the database is touched
    views = schedules.schedule_views(ctx.current_engine(), app, ctx.settings.env)
    if ctx.args.json:
        _print_json([v.to_dict() for v in views])
        return 0
    rows = [
        [
            v.id,
            v.cron,
            v.timezone,
            v.execution_mode + (f":{v.job_group}" if v.job_group else ""),
            "yes" if v.enabled else "no",
            v.next_run_text,
            v.last_run_text,
            v.note,
        ]
        for v in views
    ]
    print(_table(rows, ["ID", "CRON", "TZ", "MODE", "ENABLED", "NEXT RUN", "LAST RUN", "NOTE"]))
    return 0


def _cmd_schedules_set(ctx: Context, enabled: bool) -> int:
    from jobsys.clock import SystemClock
    from jobsys.store import schedules

    app = ctx.app
    view = schedules.set_enabled(
        ctx.current_engine(),
        app,
        ctx.settings.env,
        ctx.args.id,
        enabled,
        now=SystemClock().now(),
        actor="cli",
    )
    state = "enabled" if view.enabled else "disabled"
    nxt = f"; next run {view.next_run_text}" if view.enabled else ""
    print(f"schedule {view.id!r} {state}{nxt}")
    return 0


def cmd_schedules_enable(ctx: Context) -> int:
    return _cmd_schedules_set(ctx, True)


def cmd_schedules_disable(ctx: Context) -> int:
    return _cmd_schedules_set(ctx, False)


def cmd_schedules_trigger(ctx: Context) -> int:
    from jobsys.clock import SystemClock
    from jobsys.manual import create_manual_batch

    app = ctx.app
    now = SystemClock().now()
    created = create_manual_batch(
        ctx.current_engine(),
        app,
        mode="ALL_JOBS",
        now=now,
        actor="cli",
        schedule_id=ctx.args.id,
        env=ctx.settings.env,
    )
    told = _wake_daemons(ctx)
    print(
        f"batch {created.batch_id} queued with {len(created.run_ids)} run(s); woke {told} daemon(s)"
    )
    return 0


def _wake_daemons(ctx: Context) -> int:
    from jobsys.clock import SystemClock
    from jobsys.store.workers import live_window, notify_daemons

    live = live_window(ctx.settings.poll_interval_ms)
    return notify_daemons(ctx.engine, SystemClock().now(), live)


# -- jobs -----------------------------------------------------------------------------
def cmd_jobs_run(ctx: Context) -> int:
    import time

    from jobsys.clock import SystemClock
    from jobsys.manual import create_manual_batch
    from jobsys.store.queries import get_run

    app = ctx.app
    params: Any = None
    if ctx.args.params is not None:
        try:
            params = json.loads(ctx.args.params)
        except json.JSONDecodeError as exc:
            raise _usage(f"--params is not valid JSON: {exc}") from None
    engine = ctx.current_engine()
    created = create_manual_batch(
        engine,
        app,
        mode="JOB",
        job=ctx.args.name,
        params=params,
        now=SystemClock().now(),
        actor="cli",
    )
    run_id = created.run_ids[0]
    told = _wake_daemons(ctx)
    print(f"run {run_id} queued (batch {created.batch_id}); woke {told} daemon(s)")
    if not ctx.args.wait:
        return 0
    deadline = time.monotonic() + ctx.args.timeout
    while True:
        run = get_run(engine, run_id, with_logs=False)
        if run["status"] not in ("QUEUED", "RUNNING"):
            break
        if time.monotonic() > deadline:
            print(
                f"run {run_id} still {run['status']} after {ctx.args.timeout:.0f}s", file=sys.stderr
            )
            return 1
        time.sleep(0.2)
    run = get_run(engine, run_id, with_logs=True)
    for line in run["logs"]:
        print(f"{line['ts']} {line['level']:<7} {line['message']}")
    print(f"run {run_id} {run['status']}" + (f": {run['error']}" if run["error"] else ""))
    return 0 if run["status"] == "SUCCESS" else 1


def cmd_jobs_list(ctx: Context) -> int:
    app = ctx.app
    jobs = [app.jobs[name].to_dict() for name in app.ordered()]
    if ctx.args.json:
        _print_json(jobs)
        return 0
    rows = [
        [j["name"], j["group"], ", ".join(j["depends_on"]) or "-", j["description"][:60]]
        for j in jobs
    ]
    print(_table(rows, ["NAME", "GROUP", "DEPENDS ON", "DESCRIPTION"]))
    return 0


# -- daemon and health ----------------------------------------------------------------
def cmd_daemon(ctx: Context) -> int:
    import logging

    from jobsys.logs import setup_logging

    settings = ctx.settings
    setup_logging(settings.log_format, settings.log_level)
    log = logging.getLogger("jobsys.daemon")
    if not settings.daemon_enabled:
        log.info("SCHEDULE_DAEMON_ENABLED=false: scheduling is paused, the daemon exits")
        return 0
    app = ctx.app
    # Before the database layer is imported: the lean process that forks the job
    # children (see jobsys/forkserver.py).
    from jobsys.executor import Executor
    from jobsys.forkserver import ForkServer

    executor = Executor(app, server=ForkServer.start(app))
    try:
        ctx.current_engine().dispose()  # the schema check; the daemon has its own engine
        from jobsys.clock import SystemClock
        from jobsys.daemon import Daemon
        from jobsys.store.db import make_engine

        # The daemon retries a failed tick, so its own engine skips the pre-ping.
        engine = make_engine(settings.database_url, pre_ping=False)

        daemon = Daemon(
            engine=engine, app=app, settings=settings, clock=SystemClock(), executor=executor
        )
    except BaseException:
        executor.close()
        raise
    try:
        return daemon.run()
    finally:
        engine.dispose()


def cmd_health(ctx: Context) -> int:
    from jobsys import health
    from jobsys.clock import SystemClock

    thresholds = health.Thresholds(
        max_age_s=ctx.args.max_age,
        warn_age_s=min(ctx.args.warn_age, ctx.args.max_age),
        failures=ctx.args.failures,
    )
    report = health.evaluate(ctx.engine, SystemClock().now(), thresholds)
    if ctx.args.json:
        _print_json(report.to_dict())
    else:
        print(report.line())
    return report.exit_code


# -- web and admin accounts -----------------------------------------------------------
def cmd_web(ctx: Context) -> int:
    from jobsys.logs import setup_logging

    settings = ctx.settings
    settings.session_secret()  # production without SECRET_KEY: exit 2 before anything else
    setup_logging(settings.log_format, settings.log_level)
    app = ctx.app
    engine = ctx.current_engine()
    from jobsys.web.serve import run_web

    port = ctx.args.port if ctx.args.port is not None else settings.port
    return run_web(settings, app, engine, ctx.args.host, port)


def cmd_demo(ctx: Context) -> int:
    from jobsys.clock import SystemClock
    from jobsys.demo.launch import DemoOptions, run_demo

    if ctx.settings.is_production:
        raise _usage(
            "demo is for a local machine: it enables a schedule and resets the demo admin's "
            "password; unset JOBSYS_ENV=production to run it"
        )
    port = ctx.args.port if ctx.args.port is not None else ctx.settings.port
    options = DemoOptions(host=ctx.args.host, port=port, email=ctx.args.email)
    return run_demo(ctx.settings, ctx.app, SystemClock(), os.environ, options)


def _read_password(from_stdin: bool) -> str:
    import getpass

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat the password: ") != password:
        raise _usage("the passwords do not match")
    return password


def cmd_admin_create(ctx: Context) -> int:
    from jobsys.clock import SystemClock
    from jobsys.store import users

    args = ctx.args
    email = users.normalize_email(args.email)
    users.check_role(args.role)
    password = users.check_password(_read_password(args.password_stdin))
    account = users.create_user(
        ctx.current_engine(), email, password, args.role, now=SystemClock().now()
    )
    print(f"admin account {account.email} created (role {account.role})")
    return 0


def cmd_admin_token(ctx: Context) -> int:
    from jobsys.clock import SystemClock
    from jobsys.store import users

    token = users.create_token(ctx.current_engine(), ctx.args.email, now=SystemClock().now())
    print(token)
    print("this token is shown once; send it as 'Authorization: Bearer <token>'", file=sys.stderr)
    return 0


# -- parser ---------------------------------------------------------------------------
class UsageError(JobsysError):
    """Bad command-line arguments (exit 2, like argparse)."""


def _usage(message: str) -> UsageError:
    return UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--app",
        default=argparse.SUPPRESS,
        help="application module, module:attr or .py file (default: $JOBSYS_APP, else the demo)",
    )
    parser = argparse.ArgumentParser(
        prog="jobsys",
        description=(
            "jobsys: code-defined jobs and cron schedules, run exactly once, with an admin UI."
        ),
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"jobsys {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        parent: Any, name: str, handler: Callable[[Context], int], help: str
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(
            name, help=help, description=help, parents=[common]
        )
        p.set_defaults(handler=handler)
        return p

    p = add(sub, "migrate", cmd_migrate, "apply database migrations (idempotent)")
    p.add_argument(
        "--check", action="store_true", help="exit 1 if migrations are pending, apply nothing"
    )

    add(sub, "daemon", cmd_daemon, "run the schedule daemon (fires due slots, executes jobs)")
    p = add(
        sub,
        "health",
        cmd_health,
        "check daemon heartbeats, overdue schedules and failures (exit 0/1/2/3)",
    )
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument(
        "--max-age",
        type=float,
        default=300,
        help="seconds without a heartbeat that are CRITICAL (default 300)",
    )
    p.add_argument(
        "--warn-age",
        type=float,
        default=120,
        help="seconds without a heartbeat that are a WARNING (default 120)",
    )
    p.add_argument(
        "--failures",
        type=int,
        default=3,
        help="consecutive failed batches that are a WARNING (default 3)",
    )

    cron_p = sub.add_parser("cron", help="cron expressions: next slots, validation")
    cron_sub = cron_p.add_subparsers(dest="cron_command", metavar="ACTION", required=True)
    p = add(
        cron_sub, "next", cmd_cron_next, "print the next slots of a cron expression as UTC instants"
    )
    p.add_argument("expr")
    p.add_argument(
        "--tz", default="UTC", help="IANA timezone the expression is read in (default UTC)"
    )
    p.add_argument("--after", help="ISO-8601 instant to start after (default now)")
    p.add_argument("--count", type=int, default=5, help="how many slots (default 5)")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p = add(
        cron_sub,
        "validate",
        cmd_cron_validate,
        "exit 0 if the expression is valid, 2 with the reason if not",
    )
    p.add_argument("expr")
    p.add_argument("--tz", default="UTC")

    sched_p = sub.add_parser("schedules", help="list, enable, disable, trigger schedules")
    sched_sub = sched_p.add_subparsers(dest="schedules_command", metavar="ACTION", required=True)
    p = add(
        sched_sub,
        "list",
        cmd_schedules_list,
        "schedules from code merged with their database state",
    )
    p.add_argument("--json", action="store_true")
    for name, handler in (("enable", cmd_schedules_enable), ("disable", cmd_schedules_disable)):
        p = add(sched_sub, name, handler, f"{name} a schedule")
        p.add_argument("id")
    p = add(
        sched_sub,
        "trigger",
        cmd_schedules_trigger,
        "run a schedule's jobs now (does not move its next run)",
    )
    p.add_argument("id")

    p = add(sub, "web", cmd_web, "serve the admin UI and JSON API (never runs jobs)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument(
        "--port", type=int, default=None, help="port to listen on (default $PORT, else 8000)"
    )

    p = add(
        sub,
        "demo",
        cmd_demo,
        "local demo: migrate, admin account, web + daemon (SQLite and the demo app unless "
        "DATABASE_URL / JOBSYS_APP say otherwise)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address of the web UI (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=None, help="port of the web UI (default $PORT, else 8000)"
    )
    p.add_argument("--email", default="admin@jobsys.demo", help="the demo admin's login")

    admin_p = sub.add_parser("admin", help="admin accounts and API tokens")
    admin_sub = admin_p.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    p = add(admin_sub, "create", cmd_admin_create, "create an admin account")
    p.add_argument("email")
    p.add_argument(
        "--role",
        choices=("admin", "viewer"),
        default="admin",
        help="admin acts, viewer only reads (default admin)",
    )
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin instead of prompting",
    )
    p = add(admin_sub, "token", cmd_admin_token, "print a new API bearer token for an account")
    p.add_argument("email")

    jobs_p = sub.add_parser("jobs", help="list and run jobs")
    jobs_sub = jobs_p.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    p = add(jobs_sub, "list", cmd_jobs_list, "the job registry in dependency order")
    p.add_argument("--json", action="store_true")
    p = add(
        jobs_sub,
        "run",
        cmd_jobs_run,
        "queue one run of a job (exit 1 with --wait if it does not succeed)",
    )
    p.add_argument("name")
    p.add_argument("--params", help="JSON object of parameters")
    p.add_argument(
        "--wait", action="store_true", help="wait for the run to finish and print its logs"
    )
    p.add_argument(
        "--timeout", type=float, default=3600, help="with --wait: give up after this many seconds"
    )
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx: Context | None = None
    try:
        settings = Settings.from_environ(os.environ if environ is None else environ)
        ctx = Context(args, settings)
        code: int = args.handler(ctx)
        return code
    except JobsysError as exc:
        print(f"jobsys: error: {exc}", file=sys.stderr)
        # health speaks the monitoring-plugin language: anything it cannot judge is UNKNOWN.
        return 3 if args.command == "health" else exc.exit_code
    except KeyboardInterrupt:
        return 130
    finally:
        if ctx is not None:
            ctx.close()
