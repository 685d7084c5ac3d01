"""The admin UI: static files from ``ui/`` under ``/admin/static`` and ``ui/index.html``
for ``/admin``, ``/admin/login`` and any other ``/admin/...`` path (a single-page app
routes in the browser). The pages themselves are public; the API they call is not.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from jobsys.resources import resource_dir

PLACEHOLDER = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>jobsys admin</title></head>
<body>
<main>
<h1>jobsys admin</h1>
<p>The admin UI is not installed in this build (no <code>ui/index.html</code>).
The JSON API is at <a href="/api/admin/openapi.json">/api/admin/openapi.json</a>.</p>
</main>
</body>
</html>
"""


def ui_dir() -> Path | None:
    try:
        return resource_dir("ui")
    except FileNotFoundError:
        return None


def page_routes() -> list[BaseRoute]:
    folder = ui_dir()
    index = folder / "index.html" if folder is not None else None

    async def spa(request: Request) -> Response:
        if index is not None and index.is_file():
            return FileResponse(
                index, media_type="text/html", headers={"Cache-Control": "no-cache"}
            )
        return HTMLResponse(PLACEHOLDER, headers={"Cache-Control": "no-cache"})

    async def home(request: Request) -> Response:
        return RedirectResponse("/admin", status_code=307)

    routes: list[BaseRoute] = [Route("/", home, methods=["GET"])]
    if folder is not None:
        routes.append(Mount("/admin/static", app=StaticFiles(directory=folder), name="ui"))
    routes += [
        Route("/admin", spa, methods=["GET"], name="admin"),
        Route("/admin/{path:path}", spa, methods=["GET"], name="admin_page"),
    ]
    return routes
