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
import re
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
        #: The run a ``jobs run --wait`` is waiting for (what to say on Ctrl-C).
        self.waiting_for_run: int | None = None

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

            # Only these commands may create a SQLite file (see make_engine).
            create = self.args.command == "demo" or (
                self.args.command == "migrate" and not self.args.check
            )
            self._engine = make_engine(self.settings.database_url, create=create)
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
    count = _int_flag("--count", args.count, 1, 1000)
    try:
        after = parse_iso(args.after) if args.after else SystemClock().now()
    except ValueError:
        raise _usage(f"--after {args.after!r} is not an ISO-8601 instant") from None
    slots = cron.next_slots(args.expr, args.tz, after, count)
    texts = [iso_utc(s) for s in slots]
    if args.json:
        print(json.dumps(texts))
    elif texts:
        print("\n".join(t or "" for t in texts))
    if len(slots) < count:
        # Only the end of the calendar stops a valid expression (cron validate
        # rejects one that never fires): say so rather than print nothing.
        last = texts[-1] if texts else iso_utc(after)
        print(
            f"no more slots after {last}: jobsys computes slots up to the end of year 9999",
            file=sys.stderr,
        )
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
        from jobsys.store.db import MissingDatabase

        try:
            ctx.engine  # noqa: B018  (making it is the check)
        except MissingDatabase as exc:
            print(f"pending migrations: all ({exc})")
            return 1
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
    from jobsys import present
    from jobsys.store import schedules

    app = ctx.app  # definitions are checked before the database is touched
    views = schedules.schedule_views(ctx.current_engine(), app, ctx.settings.env)
    if ctx.args.json:
        _print_json([present.schedule_json(v) for v in views])
        return 0
    rows = [
        [
            v.id,
            v.cron,
            v.timezone,
            ":".join(filter(None, [v.execution_mode, v.job_group or v.job_name])),
            "yes" if v.enabled else "no",
            present.next_run_text(v),
            present.last_run_text(v),
            "; ".join(filter(None, [present.schedule_note(v), _paused_text(v)])),
        ]
        for v in views
    ]
    print(_table(rows, ["ID", "CRON", "TZ", "MODE", "ENABLED", "NEXT RUN", "LAST RUN", "NOTE"]))
    return 0


def _paused_text(view: Any) -> str:
    """Who disabled a schedule, when and why (empty while enabled or never recorded)."""
    if view.enabled or view.paused_at is None:
        return ""
    from jobsys.clock import iso_utc

    why = f": {view.paused_note}" if view.paused_note else ""
    return f"disabled by {view.paused_by or '?'} at {iso_utc(view.paused_at)}{why}"


def _cmd_schedules_set(ctx: Context, enabled: bool) -> int:
    from jobsys import present
    from jobsys.clock import SystemClock
    from jobsys.store import schedules

    note = (getattr(ctx.args, "note", None) or "").strip() or None  # disable only
    if note is not None and len(note) > schedules.MAX_NOTE_LENGTH:
        raise UsageError(f"--note is longer than {schedules.MAX_NOTE_LENGTH} characters")
    app = ctx.app
    view = schedules.set_enabled(
        ctx.current_engine(),
        app,
        ctx.settings.env,
        ctx.args.id,
        enabled,
        now=SystemClock().now(),
        actor="cli",
        note=note,
    )
    state = "enabled" if view.enabled else "disabled"
    nxt = f"; next run {present.next_run_text(view)}" if view.enabled else ""
    why = f" ({view.paused_note})" if not view.enabled and view.paused_note else ""
    print(f"schedule {view.id!r} {state}{nxt}{why}")
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


