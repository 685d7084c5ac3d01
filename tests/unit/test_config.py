import pytest

from jobsys.config import DEFAULT_DATABASE_URL, Settings
from jobsys.errors import ConfigError


def test_defaults() -> None:
    s = Settings.from_environ({})
    assert s.database_url == DEFAULT_DATABASE_URL
    assert s.env == "development"
    assert s.daemon_enabled is True
    assert s.poll_interval_ms == 60_000
    assert s.lock_timeout_ms == 3_600_000
    assert s.app is None
    assert len(s.session_secret()) > 20


def test_production_without_database_url_is_an_error() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Settings.from_environ({"JOBSYS_ENV": "production"})


def test_production_needs_secret_key_for_sessions_only() -> None:
    s = Settings.from_environ({"JOBSYS_ENV": "production", "DATABASE_URL": "mysql://u@h/db"})
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        s.session_secret()
    s2 = Settings.from_environ(
        {"JOBSYS_ENV": "production", "DATABASE_URL": "mysql://u@h/db", "SECRET_KEY": "k" * 32}
    )
    assert s2.session_secret() == "k" * 32


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SCHEDULE_DAEMON_ENABLED", "maybe"),
        ("SCHEDULE_POLL_INTERVAL_MS", "fast"),
        ("SCHEDULE_POLL_INTERVAL_MS", "5"),
        ("LOCK_TIMEOUT_MS", "-1"),
        ("JOBSYS_LOG_FORMAT", "xml"),
        ("JOBSYS_LOG_LEVEL", "LOUD"),
        ("JOBSYS_CONCURRENCY", "0"),
        ("JOBSYS_ISOLATION", "thread"),
        ("JOBSYS_WORKER_MAX_RUNS", "0"),
        ("JOBSYS_WORKER_MAX_RSS_MB", "-1"),
        ("JOBSYS_WORKER_MAX_RSS_MB", "lots"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_environ({name: value})


def test_daemon_disabled() -> None:
    assert Settings.from_environ({"SCHEDULE_DAEMON_ENABLED": "false"}).daemon_enabled is False
    assert Settings.from_environ({"SCHEDULE_DAEMON_ENABLED": "TRUE"}).daemon_enabled is True


def test_isolation_and_worker_recycling() -> None:
    default = Settings.from_environ({})
    assert (default.isolation, default.worker_max_runs, default.worker_max_rss_mb) == (
        "pool",
        1000,
        512,
    )
    got = Settings.from_environ(
        {
            "JOBSYS_ISOLATION": " Process ",
            "JOBSYS_WORKER_MAX_RUNS": "1",
            "JOBSYS_WORKER_MAX_RSS_MB": "0",
        }
    )
    assert (got.isolation, got.worker_max_runs, got.worker_max_rss_mb) == ("process", 1, 0)
