"""Admin accounts, API tokens and failed-login counting (design 8).

- Passwords are hashed with argon2id (``argon2-cffi``'s ``PasswordHasher``); a hash made
  with older parameters is upgraded at the next successful login.
- API tokens are ``jbs_`` + 32 random bytes (URL-safe base64), shown once; the database
  keeps only their SHA-256 (hex), so a leaked table does not leak usable tokens.
- Browser sessions are ``admin_session`` rows: the cookie carries a random id, the table
  its SHA-256. A session is live while not revoked, not expired and its account is
  enabled; logout, a password change, disabling the account and "log out everywhere"
  revoke it at once (every replica sees it on the next request).
- API tokens may expire (``expires_at``) and are revoked by ``revoke_tokens`` /
  ``revoke_access``.
- Failed logins are rows of the audit log (``action = "login.failed"``, actor = the email
  tried, ip); the login rate limit itself is ``jobsys.store.throttle``.

- The last active admin (role ``admin``, not disabled) can be neither disabled nor
  demoted (``LastAdmin``, a ``Conflict``: 409 in the API, exit 2 in the CLI), so someone
  can always manage accounts. Every change to an account is audited.

Emails are stored lower-cased. Roles: ``admin`` acts, ``viewer`` reads.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import Executable
from sqlmodel import Session, col

from jobsys.clock import iso_utc
from jobsys.errors import ConfigError, Conflict, NotFound
from jobsys.store import audit
from jobsys.store.db import database_errors, session, write_engine
from jobsys.store.models import AdminSession, AdminUser, ApiToken, Role

TOKEN_PREFIX = "jbs_"
MIN_PASSWORD_LENGTH = 8
#: Longer "passwords" are refused before hashing (argon2 would hash them, slowly).
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 255
MAX_TOKEN_NAME_LENGTH = 100
LOGIN_FAILED = "login.failed"
#: How often a token's ``last_used_at`` / a session's ``last_seen_at`` is written.
TOKEN_TOUCH_EVERY = timedelta(minutes=1)
#: Ended sessions are deleted this long after they ended (kept a while for inspection).
SESSION_KEPT_FOR = timedelta(days=1)

_EMAIL_RE = re.compile(
    r"^[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
)
_TOKEN_RE = re.compile(r"^jbs_[A-Za-z0-9_-]{20,100}$")
_SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


@dataclass(frozen=True)
class Account:
    """What the web needs to know about an authenticated user."""

    id: int
    email: str
    role: str
    password_hash: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


def _account(row: AdminUser) -> Account:
    assert row.id is not None
    return Account(id=row.id, email=row.email, role=row.role, password_hash=row.password_hash)


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to verify against when the email is unknown, so both cases take as long."""
    return _hasher().hash(secrets.token_urlsafe(16))


def normalize_email(email: str) -> str:
    """The stored form of an email (trimmed, lower-cased); ``ConfigError`` if malformed."""
    value = email.strip().lower() if isinstance(email, str) else ""
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL_RE.match(value):
        raise ConfigError(f"{email!r} is not a valid email address")
    return value


def check_role(role: str) -> str:
    if role not in (Role.ADMIN, Role.VIEWER):
        raise ConfigError(f"role {role!r} must be one of: admin, viewer")
    return str(role)


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ConfigError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    return password


def create_user(
    engine: Engine,
    email: str,
    password: str,
    role: str,
    *,
    now: datetime,
    actor: str | None = "cli",
    ip: str | None = None,
) -> Account:
    """Create an account; ``Conflict`` if the email is taken, ``ConfigError`` if invalid."""
    address = normalize_email(email)
    check_role(role)
    check_password(password)
    if get_user_by_email(engine, address) is not None:
        raise Conflict(f"an admin account for {address!r} already exists")
    password_hash = _hasher().hash(password)
    with database_errors(engine, "cannot create admin account in"):
        try:
            with session(engine) as s:
                row = AdminUser(
                    email=address, password_hash=password_hash, role=role, created_at=now
                )
                s.add(row)
                s.flush()
                audit.record(
                    s,
                    at=now,
                    actor=actor,
                    action="admin.create",
                    target_type="admin_user",
                    target_id=address,
                    after={"role": role},
                    ip=ip,
                )
                s.commit()
                return _account(row)
        except IntegrityError:  # created meanwhile by another process
            raise Conflict(f"an admin account for {address!r} already exists") from None


