"""The login throttle: attempts are taken from a shared budget *before* the password is
checked, under a row lock, so N concurrent guesses check at most the limit.

Each subject (an (account, client address) pair, or an address) has one
``login_throttle`` row: the attempts made in the current window, when that window began,
and how many windows in a row ran out (``strikes``). An attempt is allowed while the
window has attempts left; the first attempt past the limit blocks the subject until
``window_start + window * 2**strikes`` (at most ``max_block``), so a guesser who keeps
coming back waits longer each time. A window that ends with attempts to spare, or a
quiet day, forgets the strikes.

Taking attempts locks the rows (``SELECT ... FOR UPDATE`` on MySQL, ``BEGIN IMMEDIATE``
on SQLite) in a fixed order, so several web replicas share one budget and cannot
deadlock. A successful login gives back what it took (see ``give_back``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import col

from jobsys.store.db import dialect_name, write_engine
from jobsys.store.models import LoginThrottle

#: Rows untouched for this long are deleted (their strikes are forgotten anyway).
FORGET_AFTER = timedelta(days=1)
#: Strikes beyond this no longer lengthen the block (it is capped by ``max_block``).
_MAX_STRIKES = 16
_TRIES = 5  # a MySQL deadlock or lock wait timeout is retried (fixed lock order: rare)


@dataclass(frozen=True)
class Budget:
    """One subject's limit: ``attempts`` per ``window``."""

    scope: str
    subject: str
    attempts: int


@dataclass(frozen=True)
class Policy:
    window: timedelta
    max_block: timedelta


def subject_of(*parts: str) -> str:
    """The stored key of a subject: SHA-256 of its parts (bounded length, no raw emails)."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class _State:
    attempts: int
    strikes: int
    window_start: datetime | None
    blocked_until: datetime | None


def _step(
    state: _State, now: datetime, limit: int, policy: Policy
) -> tuple[_State, datetime | None]:
    """The state after one attempt at ``now`` and, if it is refused, until when."""
    if state.blocked_until is not None and now < state.blocked_until:
        return state, state.blocked_until
    attempts, strikes, start = state.attempts, state.strikes, state.window_start
    if start is None or now >= start + policy.window or state.blocked_until is not None:
        # A new window. Strikes carry over only from a window that ran out, recently.
        ended = state.blocked_until or (start + policy.window if start else None)
        if ended is None or attempts < limit or now - ended >= FORGET_AFTER:
            strikes = 0
        attempts, start = 0, now
    if attempts >= limit:
        block = min(policy.window * (2 ** min(strikes, _MAX_STRIKES)), policy.max_block)
        until = max(start + block, start + policy.window)
        return _State(attempts, strikes + 1, start, until), until
    return _State(attempts + 1, strikes, start, None), None


def take(
    engine: Engine, budgets: list[Budget], *, now: datetime, policy: Policy
) -> datetime | None:
    """Take one attempt from every budget, or from none: returns None if allowed, else
    the instant the attempt may be retried (the latest block among the subjects)."""
    ordered = sorted(budgets, key=lambda b: (b.scope, b.subject))
    for attempt in range(_TRIES):
        try:
            found, until = _take_locked(engine, ordered, now, policy)
        except OperationalError as exc:
            if attempt == _TRIES - 1 or not _is_lock_conflict(exc):
                raise
            continue
        if found:
            return until
        _create_rows(engine, ordered, now)
    raise RuntimeError("login throttle rows vanished while being created")  # pragma: no cover


def _is_lock_conflict(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "args", (None,))[0]
    return code in (1205, 1213)  # lock wait timeout, deadlock (MySQL/MariaDB)


def _key(budget: Budget) -> Any:
    return (col(LoginThrottle.scope) == budget.scope) & (
        col(LoginThrottle.subject) == budget.subject
    )


def _take_locked(
    engine: Engine, budgets: list[Budget], now: datetime, policy: Policy
) -> tuple[bool, datetime | None]:
    """(False, None) if a row is missing; else (True, None or the refusal's end)."""
    with write_engine(engine).begin() as conn:
        states: list[_State] = []
        for budget in budgets:  # one row at a time, in order: no lock-order deadlocks
            row = conn.execute(
                select(
                    col(LoginThrottle.attempts),
                    col(LoginThrottle.strikes),
                    col(LoginThrottle.window_start),
                    col(LoginThrottle.blocked_until),
                )
                .where(_key(budget))
                .with_for_update()
            ).first()
            if row is None:
                return False, None
            states.append(_State(*row))
        steps = [_step(s, now, b.attempts, policy) for s, b in zip(states, budgets, strict=True)]
        refused = [until for _, until in steps if until is not None]
        for budget, old, (new, until) in zip(budgets, states, steps, strict=True):
            # Refused: no attempt is taken anywhere, but a new block is recorded.
            if refused and until is None:
                continue
            if new != old:
                _write(conn, budget, new, now)
        return True, (max(refused) if refused else None)


def _write(conn: Connection, budget: Budget, state: _State, now: datetime) -> None:
    conn.execute(
        update(LoginThrottle)
        .where(_key(budget))
        .values(
            attempts=state.attempts,
            strikes=state.strikes,
            window_start=state.window_start,
            blocked_until=state.blocked_until,
            updated_at=now,
        )
    )


def _create_rows(engine: Engine, budgets: list[Budget], now: datetime) -> None:
    """Insert the missing rows (a concurrent insert of the same row is ignored), in a
    transaction of their own so that no lock is held while waiting for row locks. New
    subjects are also when stale rows are deleted, so the table cannot grow unbounded."""
    values = [
        {"scope": b.scope, "subject": b.subject, "attempts": 0, "strikes": 0, "updated_at": now}
        for b in budgets
    ]
    table: Any = LoginThrottle.__table__  # type: ignore[attr-defined]
    if dialect_name(engine) == "mysql":
        statement: Any = mysql_insert(table).values(values).prefix_with("IGNORE")
    else:
        statement = sqlite_insert(table).values(values).on_conflict_do_nothing()
    with engine.begin() as conn:
        conn.execute(statement)
    with engine.begin() as conn:
        conn.execute(
            delete(LoginThrottle).where(col(LoginThrottle.updated_at) < now - FORGET_AFTER)
        )


def give_back(engine: Engine, *, reset: list[Budget], refund: list[Budget], now: datetime) -> None:
    """After a successful login: clear the ``reset`` subjects (the owner's own pair) and
    return one attempt to the ``refund`` ones (the address), leaving blocks in place."""
    with engine.begin() as conn:
        for budget in reset:
            conn.execute(
                update(LoginThrottle)
                .where(_key(budget))
                .values(attempts=0, strikes=0, blocked_until=None, updated_at=now)
            )
        for budget in refund:
            conn.execute(
                update(LoginThrottle)
                .where(_key(budget), col(LoginThrottle.attempts) > 0)
                .values(attempts=col(LoginThrottle.attempts) - 1, updated_at=now)
            )
