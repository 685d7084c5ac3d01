#!/usr/bin/env bash
# Build ./jobsys.pyz, a shiv zipapp with jobsys and all its dependencies inside.
#
#   ./build.sh                                 # jobsys alone (runs the demo app by default)
#   ./build.sh -o myapp.pyz ../myapp           # jobsys plus your application package(s)
#
# Extra arguments are pip requirements (a path, a package name, -r requirements.txt) that
# go into the artifact next to jobsys; set JOBSYS_APP=yourpkg.jobs when you run it.
# Needs only Python 3.11+: the build runs in its own virtual environment (.build/venv).
set -euo pipefail
cd "$(dirname "$0")"

output="jobsys.pyz"
if [[ "${1:-}" == "-o" || "${1:-}" == "--output" ]]; then
    output="$2"
    shift 2
fi
python="${PYTHON:-python3}"
venv=".build/venv"

# One build at a time in this checkout: parallel test workers may each build an artifact,
# and two pips writing one venv corrupt it.
mkdir -p .build
exec 9>.build/lock
flock 9

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip "shiv>=1.0.8"

# shiv installs jobsys (and the extra requirements) into the zipapp's site-packages;
# --compile-pyc ships bytecode so start-up does not recompile.
"$venv/bin/shiv" --compile-pyc --quiet \
    -c jobsys -p "/usr/bin/env python3" -o "$output" \
    . "$@"
echo "built $output ($(du -h "$output" | cut -f1))"