def set_password(
    engine: Engine,
    email: str,
    password: str,
    *,
    now: datetime,
    actor: str | None = "cli",
    ip: str | None = None,
) -> Account:
    """Give an existing account a new password and end its browser sessions (its API
    tokens stay); ``NotFound`` if there is no such account."""
    check_password(password)
    account = get_user_by_email(engine, email)
    if account is None:
        raise NotFound(f"no admin account {email!r}")
    password_hash = _hasher().hash(password)
    with database_errors(engine, "cannot update admin account in"), session(engine) as s:
        s.execute(
            update(AdminUser)
            .where(col(AdminUser.id) == account.id)
            .values(password_hash=password_hash)
        )
        _revoke_sessions(s, account.id, now)
        audit.record(
            s,
            at=now,
            actor=actor,
            action="admin.set_password",
            target_type="admin_user",
            target_id=account.email,
            ip=ip,
        )
        s.commit()
    return Account(account.id, account.email, account.role, password_hash)


def get_user(engine: Engine, user_id: int) -> Account | None:
    """The enabled account ``user_id``, or None."""
    with engine.connect() as conn:
        row = conn.execute(
            select(AdminUser).where(
                col(AdminUser.id) == user_id, col(AdminUser.disabled).is_(False)
            )
        ).first()
    return None if row is None else _account(row)  # type: ignore[arg-type]


def get_user_by_email(engine: Engine, email: str) -> Account | None:
    try:
        address = normalize_email(email)
    except ConfigError:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(AdminUser).where(col(AdminUser.email) == address)).first()
    return None if row is None else _account(row)  # type: ignore[arg-type]


def verify_login(engine: Engine, email: str, password: str, *, now: datetime) -> Account | None:
    """The account if ``password`` is right (and the account enabled), else None.

    Takes as long for an unknown email as for a wrong password. A successful login
    records ``last_login_at`` and upgrades an outdated hash.
    """
    try:
        address = normalize_email(email)
    except ConfigError:
        address = None
    row = None
    if address is not None and len(password) <= MAX_PASSWORD_LENGTH:
        with engine.connect() as conn:
            row = conn.execute(select(AdminUser).where(col(AdminUser.email) == address)).first()
    hasher = _hasher()
    stored = row.password_hash if row is not None else _dummy_hash()
    try:
        hasher.verify(stored, password[:MAX_PASSWORD_LENGTH])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or row.disabled:
        return None
    values: dict[str, object] = {"last_login_at": now}
    if hasher.check_needs_rehash(stored):
        values["password_hash"] = hasher.hash(password)
    with write_engine(engine).begin() as conn:
        conn.execute(update(AdminUser).where(col(AdminUser.id) == row.id).values(**values))
    account = _account(row)  # type: ignore[arg-type]
    if "password_hash" in values:
        account = Account(account.id, account.email, account.role, str(values["password_hash"]))
    return account


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    engine: Engine,
    email: str,
    *,
    now: datetime,
    name: str | None = None,
    actor: str | None = "cli",
    lifetime: timedelta | None = None,
) -> str:
    """A new API token for ``email`` (``NotFound`` if there is no such account), valid
    for ``lifetime`` (None: until revoked).

    The token itself is returned once and never stored; only its SHA-256 is.
    """
    account = get_user_by_email(engine, email)
    if account is None:
        raise NotFound(f"no admin account {email!r} (create it with `jobsys admin create`)")
    if lifetime is not None and lifetime <= timedelta(0):
        raise ConfigError("a token's lifetime must be positive")
    if name is not None and len(name) > MAX_TOKEN_NAME_LENGTH:
        raise ConfigError(f"a token's name must have at most {MAX_TOKEN_NAME_LENGTH} characters")
    expires_at = now + lifetime if lifetime is not None else None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    after: dict[str, Any] = {}
    if name:
        after["name"] = name
    if expires_at is not None:
        after["expires_at"] = expires_at.isoformat()
    with database_errors(engine, "cannot create API token in"), session(engine) as s:
        s.add(
            ApiToken(
                user_id=account.id,
                token_hash=hash_token(token),
                name=name,
                created_at=now,
                expires_at=expires_at,
            )
        )
        audit.record(
            s,
            at=now,
            actor=actor,
            action="token.create",
            target_type="admin_user",
            target_id=account.email,
            after=after or None,
        )
        s.commit()
    return token


