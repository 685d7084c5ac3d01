#!/usr/bin/env bash
# The test command: installs what the tests need into .venv, then runs ruff, then mypy
# beside pytest. MariaDB tests run when JOBSYS_TEST_MYSQL_URL is set (the summary says so).
#
#   ./test.sh                  # lint, types and every tier, on JOBSYS_TEST_WORKERS (default 4) workers
#   ./test.sh unit             # one tier: unit (pure logic, no database, no process; < 1 min),
#                              # integration (the store on SQLite and MariaDB, the web in process)
#                              # or system (real daemons and web servers, the zipapp, the browser)
#   ./test.sh tests/unit/test_cron.py -k dst    # arguments go to pytest (one process)
set -euo pipefail
cd "$(dirname "$0")"
python="${PYTHON:-python3}"

if [[ ! -x .venv/bin/python ]]; then
    "$python" -m venv .venv
fi
stamp=".venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
if [[ ! -f "$stamp" ]]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
    touch "$stamp"
fi

# Bytecode caching on (if the environment turned it off): pytest's workers and the
# hundreds of jobsys processes the tests start would each compile the same modules again.
unset PYTHONDONTWRITEBYTECODE

if [[ -z "${JOBSYS_TEST_MYSQL_URL:-}" ]]; then
    echo "note: JOBSYS_TEST_MYSQL_URL is not set: MariaDB tests will be skipped" >&2
fi

if [[ $# -eq 0 ]]; then
    lint_paths=()
    for d in jobsys tests bench migrations; do [[ -d "$d" ]] && lint_paths+=("$d"); done
    .venv/bin/ruff check "${lint_paths[@]}"
    .venv/bin/ruff format --check "${lint_paths[@]}"
fi
case "${1:-}" in
    unit | integration | system)
        tier="$1"
        shift
        exec .venv/bin/python -m pytest -n "${JOBSYS_TEST_WORKERS:-4}" "tests/$tier" "$@"
        ;;
esac
if [[ $# -eq 0 ]]; then
    # mypy (about 20 s of one CPU without its cache, as on a fresh clone) runs beside
    # pytest rather than before it; its report comes after pytest's, and either failing
    # fails the command.
    mypy_log=$(mktemp)
    .venv/bin/mypy >"$mypy_log" 2>&1 &
    mypy_pid=$!
    trap 'kill "$mypy_pid" 2>/dev/null || true' EXIT  # pytest interrupted: mypy too
    # Most tests wait on child processes, sockets and databases rather than the CPU, so
    # more workers than cores pays; each worker has its own MariaDB database.
    pytest_status=0
    .venv/bin/python -m pytest -n "${JOBSYS_TEST_WORKERS:-4}" || pytest_status=$?
    mypy_status=0
    wait "$mypy_pid" || mypy_status=$?
    echo "mypy:"
    cat "$mypy_log"
    rm -f "$mypy_log"
    if ((mypy_status != 0)); then
        echo "mypy failed (exit $mypy_status)" >&2
        exit "$mypy_status"
    fi
    exit "$pytest_status"
fi
exec .venv/bin/python -m pytest "$@"
