"""The web application factory: explicit routes, middleware and error handlers.

    /healthz                 public liveness, ``{"status": "ok"}`` and nothing else
    /api/admin/...           the JSON API (``jobsys.web.api``), the event stream
                             (``jobsys.web.events``) and ``openapi.json``
    /admin, /admin/...       the UI (``jobsys.web.pages``)
    /metrics                 Prometheus text format (``jobsys.web.prometheus``), authenticated

The web never executes a job: it writes batches and wakes the daemons.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobsys.clock import Clock
from jobsys.config import Settings
from jobsys.definitions import App
from jobsys.web.api import PREFIX, api_routes
from jobsys.web.auth import authenticate
from jobsys.web.context import EventTiming, StreamCounter, WebContext
from jobsys.web.errors import EXCEPTION_HANDLERS
from jobsys.web.events import events_endpoint
from jobsys.web.openapi import build_openapi
from jobsys.web.pages import page_routes
from jobsys.web.prometheus import metrics_route
from jobsys.web.routing import starlette_routes

#: Pages may load only what the server serves: no CDN, no inline scripts, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'"
)


class SecurityHeaders:
    """Adds the headers every response should carry; API answers are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        extra = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"x-frame-options", b"DENY"),
        ]
        if path.startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))
        elif path.startswith("/admin"):
            extra.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    *,
    settings: Settings,
    app: App,
    engine: Engine,
    clock: Clock,
    stopping: threading.Event | None = None,
    events: EventTiming | None = None,
    secret: str | None = None,
) -> Starlette:
    """The Starlette application of ``jobsys web``.

    ``stopping`` is set by the server when it shuts down (event streams then end);
    ``secret`` defaults to ``settings.session_secret()`` (``ConfigError`` in production
    without ``SECRET_KEY``; random per process in development).
    """
    ctx = WebContext(
        settings=settings,
        app=app,
        engine=engine,
        clock=clock,
        secret=secret or settings.session_secret(),
        stopping=stopping or threading.Event(),
        events=events or EventTiming(),
        streams=StreamCounter(),
    )
    specs = api_routes()
    spec_doc = build_openapi(specs)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})

    async def openapi(request: Request) -> Response:
        await run_in_threadpool(authenticate, ctx, request)
        return JSONResponse(spec_doc)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route(f"{PREFIX}/openapi.json", openapi, methods=["GET"]),
        Route(f"{PREFIX}/events", events_endpoint(ctx), methods=["GET"], name="events"),
        metrics_route(ctx),
        *starlette_routes(ctx, specs),
        *page_routes(),
    ]
    web = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    state: Any = web.state
    state.ctx = ctx
    return web
