"""The JSON API under ``/api/admin`` (design 4.4): handlers and the route list.

Handlers are plain ``def`` functions run in the thread pool (see ``routing``). Anything
that creates work or enables a schedule wakes the daemons afterwards (design 6.6).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.responses import JSONResponse, Response

from jobsys import cron, health, ledger, present
from jobsys.backfill import MAX_PARALLEL, backfill
from jobsys.clock import iso_utc
from jobsys.errors import ConfigError, Conflict, CronError
from jobsys.manual import create_manual_batch
from jobsys.store import audit, users
from jobsys.store.db import session
from jobsys.store.jobstats import job_history
from jobsys.store.ledger import ledger_inputs
from jobsys.store.models import RunStatus, Trigger
from jobsys.store.overview import read_overview, waiting_reason
from jobsys.store.queries import (
    ERROR_SEARCH_RUNS,
    LOG_TAIL_LINES,
    MAX_LOG_LINES,
    get_batch,
    get_run,
    job_activity,
    list_audit,
    list_runs,
    log_page,
    run_attempts,
    schedule_history,
)
from jobsys.store.reruns import rerun_failed, retry_run
from jobsys.store.runs import request_cancel
from jobsys.store.schedules import MAX_NOTE_LENGTH, get_view, schedule_views, set_enabled
from jobsys.store.workers import live_window
from jobsys.web import auth, views
from jobsys.web.context import WebContext
from jobsys.web.errors import bad_request, conflict, invalid, not_found
from jobsys.web.inputs import Body, parse_id
from jobsys.web.routing import Access, ApiRoute, Call, Param

PREFIX = "/api/admin"
MAX_PREVIEW = 50
MAX_CRON_LENGTH = 200
#: The run filter's error text: longer than this cannot be a useful search.
MAX_ERROR_SEARCH = 200
#: A job page's success rates, by label: over the last 24 hours and 7 days.
SUCCESS_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
#: The default slot ledger window: the last day and the next hour.
LEDGER_BEFORE, LEDGER_AFTER = timedelta(hours=24), timedelta(hours=1)


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status)


def _created(created: Any) -> JSONResponse:
    return _json({"batch_id": created.batch_id, "job_run_ids": created.run_ids}, 202)


# -- session --------------------------------------------------------------------------
def login(ctx: WebContext, call: Call) -> Response:
    return auth.login(ctx, call.request, call.body)


def logout(ctx: WebContext, call: Call) -> Response:
    Body(call.body, ())
    return auth.logout(ctx, call.request, call.user)


def logout_all(ctx: WebContext, call: Call) -> Response:
    Body(call.body, ())
    return auth.logout_all(ctx, call.request, call.user)


def me(ctx: WebContext, call: Call) -> Response:
    return _json(call.user.to_dict())


# -- schedules ------------------------------------------------------------------------
def list_schedules(ctx: WebContext, call: Call) -> Response:
    found = schedule_views(ctx.engine, ctx.app, ctx.settings.env, include_inactive=True)
    return _json({"schedules": [views.schedule_entry(v) for v in found]})


def get_schedule(ctx: WebContext, call: Call) -> Response:
    view = get_view(ctx.engine, ctx.app, ctx.settings.env, call.path("id"))
    return _json(views.schedule_entry(view))


def _check_runnable(ctx: WebContext, schedule_id: str, doing: str) -> None:
    """404 for an unknown schedule; 409 for one that is not in code or not active here."""
    sched = ctx.app.schedules.get(schedule_id)
    if sched is None:
        get_view(ctx.engine, ctx.app, ctx.settings.env, schedule_id)  # NotFound -> 404
        raise conflict(f"schedule {schedule_id!r} is no longer in code and cannot be {doing}")
    if not sched.active_in(ctx.settings.env):
        raise conflict(
            f"schedule {schedule_id!r} is not active in environment {ctx.settings.env!r} "
            f"and cannot be {doing}"
        )


def _note(body: Body) -> str | None:
    """The optional ``note`` of a disable: why (blank means none)."""
    note = body.string("note", max_length=MAX_NOTE_LENGTH, required=False)
    if note is None or not note.strip():
        return None
    return note.strip()


def _toggle(ctx: WebContext, call: Call, enabled: bool, note: str | None = None) -> Response:
    schedule_id = call.path("id")
    if enabled:
        _check_runnable(ctx, schedule_id, "enabled")
    view = set_enabled(
        ctx.engine,
        ctx.app,
        ctx.settings.env,
        schedule_id,
        enabled,
        now=ctx.clock.now(),
        actor=call.actor,
        ip=call.ip,
        note=note,
    )
    if enabled:
        ctx.wake_daemons()
    return _json(views.schedule_entry(view))


def put_schedule(ctx: WebContext, call: Call) -> Response:
    body = Body(call.body, {"enabled", "note"})
    enabled = body.boolean("enabled")
    note = _note(body)
    if enabled and note is not None:
        raise invalid("field 'note' is only accepted with enabled: false")
    return _toggle(ctx, call, enabled, note)


def enable_schedule(ctx: WebContext, call: Call) -> Response:
    Body(call.body, ())
    return _toggle(ctx, call, True)


def disable_schedule(ctx: WebContext, call: Call) -> Response:
    return _toggle(ctx, call, False, _note(Body(call.body, {"note"})))


def trigger_schedule(ctx: WebContext, call: Call) -> Response:
    Body(call.body, ())
    schedule_id = call.path("id")
    _check_runnable(ctx, schedule_id, "triggered")
    created = create_manual_batch(
        ctx.engine,
        ctx.app,
        mode="ALL_JOBS",  # replaced by the schedule's own mode and group
        now=ctx.clock.now(),
        actor=call.actor,
        schedule_id=schedule_id,
        env=ctx.settings.env,
        ip=call.ip,
    )
    ctx.wake_daemons()
    return _created(created)


def backfill_schedule(ctx: WebContext, call: Call) -> Response:
    body = Body(call.body, {"from", "to", "dry_run", "concurrency"})
    start, end = body.instant("from"), body.instant("to")
    if start is None or end is None:
        raise invalid("fields 'from' and 'to' are required")
    dry_run = body.boolean("dry_run", default=False)
    concurrency = body.integer("concurrency", default=1, low=1, high=MAX_PARALLEL)
    schedule_id = call.path("id")
    _check_runnable(ctx, schedule_id, "backfilled")
    result = backfill(
        ctx.engine,
        ctx.app,
        schedule_id,
        start=start,
        end=end,
        now=ctx.clock.now(),
        actor=call.actor,
        env=ctx.settings.env,
        dry_run=dry_run,
        parallel=concurrency,
        ip=call.ip,
    )
    if result.created:
        ctx.wake_daemons()
    return _json(result.to_dict())


def schedule_history_(ctx: WebContext, call: Call) -> Response:
    schedule_id = call.path("id")
    query = call.query
    limit, cursor = query.limit(), query.cursor()
    get_view(ctx.engine, ctx.app, ctx.settings.env, schedule_id)  # NotFound -> 404
    page = schedule_history(ctx.engine, schedule_id, limit=limit, cursor=cursor)
    batches = [present.history_entry_json(b) for b in page.items]
    return _json({"schedule_id": schedule_id, "batches": batches, "next_cursor": page.next_cursor})


def schedule_slots(ctx: WebContext, call: Call) -> Response:
    """The next slots in the schedule's zone, daylight-saving changes marked."""
    query = call.query
    count = query.integer("count", default=10, low=1, high=MAX_PREVIEW)
    after = query.instant("after") or ctx.clock.now()
    view = get_view(ctx.engine, ctx.app, ctx.settings.env, call.path("id"))
    try:
        slots = ledger.upcoming(view.cron, view.timezone, after, count)
    except CronError as exc:  # a row whose cron no longer parses (not in code)
        raise conflict(f"schedule {view.id!r} has no valid cron: {exc}") from None
    except (OverflowError, ValueError):
        raise bad_request("the slots after that instant are beyond the supported dates") from None
    return _json(views.upcoming_json(view, slots))


