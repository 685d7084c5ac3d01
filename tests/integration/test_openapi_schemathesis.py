"""The OpenAPI document matches what the API answers (issue 12, item 16): schemathesis
drives every operation of ``GET /api/admin/openapi.json`` through the real Starlette app
(in process, on a real SQLite file and on MariaDB, with an admin API token) and must
find no server error and no answer the document does not describe.

Bounded and repeatable: a fixed seed, deterministic generation, a fixed number of
examples per operation (no time budget: with one, schemathesis fuzzes until it is
spent), no stateful phase, health checks off (the database makes some operations slower
than Hypothesis likes). Only the checks that compare answers with the document run, not
the ones that judge validation policy (whether the API should have accepted a value the
schema allows). The event stream never ends, so it is left out (tests/integration/test_web_events.py
covers it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from schemathesis import engine as st_engine
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events
from sqlalchemy.engine import Engine

from tests.web_helpers import API, Web, web_harness

CHECKS = [
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
]
EXAMPLES = 50  # per operation and phase: ~30 s per backend on 2 CPUs
MAX_SECONDS = 240  # a guard: the run is bounded by EXAMPLES, not by a clock


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch) as harness:
        yield harness


def config(web: Web) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": 12,
            "suppress-health-check": ["all"],
            "headers": web.admin,
            "generation": {"max-examples": EXAMPLES, "deterministic": True, "no-shrink": True},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            "operations": [{"include-path": f"{API}/events", "enabled": False}],
        }
    )


def mismatches(recorder: Any) -> dict[str, str]:
    """Failed checks of one scenario: one example request per (operation, check, what)."""
    found: dict[str, str] = {}
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.failure_info is None:
                continue
            failure = check.failure_info.failure
            case = recorder.cases[case_id].value
            key = f"{recorder.label}: {check.name}: {failure.title}: " + " ".join(
                str(failure.message).split()
            )
            found.setdefault(
                key,
                f"{case.method} {case.formatted_path} query={case.query!r:.200} "
                f"body={case.body!r:.200}",
            )
    return found


@pytest.mark.long
def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(web: Web) -> None:
    schema = schemathesis.openapi.from_asgi(
        f"{API}/openapi.json", web.web, config=config(web), headers=web.admin
    )
    started = time.monotonic()
    failures: dict[str, str] = {}
    operations: set[str] = set()
    errors: list[str] = []
    finished: events.EngineFinished | None = None
    for event in st_engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            operations.add(event.recorder.label)
            for key, example in mismatches(event.recorder).items():
                failures.setdefault(key, example)
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            raise event.exception
        elif isinstance(event, events.EngineFinished):
            finished = event
    took = time.monotonic() - started
    assert finished is not None
    assert not errors, errors
    assert not failures, "\n".join(f"{k}\n    e.g. {v}" for k, v in sorted(failures.items()))
    assert len(operations) >= 20, operations  # every operation but the stream was tested
    assert finished.stop_reason == "completed", finished.stop_reason
    assert took < MAX_SECONDS, f"the schemathesis run took {took:.0f} s"
