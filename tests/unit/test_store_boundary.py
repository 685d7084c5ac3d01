"""All SQL lives in ``jobsys/store`` (issue 13): other modules keep their rules and call
store functions that take plain values and return typed rows.

Checked on the syntax tree rather than with grep, which also matches
``selector.select()``, ``set.update()`` or ``sys.path.insert()``. Outside the store a
module may name an ``Engine`` (sqlalchemy.engine) and catch database errors
(sqlalchemy.exc), nothing else: no query builders, no sqlmodel, no ``.execute()``.
``jobsys/demo`` is exempt: it is the demo application, which keeps its own tables.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "jobsys"
EXEMPT = (PACKAGE / "store", PACKAGE / "demo")
ALLOWED = ("sqlalchemy.engine", "sqlalchemy.exc")


def sql_uses(source: str) -> list[str]:
    """What in this module builds or runs SQL, as "line: what"."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("execute", "exec", "scalar", "scalars")
        ):
            found.append(f"{node.lineno}: .{node.func.attr}()")
            continue
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top == "sqlmodel" or (top == "sqlalchemy" and name not in ALLOWED):
                found.append(f"{node.lineno}: import {name}")
    return found


def test_no_sql_outside_the_store() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if any(path.is_relative_to(d) for d in EXEMPT):
            continue
        uses = sql_uses(path.read_text(encoding="utf-8"))
        if uses:
            offenders[str(path.relative_to(ROOT))] = uses
    assert offenders == {}


def test_the_check_sees_queries() -> None:
    source = (
        "from sqlalchemy import select\n"
        "import sqlmodel\n"
        "from sqlalchemy.engine import Engine\n"
        "from sqlalchemy.exc import SQLAlchemyError\n"
        "def f(conn):\n"
        "    sel.select()\n"
        "    return conn.execute(q)\n"
    )
    assert sql_uses(source) == ["1: import sqlalchemy", "2: import sqlmodel", "7: .execute()"]
