"""Who is calling: browser sessions, API tokens, CSRF, roles, the login rate limit.

Browser sessions (design 8)
    ``POST /api/admin/login`` checks the password, stores a session (``admin_session``)
    and sets the ``jobsys_session`` cookie: HttpOnly, SameSite=Lax, Secure when the
    request came over https, signed with ``SECRET_KEY`` (itsdangerous, HMAC-SHA256). It
    holds the user id, the session's random id (the table keeps only its SHA-256), a
    random CSRF token and the issue time. Every request checks the session row, so
    logout, a password change, a disabled account and ``POST /api/admin/logout-all``
    end a session at once, copied cookies included. Sessions end ``SESSION_MAX_AGE``
    after login (absolute, read from the injected clock). ``GET /api/admin/me`` returns
    the CSRF token; every POST/PUT/PATCH/DELETE made with the cookie must send it as
    ``X-CSRF-Token`` (403 ``csrf_failed``).
API tokens
    ``Authorization: Bearer jbs_...`` (``jobsys admin token EMAIL [--expires-in 30d]``);
    no CSRF needed. Expired, revoked and disabled accounts' tokens get 401.
Roles
    ``viewer`` reads everything, ``admin`` also acts (403 ``forbidden`` otherwise).
Login rate limit (``jobsys.store.throttle``)
    Attempts are taken from two budgets before the password is checked, atomically, so
    concurrent guesses cannot check more than the limit: ``LOGIN_MAX_FAILURES`` per
    (email, client address) and ``LOGIN_MAX_PER_ADDRESS`` per address, each per
    ``LOGIN_WINDOW``. Past either, 429 with ``Retry-After``; a subject that runs out
    again right after a block waits twice as long each time (up to ``LOGIN_MAX_BLOCK``).
    Failures at other addresses never block an owner, and a successful login gives its
    attempt back. Every failure is audited.
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
from jobsys.store import throttle, users
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
#: Login attempts per (email, client address) per window.
LOGIN_MAX_FAILURES = 5
#: Login attempts per client address (any emails) per window.
LOGIN_MAX_PER_ADDRESS = 30
LOGIN_WINDOW = timedelta(minutes=5)
#: The longest a subject is blocked after running out again and again.
LOGIN_MAX_BLOCK = timedelta(hours=1)
THROTTLE = throttle.Policy(window=LOGIN_WINDOW, max_block=LOGIN_MAX_BLOCK)
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SALT = "jobsys.session.v2"  # v2: the cookie names a server-side session


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    account: Account
    via: str  # "session" or "token"
    csrf_token: str | None = None
    expires_at: datetime | None = None
    session_id: str | None = None  # the cookie's session (for logout), never sent out

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


@dataclass(frozen=True)
class SessionData:
    user_id: int
    session_id: str
    csrf_token: str
    issued_at: datetime

    @property
    def expires_at(self) -> datetime:
        return self.issued_at + SESSION_MAX_AGE


def new_session(account: Account, now: datetime, session_id: str | None = None) -> SessionData:
    """The cookie data of a session (``session_id`` from ``users.create_session``)."""
    return SessionData(
        user_id=account.id,
        session_id=session_id or secrets.token_urlsafe(32),
        csrf_token=secrets.token_urlsafe(32),
        issued_at=now.replace(microsecond=0),  # the cookie keeps whole seconds
    )


def dump_session(secret: str, data: SessionData) -> str:
    payload = {
        "u": data.user_id,
        "s": data.session_id,
        "c": data.csrf_token,
        "i": int(data.issued_at.timestamp()),
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
    uid, sid, csrf, issued = (payload.get(k) for k in ("u", "s", "c", "i"))
    if not (
        isinstance(uid, int)
        and isinstance(sid, str)
        and isinstance(csrf, str)
        and isinstance(issued, int)
    ):
        return None
    try:
        issued_at = datetime.fromtimestamp(issued, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    data = SessionData(uid, sid, csrf, issued_at)
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
            raise unauthenticated("invalid, expired or revoked API token")
        return Principal(account, "token")
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise unauthenticated()
    now = ctx.clock.now()
    data = load_session(ctx.secret, cookie, now)
    if data is None:
        raise unauthenticated("the session has expired or is not valid; log in again")
    account = users.session_account(ctx.engine, data.session_id, data.user_id, now=now)
    if account is None:
        raise unauthenticated("the session has ended (logged out or revoked); log in again")
    return Principal(account, "session", data.csrf_token, data.expires_at, data.session_id)


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
def _budgets(email: str, ip: str | None) -> tuple[throttle.Budget, throttle.Budget]:
    address = ip or "unknown"
    return (
        throttle.Budget("account_ip", throttle.subject_of(email, address), LOGIN_MAX_FAILURES),
        throttle.Budget("ip", throttle.subject_of(address), LOGIN_MAX_PER_ADDRESS),
    )


def login(ctx: WebContext, request: Request, data: dict[str, Any]) -> Response:
    body = Body(data, {"email", "password"})
    email = body.required_string("email", max_length=users.MAX_EMAIL_LENGTH).strip().lower()
    password = body.required_string("password", max_length=users.MAX_PASSWORD_LENGTH)
    if not email or not password:
        raise ApiError(422, "invalid", "email and password are required")
    ip = client_ip(request)
    now = ctx.clock.now()
    pair, address = _budgets(email, ip)
    # The attempt is taken before the password is checked, so concurrent guesses
    # cannot check more passwords than the budget holds.
    blocked_until = throttle.take(ctx.engine, [pair, address], now=now, policy=THROTTLE)
    if blocked_until is not None:
        wait = max(1, math.ceil((blocked_until - now).total_seconds()))
        log.warning("login refused for %r from %s: too many attempts", email, ip)
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
    throttle.give_back(ctx.engine, reset=[pair], refund=[address], now=now)
    issued = now.replace(microsecond=0)
    session_id = users.create_session(
        ctx.engine, account, now=now, expires_at=issued + SESSION_MAX_AGE, ip=ip
    )
    session = new_session(account, now, session_id)
    principal = Principal(account, "session", session.csrf_token, session.expires_at)
    response = JSONResponse(principal.to_dict())
    set_session_cookie(response, request, dump_session(ctx.secret, session))
    log.info("login: %s from %s", account.email, ip)
    return response


def logout(ctx: WebContext, request: Request, principal: Principal) -> Response:
    """End the caller's session server-side (a copied cookie stops working too)."""
    if principal.session_id is not None:
        users.end_session(ctx.engine, principal.session_id, now=ctx.clock.now())
    response = Response(status_code=204)
    clear_session_cookie(response, request)
    return response


def logout_all(ctx: WebContext, request: Request, principal: Principal) -> Response:
    """Log out everywhere: end every browser session of the caller's account, this one
    too (API tokens stay: ``jobsys admin revoke EMAIL`` ends both)."""
    revoked = users.revoke_access(
        ctx.engine,
        principal.email,
        now=ctx.clock.now(),
        tokens=False,
        actor=principal.email,
        ip=client_ip(request),
    )
    response = JSONResponse({"sessions_revoked": revoked.sessions})
    if principal.via == "session":
        clear_session_cookie(response, request)
    return response
