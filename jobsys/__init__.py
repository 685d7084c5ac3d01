"""jobsys: a job schedule manager for Python applications.

Only the version and the public ``App`` live here; ``App`` is imported lazily so that
``import jobsys`` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from jobsys.definitions import App, JobContext

__all__ = ["App", "JobContext", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("App", "JobContext"):
        from jobsys import definitions

        return getattr(definitions, name)
    raise AttributeError(f"module 'jobsys' has no attribute {name!r}")
