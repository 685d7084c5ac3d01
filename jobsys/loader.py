"""Load the user's ``App`` from ``JOBSYS_APP`` / ``--app``.

Accepted forms: ``pkg.mod`` (its ``app`` attribute), ``pkg.mod:attr``, or a path to a
``.py`` file (optionally ``path.py:attr``). Unset means the built-in demo app. Every
failure becomes one ``DefinitionError`` that names the application and the cause.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from jobsys.definitions import App
from jobsys.errors import DefinitionError, JobsysError

DEMO_APP = "jobsys.demo:app"


def _split(spec: str) -> tuple[str, str]:
    # A Windows-style "C:\\..." is not a concern here; the last colon separates the attr.
    if ":" in spec and not spec.endswith(":"):
        target, attr = spec.rsplit(":", 1)
        if attr.isidentifier():
            return target, attr
    return spec, "app"


def _import_file(path: Path) -> object:
    if not path.is_file():
        raise DefinitionError(f"application file {str(path)!r} does not exist")
    module_name = f"jobsys_user_app_{abs(hash(str(path.resolve())))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise DefinitionError(f"cannot load application file {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    # The file's folder goes on sys.path so the file can import its siblings.
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path[:0] = [folder]
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def load_app(spec: str | None) -> App:
    """Import, check and return the application named by ``spec`` (None: the demo)."""
    spec = (spec or DEMO_APP).strip()
    target, attr = _split(spec)
    try:
        if target.endswith(".py") or "/" in target or "\\" in target:
            module = _import_file(Path(target))
        else:
            module = importlib.import_module(target)
    except JobsysError as exc:
        raise DefinitionError(f"application {spec!r}: {exc}") from None
    except ModuleNotFoundError as exc:
        raise DefinitionError(f"application {spec!r}: cannot import: {exc}") from None
    except SystemExit as exc:
        raise DefinitionError(f"application {spec!r}: exited while loading ({exc.code})") from None
    except Exception as exc:
        raise DefinitionError(
            f"application {spec!r}: error while loading: {type(exc).__name__}: {exc}"
        ) from None
    app = getattr(module, attr, None)
    if app is None:
        raise DefinitionError(f"application {spec!r}: module has no attribute {attr!r}")
    if not isinstance(app, App):
        raise DefinitionError(
            f"application {spec!r}: {attr!r} is a {type(app).__name__}, not a jobsys.App"
        )
    try:
        return app.validate()
    except JobsysError as exc:
        raise DefinitionError(f"application {spec!r}: {exc}") from None
