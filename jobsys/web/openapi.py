"""``GET /api/admin/openapi.json``: an OpenAPI 3.1 description of the HTTP API.

Paths come from the same ``ApiRoute`` list the app serves (so every route is described);
the schemas below are written by hand.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from jobsys import __version__
from jobsys.ledger import Cause, Fate
from jobsys.vocabulary import BatchMode, MissedPolicy, OverlapPolicy
from jobsys.web.routing import Access, ApiRoute

_STR: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer"}
_BOOL: dict[str, Any] = {"type": "boolean"}
_TIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
_OPT_STR: dict[str, Any] = {"type": ["string", "null"]}
_OPT_INT: dict[str, Any] = {"type": ["integer", "null"]}
_ROLE: dict[str, Any] = {"type": "string", "enum": ["admin", "viewer"]}
_STATUS: dict[str, Any] = {
    "type": "string",
    "enum": ["QUEUED", "RUNNING", "SUCCESS", "FAILED", "CANCELLED", "SKIPPED"],
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: Sequence[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(props if required is None else required),
    }


def _list_of(key: str, item: str, paged: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {key: {"type": "array", "items": _ref(item)}}
    if paged:
        props["next_cursor"] = _OPT_INT
    return _obj(props)


_RUN = {
    "id": _INT,
    "job_name": _STR,
    "status": _STATUS,
    "trigger": {"type": "string", "enum": ["CRON", "MANUAL", "EVENT", "BACKFILL"]},
    "schedule_id": _OPT_STR,
    "batch_id": _INT,
    "scheduled_for": _TIME,
    "params": {"type": ["object", "null"]},
    "triggered_by": _OPT_STR,
    "depends_on": {"type": "array", "items": _STR},
    "position": _INT,
    "queued_at": _TIME,
    "started_at": _TIME,
    "finished_at": _TIME,
    "duration_ms": _OPT_INT,
    "error": _OPT_STR,
    "timeout_s": _OPT_INT,
    "worker_id": _OPT_STR,
    "exit_code": _OPT_INT,
    "cancel_requested": _BOOL,
    "progress_done": _OPT_INT,
    "progress_total": _OPT_INT,
    "attempt": {**_INT, "description": "1 for the first attempt, 2 for its first retry, ..."},
    "retry_of": {**_OPT_INT, "description": "the id of the chain's first attempt"},
    "not_before": {**_TIME, "description": "a retry is not started before this instant"},
    "next_attempt_id": {**_OPT_INT, "description": "the retry that superseded this attempt"},
}
_BATCH = {
    "id": _INT,
    "schedule_id": _OPT_STR,
    "trigger": _STR,
    "scheduled_for": _TIME,
    "status": _STATUS,
    "reason": _OPT_STR,
    "mode": {"type": "string", "enum": [m.value for m in BatchMode]},
    "job_group": _OPT_STR,
    "skip_dependencies": _BOOL,
    "triggered_by": _OPT_STR,
    "fired_by": _OPT_STR,
    "lateness_ms": _OPT_INT,
    "jitter_ms": {**_OPT_INT, "description": "the delay jitter gave this slot"},
    "total_runs": _INT,
    "created_at": _TIME,
    "started_at": _TIME,
    "finished_at": _TIME,
    "duration_ms": _OPT_INT,
    "rerun_of": {**_OPT_INT, "description": "the batch this one re-runs (Re-run failed, Retry)"},
}
_COUNTS = {"type": "object", "additionalProperties": _INT, "description": "runs per status"}
_SCHEDULE = {
    "id": _STR,
    "name": _STR,
    "description": _STR,
    "cron": _STR,
    "cron_description": _STR,
    "timezone": _STR,
    "execution_mode": {"type": "string", "enum": [m.value for m in BatchMode if m.schedulable]},
    "job_group": _OPT_STR,
    "environments": {"type": ["array", "null"], "items": _STR},
    "missed_policy": {"type": "string", "enum": [m.value for m in MissedPolicy]},
    "missed_policy_description": _STR,
    "max_catch_up_s": _OPT_INT,
    "overlap_policy": {"type": "string", "enum": [m.value for m in OverlapPolicy]},
    "grace_s": _INT,
    "enabled": _BOOL,
    "in_code": _BOOL,
    "env_active": _BOOL,
    "runnable": _BOOL,
    "note": {"type": "string", "description": "why it cannot run, or empty"},
    "last_run_at": _TIME,
    "last_run_status": _OPT_STR,
    "last_batch_id": _OPT_INT,
    "next_run_at": _TIME,
    "run_count": _INT,
    "failure_count": _INT,
    "consecutive_failures": _INT,
    "locked_by": _OPT_STR,
    "job_name": {**_OPT_STR, "description": "the job of a mode JOB schedule"},
    "job_params": {"type": ["object", "null"], "description": "its params"},
    "pause_on_failure": _OPT_INT,
    "jitter_s": _INT,
    "paused_note": {**_OPT_STR, "description": "why it was disabled (null while enabled)"},
    "paused_by": {**_OPT_STR, "description": "who disabled it"},
    "paused_at": _TIME,
}
_WORKER = {
    "id": _STR,
    "hostname": _STR,
    "pid": _INT,
    "status": _STR,
    "started_at": _TIME,
    "last_heartbeat_at": _TIME,
    "heartbeat_age_s": {"type": "number"},
    "alive": _BOOL,
    "health": {
        "type": "string",
        "enum": ["healthy", "warning", "critical"],
        "description": "its heartbeat's age by the thresholds of `jobsys health`",
    },
}
_LOG = {"id": _INT, "ts": _TIME, "level": _STR, "message": _STR}

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({"code": _STR, "message": _STR})}),
    "Login": _obj({"email": _STR, "password": _STR}),
    "Me": _obj(
        {
            "email": _STR,
            "role": _ROLE,
            "auth": {"type": "string", "enum": ["session", "token"]},
            "csrf_token": {**_OPT_STR, "description": "send as X-CSRF-Token (sessions only)"},
            "expires_at": _TIME,
        }
    ),
    "SessionsRevoked": _obj({"sessions_revoked": _INT}),
    "Schedule": _obj(_SCHEDULE),
    "ScheduleList": _list_of("schedules", "Schedule"),
    "ScheduleToggle": _obj(
        {"enabled": _BOOL, "note": {**_STR, "maxLength": 1000, "description": "with false"}},
        ["enabled"],
    ),
    "ScheduleDisable": _obj({"note": {**_STR, "maxLength": 1000, "description": "why"}}, []),
    "CronCheck": _obj({"cron": _STR, "timezone": {**_STR, "default": "UTC"}}, ["cron"]),
    "CronValidation": _obj(
        {"valid": _BOOL, "error": _STR, "description": _STR, "timezone": _STR}, ["valid"]
    ),
    "CronPreviewRequest": _obj(
        {
            "cron": _STR,
            "timezone": {**_STR, "default": "UTC"},
            "after": {"type": "string", "format": "date-time", "description": "default now"},
            "count": {"type": "integer", "minimum": 1, "maximum": 50, "default": 5},
        },
        ["cron"],
    ),
    "CronPreview": _obj(
        {
            "cron": _STR,
            "timezone": _STR,
            "description": _STR,
            "runs": {"type": "array", "items": {"type": "string", "format": "date-time"}},
        }
    ),
    "BackfillRequest": _obj(
        {
            "from": {"type": "string", "format": "date-time", "description": "included"},
            "to": {
                "type": "string",
                "format": "date-time",
                "description": "excluded, not after now",
            },
            "dry_run": {"type": "boolean", "default": False},
            "concurrency": {
                "type": "integer",
                "minimum": 1,
                "maximum": 100,
                "default": 1,
                "description": "backfill batches of the schedule running at once",
            },
        },
        ["from", "to"],
    ),
    "Backfill": _obj(
        {
            "schedule_id": _STR,
            "dry_run": _BOOL,
            "created": _INT,
            "existing": _INT,
            "slots": {
                "type": "array",
                "items": _obj(
                    {
                        "slot": {"type": "string", "format": "date-time"},
                        "existing": _BOOL,
                        "batch_id": _OPT_INT,
                        "status": _OPT_STR,
                        "trigger": _OPT_STR,
                    }
                ),
            },
        }
    ),
    "UpcomingSlots": _obj(
        {
            "schedule_id": _STR,
            "cron": _STR,
            "timezone": _STR,
            "slots": {
                "type": "array",
                "items": _obj(
                    {
                        "at": {"type": "string", "format": "date-time"},
                        "local": {**_STR, "description": "wall time in the schedule's zone"},
                        "utc_offset": {**_STR, "description": "e.g. +02:00"},
                        "dst_change": {
                            "oneOf": [_obj({"from": _STR, "to": _STR}), {"type": "null"}],
                            "description": "the zone's offset changed since the slot before",
                        },
                        "note": _STR,
                    }
                ),
            },
        }
    ),
    "SlotLedger": _obj(
        {
            "schedule_id": _STR,
            "cron": _STR,
            "timezone": _STR,
            "grace_s": _INT,
            "from": _TIME,
            "to": _TIME,
            "now": _TIME,
            "expected": {**_INT, "description": "slots the cron expected in the window"},
            "counts": {**_COUNTS, "description": "slots per fate"},
            "causes": {**_COUNTS, "description": "skipped slots per cause"},
            "slots": {
                "type": "array",
                "description": "one entry per expected slot, oldest first",
                "items": _obj(
                    {
                        "slot": {"type": "string", "format": "date-time"},
                        "local": _STR,
                        "fate": {"type": "string", "enum": [f.value for f in Fate]},
                        "cause": {
                            "type": ["string", "null"],
                            "enum": [*(c.value for c in Cause), None],
                        },
                        "reason": _STR,
                        "batch_id": _OPT_INT,
                        "status": _OPT_STR,
                        "trigger": _OPT_STR,
                        "fired_at": _TIME,
                        "late_ms": _OPT_INT,
                        "on_time": {"type": ["boolean", "null"]},
                    }
                ),
            },
            "unmatched": {
                "type": "array",
                "description": "batches in the window for instants the cron does not have",
                "items": _obj(
                    {
                        "slot": _TIME,
                        "batch_id": _INT,
                        "status": _STR,
                        "trigger": _STR,
                        "reason": _OPT_STR,
                    }
                ),
            },
        }
    ),
    "BatchCreated": _obj({"batch_id": _INT, "job_run_ids": {"type": "array", "items": _INT}}),
    "HistoryEntry": _obj({**_BATCH, "counts": _COUNTS}),
    "History": _obj(
        {
            "schedule_id": _STR,
            "batches": {"type": "array", "items": _ref("HistoryEntry")},
            "next_cursor": _OPT_INT,
        }
    ),
    "RunSummary": _obj(
        {
            k: _RUN[k]
            for k in (
                "id",
                "batch_id",
                "status",
                "trigger",
                "triggered_by",
                "queued_at",
                "started_at",
                "finished_at",
                "duration_ms",
                "error",
            )
        }
    ),
    "Job": _obj(
        {
            "name": _STR,
            "group": _STR,
            "description": _STR,
            "depends_on": {"type": "array", "items": _STR},
            "timeout_s": {"type": ["number", "null"]},
            "params": {
                "type": ["object", "null"],
                "description": "declared parameters: name -> {type, default?, required?, ...}",
            },
            "isolation": {
                "type": "string",
                "enum": ["pool", "process"],
                "description": "pool: a warm worker process; process: a fresh process per run",
            },
            "last_run": {"oneOf": [_ref("RunSummary"), {"type": "null"}]},
            "running_run_id": _OPT_INT,
            "active": {**_COUNTS, "description": "queued and running runs"},
        }
    ),
    "JobList": _obj({"jobs": {"type": "array", "items": _ref("Job")}, "groups": {"type": "array"}}),
    "SuccessRate": _obj(
        {
            "since": _TIME,
            "counts": {**_COUNTS, "description": "runs finished since, per status"},
            "finished": _INT,
            "succeeded": _INT,
            "failed": _INT,
            "rate": {
                "type": ["number", "null"],
                "description": "SUCCESS / (SUCCESS + FAILED); null when none finished",
            },
        }
    ),
    "JobPage": {
        "type": "object",
        "properties": {
            "upstream": {"type": "array", "items": _STR, "description": "jobs it depends on"},
            "downstream": {"type": "array", "items": _STR, "description": "jobs that depend on it"},
            "recent_runs": {
                "type": "array",
                "items": _ref("RunSummary"),
                "description": "its last 50 runs, newest first",
            },
            "durations": {
                "type": "array",
                "description": "its last 200 finished runs (SUCCESS or FAILED), oldest first",
                "items": _obj(
                    {"run_id": _INT, "finished_at": _TIME, "duration_ms": _INT, "status": _STATUS}
                ),
            },
            "duration_p50_ms": _OPT_INT,
            "duration_p95_ms": _OPT_INT,
            "success": _obj({"24h": _ref("SuccessRate"), "7d": _ref("SuccessRate")}),
        },
        "required": [
            "upstream",
            "downstream",
            "recent_runs",
            "durations",
            "duration_p50_ms",
            "duration_p95_ms",
            "success",
        ],
        "allOf": [_ref("Job")],
    },
    "JobRunRequest": _obj({"params": {"type": "object"}}, []),
    "BulkRun": _obj({"skip_dependencies": {**_BOOL, "default": False}}, []),
    "Run": _obj(_RUN),
    "RunList": _obj(
        {
            "runs": {"type": "array", "items": _ref("Run")},
            "next_cursor": _OPT_INT,
            "searched": {
                "oneOf": [
                    _obj({"runs": _INT, "last_id": _INT, "last_queued_at": _TIME}),
                    {"type": "null"},
                ],
                "description": "set when an error search read its limit of runs before the "
                "page was full: it searched `runs` runs back to run `last_id`; `next_cursor` "
                "goes on from there",
            },
        }
    ),
    "RunDetail": _obj(
        {
            **_RUN,
            "progress_percent": {"type": ["number", "null"]},
            "logs": {
                "type": "array",
                "items": _obj(_LOG),
                "description": "a page of the log, oldest first (by default its end)",
            },
            "log_count": {**_INT, "description": "log lines stored for the run"},
            "waiting_reason": {
                **_OPT_STR,
                "description": "why a QUEUED run has not started (null unless queued)",
            },
            "logs_earlier": {**_INT, "description": "lines before the page (`logs_before`)"},
            "logs_later": {**_INT, "description": "lines after the page (`logs_after`)"},
            "attempts": {
                "type": "array",
                "description": "every attempt of the run's chain, oldest first",
                "items": _obj(
                    {
                        "id": _INT,
                        "batch_id": _INT,
                        "attempt": _INT,
                        "status": _STATUS,
                        "not_before": _TIME,
                        "started_at": _TIME,
                        "finished_at": _TIME,
                        "error": _OPT_STR,
                    }
                ),
            },
        }
    ),
    "Batch": _obj(
        {
            **_BATCH,
            "runs": {"type": "array", "items": _ref("Run")},
            "counts": _COUNTS,
            "timeline": {
                "type": "array",
                "items": _obj(
                    {
                        "run_id": _INT,
                        "job_name": _STR,
                        "status": _STATUS,
                        "attempt": _INT,
                        "depends_on": {"type": "array", "items": _STR},
                        "start_ms": _OPT_INT,
                        "end_ms": _OPT_INT,
                        "wait_ms": _OPT_INT,
                        "duration_ms": _OPT_INT,
                    }
                ),
            },
        }
    ),
    "DaemonStatus": _obj(
        {
            "daemon_running": _BOOL,
            "health": {"type": "string", "enum": ["healthy", "warning", "critical", "unknown"]},
            "health_message": _STR,
            "status": {"type": "string", "enum": ["OK", "WARNING", "CRITICAL", "UNKNOWN"]},
            "problems": {"type": "array", "items": _STR},
            "newest_heartbeat_at": _TIME,
            "overdue_schedules": {"type": "array", "items": _STR},
            "failing_schedules": {"type": "array", "items": _STR},
            "lost_next_run_schedules": {
                "type": "array",
                "items": _STR,
                "description": "enabled schedules whose next run is lost (a daemon repairs it)",
            },
            "workers": {"type": "array", "items": _obj(_WORKER)},
        }
    ),
    "Overview": _obj(
        {
            "generated_at": _TIME,
            "runs_now": _obj({"queued": _INT, "running": _INT}),
            "windows": _obj(
                {"24h": _ref("OutcomeWindow"), "7d": _ref("OutcomeWindow")},
            ),
            "hourly": {
                "type": "array",
                "description": "finished runs per hour (UTC), the last 7 days, oldest first",
                "items": _obj(
                    {
                        "hour": _TIME,
                        "success": _INT,
                        "failed": _INT,
                        "cancelled": _INT,
                        "skipped": _INT,
                    }
                ),
            },
            "failures": {
                "type": "array",
                "description": "the latest failed runs, newest first",
                "items": _obj(
                    {
                        "id": _INT,
                        "job_name": _STR,
                        "batch_id": _INT,
                        "schedule_id": _OPT_STR,
                        "trigger": _STR,
                        "finished_at": _TIME,
                        "error": _OPT_STR,
                        "attempt": _INT,
                        "retried_as": {**_OPT_INT, "description": "its newest later attempt"},
                    }
                ),
            },
            "overdue": {
                "type": "array",
                "description": "enabled schedules not fired within their grace",
                "items": _obj(
                    {
                        "id": _STR,
                        "name": _STR,
                        "next_run_at": _TIME,
                        "overdue_s": _INT,
                        "grace_s": _INT,
                        "reason": _STR,
                    }
                ),
            },
            "daemon": _ref("DaemonStatus"),
        }
    ),
    "OutcomeWindow": _obj(
        {
            "total": _INT,
            "success": _INT,
            "failed": _INT,
            "cancelled": _INT,
            "skipped": _INT,
            "success_rate": {
                "type": ["number", "null"],
                "description": "successes among successes and failures (null: none)",
            },
        }
    ),
    "AuditEntry": _obj(
        {
            "id": _INT,
            "at": _TIME,
            "actor": _OPT_STR,
            "action": _STR,
            "target_type": _OPT_STR,
            "target_id": _OPT_STR,
            "before": {"type": ["object", "null"]},
            "after": {"type": ["object", "null"]},
            "ip": _OPT_STR,
            "detail": _OPT_STR,
        }
    ),
    "AuditList": _list_of("entries", "AuditEntry", paged=True),
    "ApiTokenInfo": _obj(
        {
            "id": _INT,
            "name": _OPT_STR,
            "created_at": _TIME,
            "last_used_at": _TIME,
            "expires_at": {**_TIME, "description": "null: never expires"},
            "expired": _BOOL,
        }
    ),
    "User": _obj(
        {
            "id": _INT,
            "email": _STR,
            "role": _ROLE,
            "disabled": _BOOL,
            "created_at": _TIME,
            "last_login_at": _TIME,
            "active_sessions": {**_INT, "description": "browser sessions not ended"},
            "tokens": {
                "type": "array",
                "items": _ref("ApiTokenInfo"),
                "description": "API tokens not revoked (expired ones marked)",
            },
        }
    ),
    "UserList": _list_of("users", "User"),
    "UserCreate": _obj(
        {
            "email": {**_STR, "maxLength": 255},
            "role": {**_ROLE, "default": "admin"},
            "password": {**_STR, "minLength": 8, "maxLength": 1024},
        },
        ["email", "password"],
    ),
    "UserUpdate": {
        **_obj({"role": _ROLE, "disabled": _BOOL}, []),
        "minProperties": 1,
        "additionalProperties": False,
    },
    "PasswordReset": _obj({"password": {**_STR, "minLength": 8, "maxLength": 1024}}),
    "AccessRevoked": _obj({"sessions_revoked": _INT, "tokens_revoked": _INT}),
}

_ERROR_TEXT = {
    400: "Malformed JSON body or bad query parameter",
    401: "Not authenticated",
    403: "Not allowed (viewer role, or missing X-CSRF-Token with a session cookie)",
    404: "Unknown id or name",
    409: "Conflicts with the current state (e.g. the email is taken, or the change would "
    "leave no active admin)",
    413: "Body too large",
    415: "The body is not sent as application/json",
    422: "Invalid field values (unknown, missing, null or of the wrong type or range)",
    429: "Too many failed logins (see Retry-After)",
    503: "Database unavailable",
}

_EVENTS_DOC = (
    "Server-Sent Events. Event types: `run` (a job run, without logs), `batch` (a batch, "
    "without runs), `schedule` (as GET /schedules/{id}), `logs` (`{run_id, last_log_id}`: "
    "new log lines), `daemon` (as GET /daemon/status; sent at connect and on change). "
    "Comments (`: heartbeat`) keep the connection open."
)


#: Request bodies that must be sent (the others may be left out: every field optional).
_BODY_REQUIRED = frozenset({"Login", "ScheduleToggle", "UserCreate", "UserUpdate", "PasswordReset"})


def _operation(route: ApiRoute) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.handler.__name__.strip("_"),
        "summary": route.summary,
        "tags": [route.tag],
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": _STR}
        for name in re.findall(r"{(\w+)}", route.path)
    ]
    params += [
        {"name": p.name, "in": "query", "required": False, "schema": p.schema}
        | ({"description": p.description} if p.description else {})
        for p in route.query
    ]
    if params:
        op["parameters"] = params
    if route.request_schema:
        op["requestBody"] = {
            "required": route.request_schema in _BODY_REQUIRED,
            "content": {"application/json": {"schema": _ref(route.request_schema)}},
        }
    ok: dict[str, Any] = {"description": "OK" if route.status < 300 else "Accepted"}
    if route.status == 204:
        ok = {"description": "No content"}
    elif route.response_schema:
        ok["content"] = {"application/json": {"schema": _ref(route.response_schema)}}
    responses: dict[str, Any] = {str(route.status): ok}
    # Answers every route of a kind can give, whatever its own errors: so that the
    # document never misses a status the code returns (checked by schemathesis).
    codes = set(route.errors) | {503}
    if route.access is not Access.PUBLIC:
        codes.add(401)
    if route.access is Access.ACT or (route.access is Access.READ and route.reads_body):
        codes.add(403)
    if route.query:
        codes.add(400)  # a bad query parameter
    if route.reads_body:
        codes |= {400, 413, 415, 422}  # bad JSON, too large, not JSON, bad fields
    for code in sorted(codes):
        responses[str(code)] = {
            "description": _ERROR_TEXT.get(code, "Error"),
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    op["responses"] = responses
    if route.access is Access.PUBLIC:
        op["security"] = []
    elif route.access is Access.ACT:
        op["description"] = "Needs the admin role."
    return op


def build_openapi(routes: Sequence[ApiRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    paths["/api/admin/events"] = {
        "get": {
            "operationId": "events",
            "summary": "Live updates",
            "description": _EVENTS_DOC,
            "tags": ["events"],
            "responses": {
                "200": {"description": "An event stream", "content": {"text/event-stream": {}}},
                "401": {"description": _ERROR_TEXT[401]},
            },
        }
    }
    paths["/healthz"] = {
        "get": {
            "operationId": "healthz",
            "summary": "Web liveness (no details)",
            "tags": ["health"],
            "security": [],
            "responses": {
                "200": {
                    "description": "The web process is up",
                    "content": {"application/json": {"schema": _obj({"status": {"const": "ok"}})}},
                }
            },
        }
    }
    paths["/api/admin/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "tags": ["meta"],
            "responses": {"200": {"description": "OpenAPI 3.1"}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobsys admin API",
            "version": __version__,
            "description": (
                "Schedules, jobs, runs and audit of jobsys. Authenticate with a session "
                "cookie (POST /api/admin/login; then send X-CSRF-Token on every "
                "POST/PUT/PATCH/DELETE) or with `Authorization: Bearer <token>` "
                "(`jobsys admin token EMAIL`). Request bodies must be sent as "
                "`Content-Type: application/json` (415 otherwise; an empty body may omit it). "
                "`viewer` accounts read, `admin` accounts act. "
                'Times are ISO-8601 UTC. Errors are `{"error": {"code", "message"}}`.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "jobsys_session"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{"session": []}, {"bearer": []}],
    }