def schedule_ledger(ctx: WebContext, call: Call) -> Response:
    """Every slot the cron expected in [from, to) and its fate (``jobsys.ledger``)."""
    query = call.query
    now = ctx.clock.now()
    start = query.instant("from") or now - LEDGER_BEFORE
    end = query.instant("to") or max(start, now) + LEDGER_AFTER
    try:
        ledger.check_window(start, end)
    except ledger.LedgerError as exc:
        raise bad_request(f"bad window: {exc} (from {iso_utc(start)} to {iso_utc(end)})") from None
    view = get_view(ctx.engine, ctx.app, ctx.settings.env, call.path("id"))
    settings = ctx.settings
    inputs = ledger_inputs(
        ctx.engine,
        view.id,
        start,
        end,
        now=now,
        beat=timedelta(milliseconds=settings.poll_interval_ms),
        live=live_window(settings.poll_interval_ms),
    )
    facts = ledger.ScheduleFacts(
        id=view.id,
        cron=view.cron,
        timezone=view.timezone,
        grace_s=view.grace_s,
        enabled=view.enabled,
        in_code=view.in_code,
        env_active=view.env_active,
        created_at=inputs.created_at,
        jitter_s=view.jitter_s,
        buffered_slot=inputs.buffered_slot,
    )
    cutoff = now - timedelta(days=settings.history_days) if settings.history_days else None
    try:
        built = ledger.build_ledger(
            facts,
            start,
            end,
            now=now,
            records=inputs.records,
            toggles=inputs.toggles,
            daemons=inputs.daemons,
            history_cutoff=cutoff,
        )
    except ledger.LedgerError as exc:
        raise bad_request(f"bad window: {exc}") from None
    except CronError as exc:
        raise conflict(f"schedule {view.id!r} has no valid cron: {exc}") from None
    return _json(views.ledger_json(view, built))


