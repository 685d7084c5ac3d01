"""``jobsys demo``: one command gives a working system; Ctrl-C stops it cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.process_helpers import ROOT, wait_for

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_demo_runs_web_and_daemon_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JOBSYS_", "DATABASE_URL", "SCHEDULE_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    out_path = tmp_path / "demo.log"
    with open(out_path, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobsys", "demo", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        wait_for(lambda: "jobsys demo is running" in out_path.read_text(), timeout=60)
        text = out_path.read_text()
        password = re.search(r"password : (\S+)", text)
        assert password is not None
        assert f"http://127.0.0.1:{port}/admin" in text
        assert (tmp_path / "jobsys.db").exists()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/admin/login",
            data=json.dumps({"email": "admin@jobsys.demo", "password": password.group(1)}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["role"] == "admin"
            cookie = response.headers["Set-Cookie"].split(";")[0]
        status_request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/admin/daemon/status", headers={"Cookie": cookie}
        )

        def daemon_running() -> bool:
            with urllib.request.urlopen(status_request, timeout=10) as response:
                return bool(json.loads(response.read())["daemon_running"])

        wait_for(daemon_running, timeout=30)
        schedules_request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/admin/schedules", headers={"Cookie": cookie}
        )
        with urllib.request.urlopen(schedules_request, timeout=10) as response:
            schedules = {s["id"]: s for s in json.loads(response.read())["schedules"]}
        assert schedules["dev-quick-test"]["enabled"] is True
        proc.send_signal(signal.SIGINT)
        assert proc.wait(40) == 0
        assert "jobsys demo stopped" in out_path.read_text()
        time.sleep(0.5)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
