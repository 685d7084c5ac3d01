"""HTTP errors: one JSON shape, ``{"error": {"code", "message"}}``, for every failure.

    ApiError(status, code, message)   raised by handlers and by input checks
    JobsysError subclasses            mapped by ``status_for``: NotFound 404, Conflict 409,
                                      DefinitionError (bad params, bad cron) 422,
                                      DatabaseError 503, anything else 400
    HTTPException (Starlette)         unknown path 404, wrong method 405, ...
    anything else                     500 ``internal_error``, logged (a bug: no input
                                      should get there)

Under ``/api`` every error is JSON; elsewhere (the UI pages) it is plain text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from jobsys.errors import Conflict, DatabaseError, DefinitionError, JobsysError, NotFound
from jobsys.store.db import error_reason

log = logging.getLogger("jobsys.web")

SESSION_COOKIE = "jobsys_session"

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal_error",
    503: "database_unavailable",
}


class ApiError(Exception):
    """An error response: HTTP status, a stable machine code and a human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def invalid(message: str) -> ApiError:
    return ApiError(422, "invalid", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def unauthenticated(message: str = "log in or send an API token") -> ApiError:
    return ApiError(401, "unauthenticated", message)


def forbidden(message: str = "this needs the admin role") -> ApiError:
    return ApiError(403, "forbidden", message)


def csrf_failed() -> ApiError:
    return ApiError(
        403, "csrf_failed", "missing or wrong X-CSRF-Token header (GET /api/admin/me gives it)"
    )


def status_for(exc: JobsysError) -> tuple[int, str]:
    if isinstance(exc, NotFound):
        return 404, "not_found"
    if isinstance(exc, Conflict):
        return 409, "conflict"
    if isinstance(exc, DefinitionError):
        return 422, "invalid"
    if isinstance(exc, DatabaseError):
        return 503, "database_unavailable"
    return 400, "bad_request"


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/api"


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    if _is_api(request):
        response: Response = JSONResponse(error_body(code, message), status, headers=headers)
    else:
        response = PlainTextResponse(message, status, headers=headers)
    if status == 401 and SESSION_COOKIE in request.cookies:
        # The cookie is expired or forged: drop it so the browser stops sending it.
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(request, exc.status, exc.code, exc.message, exc.headers)


async def handle_jobsys_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, JobsysError)
    status, code = status_for(exc)
    if status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
    return error_response(request, status, code, str(exc))


async def handle_database_outage(request: Request, exc: Exception) -> Response:
    # error_reason: the driver's message, without the SQL and its parameters
    reason = error_reason(exc)
    log.warning("%s %s: database unavailable: %s", request.method, request.url.path, reason)
    return error_response(
        request, 503, "database_unavailable", "the database is unavailable; try again"
    )


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code
    if exc.status_code == 404:
        message = f"no such page: {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    return error_response(request, exc.status_code, code, message, exc.headers)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Last resort (a bug): log it and answer a JSON 500 without details."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, "internal_error", "internal error (logged on the server)")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: handle_api_error,
    JobsysError: handle_jobsys_error,
    OperationalError: handle_database_outage,
    InterfaceError: handle_database_outage,
    PoolTimeoutError: handle_database_outage,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
