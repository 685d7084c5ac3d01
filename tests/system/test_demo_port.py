"""``jobsys demo`` on a port another program holds: it says so before printing a URL or
a password, and touches nothing (issue 12, item 17)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.process_helpers import ROOT

pytestmark = pytest.mark.slow


class _AlwaysOk(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def other_server() -> Iterator[int]:
    """Another program on a port, answering 200 to everything (even /healthz)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AlwaysOk)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("how", ["--port", "PORT"])
def test_demo_refuses_a_taken_port(other_server: int, how: str, tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JOBSYS_", "DATABASE_URL", "SCHEDULE_", "PORT"))
    }
    env["PYTHONPATH"] = str(ROOT)
    args = [sys.executable, "-m", "jobsys", "demo"]
    if how == "--port":
        args += ["--port", str(other_server)]
    else:
        env["PORT"] = str(other_server)
    out = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90, check=False
    )
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert f"port {other_server} on 127.0.0.1 is already in use" in text
    assert "choose another with --port, e.g. --port " in text
    assert "password" not in text and "running" not in text
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in text
    assert not (tmp_path / "jobsys.db").exists()  # nothing prepared, no password reset
