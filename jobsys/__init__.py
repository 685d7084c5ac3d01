"""jobsys: a job schedule manager for Python applications.

Only the version and the public ``App`` and ``enqueue`` live here, imported lazily so
that ``import jobsys`` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from jobsys.definitions import App, JobContext
    from jobsys.enqueue import enqueue

__all__ = ["App", "JobContext", "__version__", "enqueue"]


def __getattr__(name: str) -> Any:
    if name in ("App", "JobContext"):
        from jobsys import definitions

        return getattr(definitions, name)
    if name == "enqueue":
        from jobsys.enqueue import enqueue

        return enqueue
    raise AttributeError(f"module 'jobsys' has no attribute {name!r}")
