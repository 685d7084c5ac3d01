"""The deployment files and the operator docs agree with the code.

- ``railway.toml`` / ``railway.daemon.toml`` start (and pre-deploy) real subcommands,
  and the web's health check path is served by the real app;
- every environment variable the code reads is in ``docs/configuration.md``'s table,
  with the default and meaning of ``jobsys.config.VARIABLES``, and every variable in
  that table is really read somewhere (no stale docs);
- every CLI subcommand is documented, and every ``jobsys.pyz ...`` command line in the
  docs and the deploy examples parses with the real parser;
- the systemd units and the supervisor example parse as INI, start real subcommands and
  give the daemon time to shut down gracefully.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import importlib
import inspect
import io
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobsys import config
from jobsys.cli import build_parser
from jobsys.executor import Executor

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
DEPLOY = DOCS / "deploy"
CONFIG_DOC = DOCS / "configuration.md"
RAILWAY_FILES = ("railway.toml", "railway.daemon.toml")
UNITS = ("jobsys-web.service", "jobsys-daemon.service")

#: Variables jobsys relies on that a library reads, and where that library reads them.
LIBRARY_VARIABLES = {"FORWARDED_ALLOW_IPS": "uvicorn.config"}

#: Variables of the second table in configuration.md: who reads them, checked below.
LAUNCHER_VARIABLES = ("SHIV_ROOT", "PYTHON")


# -- the CLI --------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Every runnable command path: ``("web",)``, ``("cron", "next")``, ..."""
    for name, sub in _subparsers(parser).items():
        path = (*prefix, name)
        if _subparsers(sub):
            yield from _commands(sub, path)
        else:
            yield path


COMMANDS = sorted(_commands(build_parser()))