def _cron_fields(body: Body) -> tuple[str, str]:
    expr = body.required_string("cron", max_length=MAX_CRON_LENGTH)
    tz = body.string("timezone", max_length=64, required=False) or "UTC"
    return expr, tz


def validate_cron(ctx: WebContext, call: Call) -> Response:
    expr, tz = _cron_fields(Body(call.body, {"cron", "timezone"}))
    try:
        cron.validate(expr, tz)
        description = cron.describe(expr)
    except CronError as exc:
        return _json({"valid": False, "error": str(exc)})
    return _json({"valid": True, "description": description, "timezone": tz})


def preview_runs(ctx: WebContext, call: Call) -> Response:
    body = Body(call.body, {"cron", "timezone", "after", "count"})
    expr, tz = _cron_fields(body)
    after = body.instant("after") or ctx.clock.now()
    count = body.integer("count", default=5, low=1, high=MAX_PREVIEW)
    try:
        slots = cron.next_slots(expr, tz, after, count)
        description = cron.describe(expr)
    except CronError as exc:
        raise invalid(str(exc)) from None
    except (OverflowError, ValueError):
        raise invalid("the slots after that instant are beyond the supported dates") from None
    return _json(
        {
            "cron": expr,
            "timezone": tz,
            "description": description,
            "runs": [iso_utc(s) for s in slots],
        }
    )


# -- jobs -----------------------------------------------------------------------------
def list_jobs(ctx: WebContext, call: Call) -> Response:
    names = ctx.app.ordered()
    activity = job_activity(ctx.engine, names)
    return _json(
        {
            "jobs": [
                views.job_entry(ctx.app, n, activity[n], ctx.settings.isolation) for n in names
            ],
            "groups": ctx.app.groups,
        }
    )


def get_job(ctx: WebContext, call: Call) -> Response:
    """One job with its neighbours, newest runs, durations and success rates."""
    name = call.path("name")
    if name not in ctx.app.jobs:
        raise not_found(f"unknown job {name!r}")
    now = ctx.clock.now()
    since = {label: now - span for label, span in SUCCESS_WINDOWS.items()}
    history = job_history(ctx.engine, name, since=list(since.values()))
    return _json(views.job_page(ctx.app, name, history.activity, history, since))


def run_job(ctx: WebContext, call: Call) -> Response:
    name = call.path("name")
    if name not in ctx.app.jobs:
        raise not_found(f"unknown job {name!r}")
    params = Body(call.body, {"params"}).object("params")
    created = create_manual_batch(
        ctx.engine,
        ctx.app,
        mode="JOB",
        job=name,
        params=params,  # checked against the job's declared params (422 if wrong)
        now=ctx.clock.now(),
        actor=call.actor,
        ip=call.ip,
    )
    ctx.wake_daemons()
    return _created(created)


def run_all(ctx: WebContext, call: Call) -> Response:
    skip = Body(call.body, {"skip_dependencies"}).boolean("skip_dependencies", default=False)
    created = create_manual_batch(
        ctx.engine,
        ctx.app,
        mode="ALL_JOBS",
        skip_dependencies=skip,
        now=ctx.clock.now(),
        actor=call.actor,
        ip=call.ip,
    )
    ctx.wake_daemons()
    return _created(created)