# Built once: a token is checked on every API request, and building this statement
# cost more than running it (~0.3 ms of SQLAlchemy operator overloads per call).
_TOKEN_LOOKUP: Executable = (
    select(
        col(AdminUser.id),
        col(AdminUser.email),
        col(AdminUser.role),
        col(AdminUser.password_hash),
        col(ApiToken.id).label("token_id"),
        col(ApiToken.last_used_at),
    )
    .join(ApiToken, col(ApiToken.user_id) == col(AdminUser.id))
    .where(
        col(ApiToken.token_hash) == bindparam("digest"),
        col(ApiToken.revoked).is_(False),
        col(AdminUser.disabled).is_(False),
        or_(col(ApiToken.expires_at).is_(None), col(ApiToken.expires_at) > bindparam("now")),
    )
)


def user_for_token(engine: Engine, token: str, *, now: datetime) -> Account | None:
    """The enabled account a live (not revoked, not expired) token belongs to, or None."""
    if not _TOKEN_RE.match(token):
        return None
    digest = hash_token(token)
    with engine.connect() as conn:
        row: Any = conn.execute(_TOKEN_LOOKUP, {"digest": digest, "now": now}).first()
    if row is None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= TOKEN_TOUCH_EVERY:
        with write_engine(engine).begin() as conn:
            conn.execute(
                update(ApiToken).where(col(ApiToken.id) == row.token_id).values(last_used_at=now)
            )
    return Account(id=row.id, email=row.email, role=row.role, password_hash=row.password_hash)


