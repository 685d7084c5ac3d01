"""How pytest-xdist hands the tests to its workers: one at a time, long tests first.

xdist's default (``--dist load``) sends each worker a chunk of consecutive tests at the
start (a quarter of its share: ~85 tests with 1,364 tests on 4 workers) and refills in
chunks. With the long and slow tests sorted first (tests/conftest.py), the first chunk
put every long test on the same worker, one after the other: that worker finished
minutes after the others. Here each worker holds only the test it runs and the next one
(xdist runs a test once it knows the next: ``maxschedchunk`` 1) and gets another each
time one finishes, so a worker with a long test takes no more work meanwhile.

At the start each worker gets the first pending test (the long ones, one per worker,
start together) and, as its "next", a test from the end of the order (a quick one), so
no long test waits behind another on a worker that happened to get two.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScheduling


class LongFirstScheduling(LoadScheduling):  # type: ignore[misc]  # xdist has no type hints
    collection: list[str] | None
    pending: list[int]

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        self.maxschedchunk = 1

    def schedule(self) -> None:
        nodes = self.nodes
        first = self.collection is None and self.collection_is_completed
        if not first or not self._check_nodes_have_same_collection():
            super().schedule()
            return
        collection = next(iter(self.node2collection.values()))
        if len(collection) < 2 * len(nodes):
            super().schedule()  # xdist's round-robin for a handful of tests
            return
        self.collection = collection
        self.pending[:] = range(len(collection))
        for node in nodes:
            head, tail = self.pending.pop(0), self.pending.pop()
            self.node2pending[node].extend((head, tail))
            node.send_runtest_some([head, tail])


def make_scheduler(config: pytest.Config, log: Any) -> LongFirstScheduling | None:
    """The scheduler for ``--dist load`` (what ``-n N`` means); None leaves the others
    (``--dist loadfile``, ``worksteal``, ...) to xdist."""
    if config.getoption("dist") != "load":
        return None
    return LongFirstScheduling(config, log)