def run_group(ctx: WebContext, call: Call) -> Response:
    group = call.path("group")
    if group not in ctx.app.groups:
        raise not_found(f"unknown group {group!r}")
    skip = Body(call.body, {"skip_dependencies"}).boolean("skip_dependencies", default=False)
    created = create_manual_batch(
        ctx.engine,
        ctx.app,
        mode="GROUP",
        group=group,
        skip_dependencies=skip,
        now=ctx.clock.now(),
        actor=call.actor,
        ip=call.ip,
    )
    ctx.wake_daemons()
    return _created(created)


# -- runs and batches -----------------------------------------------------------------
def list_job_runs(ctx: WebContext, call: Call) -> Response:
    query = call.query
    queued_from, queued_to = query.instant("from"), query.instant("to")
    if queued_from is not None and queued_to is not None and queued_to <= queued_from:
        raise bad_request("query parameter 'to' must be after 'from'")
    page = list_runs(
        ctx.engine,
        job=query.name("job"),
        statuses=query.choices("status", [s.value for s in RunStatus]),
        triggers=query.choices("trigger", [t.value for t in Trigger]),
        schedule_id=query.name("schedule_id"),
        batch_id=query.id("batch_id"),
        queued_from=queued_from,
        queued_to=queued_to,
        error_text=query.text("error", max_length=MAX_ERROR_SEARCH),
        limit=query.limit(),
        cursor=query.cursor(),
    )
    runs = [present.run_json(r) for r in page.items]
    searched = page.searched
    return _json(
        {
            "runs": runs,
            "next_cursor": page.next_cursor,
            "searched": None
            if searched is None
            else {
                "runs": searched.runs,
                "last_id": searched.last_id,
                "last_queued_at": None
                if searched.last_queued_at is None
                else iso_utc(searched.last_queued_at),
            },
        }
    )


def get_job_run(ctx: WebContext, call: Call) -> Response:
    run_id = parse_id(call.path("id"), "job run")
    query = call.query
    after, before = query.id("logs_after"), query.id("logs_before")
    if after is not None and before is not None:
        raise bad_request("query parameters 'logs_after' and 'logs_before' exclude each other")
    limit = query.integer("logs_limit", default=LOG_TAIL_LINES, low=1, high=MAX_LOG_LINES)
    run = get_run(ctx.engine, run_id, with_logs=False)
    page = log_page(ctx.engine, run_id, after_id=after, before_id=before, limit=limit)
    detail = views.run_detail(run, page)
    detail["attempts"] = [present.attempt_json(a) for a in run_attempts(ctx.engine, run)]
    detail["waiting_reason"] = waiting_reason(ctx.engine, run_id, ctx.clock.now())
    return _json(detail)


def retry_job_run(ctx: WebContext, call: Call) -> Response:
    """Retry: the next attempt of a failed or cancelled run, as a new batch (audited)."""
    Body(call.body, ())
    run_id = parse_id(call.path("id"), "job run")
    created = retry_run(ctx.engine, run_id, now=ctx.clock.now(), actor=call.actor, ip=call.ip)
    ctx.wake_daemons()
    return _created(created)


def rerun_batch(ctx: WebContext, call: Call) -> Response:
    """Re-run failed: the batch's failed, cancelled and skipped runs as a new batch."""
    Body(call.body, ())
    batch_id = parse_id(call.path("id"), "batch")
    created = rerun_failed(ctx.engine, batch_id, now=ctx.clock.now(), actor=call.actor, ip=call.ip)
    ctx.wake_daemons()
    return _created(created)


def cancel_job_run(ctx: WebContext, call: Call) -> Response:
    Body(call.body, ())
    run_id = parse_id(call.path("id"), "job run")
    before = get_run(ctx.engine, run_id, with_logs=False).status
    now = ctx.clock.now()
    after = request_cancel(ctx.engine, run_id, now)  # Conflict (409) if it already finished
    with session(ctx.engine) as s:
        audit.record(
            s,
            at=now,
            actor=call.actor,
            action="run.cancel",
            target_type="run",
            target_id=str(run_id),
            before={"status": before},
            after={"status": after, "cancel_requested": True},
            ip=call.ip,
        )
        s.commit()
    ctx.wake_daemons()
    return _json(present.run_json(get_run(ctx.engine, run_id, with_logs=False)))


def get_batch_(ctx: WebContext, call: Call) -> Response:
    batch_id = parse_id(call.path("id"), "batch")
    return _json(views.batch_view(get_batch(ctx.engine, batch_id)))