def cmd_schedules_backfill(ctx: Context) -> int:
    from jobsys.backfill import backfill
    from jobsys.clock import SystemClock, parse_iso

    args = ctx.args
    bounds = []
    for flag, text in (("--from", args.start), ("--to", args.end)):
        try:
            bounds.append(parse_iso(text))
        except ValueError:
            raise _usage(f"{flag} {text!r} is not an ISO-8601 instant") from None
    parallel = _int_flag("--parallel", args.parallel, 1, 100)
    result = backfill(
        ctx.current_engine(),
        ctx.app,
        args.id,
        start=bounds[0],
        end=bounds[1],
        now=SystemClock().now(),
        actor="cli",
        env=ctx.settings.env,
        dry_run=args.dry_run,
        parallel=parallel,
    )
    if not args.dry_run and result.created:
        _wake_daemons(ctx)
    if args.json:
        _print_json(result.entries())
        return 0
    for entry in result.entries():
        if entry["existing"]:
            had = f"{entry['trigger']}, {entry['status']}"
            note = f"  has batch {entry['batch_id']} ({had}): left alone"
        elif args.dry_run:
            note = "  would be backfilled"
        else:
            note = f"  batch {entry['batch_id']} queued"
        print(f"{entry['slot']}{note}")
    verb = "would create" if args.dry_run else "created"
    print(
        f"{len(result.slots)} slot(s): {verb} {len(result.slots) - len(result.existing)} "
        f"batch(es), {len(result.existing)} slot(s) already had one",
        file=sys.stderr,
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

    from jobsys import present
    from jobsys.clock import SystemClock
    from jobsys.manual import create_manual_batch
    from jobsys.store.queries import get_run

    app = ctx.app
    params: Any = None
    if ctx.args.params is not None:
        params = _parse_params(ctx.args.params)
    if not 0 < ctx.args.timeout <= 31_536_000:  # also refuses nan
        raise _usage(f"--timeout: must be above 0 and at most 31536000 (got {ctx.args.timeout})")
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
    ctx.waiting_for_run = run_id  # Ctrl-C from here on: main() says how to cancel it
    if not ctx.args.wait:
        return 0
    deadline = time.monotonic() + ctx.args.timeout
    while True:
        status = get_run(engine, run_id, with_logs=False).status
        if status not in ("QUEUED", "RUNNING"):
            break
        if time.monotonic() > deadline:
            print(f"run {run_id} still {status} after {ctx.args.timeout:.0f}s", file=sys.stderr)
            return 1
        time.sleep(0.2)
    run = get_run(engine, run_id, with_logs=True)  # the end of the log: where errors are
    hidden = run.log_count - len(run.logs)
    if hidden:
        print(
            f"(first {hidden} of {run.log_count} log lines not shown; "
            f"see them with `jobsys runs show {run_id} --logs` or on the run page)"
        )
    for line in run.logs:
        print(present.log_line_text(line))
    print(f"run {run_id} {run.status}" + (f": {run.error}" if run.error else ""))
    return 0 if run.status == "SUCCESS" else 1


def _parse_params(raw: str) -> Any:
    try:
        params = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _usage(f"--params is not valid JSON: {exc}") from None
    try:
        # A lone surrogate (JSON "\ud800", or undecodable bytes in argv) is valid JSON
        # but no text: it could not be stored, nor shown back.
        json.dumps(params, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise _usage(
            f"--params holds {bad!r}, which is not a Unicode character "
            "(a lone surrogate); send text as UTF-8"
        ) from None
    if not isinstance(params, dict):
        given = json.dumps(params)[:40]
        raise _usage(f"--params must be a JSON object like '{{\"limit\": 10}}', not {given}")
    return params


def cmd_jobs_list(ctx: Context) -> int:
    app = ctx.app
    jobs = [
        {
            **app.jobs[name].to_dict(),
            "isolation": app.jobs[name].isolation or ctx.settings.isolation,
        }
        for name in app.ordered()
    ]
    if ctx.args.json:
        _print_json(jobs)
        return 0
    rows = [
        [
            j["name"],
            j["group"],
            ", ".join(j["depends_on"]) or "-",
            j["isolation"],
            j["description"][:60],
        ]
        for j in jobs
    ]
    print(_table(rows, ["NAME", "GROUP", "DEPENDS ON", "ISOLATION", "DESCRIPTION"]))
    return 0


def _run_id(raw: str) -> int:
    return _int_flag("RUN_ID", raw, 1, 2**63 - 1)


def cmd_jobs_cancel(ctx: Context) -> int:
    from jobsys.clock import SystemClock
    from jobsys.errors import Conflict
    from jobsys.store import audit
    from jobsys.store.db import session
    from jobsys.store.queries import get_run
    from jobsys.store.runs import request_cancel

    run_id = _run_id(ctx.args.run_id)
    engine = ctx.current_engine()
    before = get_run(engine, run_id, with_logs=False).status
    now = SystemClock().now()
    try:
        after = request_cancel(engine, run_id, now)
    except Conflict as exc:
        print(f"jobsys: {exc}: nothing to cancel", file=sys.stderr)
        return 1
    with session(engine) as s:  # as the web's cancel does: every cancel is audited
        audit.record(
            s,
            at=now,
            actor="cli",
            action="run.cancel",
            target_type="run",
            target_id=str(run_id),
            before={"status": before},
            after={"status": after, "cancel_requested": True},
        )
        s.commit()
    if after == "CANCELLED":
        print(f"run {run_id} cancelled (it had not started)")
        return 0
    told = _wake_daemons(ctx)
    print(
        f"run {run_id} is running: cancel requested, its daemon stops it "
        f"(woke {told} daemon(s)); follow it with: jobsys runs show {run_id} --follow"
    )
    return 0


def cmd_jobs_retry(ctx: Context) -> int:
    from jobsys.clock import SystemClock
    from jobsys.errors import Conflict
    from jobsys.store.reruns import retry_run

    run_id = _run_id(ctx.args.run_id)
    try:
        created = retry_run(ctx.current_engine(), run_id, now=SystemClock().now(), actor="cli")
    except Conflict as exc:
        print(f"jobsys: {exc}", file=sys.stderr)
        return 1
    told = _wake_daemons(ctx)
    print(
        f"run {run_id} retried as run {created.run_ids[0]} (batch {created.batch_id}; "
        f"woke {told} daemon(s))"
    )
    return 0


def cmd_batches_rerun(ctx: Context) -> int:
    from jobsys.clock import SystemClock
    from jobsys.errors import Conflict
    from jobsys.store.reruns import rerun_failed

    batch_id = _int_flag("BATCH_ID", ctx.args.batch_id, 1, 2**63 - 1)
    try:
        created = rerun_failed(ctx.current_engine(), batch_id, now=SystemClock().now(), actor="cli")
    except Conflict as exc:
        print(f"jobsys: {exc}", file=sys.stderr)
        return 1
    told = _wake_daemons(ctx)
    ids = ", ".join(map(str, created.run_ids))
    print(
        f"batch {batch_id} re-run as batch {created.batch_id}: run(s) {ids} (woke {told} daemon(s))"
    )
    return 0


# -- runs -----------------------------------------------------------------------------
def _print_new_logs(engine: Engine, run_id: int, after_id: int | None) -> int | None:
    """Print the run's log lines after ``after_id``, all pages; returns the last id."""
    from jobsys.present import log_line_text
    from jobsys.store.queries import run_logs

    while True:
        lines = run_logs(engine, run_id, after_id=after_id, limit=1000)
        for line in lines:
            print(log_line_text(line), flush=True)
        if lines:
            after_id = lines[-1].id
        if len(lines) < 1000:
            return after_id


_RUN_FIELDS = (
    "job_name",
    "status",
    "trigger",
    "schedule_id",
    "batch_id",
    "scheduled_for",
    "params",
    "triggered_by",
    "queued_at",
    "started_at",
    "finished_at",
    "duration_ms",
    "worker_id",
    "exit_code",
    "error",
)


def cmd_runs_show(ctx: Context) -> int:
    import time

    from jobsys import present
    from jobsys.store.queries import get_run

    args = ctx.args
    run_id = _run_id(args.run_id)
    if args.follow and args.json:
        raise _usage("--follow streams text; use it without --json")
    engine = ctx.current_engine()
    if args.json:
        if args.logs:
            _print_json(present.run_with_logs_json(get_run(engine, run_id, with_logs=True)))
        else:
            _print_json(present.run_json(get_run(engine, run_id, with_logs=False)))
        return 0
    run = get_run(engine, run_id, with_logs=False)
    shown = present.run_json(run)  # the same texts as the JSON (ISO instants)
    print(f"run {run_id}")
    for name in _RUN_FIELDS:
        value = shown[name]
        if value is not None:
            text = json.dumps(value, ensure_ascii=False) if name == "params" else value
            print(f"  {name:<14}{text}")
    if run.progress_total or run.progress_done:
        print(f"  {'progress':<14}{run.progress_done}/{run.progress_total or '?'}")
    if not (args.logs or args.follow):
        return 0
    print("logs:", flush=True)
    last = _print_new_logs(engine, run_id, None)
    if not args.follow:
        return 0
    ctx.waiting_for_run = run_id  # Ctrl-C: main() says the run goes on
    while run.status in ("QUEUED", "RUNNING"):
        time.sleep(0.5)
        run = get_run(engine, run_id, with_logs=False)
        last = _print_new_logs(engine, run_id, last)  # after the status: no line is lost
    print(f"run {run_id} {run.status}" + (f": {run.error}" if run.error else ""))
    return 0 if run.status == "SUCCESS" else 1


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

    executor = Executor(
        app,
        server=ForkServer.start(app),
        isolation=settings.isolation,
        pool_size=settings.concurrency,
        worker_max_runs=settings.worker_max_runs,
        worker_max_rss=settings.worker_max_rss_mb << 20,
    )
    try:
        # A missing SQLite file is refused here; the schema check is the daemon's (in a
        # short-lived child: the daemon itself never imports alembic). It has its own engine.
        ctx.engine.dispose()
        from jobsys.clock import SystemClock
        from jobsys.daemon import Daemon
        from jobsys.store.db import make_engine

        # The daemon retries a failed tick, so its own engine skips the pre-ping; its hot
        # path sends several statements per round trip on MySQL.
        engine = make_engine(settings.database_url, pre_ping=False, multi_statements=True)

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

    max_age = _seconds_flag("--max-age", ctx.args.max_age)
    thresholds = health.Thresholds(
        max_age_s=max_age,
        warn_age_s=min(_seconds_flag("--warn-age", ctx.args.warn_age), max_age),
        failures=_int_flag("--failures", ctx.args.failures, 1, 1000),
    )
    # The daemon would refuse an app that does not load: health must not call that OK.
    ctx.app  # noqa: B018
    report = health.evaluate(ctx.engine, SystemClock().now(), thresholds)
    if ctx.args.json:
        _print_json(report.to_dict())
    else:
        print(report.line())
    return report.exit_code


def _health_unknown(args: argparse.Namespace, reason: str) -> int:
    from jobsys import health

    report = health.HealthReport(health.UNKNOWN, reason, [reason])
    if getattr(args, "json", False):
        _print_json(report.to_dict())
    else:
        print(report.line())
    return report.exit_code


# -- web and admin accounts -----------------------------------------------------------
def cmd_web(ctx: Context) -> int:
    from jobsys.logs import setup_logging

    settings = ctx.settings
    settings.session_secret()  # production without SECRET_KEY: exit 2 before anything else
    port = _port_flag(ctx.args.port, settings.port)
    setup_logging(settings.log_format, settings.log_level)
    app = ctx.app
    engine = ctx.current_engine()
    from jobsys.web.serve import run_web

    return run_web(settings, app, engine, ctx.args.host, port)


def cmd_demo(ctx: Context) -> int:
    from jobsys.clock import SystemClock
    from jobsys.demo.launch import DemoOptions, run_demo

    if ctx.settings.is_production:
        raise _usage(
            "demo is for a local machine: it enables a schedule and resets the demo admin's "
            "password; unset JOBSYS_ENV=production to run it"
        )
    port = _port_flag(ctx.args.port, ctx.settings.port)
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
    from datetime import timedelta

    from jobsys.clock import SystemClock
    from jobsys.definitions import parse_duration
    from jobsys.store import users

    seconds = parse_duration(ctx.args.expires_in, "--expires-in")
    token = users.create_token(
        ctx.current_engine(),
        ctx.args.email,
        now=SystemClock().now(),
        name=ctx.args.name,
        lifetime=timedelta(seconds=seconds) if seconds is not None else None,
    )
    print(token)
    print("this token is shown once; send it as 'Authorization: Bearer <token>'", file=sys.stderr)
    return 0


def cmd_admin_revoke(ctx: Context) -> int:
    from jobsys.clock import SystemClock
    from jobsys.store import users

    revoked = users.revoke_access(ctx.current_engine(), ctx.args.email, now=SystemClock().now())
    print(
        f"{users.normalize_email(ctx.args.email)}: {revoked.sessions} session(s) ended, "
        f"{revoked.tokens} API token(s) revoked"
    )
    return 0


def cmd_admin_disable(ctx: Context) -> int:
    from jobsys.clock import SystemClock
    from jobsys.store import users

    disable = ctx.args.admin_command == "disable"
    revoked = users.set_disabled(
        ctx.current_engine(), ctx.args.email, disable, now=SystemClock().now()
    )
    email = users.normalize_email(ctx.args.email)
    if disable:
        print(f"{email} disabled ({revoked.sessions} session(s) ended; its tokens stop working)")
    else:
        print(f"{email} enabled")
    return 0


def cmd_admin_list(ctx: Context) -> int:
    from jobsys.clock import SystemClock, iso_utc
    from jobsys.store import users

    found = users.list_users(ctx.current_engine(), now=SystemClock().now())
    if ctx.args.json:
        _print_json([u.to_dict() for u in found])
        return 0
    if not found:
        print("no accounts yet; create one with `jobsys admin create EMAIL`")
        return 0
    rows = []
    for u in found:
        live = [t for t in u.tokens if not t.expired]
        used = max((t.last_used_at for t in u.tokens if t.last_used_at), default=None)
        rows.append(
            [
                u.email,
                u.role,
                "disabled" if u.disabled else "active",
                iso_utc(u.last_login_at) or "never",
                str(u.active_sessions),
                f"{len(live)} (last used {iso_utc(used)})" if used else str(len(live)),
            ]
        )
    print(_table(rows, ["EMAIL", "ROLE", "STATE", "LAST LOGIN", "SESSIONS", "TOKENS"]))
    return 0


def cmd_admin_role(ctx: Context) -> int:
    from jobsys.clock import SystemClock
    from jobsys.store import users

    changed = users.set_role(
        ctx.current_engine(), ctx.args.email, ctx.args.role, now=SystemClock().now()
    )
    email = changed.account.email
    if changed.actions:
        print(f"{email} now has the {changed.account.role} role")
    else:
        print(f"{email} already has the {changed.account.role} role")
    return 0


def cmd_admin_passwd(ctx: Context) -> int:
    from jobsys.clock import SystemClock
    from jobsys.store import users

    engine = ctx.current_engine()
    email = users.normalize_email(ctx.args.email)
    if users.get_user_by_email(engine, email) is None:  # before asking for a password
        from jobsys.errors import NotFound

        raise NotFound(f"no admin account {email!r}")
    password = users.check_password(_read_password(ctx.args.password_stdin))
    users.set_password(engine, email, password, now=SystemClock().now())
    print(f"{email}: password changed; its browser sessions ended (API tokens stay)")
    return 0


# -- parser ---------------------------------------------------------------------------
class UsageError(JobsysError):
    """Bad command-line arguments (exit 2, like argparse)."""


def _usage(message: str) -> UsageError:
    return UsageError(message)


# Flags are parsed here rather than with argparse's int/float: those take full-width
# digits, "nan" and "inf", and their errors come with a usage block, not one line.
_INT_FLAG = re.compile(r"[+-]?[0-9]{1,20}")
_NUMBER_FLAG = re.compile(r"[+-]?(?:[0-9]{1,20}(?:\.[0-9]*)?|\.[0-9]+)")
PORT_RANGE = (1, 65535)


def _int_flag(flag: str, raw: str, low: int, high: int) -> int:
    if _INT_FLAG.fullmatch(raw.strip()) and low <= int(raw) <= high:
        return int(raw)
    raise _usage(f"{flag}: must be an integer between {low} and {high} (got {raw!r})")


def _seconds_flag(flag: str, raw: str, high: float = 31_536_000) -> float:
    """A positive number of seconds, at most ``high`` (a year by default)."""
    if _NUMBER_FLAG.fullmatch(raw.strip()) and 0 < float(raw) <= high:
        return float(raw)
    raise _usage(
        f"{flag}: must be a number of seconds above 0 and at most {high:.0f} (got {raw!r})"
    )


def _port_flag(raw: str | None, default: int) -> int:
    return default if raw is None else _int_flag("--port", raw, *PORT_RANGE)


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
        default="300",
        help="seconds without a heartbeat that are CRITICAL, above 0 (default 300)",
    )
    p.add_argument(
        "--warn-age",
        default="120",
        help="seconds without a heartbeat that are a WARNING, above 0 (default 120)",
    )
    p.add_argument(
        "--failures",
        default="3",
        help=(
            "consecutive failed batches of one schedule (cron or Run Now) that are a "
            "WARNING (default 3); manual runs of a single job belong to no schedule and "
            "are not counted"
        ),
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
    p.add_argument("--count", default="5", help="how many slots, 1 to 1000 (default 5)")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p = add(
        cron_sub,
        "validate",
        cmd_cron_validate,
        "exit 0 if the expression is valid, 2 with the reason if not",
    )
    p.add_argument("expr")
    p.add_argument("--tz", default="UTC")

    sched_p = sub.add_parser(
        "schedules", help="list, enable, disable, trigger and backfill schedules"
    )
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
    p.add_argument("--note", help="why it is disabled (shown in the UI, list and API)")
    p = add(
        sched_sub,
        "trigger",
        cmd_schedules_trigger,
        "run a schedule's jobs now (does not move its next run)",
    )
    p.add_argument("id")
    p = add(
        sched_sub,
        "backfill",
        cmd_schedules_backfill,
        "one BACKFILL batch per past slot in [--from, --to) that has none, run in slot order",
    )
    p.add_argument("id")
    p.add_argument("--from", dest="start", required=True, help="ISO-8601 instant (included)")
    p.add_argument("--to", dest="end", required=True, help="ISO-8601 instant (excluded)")
    p.add_argument("--dry-run", action="store_true", help="list the slots, create nothing")
    p.add_argument("--json", action="store_true", help="print the slots as a JSON list")
    p.add_argument(
        "--parallel", default="1", help="backfill batches run at once, 1 to 100 (default 1)"
    )

    p = add(sub, "web", cmd_web, "serve the admin UI and JSON API (never runs jobs)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument(
        "--port", default=None, help="port to listen on, 1 to 65535 (default $PORT, else 8000)"
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
        "--port", default=None, help="port of the web UI, 1 to 65535 (default $PORT, else 8000)"
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
    p.add_argument(
        "--expires-in", metavar="DURATION", help="lifetime, e.g. 12h or 30d (default: no expiry)"
    )
    p.add_argument("--name", help="what the token is for (shown in the audit log)")
    p = add(
        admin_sub,
        "revoke",
        cmd_admin_revoke,
        "end every browser session and revoke every API token of an account",
    )
    p.add_argument("email")
    p = add(
        admin_sub,
        "disable",
        cmd_admin_disable,
        "disable an account: no login, its sessions and tokens get 401 at once (never the "
        "last active admin)",
    )
    p.add_argument("email")
    p = add(admin_sub, "enable", cmd_admin_disable, "enable a disabled account again")
    p.add_argument("email")
    p = add(
        admin_sub,
        "list",
        cmd_admin_list,
        "every account with its role, state, last login, sessions and API tokens",
    )
    p.add_argument("--json", action="store_true")
    p = add(
        admin_sub,
        "role",
        cmd_admin_role,
        "give an account the admin or viewer role (never demotes the last active admin)",
    )
    p.add_argument("email")
    p.add_argument("role", choices=("admin", "viewer"))
    p = add(
        admin_sub,
        "passwd",
        cmd_admin_passwd,
        "set an account's password (its browser sessions end; API tokens stay)",
    )
    p.add_argument("email")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin instead of prompting",
    )

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
    p = add(
        jobs_sub,
        "cancel",
        cmd_jobs_cancel,
        "cancel a queued run (at once) or a running one (its daemon stops it); exit 1 if "
        "it already finished",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p = add(
        jobs_sub,
        "retry",
        cmd_jobs_retry,
        "queue the next attempt of a failed or cancelled run as a new batch; exit 1 if "
        "the run cannot be retried",
    )
    p.add_argument("run_id", metavar="RUN_ID")

    batches_p = sub.add_parser("batches", help="re-run a batch's failed runs")
    batches_sub = batches_p.add_subparsers(dest="batches_command", metavar="ACTION", required=True)
    p = add(
        batches_sub,
        "rerun",
        cmd_batches_rerun,
        "queue the batch's failed, cancelled and skipped runs, in dependency order, as a "
        "new batch; exit 1 if it is still running or has none",
    )
    p.add_argument("batch_id", metavar="BATCH_ID")

    runs_p = sub.add_parser("runs", help="show a job run, its logs, follow it live")
    runs_sub = runs_p.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    p = add(
        runs_sub,
        "show",
        cmd_runs_show,
        "a run's status and times; --logs its log, --follow new lines until it ends "
        "(then exit 0 if it succeeded, 1 if not)",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--logs", action="store_true", help="print the run's log lines")
    p.add_argument(
        "--follow",
        action="store_true",
        help="print the log, then new lines as they come, until the run ends",
    )
    p.add_argument("--json", action="store_true", help="print the run as JSON (with --logs too)")
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
        if args.command == "health":
            # health speaks the monitoring-plugin language: anything it cannot judge is
            # UNKNOWN, said on stdout where the monitoring system reads it.
            return _health_unknown(args, str(exc))
        print(f"jobsys: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if ctx is not None and ctx.waiting_for_run is not None:
            run_id = ctx.waiting_for_run
            print(
                f"\nrun #{run_id} continues in the background; "
                f"cancel it with: jobsys jobs cancel {run_id}",
                file=sys.stderr,
            )
        return 130
    finally:
        if ctx is not None:
            ctx.close()
