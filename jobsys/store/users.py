"""Admin accounts, API tokens and failed-login counting (design 8).

- Passwords are hashed with argon2id (``argon2-cffi``'s ``PasswordHasher``); a hash made
  with older parameters is upgraded at the next successful login.
- API tokens are ``jbs_`` + 32 random bytes (URL-safe base64), shown once; the database
  keeps only their SHA-256 (hex), so a leaked table does not leak usable tokens.
- Failed logins are rows of the audit log (``action = "login.failed"``, actor = the email
  tried, ip), so a login rate limit counted from them holds across web replicas.

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
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from jobsys.errors import ConfigError, Conflict, NotFound
from jobsys.store import audit
from jobsys.store.db import database_errors, session, write_engine
from jobsys.store.models import AdminUser, ApiToken, AuditLog, Role

TOKEN_PREFIX = "jbs_"
MIN_PASSWORD_LENGTH = 8
#: Longer "passwords" are refused before hashing (argon2 would hash them, slowly).
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 255
LOGIN_FAILED = "login.failed"
#: How often a token's ``last_used_at`` is written (not on every request).
TOKEN_TOUCH_EVERY = timedelta(minutes=1)

_EMAIL_RE = re.compile(
    r"^[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
)
_TOKEN_RE = re.compile(r"^jbs_[A-Za-z0-9_-]{20,100}$")


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
                )
                s.commit()
                return _account(row)
        except IntegrityError:  # created meanwhile by another process
            raise Conflict(f"an admin account for {address!r} already exists") from None


def set_password(
    engine: Engine, email: str, password: str, *, now: datetime, actor: str | None = "cli"
) -> Account:
    """Give an existing account a new password (its browser sessions end with the old
    one); ``NotFound`` if there is no such account."""
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
        audit.record(
            s,
            at=now,
            actor=actor,
            action="admin.set_password",
            target_type="admin_user",
            target_id=account.email,
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
    engine: Engine, email: str, *, now: datetime, name: str | None = None, actor: str | None = "cli"
) -> str:
    """A new API token for ``email`` (``NotFound`` if there is no such account).

    The token itself is returned once and never stored; only its SHA-256 is.
    """
    account = get_user_by_email(engine, email)
    if account is None:
        raise NotFound(f"no admin account {email!r} (create it with `jobsys admin create`)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with database_errors(engine, "cannot create API token in"), session(engine) as s:
        s.add(ApiToken(user_id=account.id, token_hash=hash_token(token), name=name, created_at=now))
        audit.record(
            s,
            at=now,
            actor=actor,
            action="token.create",
            target_type="admin_user",
            target_id=account.email,
            after={"name": name} if name else None,
        )
        s.commit()
    return token


def user_for_token(engine: Engine, token: str, *, now: datetime) -> Account | None:
    """The enabled account a live (not revoked) token belongs to, or None."""
    if not _TOKEN_RE.match(token):
        return None
    digest = hash_token(token)
    with engine.connect() as conn:
        row: Any = conn.execute(
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
                col(ApiToken.token_hash) == digest,
                col(ApiToken.revoked).is_(False),
                col(AdminUser.disabled).is_(False),
            )
        ).first()
    if row is None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= TOKEN_TOUCH_EVERY:
        with write_engine(engine).begin() as conn:
            conn.execute(
                update(ApiToken).where(col(ApiToken.id) == row.token_id).values(last_used_at=now)
            )
    return Account(id=row.id, email=row.email, role=row.role, password_hash=row.password_hash)


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


def recent_failures(
    engine: Engine, *, email: str | None, ip: str | None, since: datetime, limit: int
) -> list[datetime]:
    """Times of the newest (up to ``limit``) failed logins after ``since`` for the email
    tried or from the IP (two counts; the longer list is returned), newest first."""
    found: list[list[datetime]] = [[]]
    with engine.connect() as conn:
        for column, value in ((AuditLog.actor, email), (AuditLog.ip, ip)):
            if not value:
                continue
            found.append(
                list(
                    conn.execute(
                        select(col(AuditLog.at))
                        .where(
                            col(AuditLog.action) == LOGIN_FAILED,
                            col(AuditLog.at) > since,
                            col(column) == value,
                        )
                        .order_by(col(AuditLog.at).desc())
                        .limit(limit)
                    ).scalars()
                )
            )
    return max(found, key=len)


def count_users(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(AdminUser)).scalar_one())