def cancel_batch(ctx: WebContext, call: Call) -> Response:
    """Cancel every queued and running run of a batch at once (one audit row)."""
    Body(call.body, ())
    batch_id = parse_id(call.path("id"), "batch")
    batch = get_batch(ctx.engine, batch_id)  # NotFound -> 404
    active = [r for r in batch.runs if r.status in (RunStatus.QUEUED, RunStatus.RUNNING)]
    if not active:
        raise conflict(f"batch {batch_id} has no queued or running run to cancel")
    now = ctx.clock.now()
    # The queued ones first, last in dependency order first: none starts meanwhile.
    ordered = sorted(active, key=lambda r: (r.status == RunStatus.RUNNING, -r.position))
    cancelled: list[int] = []
    for run in ordered:
        try:
            request_cancel(ctx.engine, run.id, now)
        except Conflict:
            continue  # it finished meanwhile
        cancelled.append(run.id)
    with session(ctx.engine) as s:
        audit.record(
            s,
            at=now,
            actor=call.actor,
            action="batch.cancel",
            target_type="batch",
            target_id=str(batch_id),
            before={"status": batch.status, "active_runs": [r.id for r in active]},
            after={"cancel_requested": sorted(cancelled)},
            ip=call.ip,
        )
        s.commit()
    ctx.wake_daemons()
    return _json(views.batch_view(get_batch(ctx.engine, batch_id)))


# -- overview, daemon and audit -------------------------------------------------------
def overview_(ctx: WebContext, call: Call) -> Response:
    now = ctx.clock.now()
    report = health.evaluate(ctx.engine, now)
    figures = read_overview(ctx.engine, now, cache=ctx.overview_cache)
    return _json(views.overview(figures, report, now))


def daemon_status(ctx: WebContext, call: Call) -> Response:
    return _json(views.daemon_status(health.evaluate(ctx.engine, ctx.clock.now())))


def list_audit_(ctx: WebContext, call: Call) -> Response:
    query = call.query
    page = list_audit(
        ctx.engine,
        actor=query.text("actor", max_length=255),
        action=query.text("action", max_length=64),
        target=query.text("target", max_length=255),
        limit=query.limit(),
        cursor=query.cursor(),
    )
    entries = [present.audit_json(e) for e in page.items]
    return _json({"entries": entries, "next_cursor": page.next_cursor})


# -- accounts (admins only) -----------------------------------------------------------
def _user_info(ctx: WebContext, user_id: int) -> dict[str, Any]:
    return users.get_user_info(ctx.engine, user_id, now=ctx.clock.now()).to_dict()


def _user_email(ctx: WebContext, call: Call) -> tuple[int, str]:
    """The id in the path and its account's email (404 if there is none)."""
    user_id = parse_id(call.path("id"), "account")
    info = users.get_user_info(ctx.engine, user_id, now=ctx.clock.now())
    return user_id, info.email


def list_users_(ctx: WebContext, call: Call) -> Response:
    found = users.list_users(ctx.engine, now=ctx.clock.now())
    return _json({"users": [u.to_dict() for u in found]})


def create_user_(ctx: WebContext, call: Call) -> Response:
    body = Body(call.body, {"email", "role", "password"})
    email = body.required_string("email", max_length=users.MAX_EMAIL_LENGTH)
    role = body.string("role", max_length=16, required=False) or "admin"
    password = body.required_string("password", max_length=users.MAX_PASSWORD_LENGTH)
    try:
        address = users.normalize_email(email)
        users.check_role(role)
        users.check_password(password)
    except ConfigError as exc:
        raise invalid(str(exc)) from None
    account = users.create_user(
        ctx.engine, address, password, role, now=ctx.clock.now(), actor=call.actor, ip=call.ip
    )
    return _json(_user_info(ctx, account.id), 201)


def get_user_(ctx: WebContext, call: Call) -> Response:
    return _json(_user_info(ctx, parse_id(call.path("id"), "account")))


def update_user_(ctx: WebContext, call: Call) -> Response:
    body = Body(call.body, {"role", "disabled"})
    role = body.string("role", max_length=16, required=False)
    disabled = body.boolean("disabled") if body.data.get("disabled") is not None else None
    if role is None and disabled is None:
        raise invalid("send 'role' (admin or viewer) and/or 'disabled' (true or false)")
    if role is not None:
        try:
            users.check_role(role)
        except ConfigError as exc:
            raise invalid(str(exc)) from None
    user_id, email = _user_email(ctx, call)
    users.update_account(
        ctx.engine,
        email,
        role=role,
        disabled=disabled,
        now=ctx.clock.now(),
        actor=call.actor,
        ip=call.ip,
    )  # LastAdmin (a Conflict) -> 409
    return _json(_user_info(ctx, user_id))


