"""How pytest-xdist hands the tests to its workers: one at a time, long tests first, a
module's tests kept on one worker.

xdist's default (``--dist load``) sends each worker a chunk of consecutive tests at the
start (a quarter of its share: ~85 tests with 1,364 tests on 4 workers) and refills in
chunks. With the long and slow tests sorted first (tests/conftest.py), the first chunk
put every long test on the same worker, one after the other: that worker finished
minutes after the others. Here each worker holds only the test it runs and the next one
(xdist runs a test once it knows the next) and gets another each time one finishes, so
a worker busy with a long test takes no more work meanwhile.

At the start each worker gets the first pending test (the long ones, one per worker,
start together) and, as its "next", a test from the end of the order (a quick one), so
no long test waits behind another on a worker that happened to get two.

Then a worker gets the next test of the module it is in, if any is left; otherwise the
first test of a module no other worker is in; otherwise (the end of the run) the first
test left. Handing out single tests in order would spread a module over every worker,
and each would set up the module's fixtures (a Chromium, a web and daemon with seeded
data, the zipapp build) again.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScheduling


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


class LongFirstScheduling(LoadScheduling):  # type: ignore[misc]  # xdist has no type hints
    collection: list[str] | None
    pending: list[int]
    node2pending: dict[Any, list[int]]

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        self.maxschedchunk = 1
        self._modules: list[str] = []
        self._module_of_node: dict[Any, str] = {}  # the module of the last test sent

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
        self._modules = [_module(nodeid) for nodeid in collection]
        self.pending[:] = range(len(collection))
        for node in nodes:
            head, tail = self.pending.pop(0), self.pending.pop()
            self._send(node, [head, tail])

    def check_schedule(self, node: Any, duration: float = 0) -> None:
        if node.shutting_down:
            return
        if not self.pending:
            node.shutdown()
            return
        if len(self.node2pending[node]) >= 2:
            return
        self._send(node, [self.pending.pop(self._pick(node))])

    def _pick(self, node: Any) -> int:
        """The position in ``pending`` of the test to send ``node``."""
        modules = [self._modules[i] for i in self.pending]
        own = self._module_of_node.get(node)
        if own in modules:
            return modules.index(own)
        taken = {
            self._module_of_node[n]
            for n, held in self.node2pending.items()
            if n is not node and held and n in self._module_of_node
        }
        for position, module in enumerate(modules):
            if module not in taken:
                return position
        return 0

    def _send(self, node: Any, indices: list[int]) -> None:
        self.node2pending[node].extend(indices)
        node.send_runtest_some(indices)
        self._module_of_node[node] = self._modules[indices[-1]]


def make_scheduler(config: pytest.Config, log: Any) -> LongFirstScheduling | None:
    """The scheduler for ``--dist load`` (what ``-n N`` means); None leaves the others
    (``--dist loadfile``, ``worksteal``, ...) to xdist."""
    if config.getoption("dist") != "load":
        return None
    return LongFirstScheduling(config, log)
