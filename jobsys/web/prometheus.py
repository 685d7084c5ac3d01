"""``GET /metrics``: the Prometheus exposition (``jobsys.metrics``), for any
authenticated caller (API bearer token or browser session; 401 otherwise). The format
follows the Accept header (prometheus_client's negotiation): text 0.0.4 unless the
scraper asks for OpenMetrics or text 1.0.0.

Outside ``/api``, so errors are plain text; the answer is never cached.

While the database is down the scrape still answers 200 with what is known
(``jobsys_health_status 3``, ``jobsys_database_up 0``), so the outage shows in
Prometheus instead of as a failed scrape. Checking the caller needs the database too:
a credential this process has verified before is then accepted (until it expires),
since nothing can revoke it while the database is unreachable; any other caller gets
503 as before.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime

from prometheus_client import CollectorRegistry
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobsys import metrics
from jobsys.errors import DatabaseError
from jobsys.store.db import error_reason
from jobsys.web.auth import authenticate
from jobsys.web.context import WebContext
from jobsys.web.errors import SESSION_COOKIE

log = logging.getLogger("jobsys.web")

PATH = "/metrics"
#: Credentials remembered for scrapes during an outage (a handful of scrapers in practice).
MAX_REMEMBERED = 256

#: What an unreachable (or overloaded) database raises; anything else is a bug and stays
#: an error.
_OUTAGE = (OperationalError, InterfaceError, PoolTimeoutError)

#: When a remembered credential stops being valid (None: only on revocation).
_Expiry = datetime | None


class KnownCallers:
    """Credentials verified against the database by this process, by digest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, _Expiry] = {}

    @staticmethod
    def key(request: Request) -> str | None:
        credential = request.headers.get("authorization") or request.cookies.get(SESSION_COOKIE)
        if not credential:
            return None
        return hashlib.sha256(credential.encode("utf-8", "replace")).hexdigest()

    def remember(self, key: str, expires_at: _Expiry) -> None:
        with self._lock:
            if key not in self._known and len(self._known) >= MAX_REMEMBERED:
                self._known.pop(next(iter(self._known)))
            self._known[key] = expires_at

    def knows(self, key: str, now: datetime) -> bool:
        with self._lock:
            if key not in self._known:
                return False
            expires_at = self._known[key]
        return expires_at is None or now < expires_at


def metrics_response(
    ctx: WebContext, registry: CollectorRegistry, request: Request, known: KnownCallers
) -> Response:
    key = known.key(request)
    accept = request.headers.get("accept")
    try:
        principal = authenticate(ctx, request)
    except (DatabaseError, *_OUTAGE) as exc:
        if not _outage(exc) or key is None or not known.knows(key, ctx.clock.now()):
            raise  # 503: the caller cannot be checked
        log.warning("metrics: database unreachable; answering with health UNKNOWN")
        return _answer(*metrics.encode(metrics.unreachable_registry(), accept))
    if key is not None:
        known.remember(key, principal.expires_at)
    try:
        body, content_type = metrics.encode(registry, accept)
    except (DatabaseError, *_OUTAGE) as exc:
        if not _outage(exc):
            raise
        reason = error_reason(exc.__cause__ or exc)
        log.warning("metrics: database unreachable (%s); answering with health UNKNOWN", reason)
        body, content_type = metrics.encode(metrics.unreachable_registry(), accept)
    return _answer(body, content_type)


def _outage(exc: BaseException) -> bool:
    """``exc`` (or the driver error a ``DatabaseError`` wraps) says the database is down."""
    return isinstance(exc, _OUTAGE) or isinstance(exc.__cause__, _OUTAGE)


def _answer(body: bytes, content_type: str) -> Response:
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


def metrics_route(ctx: WebContext) -> Route:
    registry = metrics.registry(ctx.engine, ctx.clock)  # one per app, read at each scrape
    known = KnownCallers()

    async def endpoint(request: Request) -> Response:
        return await run_in_threadpool(metrics_response, ctx, registry, request, known)

    handler: Callable[[Request], Awaitable[Response]] = endpoint
    return Route(PATH, handler, methods=["GET"], name="metrics")
