"""``GET /metrics``: the Prometheus exposition (``jobsys.metrics``), for any
authenticated caller (API bearer token or browser session; 401 otherwise). The format
follows the Accept header (prometheus_client's negotiation): text 0.0.4 unless the
scraper asks for OpenMetrics or text 1.0.0.

Outside ``/api``, so errors are plain text; the answer is never cached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobsys import metrics
from jobsys.store.db import database_errors
from jobsys.web.auth import authenticate
from jobsys.web.context import WebContext

PATH = "/metrics"


def metrics_response(ctx: WebContext, registry: CollectorRegistry, request: Request) -> Response:
    authenticate(ctx, request)
    with database_errors(ctx.engine, "cannot read metrics from"):
        body, content_type = metrics.encode(registry, request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


def metrics_route(ctx: WebContext) -> Route:
    registry = metrics.registry(ctx.engine, ctx.clock)  # one per app, read at each scrape

    async def endpoint(request: Request) -> Response:
        return await run_in_threadpool(metrics_response, ctx, registry, request)

    handler: Callable[[Request], Awaitable[Response]] = endpoint
    return Route(PATH, handler, methods=["GET"], name="metrics")
