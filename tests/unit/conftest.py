"""The unit tier: pure logic only. A unit test that asks for a database fixture stops
the run at collection, so the tier stays fast (``./test.sh unit``) and needs nothing
running."""

from __future__ import annotations

import pytest

_DATABASE_FIXTURES = frozenset(
    {"db_url", "engine", "sqlite_url", "mysql_url", "empty_db_url", "_mysql_cleaner"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    offenders = [
        item.nodeid
        for item in items
        if item.nodeid.startswith("tests/unit/")
        and _DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    ]
    if offenders:
        raise pytest.UsageError(
            "unit tests use no database; move these to tests/integration: "
            + ", ".join(offenders[:5])
        )
