"""``GET /metrics`` while the database is down, on a real ``jobsys web`` process whose
MariaDB connection goes through a proxy the test cuts: the scrape still answers with
what is known (health UNKNOWN, database down) instead of 503."""

from __future__ import annotations

from pathlib import Path

import httpx

from jobsys.clock import SystemClock
from jobsys.store import users
from tests.db_proxy import db_proxy
from tests.system.test_web_process import web_process


def _sample(text: str, name: str) -> str | None:
    """The value of an unlabelled sample, as an integer's text ("3", also for "3.0")."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return str(int(float(line.split(" ", 1)[1])))
    return None


def test_metrics_answer_health_unknown_while_the_database_is_down(
    mysql_url: str, tmp_path: Path
) -> None:
    from jobsys.store.db import make_engine

    engine = make_engine(mysql_url)
    try:
        now = SystemClock().now()
        users.create_user(engine, "ops@example.org", "s3cret-enough", "viewer", now=now)
        token = users.create_token(engine, "ops@example.org", now=now)
        users.create_user(engine, "late@example.org", "s3cret-enough", "viewer", now=now)
        late_token = users.create_token(engine, "late@example.org", now=now)
    finally:
        engine.dispose()
    bearer = {"Authorization": f"Bearer {token}"}
    with (
        db_proxy(mysql_url) as proxy,
        web_process(proxy.url_for(mysql_url), tmp_path) as (_proc, url),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        up = client.get("/metrics", headers=bearer)
        assert up.status_code == 200, up.text
        assert _sample(up.text, "jobsys_health_status") == "2"  # no daemon: CRITICAL

        proxy.cut()
        down = client.get("/metrics", headers=bearer)
        assert down.status_code == 200, down.text
        assert down.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert _sample(down.text, "jobsys_health_status") == "3"
        assert _sample(down.text, "jobsys_database_up") == "0"
        assert "# TYPE jobsys_health_status gauge" in down.text
        # a caller never verified by this process cannot be checked: still 503
        unknown = client.get("/metrics", headers={"Authorization": f"Bearer {late_token}"})
        assert unknown.status_code == 503
        assert client.get("/metrics").status_code == 401

        proxy.start()
        back = client.get("/metrics", headers=bearer)
        assert back.status_code == 200
        assert _sample(back.text, "jobsys_health_status") == "2"
        assert _sample(back.text, "jobsys_database_up") == "1"
