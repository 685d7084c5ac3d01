"""Which jobsys modules may import which (issue 9 item 4: no cycle around the executor;
item 5: the daemon loads no ORM).

The run's side (``forking``, ``runtime``, ``runspec``) and the fork server never import
the daemon's side (``executor``), and the fork server stays free of the database layer
(it is forked before that is loaded, to stay small). Core modules never import the web
or the CLI. Checked both ways: each module imported in a fresh interpreter (what really
gets loaded), and the source's import statements (also those inside functions).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.process_helpers import ROOT

PACKAGE = ROOT / "jobsys"

#: Module → jobsys modules it must never load (directly or through another).
FORBIDDEN: dict[str, set[str]] = {
    "jobsys.runspec": {"jobsys.executor", "jobsys.runtime", "jobsys.forking"},
    "jobsys.forking": {"jobsys.executor", "jobsys.runtime", "jobsys.runspec"},
    "jobsys.runtime": {"jobsys.executor", "jobsys.forkserver"},
    "jobsys.forkserver": {"jobsys.executor", "jobsys.store", "jobsys.daemon", "jobsys.pool"},
    # The warm worker runs jobs like a forked process does: the run's side only.
    "jobsys.poolworker": {
        "jobsys.executor",
        "jobsys.forkserver",
        "jobsys.pool",
        "jobsys.store",
        "jobsys.daemon",
    },
    # The daemon's pool hands runs to workers; it never loads what runs inside them.
    "jobsys.pool": {"jobsys.executor", "jobsys.runtime", "jobsys.poolworker", "jobsys.store"},
}

#: The daemon stays lean (issue 9 item 5): its store code uses the Core mirror of the
#: models (``jobsys.store.tables``); what needs the models runs in a start-up child, and
#: the alerts module is loaded only with a webhook. Checked on a fresh import only (the
#: daemon names these inside functions); tests/system/test_daemon_process.py checks the
#: running daemon process.
LEAN: dict[str, set[str]] = {
    "jobsys.daemon": {
        "sqlmodel",
        "pydantic",
        "sqlalchemy.orm",
        "alembic",
        "jobsys.store.models",
        "jobsys.store.schedules",
        "jobsys.alerts",
    },
    "jobsys.store.tables": {"sqlmodel", "pydantic", "sqlalchemy.orm", "jobsys.store.models"},
}


def loaded_by(module: str) -> list[str]:
    """The modules a fresh interpreter has loaded after ``import module``."""
    script = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    names: list[str] = json.loads(out.stdout)
    return names


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_the_run_side_does_not_load_the_daemon_side(module: str) -> None:
    loaded = loaded_by(module)
    bad = sorted(
        name
        for name in loaded
        for forbidden in FORBIDDEN[module]
        if name == forbidden or name.startswith(forbidden + ".")
    )
    assert bad == [], f"{module} loads {bad}"
    if module == "jobsys.forkserver":  # forked before the database layer is imported
        assert "sqlalchemy" not in loaded


@pytest.mark.parametrize("module", sorted(LEAN))
def test_the_daemon_loads_no_orm(module: str) -> None:
    loaded = loaded_by(module)
    bad = sorted(
        forbidden
        for forbidden in LEAN[module]
        if any(name == forbidden or name.startswith(forbidden + ".") for name in loaded)
    )
    assert bad == [], f"{module} loads {bad}"
    assert "sqlalchemy" in loaded  # the check sees what was loaded


def test_the_executor_builds_on_the_run_side() -> None:
    # The daemon's side builds on the run's side (one direction only).
    loaded = set(loaded_by("jobsys.executor"))
    assert {"jobsys.runtime", "jobsys.forking", "jobsys.runspec", "jobsys.pool"} <= loaded
    assert "jobsys.forkserver" not in loaded  # named for type hints only


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every jobsys module named by an import in the file, wherever it stands, except
    those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                type_only.update(id(n) for n in ast.walk(inner))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # ``from jobsys import web`` names a module too
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n == "jobsys" or n.startswith("jobsys.")}


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_core_never_imports_the_web_or_the_cli() -> None:
    core = [*PACKAGE.glob("*.py"), *(PACKAGE / "store").glob("*.py")]
    assert len(core) > 20  # the glob found the package
    bad: list[str] = []
    for path in core:
        name = module_name(path)
        if name in ("jobsys.cli", "jobsys.__main__"):
            continue
        for imported in imported_modules(path):
            if within(imported, "jobsys.web") or within(imported, "jobsys.cli"):
                bad.append(f"{name} imports {imported}")
    assert bad == []


def test_no_module_of_the_run_side_names_the_daemon_side() -> None:
    # Also lazy imports inside functions, which a fresh import would not reveal.
    bad = [
        f"{module} imports {imported}"
        for module, forbidden in FORBIDDEN.items()
        for imported in imported_modules(PACKAGE / (module.split(".")[1] + ".py"))
        if any(within(imported, f) for f in forbidden)
    ]
    assert bad == []
