"""Settings, loaded once from an ``environ`` mapping into a frozen object.

Nothing else in jobsys reads ``os.environ``: the CLI builds ``Settings.from_environ``
and passes it down. A bad value raises ``ConfigError`` naming the variable.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from jobsys.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///./jobsys.db"

#: Every variable jobsys reads, with its default and meaning (docs are checked against it).
VARIABLES: dict[str, tuple[str, str]] = {
    "DATABASE_URL": (
        DEFAULT_DATABASE_URL,
        "database: mysql://user:pass@host:port/db or sqlite:///path",
    ),
    "JOBSYS_APP": (
        "(built-in demo app)",
        "module, module:attr or .py file defining jobs and schedules",
    ),
    "JOBSYS_ENV": ("development", "environment name; filters schedules by their `environments`"),
    "SCHEDULE_DAEMON_ENABLED": ("true", "false: the daemon logs why and exits 0"),
    "SCHEDULE_POLL_INTERVAL_MS": ("60000", "safety-net poll and heartbeat period"),
    "LOCK_TIMEOUT_MS": ("3600000", "a lease whose holder has not heartbeated this long is stale"),
    "SECRET_KEY": ("random per process (development)", "signs sessions; required in production"),
    "PORT": ("8000", "port of `web`"),
    "JOBSYS_LOG_FORMAT": ("text", "text or json"),
    "JOBSYS_LOG_LEVEL": ("INFO", "DEBUG, INFO, WARNING, ERROR"),
    "JOBSYS_CONCURRENCY": ("4", "job runs one daemon executes at once"),
    "JOBSYS_ISOLATION": (
        "pool",
        "pool (warm worker processes, reused between runs) or process (a fresh process "
        "per run); a job's `isolation=` overrides it",
    ),
    "JOBSYS_WORKER_MAX_RUNS": ("1000", "a pool worker is replaced after this many runs"),
    "JOBSYS_WORKER_MAX_RSS_MB": (
        "512",
        "a pool worker whose resident memory passed this after a run is replaced; 0: never",
    ),
    "JOBSYS_WAKE_HOST": ("(this host's name)", "address other hosts use to wake this daemon"),
    "JOBSYS_WAKE_PORT": ("0 (any free port)", "UDP port this daemon listens on for wake-ups"),
    "JOBSYS_SHUTDOWN_GRACE_MS": ("30000", "on SIGTERM, how long running jobs may finish"),
    "JOBSYS_HISTORY_DAYS": (
        "90",
        "the daemon deletes finished runs, their logs and batches older than this "
        "(never a schedule's last batch, a job's last run or an active run); 0 keeps all",
    ),
    "JOBSYS_AUDIT_DAYS": (
        "365",
        "the daemon deletes audit log entries older than this; 0 keeps all",
    ),
    "JOBSYS_ALERT_WEBHOOK_URL": (
        "(none: no alerts)",
        "http(s) URL the daemon POSTs alert incidents to (JSON, once when firing, once resolved)",
    ),
    "JOBSYS_ALERT_FAILURES": ("3", "alert when a schedule's last N batches failed"),
    "JOBSYS_ALERT_RUN_SECONDS": (
        "3600",
        "alert when a run without a timeout has been RUNNING this long (runs with a "
        "timeout: 30 s past it); 0 only alerts for runs with a timeout",
    ),
    "JOBSYS_ALERT_HEARTBEAT_SECONDS": (
        "300",
        "alert when another daemon has not heartbeated this long",
    ),
    # Read by uvicorn itself (jobsys runs it with proxy headers on), listed so the
    # reference documents it.
    "FORWARDED_ALLOW_IPS": (
        "127.0.0.1,::1",
        "addresses of proxies whose X-Forwarded-For/-Proto headers `web` trusts "
        "(read by uvicorn); `*` behind Railway",
    ),
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")


#: The accepted range (inclusive) of every numeric variable; documented in
#: docs/configuration.md. The bounds keep values meaningful (a port exists, a poll comes
#: round within a day) and keep the arithmetic on them (timedelta, sockets) from overflowing.
RANGES: dict[str, tuple[int, int]] = {
    "SCHEDULE_POLL_INTERVAL_MS": (100, 86_400_000),
    "LOCK_TIMEOUT_MS": (1000, 604_800_000),
    "PORT": (1, 65535),
    "JOBSYS_CONCURRENCY": (1, 1024),
    "JOBSYS_WORKER_MAX_RUNS": (1, 100_000_000),
    "JOBSYS_WORKER_MAX_RSS_MB": (0, 16_777_216),
    "JOBSYS_WAKE_PORT": (0, 65535),
    "JOBSYS_SHUTDOWN_GRACE_MS": (0, 86_400_000),
    "JOBSYS_HISTORY_DAYS": (0, 36_500),
    "JOBSYS_AUDIT_DAYS": (0, 36_500),
    "JOBSYS_ALERT_FAILURES": (1, 1000),
    "JOBSYS_ALERT_RUN_SECONDS": (0, 31_536_000),
    "JOBSYS_ALERT_HEARTBEAT_SECONDS": (10, 604_800),
}

# ASCII digits only: int() also takes full-width and other Unicode digits ("８０００"),
# which no shell user means to type and other tools would read differently.
_INTEGER = re.compile(r"[+-]?[0-9]+")


def check_int(name: str, raw: str) -> int:
    """``raw`` as an integer within ``RANGES[name]``, or ``ConfigError`` naming ``name``."""
    low, high = RANGES[name]
    text = raw.strip()
    # A huge digit string is out of range anyway; the length check keeps int() cheap.
    if _INTEGER.fullmatch(text) and len(text) <= 20:
        value = int(text)
        if low <= value <= high:
            return value
    raise ConfigError(f"{name}: must be an integer between {low} and {high} (got {raw!r})")


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    # Set but empty is an error too: `PORT=` is more often a broken template than a
    # wish for the default.
    raw = environ.get(name)
    if raw is None:
        return default
    return check_int(name, raw)


def _choice(environ: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower() if name != "JOBSYS_LOG_LEVEL" else raw.strip().upper()
    if value not in choices:
        raise ConfigError(f"{name}={raw!r} must be one of: {', '.join(choices)}")
    return value


def _url(environ: Mapping[str, str], name: str) -> str | None:
    raw = (environ.get(name) or "").strip()
    if not raw:
        return None
    parsed = urlsplit(raw)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        # the URL may hold a secret (a token in its path): do not echo it
        raise ConfigError(f"{name} must be an http:// or https:// URL with a host")
    return raw


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    app: str | None = None
    env: str = "development"
    daemon_enabled: bool = True
    poll_interval_ms: int = 60_000
    lock_timeout_ms: int = 3_600_000
    secret_key: str | None = field(default=None, repr=False)
    port: int = 8000
    log_format: str = "text"
    log_level: str = "INFO"
    concurrency: int = 4
    isolation: str = "pool"
    worker_max_runs: int = 1000
    worker_max_rss_mb: int = 512
    wake_host: str | None = None
    wake_port: int = 0
    shutdown_grace_ms: int = 30_000
    history_days: int = 90
    audit_days: int = 365
    alert_webhook_url: str | None = field(default=None, repr=False)  # may hold a token
    alert_failures: int = 3
    alert_run_seconds: int = 3600
    alert_heartbeat_seconds: int = 300

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def session_secret(self) -> str:
        """The key that signs sessions: required in production, random per process otherwise."""
        if self.secret_key:
            return self.secret_key
        if self.is_production:
            raise ConfigError("SECRET_KEY is not set; it is required with JOBSYS_ENV=production")
        return secrets.token_urlsafe(32)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        env = (environ.get("JOBSYS_ENV") or "development").strip() or "development"
        database_url = (environ.get("DATABASE_URL") or "").strip()
        if not database_url:
            if env == "production":
                raise ConfigError(
                    "DATABASE_URL is not set; with JOBSYS_ENV=production jobsys will not "
                    "fall back to SQLite"
                )
            database_url = DEFAULT_DATABASE_URL
        # Only `web` signs sessions; it calls session_secret() so the daemon can run
        # in production without one.
        secret_key = (environ.get("SECRET_KEY") or "").strip() or None
        return cls(
            database_url=database_url,
            app=(environ.get("JOBSYS_APP") or "").strip() or None,
            env=env,
            daemon_enabled=_bool(environ, "SCHEDULE_DAEMON_ENABLED", True),
            poll_interval_ms=_int(environ, "SCHEDULE_POLL_INTERVAL_MS", 60_000),
            lock_timeout_ms=_int(environ, "LOCK_TIMEOUT_MS", 3_600_000),
            secret_key=secret_key,
            port=_int(environ, "PORT", 8000),
            log_format=_choice(environ, "JOBSYS_LOG_FORMAT", "text", ("text", "json")),
            log_level=_choice(
                environ, "JOBSYS_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")
            ),
            concurrency=_int(environ, "JOBSYS_CONCURRENCY", 4),
            isolation=_choice(environ, "JOBSYS_ISOLATION", "pool", ("pool", "process")),
            worker_max_runs=_int(environ, "JOBSYS_WORKER_MAX_RUNS", 1000),
            worker_max_rss_mb=_int(environ, "JOBSYS_WORKER_MAX_RSS_MB", 512),
            wake_host=(environ.get("JOBSYS_WAKE_HOST") or "").strip() or None,
            wake_port=_int(environ, "JOBSYS_WAKE_PORT", 0),
            shutdown_grace_ms=_int(environ, "JOBSYS_SHUTDOWN_GRACE_MS", 30_000),
            history_days=_int(environ, "JOBSYS_HISTORY_DAYS", 90),
            audit_days=_int(environ, "JOBSYS_AUDIT_DAYS", 365),
            alert_webhook_url=_url(environ, "JOBSYS_ALERT_WEBHOOK_URL"),
            alert_failures=_int(environ, "JOBSYS_ALERT_FAILURES", 3),
            alert_run_seconds=_int(environ, "JOBSYS_ALERT_RUN_SECONDS", 3600),
            alert_heartbeat_seconds=_int(environ, "JOBSYS_ALERT_HEARTBEAT_SECONDS", 300),
        )
