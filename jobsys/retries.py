"""Retry policies and their back-off: pure (no database, no clock).

``@app.job(retries=3, retry_delay="30s", retry_backoff=2.0, retry_max_delay="1h",
retry_jitter=True)``: after failed attempt ``n`` (1-based) the next one is due after
``min(retry_delay * retry_backoff ** (n - 1), retry_max_delay)``. With ``retry_jitter``
the wait is that delay times a fraction in [0, 1) ("full jitter", so retries of many
runs that failed together spread out). The fraction is deterministic: a hash of the
first attempt's run id and ``n``, so every daemon (and a test) computes the same wait.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

MAX_RETRIES = 100
MAX_BACKOFF = 100.0
DEFAULT_DELAY_S = 30.0
DEFAULT_BACKOFF = 2.0
DEFAULT_MAX_DELAY_S = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    retries: int
    delay_s: float = DEFAULT_DELAY_S
    backoff: float = DEFAULT_BACKOFF
    max_delay_s: float = DEFAULT_MAX_DELAY_S
    jitter: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "retries": self.retries,
            "delay_s": self.delay_s,
            "backoff": self.backoff,
            "max_delay_s": self.max_delay_s,
            "jitter": self.jitter,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RetryPolicy | None:
        """The policy a run row stores (None: no retries); unknown keys are ignored."""
        if not data or not int(data.get("retries") or 0):
            return None
        return cls(
            retries=int(data["retries"]),
            delay_s=float(data.get("delay_s", DEFAULT_DELAY_S)),
            backoff=float(data.get("backoff", DEFAULT_BACKOFF)),
            max_delay_s=float(data.get("max_delay_s", DEFAULT_MAX_DELAY_S)),
            jitter=bool(data.get("jitter", False)),
        )


def jitter_fraction(first_run_id: int, attempt: int) -> float:
    """A fraction in [0, 1), the same for the same chain and attempt everywhere."""
    digest = hashlib.sha256(f"{first_run_id}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def backoff_delay(policy: RetryPolicy, attempt: int, *, first_run_id: int = 0) -> float | None:
    """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one, or
    None when the attempts are used up (``retries`` retries: ``retries + 1`` attempts)."""
    if attempt < 1 or attempt > policy.retries:
        return None
    # retries <= 100 and backoff <= 100: the power stays far below a float's range.
    delay = min(policy.delay_s * policy.backoff ** (attempt - 1), policy.max_delay_s)
    if policy.jitter:
        delay *= jitter_fraction(first_run_id, attempt)
    return delay
