#!/usr/bin/env bash
# Set up Argus in ./.venv (first run only) and run the `argus` command.
#   bash scripts/run.sh                      → argus serve (HTTP API on 127.0.0.1:9000, SQLite in ./argus-data)
#   bash scripts/run.sh analyze movie.mp4 --op pulp
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/argus ] || [ pyproject.toml -nt .venv/.installed ]; then
    [ -d .venv ] || "$PY" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[all]'
    touch .venv/.installed
fi
[ $# -gt 0 ] || set -- serve
exec .venv/bin/argus "$@"