# -- account state: revoke, disable ---------------------------------------------------
def _revoke_sessions(s: Session, user_id: int, now: datetime) -> int:
    result: Any = s.execute(
        update(AdminSession)
        .where(col(AdminSession.user_id) == user_id, col(AdminSession.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount)


def _revoke_tokens(s: Session, user_id: int) -> int:
    result: Any = s.execute(
        update(ApiToken)
        .where(col(ApiToken.user_id) == user_id, col(ApiToken.revoked).is_(False))
        .values(revoked=True)
    )
    return int(result.rowcount)


@dataclass(frozen=True)
class Revoked:
    sessions: int
    tokens: int


def revoke_access(
    engine: Engine,
    email: str,
    *,
    now: datetime,
    tokens: bool = True,
    actor: str | None = "cli",
    ip: str | None = None,
) -> Revoked:
    """End every browser session of ``email`` and (``tokens``) revoke its API tokens;
    ``NotFound`` if there is no such account."""
    account = get_user_by_email(engine, email)
    if account is None:
        raise NotFound(f"no admin account {email!r}")
    with database_errors(engine, "cannot revoke access in"), session(engine) as s:
        revoked = Revoked(
            sessions=_revoke_sessions(s, account.id, now),
            tokens=_revoke_tokens(s, account.id) if tokens else 0,
        )
        audit.record(
            s,
            at=now,
            actor=actor,
            action="admin.revoke",
            target_type="admin_user",
            target_id=account.email,
            after={"sessions": revoked.sessions, "tokens": revoked.tokens},
            ip=ip,
        )
        s.commit()
    return revoked


class LastAdmin(Conflict):
    """The change would leave no enabled account with the admin role."""


@dataclass(frozen=True)
class Changed:
    """What ``update_account`` did: the account after, sessions it ended, the audit
    actions it recorded (empty when nothing changed)."""

    account: Account
    disabled: bool
    sessions_ended: int
    actions: tuple[str, ...]


def update_account(
    engine: Engine,
    email: str,
    *,
    role: str | None = None,
    disabled: bool | None = None,
    now: datetime,
    actor: str | None = "cli",
    ip: str | None = None,
) -> Changed:
    """Change an account's role and/or disabled state, each real change audited
    (``admin.role``, ``admin.disable``, ``admin.enable``); disabling ends its sessions.

    ``NotFound`` if there is no such account; ``LastAdmin`` (a ``Conflict``) if the change
    would demote or disable the last enabled admin. Every account row is locked first
    (``FOR UPDATE`` on MySQL, ``BEGIN IMMEDIATE`` on SQLite), in id order, so two
    concurrent changes cannot each remove "the other" admin and leave none.
    """
    if role is not None:
        check_role(role)
    try:
        address = normalize_email(email)
    except ConfigError:
        raise NotFound(f"no admin account {email!r}") from None
    with (
        database_errors(engine, "cannot update admin account in"),
        session(engine, write=True) as s,
    ):
        rows: Any = s.execute(
            select(
                col(AdminUser.id),
                col(AdminUser.email),
                col(AdminUser.role),
                col(AdminUser.disabled),
            )
            .order_by(col(AdminUser.id))
            .with_for_update()
        ).all()
        row = next((r for r in rows if r.email == address), None)
        if row is None:
            raise NotFound(f"no admin account {email!r}")
        new_role = row.role if role is None else role
        new_disabled = bool(row.disabled) if disabled is None else disabled
        was_active_admin = row.role == Role.ADMIN and not row.disabled
        stays_active_admin = new_role == Role.ADMIN and not new_disabled
        if was_active_admin and not stays_active_admin:
            others = [r for r in rows if r.id != row.id and r.role == Role.ADMIN and not r.disabled]
            if not others:
                doing = "disabled" if new_disabled else "demoted to viewer"
                raise LastAdmin(
                    f"{row.email} is the last active admin and cannot be {doing}; "
                    "make another account admin first"
                )
        actions: list[str] = []
        ended = 0
        if new_role != row.role:
            s.execute(update(AdminUser).where(col(AdminUser.id) == row.id).values(role=new_role))
            audit.record(
                s,
                at=now,
                actor=actor,
                action="admin.role",
                target_type="admin_user",
                target_id=row.email,
                before={"role": row.role},
                after={"role": new_role},
                ip=ip,
            )
            actions.append("admin.role")
        if new_disabled != bool(row.disabled):
            s.execute(
                update(AdminUser).where(col(AdminUser.id) == row.id).values(disabled=new_disabled)
            )
            ended = _revoke_sessions(s, row.id, now) if new_disabled else 0
            action = "admin.disable" if new_disabled else "admin.enable"
            audit.record(
                s,
                at=now,
                actor=actor,
                action=action,
                target_type="admin_user",
                target_id=row.email,
                before={"disabled": bool(row.disabled)},
                after={"disabled": new_disabled, "sessions_ended": ended},
                ip=ip,
            )
            actions.append(action)
        s.commit()
    account = get_user_by_email(engine, row.email)
    assert account is not None  # accounts are never deleted
    return Changed(account, new_disabled, ended, tuple(actions))


def set_disabled(
    engine: Engine,
    email: str,
    disabled: bool,
    *,
    now: datetime,
    actor: str | None = "cli",
    ip: str | None = None,
) -> Revoked:
    """Disable (or enable again) an account. A disabled account cannot log in and its
    sessions and tokens get 401 at once; its sessions are also revoked, so enabling it
    again does not bring them back (its tokens do come back). ``NotFound`` if unknown,
    ``LastAdmin`` for the last enabled admin."""
    changed = update_account(engine, email, disabled=disabled, now=now, actor=actor, ip=ip)
    return Revoked(sessions=changed.sessions_ended, tokens=0)


def set_role(
    engine: Engine,
    email: str,
    role: str,
    *,
    now: datetime,
    actor: str | None = "cli",
    ip: str | None = None,
) -> Changed:
    """Give an account the ``admin`` or ``viewer`` role (``LastAdmin`` for the last one)."""
    return update_account(engine, email, role=role, now=now, actor=actor, ip=ip)


def revoke_token(
    engine: Engine,
    email: str,
    token_id: int,
    *,
    now: datetime,
    actor: str | None = "cli",
    ip: str | None = None,
) -> None:
    """Revoke one live API token of ``email``; ``NotFound`` for an unknown account, or a
    token that is not this account's or is already revoked. Audited as ``token.revoke``."""
    account = get_user_by_email(engine, email)
    if account is None:
        raise NotFound(f"no admin account {email!r}")
    with database_errors(engine, "cannot revoke API token in"), session(engine) as s:
        result: Any = s.execute(
            update(ApiToken)
            .where(
                col(ApiToken.id) == token_id,
                col(ApiToken.user_id) == account.id,
                col(ApiToken.revoked).is_(False),
            )
            .values(revoked=True)
        )
        if not result.rowcount:
            raise NotFound(f"no live API token {token_id} of {account.email}")
        audit.record(
            s,
            at=now,
            actor=actor,
            action="token.revoke",
            target_type="admin_user",
            target_id=account.email,
            after={"token_id": token_id},
            ip=ip,
        )
        s.commit()


def revoke_tokens(engine: Engine, email: str) -> int:
    """Revoke every token of ``email``; returns how many were live."""
    account = get_user_by_email(engine, email)
    if account is None:
        raise NotFound(f"no admin account {email!r}")
    with write_engine(engine).begin() as conn:
        result = conn.execute(
            update(ApiToken)
            .where(col(ApiToken.user_id) == account.id, col(ApiToken.revoked).is_(False))
            .values(revoked=True)
        )
    return int(result.rowcount)


# -- browser sessions -----------------------------------------------------------------
def create_session(
    engine: Engine, account: Account, *, now: datetime, expires_at: datetime, ip: str | None
) -> str:
    """A new session for ``account``; returns its id (for the cookie, never stored)."""
    session_id = secrets.token_urlsafe(32)
    with database_errors(engine, "cannot create session in"), engine.begin() as conn:
        conn.execute(
            AdminSession.__table__.insert().values(  # type: ignore[attr-defined]
                user_id=account.id,
                token_hash=hash_token(session_id),
                ip=ip[:64] if ip else None,
                created_at=now,
                last_seen_at=now,
                expires_at=expires_at,
            )
        )
        # Logins are rare: a good moment to drop sessions that ended a while ago.
        conn.execute(
            delete(AdminSession).where(col(AdminSession.expires_at) < now - SESSION_KEPT_FOR)
        )
    return session_id


def session_account(
    engine: Engine, session_id: str, user_id: int, *, now: datetime
) -> Account | None:
    """The enabled account of a live session (not revoked, not expired), or None."""
    if not _SESSION_ID_RE.match(session_id):
        return None
    with engine.connect() as conn:
        row: Any = conn.execute(
            select(
                col(AdminUser.id),
                col(AdminUser.email),
                col(AdminUser.role),
                col(AdminUser.password_hash),
                col(AdminSession.id).label("session_id"),
                col(AdminSession.last_seen_at),
            )
            .join(AdminSession, col(AdminSession.user_id) == col(AdminUser.id))
            .where(
                col(AdminSession.token_hash) == hash_token(session_id),
                col(AdminSession.user_id) == user_id,
                col(AdminSession.revoked_at).is_(None),
                col(AdminSession.expires_at) > now,
                col(AdminUser.disabled).is_(False),
            )
        ).first()
    if row is None:
        return None
    if now - row.last_seen_at >= TOKEN_TOUCH_EVERY:
        with engine.begin() as conn:
            conn.execute(
                update(AdminSession)
                .where(col(AdminSession.id) == row.session_id)
                .values(last_seen_at=now)
            )
    return Account(id=row.id, email=row.email, role=row.role, password_hash=row.password_hash)


def end_session(engine: Engine, session_id: str, *, now: datetime) -> bool:
    """Revoke one session (logout); False if it was not live."""
    if not _SESSION_ID_RE.match(session_id):
        return False
    with database_errors(engine, "cannot end session in"), engine.begin() as conn:
        result = conn.execute(
            update(AdminSession)
            .where(
                col(AdminSession.token_hash) == hash_token(session_id),
                col(AdminSession.revoked_at).is_(None),
            )
            .values(revoked_at=now)
        )
    return bool(result.rowcount)


# -- failed logins --------------------------------------------------------------------
def record_login_failure(
    engine: Engine, *, email: str, ip: str | None, now: datetime, reason: str
) -> None:
    """Audit one failed login (the actor is the email tried, cut to the column's size)."""
    with database_errors(engine, "cannot record login failure in"), session(engine) as s:
        audit.record(
            s,
            at=now,
            actor=email[:MAX_EMAIL_LENGTH],
            action=LOGIN_FAILED,
            target_type="login",
            ip=ip[:64] if ip else None,
            detail=reason,
        )
        s.commit()


def count_users(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(AdminUser)).scalar_one())


# -- listing --------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenInfo:
    """A token that is not revoked (an expired one is listed, marked so)."""

    id: int
    name: str | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    expired: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created_at": iso_utc(self.created_at),
            "last_used_at": iso_utc(self.last_used_at),
            "expires_at": iso_utc(self.expires_at),
            "expired": self.expired,
        }


