from pathlib import Path

import pytest

from jobsys.errors import DefinitionError
from jobsys.loader import load_app

APPS = Path(__file__).resolve().parents[1] / "apps"


def test_loads_a_py_file_and_attr(tmp_path: Path) -> None:
    f = tmp_path / "myjobs.py"
    f.write_text(
        "from jobsys import App\n"
        "jobs = App()\n"
        "@jobs.job(group='g')\n"
        "def hello(ctx): ctx.log.info('hi')\n"
    )
    app = load_app(f"{f}:jobs")
    assert list(app.jobs) == ["hello"]


def test_cycle_is_reported() -> None:
    with pytest.raises(DefinitionError, match=r"dependency cycle: a -> b -> c -> a"):
        load_app(str(APPS / "cycle_app.py"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz", "cannot import"),
        ("/nonexistent/file.py", "does not exist"),
        ("jobsys.config:nothing_here", "no attribute 'nothing_here'"),
        ("jobsys.config:Settings", "not a jobsys.App"),
    ],
)
def test_load_errors(spec: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        load_app(spec)


def test_import_time_errors_are_wrapped(tmp_path: Path) -> None:
    f = tmp_path / "broken.py"
    f.write_text("raise ValueError('boom')\n")
    with pytest.raises(DefinitionError, match="ValueError: boom"):
        load_app(str(f))
