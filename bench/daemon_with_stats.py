"""``jobsys daemon`` with database counters: what the idle-cost benchmark runs.

Usage: ``python bench/daemon_with_stats.py STATS.json`` with the daemon's usual
environment (``DATABASE_URL``, ``JOBSYS_APP``, ...). Before handing over to the normal
CLI (``jobsys.cli.main(["daemon"])``) it installs, at class level so they apply to the
engine the CLI makes:

* SQLAlchemy events: every statement the engine sends (``before_cursor_execute``,
  ``BEGIN`` on SQLite included), commits, rollbacks, pool checkouts;
* on MySQL/MariaDB, a counter on PyMySQL's ``Connection._execute_command``: every
  command the client sends is one network round trip (``COM_QUERY`` for statements,
  ``COMMIT`` and ``ROLLBACK``; ``COM_PING`` for the pool's pre-ping).

On SIGUSR1, and on exit, it writes a snapshot (counters, the statements by text, CPU
seconds from ``getrusage`` and peak RSS) to STATS.json, replacing the file atomically.
Job children forked by the daemon reset SIGUSR1 to its default and count nothing.

Use it for measurements that run no jobs (the idle cost): with this Python-level SIGUSR1
handler installed, every job run fails at start with "could not run the job: TypeError:
signal handler must be signal.SIG_IGN, signal.SIG_DFL, or a callable object" — a jobsys
bug (``runtime._reset_signals`` passes ``signal.SIG_DFL``, an enum member, to
``_signal.signal``, which only accepts its own ``_signal.SIG_DFL``), that strikes any
daemon whose application installs a handler for a signal other than SIGTERM/SIGINT.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

COUNTS: Counter[str] = Counter()
STATEMENTS: Counter[str] = Counter()
_SPACES = re.compile(r"\s+")


def _short(sql: str) -> str:
    return _SPACES.sub(" ", sql).strip()[:160]


def _on_execute(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    COUNTS["statements"] += 1
    COUNTS[f"statement:{statement.lstrip().split(None, 1)[0].upper()}"] += 1
    STATEMENTS[_short(statement)] += 1


def _on_commit(conn: Any) -> None:
    COUNTS["commits"] += 1


def _on_rollback(conn: Any) -> None:
    COUNTS["rollbacks"] += 1


def _on_checkout(dbapi_conn: Any, record: Any, proxy: Any) -> None:
    COUNTS["pool_checkouts"] += 1


def _on_connect(dbapi_conn: Any, record: Any) -> None:
    COUNTS["connects"] += 1


def _count_pymysql() -> None:
    try:
        from pymysql.connections import Connection
        from pymysql.constants import COMMAND
    except ImportError:
        return
    names = {v: k for k, v in vars(COMMAND).items() if k.startswith("COM_")}
    original = Connection._execute_command

    def counted(self: Any, command: int, sql: Any) -> Any:
        COUNTS["round_trips"] += 1
        name = names.get(command, str(command))
        if command == COMMAND.COM_QUERY:
            text = sql.decode(errors="replace") if isinstance(sql, bytes) else str(sql)
            word = text.lstrip().split(None, 1)[0].upper() if text.strip() else "?"
            COUNTS[f"round_trip:{word}"] += 1
        else:
            COUNTS[f"round_trip:{name}"] += 1
        return original(self, command, sql)

    Connection._execute_command = counted  # type: ignore[method-assign]


def snapshot() -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "pid": os.getpid(),
        "time": time.time(),
        "cpu_user_s": usage.ru_utime,
        "cpu_system_s": usage.ru_stime,
        "max_rss_kb": usage.ru_maxrss,
        "counts": dict(COUNTS),
        "statements": dict(STATEMENTS.most_common(40)),
    }


def write_snapshot(path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(snapshot(), indent=1))
    os.replace(tmp, path)


def install(path: Path) -> None:
    """Count every statement, commit, rollback and MySQL round trip of this process;
    write a snapshot to ``path`` on SIGUSR1."""
    event.listen(Engine, "before_cursor_execute", _on_execute)
    event.listen(Engine, "commit", _on_commit)
    event.listen(Engine, "rollback", _on_rollback)
    event.listen(Pool, "checkout", _on_checkout)
    event.listen(Pool, "connect", _on_connect)
    _count_pymysql()

    def on_usr1(signum: int, frame: FrameType | None) -> None:
        write_snapshot(path)

    signal.signal(signal.SIGUSR1, on_usr1)


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: daemon_with_stats.py STATS.json", file=sys.stderr)
        return 2
    path = Path(sys.argv[1])
    install(path)
    from jobsys.cli import main as cli_main

    try:
        return cli_main(["daemon"])
    finally:
        write_snapshot(path)


if __name__ == "__main__":
    sys.exit(main())