def set_user_password(ctx: WebContext, call: Call) -> Response:
    body = Body(call.body, {"password"})
    password = body.required_string("password", max_length=users.MAX_PASSWORD_LENGTH)
    try:
        users.check_password(password)
    except ConfigError as exc:
        raise invalid(str(exc)) from None
    user_id, email = _user_email(ctx, call)
    users.set_password(
        ctx.engine, email, password, now=ctx.clock.now(), actor=call.actor, ip=call.ip
    )
    return _json(_user_info(ctx, user_id))


def revoke_user(ctx: WebContext, call: Call) -> Response:
    Body(call.body, ())
    _, email = _user_email(ctx, call)
    revoked = users.revoke_access(
        ctx.engine, email, now=ctx.clock.now(), actor=call.actor, ip=call.ip
    )
    return _json({"sessions_revoked": revoked.sessions, "tokens_revoked": revoked.tokens})


def revoke_user_token(ctx: WebContext, call: Call) -> Response:
    Body(call.body, ())
    token_id = parse_id(call.path("token_id"), "API token")
    _, email = _user_email(ctx, call)
    users.revoke_token(
        ctx.engine, email, token_id, now=ctx.clock.now(), actor=call.actor, ip=call.ip
    )
    return Response(status_code=204)


# -- the route list -------------------------------------------------------------------
_PAGING = (
    Param("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "page size"),
    Param("cursor", {"type": "integer", "minimum": 1}, "`next_cursor` of the previous page"),
)
_RUN_FILTERS = (
    Param("job", {"type": "string"}, "job name"),
    Param(
        "status",
        {"type": "string"},
        "one or more of QUEUED, RUNNING, SUCCESS, FAILED, CANCELLED, SKIPPED (comma-separated)",
    ),
    Param(
        "trigger",
        {"type": "string"},
        "one or more of CRON, MANUAL, EVENT, BACKFILL (comma-separated)",
    ),
    Param("schedule_id", {"type": "string"}),
    Param("batch_id", {"type": "integer", "minimum": 1}),
    Param(
        "from",
        {"type": "string", "format": "date-time"},
        "queued at or after (ISO-8601); with from or to, runs come newest queued first",
    ),
    Param("to", {"type": "string", "format": "date-time"}, "queued before (ISO-8601)"),
    Param(
        "error",
        {"type": "string", "maxLength": MAX_ERROR_SEARCH},
        "text the run's error contains (case-insensitive); one page searches at most "
        f"{ERROR_SEARCH_RUNS:,} runs (see `searched` in the answer)",
    ),
    *_PAGING,
)
_SLOTS_QUERY = (
    Param(
        "count",
        {"type": "integer", "minimum": 1, "maximum": MAX_PREVIEW, "default": 10},
        "how many slots",
    ),
    Param("after", {"type": "string", "format": "date-time"}, "default now"),
)
_LEDGER_QUERY = (
    Param("from", {"type": "string", "format": "date-time"}, "included; default 24 h ago"),
    Param(
        "to",
        {"type": "string", "format": "date-time"},
        f"excluded; default an hour after now; at most {ledger.MAX_WINDOW.days} days after "
        f"`from` and {ledger.MAX_SLOTS} slots",
    ),
)
_LOG_PAGING = (
    Param(
        "logs_after",
        {"type": "integer", "minimum": 1},
        "the first lines with a larger id (to tail a running job)",
    ),
    Param(
        "logs_before",
        {"type": "integer", "minimum": 1},
        "the last lines with a smaller id (to page back); not with `logs_after`",
    ),
    Param(
        "logs_limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LOG_LINES, "default": LOG_TAIL_LINES},
        "most log lines returned",
    ),
)
_AUDIT_FILTERS = (
    Param("actor", {"type": "string"}, "email (or `cli`)"),
    Param("action", {"type": "string"}, "e.g. schedule.enable; `schedule.` matches a prefix"),
    Param("target", {"type": "string"}, "schedule id, run id, job or group name"),
    *_PAGING,
)

R, A = Access.READ, Access.ACT
P = PREFIX


def api_routes() -> list[ApiRoute]:
    """Every JSON route (the events stream is added by ``jobsys.web.app``)."""
    # fmt: off
    return [
        ApiRoute("POST", f"{P}/login", login, Access.PUBLIC, "Log in (sets the session cookie)",
                 "session", request_schema="Login", response_schema="Me", errors=(401, 422, 429)),
        ApiRoute("POST", f"{P}/logout", logout, R,
                 "Log out (ends this session on the server, clears the cookie)", "session",
                 status=204),
        ApiRoute("POST", f"{P}/logout-all", logout_all, R,
                 "Log out everywhere: end every browser session of the account (API tokens "
                 "stay; `jobsys admin revoke` ends both)", "session",
                 response_schema="SessionsRevoked"),
        ApiRoute("GET", f"{P}/me", me, R, "The caller, its role and the CSRF token", "session",
                 response_schema="Me"),
        ApiRoute("GET", f"{P}/schedules", list_schedules, R,
                 "Schedules from code merged with their database state", "schedules",
                 response_schema="ScheduleList"),
        ApiRoute("POST", f"{P}/schedules/validate-cron", validate_cron, R,
                 "Check a cron expression and time zone (200 even when invalid)", "schedules",
                 request_schema="CronCheck", response_schema="CronValidation"),
        ApiRoute("POST", f"{P}/schedules/preview-runs", preview_runs, R,
                 "The next slots of a cron expression, as UTC instants", "schedules",
                 request_schema="CronPreviewRequest", response_schema="CronPreview",
                 errors=(422,)),
        ApiRoute("GET", f"{P}/schedules/{{id}}", get_schedule, R, "One schedule", "schedules",
                 response_schema="Schedule", errors=(404,)),
        ApiRoute("PUT", f"{P}/schedules/{{id}}", put_schedule, A, "Enable or disable a schedule",
                 "schedules", request_schema="ScheduleToggle", response_schema="Schedule",
                 errors=(404, 409, 422)),
        ApiRoute("POST", f"{P}/schedules/{{id}}/enable", enable_schedule, A,
                 "Enable a schedule (next run computed from now)", "schedules",
                 response_schema="Schedule", errors=(404, 409)),
        ApiRoute("POST", f"{P}/schedules/{{id}}/disable", disable_schedule, A,
                 "Disable a schedule, with an optional note saying why (a running batch "
                 "goes on)", "schedules", request_schema="ScheduleDisable",
                 response_schema="Schedule", errors=(404, 422)),
        ApiRoute("POST", f"{P}/schedules/{{id}}/trigger", trigger_schedule, A,
                 "Run Now: queue the schedule's jobs (next_run_at does not move)", "schedules",
                 status=202, response_schema="BatchCreated", errors=(404, 409)),
        ApiRoute("POST", f"{P}/schedules/{{id}}/backfill", backfill_schedule, A,
                 "Backfill: one BACKFILL batch per past slot in [from, to) that has none, "
                 "run in slot order (dry_run lists the slots and creates nothing)", "schedules",
                 request_schema="BackfillRequest", response_schema="Backfill",
                 errors=(404, 409, 422)),
        ApiRoute("GET", f"{P}/schedules/{{id}}/history", schedule_history_, R,
                 "The schedule's batches, newest first, with run counts per status",
                 "schedules", response_schema="History", query=_PAGING, errors=(404,)),
        ApiRoute("GET", f"{P}/schedules/{{id}}/slots", schedule_slots, R,
                 "The next slots in the schedule's zone, with daylight-saving changes "
                 "marked", "schedules", response_schema="UpcomingSlots", query=_SLOTS_QUERY,
                 errors=(404, 409)),
        ApiRoute("GET", f"{P}/schedules/{{id}}/ledger", schedule_ledger, R,
                 "The slot ledger: every slot the cron expected in [from, to) and its fate "
                 "(fired on time or late, succeeded, failed, skipped and why, not yet due)",
                 "schedules", response_schema="SlotLedger", query=_LEDGER_QUERY,
                 errors=(404, 409)),
        ApiRoute("GET", f"{P}/jobs", list_jobs, R,
                 "The job registry in dependency order, with each job's last run", "jobs",
                 response_schema="JobList"),
        ApiRoute("POST", f"{P}/jobs/run-all", run_all, A, "Queue every job in dependency order",
                 "jobs", status=202, request_schema="BulkRun", response_schema="BatchCreated"),
        ApiRoute("POST", f"{P}/jobs/run-group/{{group}}", run_group, A,
                 "Queue one group's jobs in dependency order", "jobs", status=202,
                 request_schema="BulkRun", response_schema="BatchCreated", errors=(404,)),
        ApiRoute("GET", f"{P}/jobs/{{name}}", get_job, R,
                 "One job: its neighbours, its last 50 runs, the durations of its finished "
                 "runs with p50/p95, and its success rate over 24 hours and 7 days", "jobs",
                 response_schema="JobPage", errors=(404,)),
        ApiRoute("POST", f"{P}/jobs/{{name}}/run", run_job, A,
                 "Queue one run of a job with parameters", "jobs", status=202,
                 request_schema="JobRunRequest", response_schema="BatchCreated",
                 errors=(404, 422)),
        ApiRoute("GET", f"{P}/job-runs", list_job_runs, R, "Job runs, newest first, filtered",
                 "runs", response_schema="RunList", query=_RUN_FILTERS, errors=(400,)),
        ApiRoute("GET", f"{P}/job-runs/{{id}}", get_job_run, R,
                 "One run with its progress and a page of its logs (by default the last "
                 f"{LOG_TAIL_LINES} lines)", "runs", response_schema="RunDetail",
                 query=_LOG_PAGING, errors=(400, 404)),
        ApiRoute("POST", f"{P}/job-runs/{{id}}/cancel", cancel_job_run, A,
                 "Cancel a queued or running run", "runs", response_schema="Run",
                 errors=(404, 409)),
        ApiRoute("POST", f"{P}/job-runs/{{id}}/retry", retry_job_run, A,
                 "Retry a failed or cancelled run: its next attempt, as a new batch", "runs",
                 status=202, response_schema="BatchCreated", errors=(404, 409)),
        ApiRoute("POST", f"{P}/batches/{{id}}/rerun", rerun_batch, A,
                 "Re-run failed: the batch's failed, cancelled and skipped runs as a new "
                 "batch linked to it", "runs", status=202, response_schema="BatchCreated",
                 errors=(404, 409)),
        ApiRoute("GET", f"{P}/batches/{{id}}", get_batch_, R,
                 "One batch with its runs in dependency order and a timeline", "runs",
                 response_schema="Batch", errors=(404,)),
        ApiRoute("POST", f"{P}/batches/{{id}}/cancel", cancel_batch, A,
                 "Cancel every queued and running run of a batch (one audit row)", "runs",
                 response_schema="Batch", errors=(404, 409)),
        ApiRoute("GET", f"{P}/overview", overview_, R,
                 "The overview page in one answer: runs queued and running now, finished "
                 "runs per hour over 7 days with success rates, the latest failures, "
                 "overdue schedules and the daemon status", "overview",
                 response_schema="Overview"),
        ApiRoute("GET", f"{P}/daemon/status", daemon_status, R,
                 "Daemon heartbeats and health (same verdict as `jobsys health`)", "daemon",
                 response_schema="DaemonStatus"),
        ApiRoute("GET", f"{P}/audit", list_audit_, R, "The audit log, newest first", "audit",
                 response_schema="AuditList", query=_AUDIT_FILTERS, errors=(400,)),
        ApiRoute("GET", f"{P}/users", list_users_, A,
                 "Every account with its role, state, last login, live sessions and API "
                 "tokens (admins only)", "users", response_schema="UserList"),
        ApiRoute("POST", f"{P}/users", create_user_, A,
                 "Create an account (password: at least 8 characters)", "users", status=201,
                 request_schema="UserCreate", response_schema="User", errors=(409, 422)),
        ApiRoute("GET", f"{P}/users/{{id}}", get_user_, A, "One account", "users",
                 response_schema="User", errors=(404,)),
        ApiRoute("PATCH", f"{P}/users/{{id}}", update_user_, A,
                 "Change an account's role and/or disable or enable it (disabling ends its "
                 "sessions; its tokens get 401 at once). 409 for the last active admin",
                 "users", request_schema="UserUpdate", response_schema="User",
                 errors=(404, 409, 422)),
        ApiRoute("POST", f"{P}/users/{{id}}/password", set_user_password, A,
                 "Set an account's password (its browser sessions end; API tokens stay)",
                 "users", request_schema="PasswordReset", response_schema="User",
                 errors=(404, 422)),
        ApiRoute("POST", f"{P}/users/{{id}}/revoke", revoke_user, A,
                 "End every browser session and revoke every API token of an account",
                 "users", response_schema="AccessRevoked", errors=(404, 422)),
        ApiRoute("DELETE", f"{P}/users/{{id}}/tokens/{{token_id}}", revoke_user_token, A,
                 "Revoke one API token of an account", "users", status=204,
                 errors=(404, 422)),
    ]
    # fmt: on
