"""Who is calling: browser sessions, API tokens, CSRF, roles, the login rate limit.

Browser sessions (design 8)
    ``POST /api/admin/login`` checks the password and sets the ``jobsys_session`` cookie:
    HttpOnly, SameSite=Lax, Secure when the request came over https, signed with
    ``SECRET_KEY`` (itsdangerous, HMAC-SHA256). It holds the user id, a random CSRF token,
    the issue time and a fingerprint of the password hash (changing the password ends
    every session). Sessions end ``SESSION_MAX_AGE`` after login (absolute, read from the
    injected clock). ``GET /api/admin/me`` returns the CSRF token; every POST/PUT/PATCH/
    DELETE made with the cookie must send it as ``X-CSRF-Token`` (403 ``csrf_failed``).
API tokens
    ``Authorization: Bearer jbs_...`` (``jobsys admin token EMAIL``); no CSRF needed.
Roles
    ``viewer`` reads everything, ``admin`` also acts (403 ``forbidden`` otherwise).
Login rate limit
    At most ``LOGIN_MAX_FAILURES`` failed logins per IP and per email within
    ``LOGIN_WINDOW``; then 429 with ``Retry-After``. Failures are counted from the audit
    log, so the limit holds across web replicas. Every failure is audited.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadData, URLSafeSerializer
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobsys.clock import iso_utc
from jobsys.store import users
from jobsys.store.users import Account
from jobsys.web.context import WebContext
from jobsys.web.errors import (
    SESSION_COOKIE,
    ApiError,
    csrf_failed,
    forbidden,
    unauthenticated,
)
from jobsys.web.inputs import Body

log = logging.getLogger("jobsys.web")

SESSION_MAX_AGE = timedelta(hours=12)
LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW = timedelta(minutes=5)
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SALT = "jobsys.session.v1"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    account: Account
    via: str  # "session" or "token"
    csrf_token: str | None = None
    expires_at: datetime | None = None

    @property
    def email(self) -> str:
        return self.account.email

    @property
    def role(self) -> str:
        return self.account.role

    def to_dict(self) -> dict[str, Any]:
        return {
            "email": self.account.email,
            "role": self.account.role,
            "auth": self.via,
            "csrf_token": self.csrf_token,
            "expires_at": iso_utc(self.expires_at),
        }


# -- session cookie -------------------------------------------------------------------
def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256})


def _password_mark(account: Account) -> str:
    return hashlib.sha256(account.password_hash.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class SessionData:
    user_id: int
    csrf_token: str
    issued_at: datetime
    password_mark: str

    @property
    def expires_at(self) -> datetime:
        return self.issued_at + SESSION_MAX_AGE


def new_session(account: Account, now: datetime) -> SessionData:
    return SessionData(
        user_id=account.id,
        csrf_token=secrets.token_urlsafe(32),
        issued_at=now.replace(microsecond=0),  # the cookie keeps whole seconds
        password_mark=_password_mark(account),
    )


def dump_session(secret: str, data: SessionData) -> str:
    payload = {
        "u": data.user_id,
        "c": data.csrf_token,
        "i": int(data.issued_at.timestamp()),
        "p": data.password_mark,
    }
    value: str = _serializer(secret).dumps(payload)
    return value


def load_session(secret: str, value: str, now: datetime) -> SessionData | None:
    """The session in a cookie value, or None if forged, malformed or expired."""
    if len(value) > 4096:
        return None
    try:
        payload = _serializer(secret).loads(value)
    except (BadData, ValueError, UnicodeError):
        return None
    if not isinstance(payload, dict):
        return None
    uid, csrf, issued, mark = (payload.get(k) for k in ("u", "c", "i", "p"))
    if not (
        isinstance(uid, int)
        and isinstance(csrf, str)
        and isinstance(issued, int)
        and isinstance(mark, str)
    ):
        return None
    try:
        issued_at = datetime.fromtimestamp(issued, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    data = SessionData(uid, csrf, issued_at, mark)
    # A session from the future (clock moved back) is as suspect as an expired one.
    if not issued_at - timedelta(minutes=5) <= now < data.expires_at:
        return None
    return data


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=int(SESSION_MAX_AGE.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


# -- authentication -------------------------------------------------------------------
def client_ip(request: Request) -> str | None:
    """The caller's address (uvicorn's proxy-headers support fills it from the proxy)."""
    return request.client.host[:64] if request.client else None


def authenticate(ctx: WebContext, request: Request) -> Principal:
    """The caller, from a bearer token or the session cookie; 401 otherwise."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthenticated("the Authorization header must be 'Bearer <token>'")
        account = users.user_for_token(ctx.engine, token.strip(), now=ctx.clock.now())
        if account is None:
            raise unauthenticated("invalid or revoked API token")
        return Principal(account, "token")
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise unauthenticated()
    now = ctx.clock.now()
    data = load_session(ctx.secret, cookie, now)
    if data is None:
        raise unauthenticated("the session has expired or is not valid; log in again")
    account = users.get_user(ctx.engine, data.user_id)
    if account is None or not hmac.compare_digest(_password_mark(account), data.password_mark):
        raise unauthenticated("the session is no longer valid; log in again")
    return Principal(account, "session", data.csrf_token, data.expires_at)


