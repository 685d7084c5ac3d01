"""API routes as data: each ``ApiRoute`` names its method, path, handler, who may call it
and what it takes and returns. ``starlette_routes`` turns them into Starlette ``Route``s
(one per path) and ``jobsys.web.openapi`` describes the same list, so the two cannot
drift apart.

Handlers are plain ``def`` functions ``handler(ctx, call) -> Response``: the endpoint
made here reads the (size-limited) body asynchronously, then runs authentication, the
CSRF and role checks, body parsing and the handler in the thread pool, where database
work belongs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from jobsys.web.auth import Principal, authenticate, check_csrf, client_ip, require_admin
from jobsys.web.context import WebContext
from jobsys.web.errors import ApiError, bad_request
from jobsys.web.inputs import MAX_BODY_BYTES, Query, parse_json_body


class Access(StrEnum):
    PUBLIC = "public"  # no authentication
    READ = "read"  # any authenticated account (viewer or admin)
    ACT = "act"  # the admin role


@dataclass(frozen=True)
class Call:
    """One request, as a handler sees it."""

    request: Request
    principal: Principal | None
    body: dict[str, Any]

    @property
    def user(self) -> Principal:
        assert self.principal is not None, "only public routes have no principal"
        return self.principal

    @property
    def actor(self) -> str:
        return self.user.email

    @property
    def ip(self) -> str | None:
        return client_ip(self.request)

    @property
    def query(self) -> Query:
        return Query(self.request.query_params)

    def path(self, name: str) -> str:
        value: str = self.request.path_params[name]
        return value


Handler = Callable[[WebContext, Call], Response]


@dataclass(frozen=True)
class Param:
    """A query parameter, for the OpenAPI description."""

    name: str
    schema: dict[str, Any]
    description: str = ""


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str
    handler: Handler
    access: Access
    summary: str
    tag: str
    status: int = 200
    request_schema: str | None = None  # a name in openapi.SCHEMAS
    response_schema: str | None = None
    query: tuple[Param, ...] = ()
    errors: tuple[int, ...] = field(default=())

    @property
    def reads_body(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")


async def read_body(request: Request) -> bytes:
    """The request body, refusing more than ``MAX_BODY_BYTES`` (413)."""
    too_large = ApiError(
        413, "payload_too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        raise bad_request("the client disconnected while sending the body") from None
    return b"".join(chunks)


def check_json_content_type(request: Request, raw: bytes) -> None:
    """A body must be declared ``application/json`` (415 otherwise).

    This is what stops login CSRF: an HTML form can only send ``text/plain``,
    ``application/x-www-form-urlencoded`` or ``multipart/form-data``, never JSON, and a
    cross-site ``fetch`` that declares JSON needs a CORS preflight this server never
    grants. An empty body (``curl -X POST`` with a token) may come without a type.
    """
    declared = request.headers.get("content-type")
    if declared is None and not raw.strip():
        return
    media_type = (declared or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        shown = media_type[:100] or "none"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the request body as JSON with 'Content-Type: application/json' (got {shown!r})",
        )


def handle_sync(ctx: WebContext, spec: ApiRoute, request: Request, raw: bytes) -> Response:
    """Authenticate, check CSRF and role, parse the body, run the handler (in a thread)."""
    principal: Principal | None = None
    if spec.access is not Access.PUBLIC:
        principal = authenticate(ctx, request)
        check_csrf(request, principal)
        if spec.access is Access.ACT:
            require_admin(principal)
    body = parse_json_body(raw) if spec.reads_body else {}
    return spec.handler(ctx, Call(request, principal, body))


def starlette_routes(ctx: WebContext, specs: Sequence[ApiRoute]) -> list[Route]:
    """One ``Route`` per path, choosing the handler by method. (A ``Route`` per method
    answered a wrong method with a 405 whose ``Allow`` named the first route's method
    only: ``GET`` for ``/schedules/{id}``, which also takes ``PUT``.)"""
    by_path: dict[str, dict[str, ApiRoute]] = {}
    for spec in specs:
        by_path.setdefault(spec.path, {})[spec.method] = spec
    return [_path_route(ctx, path, methods) for path, methods in by_path.items()]


def _path_route(ctx: WebContext, path: str, methods: dict[str, ApiRoute]) -> Route:
    async def endpoint(request: Request) -> Response:
        spec = methods["GET" if request.method == "HEAD" else request.method]
        raw = await read_body(request) if spec.reads_body else b""
        if spec.reads_body:
            check_json_content_type(request, raw)
        return await run_in_threadpool(handle_sync, ctx, spec, request, raw)

    name = "_".join(spec.handler.__name__.strip("_") for spec in methods.values())
    endpoint.__name__ = name
    return Route(path, endpoint, methods=list(methods), name=name)
