"""Acceptance: build the real ``jobsys.pyz`` with ``build.sh`` and run it."""

import json
import os
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("artifact") / "jobsys.pyz"
    build = subprocess.run(
        ["./build.sh", "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    yield out


def run(pyz: Path, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("JOBSYS_", "DATABASE_URL"))}
    base["SHIV_ROOT"] = str(cwd / ".shiv")  # extract into the test's folder, not ~/.shiv
    return subprocess.run(
        [str(pyz), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**base, **env},
        timeout=120,
        check=False,
    )


def test_pyz_help_migrate_list(pyz: Path, tmp_path: Path) -> None:
    helped = run(pyz, ["--help"], tmp_path)
    assert helped.returncode == 0
    for cmd in ("migrate", "cron", "schedules", "jobs"):
        assert cmd in helped.stdout
    migrated = run(pyz, ["migrate"], tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert (tmp_path / "jobsys.db").exists()  # the default sqlite:///./jobsys.db
    listed = run(pyz, ["schedules", "list", "--json"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert len(rows) == 4 and not any(r["enabled"] for r in rows)


def test_pyz_bootstrap_honours_shiv_root(pyz: Path) -> None:
    # docs/configuration.md documents SHIV_ROOT (where the zipapp unpacks itself).
    with zipfile.ZipFile(pyz) as archive:
        bootstrap = archive.read("_bootstrap/environment.py").decode()
    assert '"SHIV_ROOT"' in bootstrap


def test_pyz_cron_and_cycle(pyz: Path, tmp_path: Path) -> None:
    nxt = run(
        pyz,
        [
            "cron",
            "next",
            "30 1 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2027-11-06T12:00:00Z",
            "--count",
            "2",
            "--json",
        ],
        tmp_path,
    )
    assert json.loads(nxt.stdout) == ["2027-11-07T05:30:00Z", "2027-11-08T06:30:00Z"]
    bad = run(pyz, ["cron", "validate", "61 * * * *"], tmp_path)
    assert bad.returncode == 2 and "minute" in bad.stderr
    cycle = run(pyz, ["jobs", "list"], tmp_path, JOBSYS_APP=str(ROOT / "tests/apps/cycle_app.py"))
    assert cycle.returncode == 2 and "dependency cycle: a -> b -> c -> a" in cycle.stderr


def test_pyz_demo_runs_the_artifacts_code_from_a_checkout(pyz: Path, tmp_path: Path) -> None:
    # The README's first command runs the artifact from the checkout, next to ./jobsys/:
    # the demo's web and daemon must run the artifact's jobsys, not the folder's.
    import signal
    import socket
    import sys

    from tests.process_helpers import wait_for

    shadow = tmp_path / "jobsys"
    shadow.mkdir()
    (shadow / "__init__.py").write_text('raise ImportError("the working directory\'s jobsys")\n')
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("JOBSYS_", "DATABASE_URL"))}
    base["SHIV_ROOT"] = str(tmp_path / ".shiv")
    base["SCHEDULE_POLL_INTERVAL_MS"] = "1000"
    log_path = tmp_path / "demo.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(pyz), "demo", "--port", str(port)],
            cwd=tmp_path,
            env=base,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        wait_for(
            lambda: proc.poll() is not None or "jobsys demo is running" in log_path.read_text(),
            timeout=90,
        )
        assert proc.poll() is None, log_path.read_text()
        # the daemon child is up too: health (the artifact, same folder) sees its heartbeat
        wait_for(lambda: run(pyz, ["health"], tmp_path).returncode == 0, timeout=60)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(40) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "the working directory's jobsys" not in log_path.read_text()
