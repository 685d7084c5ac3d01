"""``GET /metrics``: the Prometheus text format (``jobsys.metrics``), for any
authenticated caller (API bearer token or browser session; 401 otherwise).

Outside ``/api``, so errors are plain text; the answer is never cached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobsys import metrics
from jobsys.store.db import database_errors
from jobsys.web.auth import authenticate
from jobsys.web.context import WebContext

PATH = "/metrics"


def metrics_response(ctx: WebContext, request: Request) -> Response:
    authenticate(ctx, request)
    with database_errors(ctx.engine, "cannot read metrics from"):
        text = metrics.exposition(ctx.engine, ctx.clock.now())
    return Response(text, media_type=metrics.CONTENT_TYPE, headers={"Cache-Control": "no-store"})


def metrics_route(ctx: WebContext) -> Route:
    async def endpoint(request: Request) -> Response:
        return await run_in_threadpool(metrics_response, ctx, request)

    handler: Callable[[Request], Awaitable[Response]] = endpoint
    return Route(PATH, handler, methods=["GET"], name="metrics")