@dataclass(frozen=True)
class UserInfo:
    """An account as the users page and ``admin list`` show it (no hash)."""

    id: int
    email: str
    role: str
    disabled: bool
    created_at: datetime
    last_login_at: datetime | None
    active_sessions: int
    tokens: tuple[TokenInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "disabled": self.disabled,
            "created_at": iso_utc(self.created_at),
            "last_login_at": iso_utc(self.last_login_at),
            "active_sessions": self.active_sessions,
            "tokens": [t.to_dict() for t in self.tokens],
        }


def list_users(engine: Engine, *, now: datetime, user_id: int | None = None) -> list[UserInfo]:
    """Every account (or only ``user_id``) by email, with its live sessions count and
    its tokens that are not revoked (oldest first)."""
    users_q = select(AdminUser).order_by(col(AdminUser.email))
    tokens_q = select(ApiToken).where(col(ApiToken.revoked).is_(False)).order_by(col(ApiToken.id))
    sessions_q = (
        select(col(AdminSession.user_id), func.count())
        .where(col(AdminSession.revoked_at).is_(None), col(AdminSession.expires_at) > now)
        .group_by(col(AdminSession.user_id))
    )
    if user_id is not None:
        users_q = users_q.where(col(AdminUser.id) == user_id)
        tokens_q = tokens_q.where(col(ApiToken.user_id) == user_id)
        sessions_q = sessions_q.where(col(AdminSession.user_id) == user_id)
    with engine.connect() as conn:
        rows: Any = conn.execute(users_q).all()
        token_rows: Any = conn.execute(tokens_q).all()
        live = {uid: int(n) for uid, n in conn.execute(sessions_q).all()}
    tokens: dict[int, list[TokenInfo]] = {}
    for t in token_rows:
        tokens.setdefault(t.user_id, []).append(
            TokenInfo(
                id=t.id,
                name=t.name,
                created_at=t.created_at,
                last_used_at=t.last_used_at,
                expires_at=t.expires_at,
                expired=t.expires_at is not None and t.expires_at <= now,
            )
        )
    return [
        UserInfo(
            id=r.id,
            email=r.email,
            role=r.role,
            disabled=bool(r.disabled),
            created_at=r.created_at,
            last_login_at=r.last_login_at,
            active_sessions=live.get(r.id, 0),
            tokens=tuple(tokens.get(r.id, ())),
        )
        for r in rows
    ]


def get_user_info(engine: Engine, user_id: int, *, now: datetime) -> UserInfo:
    """One account as ``list_users`` shows it; ``NotFound`` if there is none."""
    found = list_users(engine, now=now, user_id=user_id)
    if not found:
        raise NotFound(f"no admin account with id {user_id}")
    return found[0]