def check_csrf(request: Request, principal: Principal) -> None:
    """Cookie-authenticated requests that change state must echo the CSRF token."""
    if request.method in SAFE_METHODS or principal.via != "session":
        return
    sent = request.headers.get(CSRF_HEADER, "")
    expected = principal.csrf_token or ""
    if not expected or not hmac.compare_digest(
        sent.encode("utf-8", "replace"), expected.encode("utf-8")
    ):
        raise csrf_failed()


def require_admin(principal: Principal) -> None:
    if principal.role != "admin":
        raise forbidden(f"{principal.email} has the {principal.role} role; this needs admin")


# -- login and logout -----------------------------------------------------------------
def retry_after(failures: list[datetime], now: datetime) -> int:
    """Seconds until fewer than ``LOGIN_MAX_FAILURES`` failures remain in the window.

    ``failures`` are the newest failures, newest first; the limit lifts when the
    ``LOGIN_MAX_FAILURES``-th newest leaves the window.
    """
    oldest_counted = failures[LOGIN_MAX_FAILURES - 1]
    return max(1, math.ceil((oldest_counted + LOGIN_WINDOW - now).total_seconds()))


def login(ctx: WebContext, request: Request, data: dict[str, Any]) -> Response:
    body = Body(data, {"email", "password"})
    email = body.required_string("email", max_length=users.MAX_EMAIL_LENGTH).strip().lower()
    password = body.required_string("password", max_length=users.MAX_PASSWORD_LENGTH)
    if not email or not password:
        raise ApiError(422, "invalid", "email and password are required")
    ip = client_ip(request)
    now = ctx.clock.now()
    failures = users.recent_failures(
        ctx.engine, email=email, ip=ip, since=now - LOGIN_WINDOW, limit=LOGIN_MAX_FAILURES
    )
    if len(failures) >= LOGIN_MAX_FAILURES:
        wait = retry_after(failures, now)
        log.warning("login refused for %r from %s: too many failures", email, ip)
        raise ApiError(
            429,
            "rate_limited",
            f"too many failed logins; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    account = users.verify_login(ctx.engine, email, password, now=now)
    if account is None:
        users.record_login_failure(
            ctx.engine, email=email, ip=ip, now=now, reason="wrong email or password"
        )
        log.info("failed login for %r from %s", email, ip)
        raise ApiError(401, "invalid_credentials", "wrong email or password")
    session = new_session(account, now)
    principal = Principal(account, "session", session.csrf_token, session.expires_at)
    response = JSONResponse(principal.to_dict())
    set_session_cookie(response, request, dump_session(ctx.secret, session))
    log.info("login: %s from %s", account.email, ip)
    return response


def logout(request: Request) -> Response:
    response = Response(status_code=204)
    clear_session_cookie(response, request)
    return response
