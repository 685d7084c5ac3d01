"""The OpenAPI document against the answers it missed (issue 12, item 16), one by one;
tests/integration/test_openapi_schemathesis.py looks for more of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from jobsys.web.api import api_routes
from jobsys.web.openapi import build_openapi
from tests.web_helpers import API, Web, web_harness


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch) as harness:
        yield harness


def test_every_route_documents_the_errors_its_kind_can_give() -> None:
    doc = build_openapi(api_routes())
    for route in api_routes():
        documented = set(doc["paths"][route.path][route.method.lower()]["responses"])
        assert "503" in documented, route.path
        if route.query:
            assert "400" in documented, (route.method, route.path)
        if route.reads_body:
            assert {"400", "413", "415", "422"} <= documented, (route.method, route.path)


def test_a_wrong_method_names_every_method_of_the_path(web: Web) -> None:
    response = web.client.delete(f"{API}/schedules/nightly", headers=web.admin)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT"}
    assert response.json()["error"]["code"] == "method_not_allowed"
    # both methods still reach their handlers
    assert web.get("/schedules/nightly").json()["id"] == "nightly"
    assert web.put("/schedules/nightly", {"enabled": True}).json()["enabled"] is True
    assert web.client.head(f"{API}/schedules/nightly", headers=web.admin).status_code == 200
    # (GET /jobs/run-all now reads the job named "run-all": GET /jobs/{name}, a 404)
    response = web.client.get(f"{API}/jobs/run-group/etl", headers=web.admin)
    assert (response.status_code, response.headers["allow"]) == (405, "POST")


def test_an_instant_out_of_range_after_its_offset_is_a_422(web: Web) -> None:
    for after in ("0001-01-01T00:00:00+08:33", "9999-12-31T23:59:59-14:00"):
        response = web.post("/schedules/preview-runs", {"cron": "0 2 * * *", "after": after})
        assert response.status_code == 422, (after, response.text)
        assert "'after'" in response.json()["error"]["message"]