def _parse(args: list[str]) -> argparse.Namespace:
    """Parse like ``jobsys`` does; a usage error fails the test with argparse's message."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_parser().parse_args(args)
        except SystemExit as exc:
            if exc.code == 0:  # --help, --version
                return argparse.Namespace()
            raise AssertionError(f"`jobsys {shlex.join(args)}`: {err.getvalue().strip()}") from exc


def _command_path(args: list[str]) -> tuple[str, ...]:
    """The subcommand path ``args`` selects (options and operands dropped)."""
    path: tuple[str, ...] = ()
    parser = build_parser()
    for word in args:
        subs = _subparsers(parser)
        if not subs:
            break
        if word in subs:
            path = (*path, word)
            parser = subs[word]
    return path


#: ``./jobsys.pyz ...`` or ``/opt/jobsys/jobsys.pyz ...`` (``-o myapp.pyz`` is not a command).
_INVOCATION = re.compile(r"(?<![\w.-])(?:\.|/[\w./-]*)/(?:jobsys|myapp)\.pyz(?=[ \t])([^\n`]*)")
_OPERATOR = re.compile(r"[();<>|&]+")


def _words(rest: str) -> list[str]:
    """Shell words up to the first operator or redirection (``#`` starts a comment)."""
    # If quotes do not balance, the line ends inside an enclosing string (sh -c '...',
    # a TOML string): cut it at its last quotes until they do.
    cuts = [i for i, char in enumerate(rest) if char in "'\""]
    for text in [rest, *(rest[:i] for i in reversed(cuts))]:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            tokens = list(lexer)
        except ValueError:
            continue
        words: list[str] = []
        for token in tokens:
            if _OPERATOR.fullmatch(token):
                break
            words.append(token)
        return words
    raise AssertionError(f"cannot split {rest!r}")


def _invocations(text: str) -> list[list[str]]:
    """The arguments of every ``jobsys.pyz`` (or ``myapp.pyz``) command line in ``text``
    (Markdown code spans end at the backtick)."""
    return [words for m in _INVOCATION.finditer(text) if (words := _words(m.group(1)))]


# -- (a) Railway ------------------------------------------------------------------------
def _railway(name: str) -> dict[str, Any]:
    with (ROOT / name).open("rb") as handle:
        return tomllib.load(handle)


def _railway_commands(name: str) -> list[str]:
    deploy = _railway(name)["deploy"]
    pre = deploy.get("preDeployCommand", [])
    return [deploy["startCommand"], *([pre] if isinstance(pre, str) else pre)]


@pytest.mark.parametrize("name", RAILWAY_FILES)
def test_railway_builds_with_build_sh_and_restarts_on_failure(name: str) -> None:
    data = _railway(name)
    assert data["build"]["buildCommand"].split()[0] == "./build.sh"
    assert (ROOT / "build.sh").is_file()
    assert data["deploy"]["restartPolicyType"] == "ON_FAILURE"
    assert data["deploy"]["preDeployCommand"], "migrations run once per deploy"


@pytest.mark.parametrize("name", RAILWAY_FILES)
def test_railway_commands_name_real_subcommands(name: str) -> None:
    for command in _railway_commands(name):
        argv = shlex.split(command)
        assert argv[0] == "./jobsys.pyz", command
        _parse(argv[1:])
        assert _command_path(argv[1:]) in COMMANDS, command
    start = shlex.split(_railway(name)["deploy"]["startCommand"])
    assert start[1] == ("web" if name == "railway.toml" else "daemon")
    pre = _railway(name)["deploy"]["preDeployCommand"]
    assert [shlex.split(c)[1:] for c in ([pre] if isinstance(pre, str) else pre)] == [["migrate"]]


@pytest.mark.parametrize(
    "path",
    sorted(
        {_command_path(shlex.split(c)[1:]) for n in RAILWAY_FILES for c in _railway_commands(n)}
    ),
    ids=" ".join,
)
def test_railway_subcommand_help_runs(path: tuple[str, ...]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobsys", *path, "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"jobsys {' '.join(path)}" in done.stdout


def test_web_health_check_path_is_served(sqlite_url: str) -> None:
    from jobsys.clock import SystemClock
    from jobsys.store.db import make_engine
    from jobsys.web.app import create_app
    from tests.web_helpers import TestClient, make_app

    deploy = _railway("railway.toml")["deploy"]
    assert deploy["healthcheckPath"] == "/healthz"
    assert "healthcheckPath" not in _railway("railway.daemon.toml")["deploy"]
    engine = make_engine(sqlite_url)
    try:
        settings = config.Settings(database_url=sqlite_url, secret_key="k" * 32, env="production")
        web = create_app(settings=settings, app=make_app(), engine=engine, clock=SystemClock())
        with TestClient(web) as client:  # no credentials: the check is public
            response = client.get(deploy["healthcheckPath"])
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
    finally:
        engine.dispose()


def _stop_budget_s() -> float:
    """What a graceful daemon stop can take: the shutdown grace, then the kill grace."""
    grace_ms = config.Settings().shutdown_grace_ms
    kill_grace = inspect.signature(Executor).parameters["kill_grace_s"].default
    return grace_ms / 1000 + float(kill_grace)


def test_railway_daemon_drains_longer_than_its_shutdown_grace() -> None:
    assert _railway("railway.daemon.toml")["deploy"]["drainingSeconds"] > _stop_budget_s()


# -- (b) environment variables ------------------------------------------------------
_READS = (
    re.compile(r"""environ\.get\(\s*["']([A-Z][A-Z0-9_]+)["']"""),
    re.compile(r"""environ\[\s*["']([A-Z][A-Z0-9_]+)["']\s*\](?!\s*=[^=])"""),
    re.compile(r"""\b_\w+\(\s*environ\s*,\s*["']([A-Z][A-Z0-9_]+)["']"""),
    re.compile(r"""getenv\(\s*["']([A-Z][A-Z0-9_]+)["']"""),
    re.compile(r"""["']([A-Z][A-Z0-9_]+)["']\s+in\s+(?:os\.)?environ\b"""),
)


def _read_in(source: str) -> set[str]:
    return {name for pattern in _READS for name in pattern.findall(source)}


def _variables_read_by_code() -> set[str]:
    names: set[str] = set()
    for path in sorted((ROOT / "jobsys").rglob("*.py")):
        names |= _read_in(path.read_text(encoding="utf-8"))
    return names


def _doc_table(heading: str) -> dict[str, list[str]]:
    """The rows of the first table after ``heading`` in configuration.md: name -> cells."""
    text = CONFIG_DOC.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    rows: dict[str, list[str]] = {}
    for line in text[start:].splitlines()[2:]:
        if line.startswith("## "):
            break
        match = re.match(r"\|\s*`([A-Z][A-Z0-9_]+)`\s*\|(.*)\|\s*$", line)
        if match:
            rows[match.group(1)] = [c.strip() for c in match.group(2).split("|")]
        elif rows and not line.startswith("|"):
            break
    assert rows, f"no table under {heading!r} in {CONFIG_DOC}"
    return rows


MAIN_TABLE = "## Every variable"
LAUNCHER_TABLE = "## Read by the artifact and the build"


def test_the_scan_finds_the_known_reads() -> None:
    found = _variables_read_by_code()
    assert {"DATABASE_URL", "SECRET_KEY", "SCHEDULE_DAEMON_ENABLED", "PORT"} <= found
    assert _read_in('x = os.environ["A_B"]\nos.environ["C_D"] = "1"\n') == {"A_B"}
    assert _read_in('if "E_F" in os.environ: ...\nos.getenv("G_H")') == {"E_F", "G_H"}


def test_every_variable_read_is_documented() -> None:
    documented = set(_doc_table(MAIN_TABLE))
    required = _variables_read_by_code() | set(config.VARIABLES) | set(LIBRARY_VARIABLES)
    missing = sorted(required - documented)
    assert not missing, f"add to the table of {CONFIG_DOC.name}: {missing}"


def test_every_documented_variable_is_read() -> None:
    read = _variables_read_by_code() | set(config.VARIABLES)
    for name, module in LIBRARY_VARIABLES.items():
        source = inspect.getsource(importlib.import_module(module))
        if name in source:
            read.add(name)
    stale = sorted(set(_doc_table(MAIN_TABLE)) - read)
    assert not stale, f"documented in {CONFIG_DOC.name} but read nowhere: {stale}"


def default_cell(default: str) -> str:
    """How configuration.md shows a default of ``VARIABLES`` (a literal in backticks)."""
    return f"`{default}`" if re.fullmatch(r"[^\s()`|]+", default) else default


def expected_rows() -> str:
    """The table rows configuration.md must carry for ``VARIABLES`` (to paste)."""
    return "\n".join(
        f"| `{name}` | {default_cell(default)} | {meaning} |"
        for name, (default, meaning) in config.VARIABLES.items()
    )


def test_documented_defaults_and_meanings_match_config() -> None:
    rows = _doc_table(MAIN_TABLE)
    wrong = [
        name
        for name, (default, meaning) in config.VARIABLES.items()
        if rows.get(name, ["", ""])[:2] != [default_cell(default), meaning]
    ]
    assert not wrong, f"rows out of date: {wrong}; expected rows:\n{expected_rows()}"
    assert list(rows)[: len(config.VARIABLES)] == list(config.VARIABLES), "keep VARIABLES' order"


def test_launcher_variables_are_read_where_the_doc_says() -> None:
    assert set(_doc_table(LAUNCHER_TABLE)) == set(LAUNCHER_VARIABLES)
    assert "${PYTHON" in (ROOT / "build.sh").read_text(encoding="utf-8")
    # That the built zipapp honours SHIV_ROOT is checked on a real build in
    # tests/system/test_artifact.py.


# -- (c) commands in the docs -------------------------------------------------------
def _doc_texts() -> dict[str, str]:
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md"))}
    for path in sorted(DEPLOY.iterdir()):
        texts[f"deploy/{path.name}"] = path.read_text(encoding="utf-8")
    for name in RAILWAY_FILES:
        texts[name] = (ROOT / name).read_text(encoding="utf-8")
    return texts


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_subcommand_is_documented_for_operators(path: tuple[str, ...]) -> None:
    text = (DOCS / "operations.md").read_text(encoding="utf-8") + (
        DOCS / "deployment.md"
    ).read_text(encoding="utf-8")
    pattern = rf"(?:jobsys(?:\.pyz)?\s+|`){re.escape(' '.join(path))}\b"
    assert re.search(pattern, text), (
        f"`{' '.join(path)}` is in neither operations.md nor deployment.md"
    )


def test_every_documented_command_line_parses() -> None:
    seen = 0
    for name, text in _doc_texts().items():
        for args in _invocations(text):
            try:
                _parse(args)
            except AssertionError as exc:
                raise AssertionError(f"{name}: {exc}") from None
            seen += 1
    assert seen > 40


def test_docs_index_links_every_page() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "README.md":
            assert f"]({page.name})" in index, page.name


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page."""
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    headings = re.findall(r"^#+ (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_relative_links_in_docs_resolve() -> None:
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#:\s]*)(?:#([^)\s]+))?\)", text):
            path = page.parent / target if target else page
            assert path.exists(), f"{page.name}: broken link {target}"
            if anchor:
                assert anchor in _anchors(path), f"{page.name}: no #{anchor} in {path.name}"


def test_documented_metrics_are_the_served_ones(sqlite_url: str) -> None:
    """The metrics table of operations.md lists exactly what ``GET /metrics`` serves."""
    from jobsys import metrics
    from jobsys.clock import SystemClock
    from jobsys.store.db import make_engine

    engine = make_engine(sqlite_url)
    try:
        text = metrics.exposition(engine, SystemClock().now())
    finally:
        engine.dispose()
    served = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    doc = (DOCS / "operations.md").read_text(encoding="utf-8")
    section = doc[doc.index("\n### Metrics\n") + 1 :].split("\n### ")[0]
    documented: dict[str, str] = {}
    for first, kind in re.findall(r"^\| (`jobsys_[^|]+)\| (\w+) \|", section, re.M):
        for name in re.findall(r"`(jobsys_\w+)", first):
            documented[name] = kind
    assert documented == served


def test_documented_alert_kinds_are_the_real_ones() -> None:
    from jobsys import alerts

    doc = (DOCS / "operations.md").read_text(encoding="utf-8")
    section = doc[doc.index("\n### Alert webhooks\n") + 1 :].split("\n## ")[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", section, re.M)
    assert sorted(documented) == sorted(alerts.KINDS)


# -- (d) systemd and supervisor -----------------------------------------------------
def _ini(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    return parser


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)\s*(s|sec|min)?", value.strip())
    assert match, f"unexpected duration {value!r}"
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_units_parse_and_start_real_subcommands(unit: str) -> None:
    ini = _ini(DEPLOY / unit)
    assert ini.sections() == ["Unit", "Service", "Install"]
    service = ini["Service"]
    for key in ("ExecStart", "ExecStartPre"):
        if key in service:
            argv = shlex.split(service[key].lstrip("-@:+!"))
            assert argv[0].endswith("/jobsys.pyz"), service[key]
            _parse(argv[1:])
            assert _command_path(argv[1:]) in COMMANDS
    start = shlex.split(service["ExecStart"])
    assert start[1] == unit.removeprefix("jobsys-").removesuffix(".service")
    assert service["EnvironmentFile"] == "/etc/jobsys/jobsys.env"
    assert service["User"] == "jobsys"
    assert service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "on-failure"
    assert ini["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_web_migrates_before_it_starts() -> None:
    service = _ini(DEPLOY / "jobsys-web.service")["Service"]
    assert shlex.split(service["ExecStartPre"])[1:] == ["migrate"]
    assert _seconds(service["TimeoutStopSec"]) > 10  # uvicorn's graceful shutdown bound


def test_systemd_daemon_stops_its_own_children_in_time() -> None:
    ini = _ini(DEPLOY / "jobsys-daemon.service")
    service = ini["Service"]
    assert service["KillMode"] == "mixed"
    assert _seconds(service["TimeoutStopSec"]) > _stop_budget_s()
    assert "jobsys-web.service" in ini["Unit"]["After"].split()
    assert "MemoryDenyWriteExecute" not in service
    assert "SystemCallFilter" not in service
    assert "AF_UNIX" in service["RestrictAddressFamilies"].split()  # the signal socketpair


def test_supervisor_programs() -> None:
    ini = _ini(DEPLOY / "supervisord.conf")
    programs = {
        s.removeprefix("program:"): ini[s] for s in ini.sections() if s.startswith("program:")
    }
    assert set(programs) == {"jobsys-web", "jobsys-daemon"}
    for name, program in programs.items():
        (args,) = _invocations(program["command"])
        _parse(args)
        assert args[0] == name.removeprefix("jobsys-")
        assert program["stopsignal"] == "TERM"
        assert program["stopasgroup"] == "false"
        assert program["autorestart"] == "unexpected" and program["exitcodes"] == "0"
        if "exec " in program["command"]:
            assert re.search(r"exec \S*jobsys\.pyz", program["command"]), (
                "signals must reach jobsys"
            )
    assert float(programs["jobsys-daemon"]["stopwaitsecs"]) > _stop_budget_s()


def test_environment_example_sets_only_known_variables() -> None:
    known = set(config.VARIABLES) | set(LIBRARY_VARIABLES)
    names = re.findall(r"^#?([A-Z][A-Z0-9_]+)=", (DEPLOY / "jobsys.env.example").read_text(), re.M)
    assert names and set(names) <= known, sorted(set(names) - known)
