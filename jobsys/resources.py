"""Where the non-Python files (``migrations/``, ``ui/``) are.

In a wheel or the zipapp they ship inside the package as ``jobsys/_migrations`` and
``jobsys/_ui`` (see ``pyproject.toml``); in a source checkout they are the top-level
folders beside ``jobsys/``. shiv extracts the zipapp to disk, so both are real paths.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Return the folder ``name`` (``"migrations"`` or ``"ui"``)."""
    packaged = _PACKAGE_DIR / f"_{name}"
    if packaged.is_dir():
        return packaged
    checkout = _PACKAGE_DIR.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"jobsys resource folder {name!r} not found beside {_PACKAGE_DIR}")
