#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the queue contract tests and print its URL on stdout.
#
#   url=$(bash scripts/ci-postgres.sh)        # install (Debian package) if missing, start, create the db
#   ARGUS_TEST_PG_URL=$url pytest tests/http
#   bash scripts/ci-postgres.sh stop          # stop it and delete its files
#
# The cluster lives under /tmp (ARGUS_PG_DIR), listens on 127.0.0.1 only (ARGUS_PG_PORT, default 55432),
# trusts local connections and runs with fsync off: it is for tests, never for data. When run as root the
# server runs as the `postgres` user (PostgreSQL refuses to run as root); otherwise as the caller.
# Everything but the URL goes to stderr so that `url=$(...)` captures only the URL.
set -euo pipefail

PORT="${ARGUS_PG_PORT:-55432}"
DIR="${ARGUS_PG_DIR:-/tmp/argus-pg-$PORT}"
DB="${ARGUS_PG_DB:-argus_test}"
USER_NAME="argus"

log() { echo "ci-postgres: $*" >&2; }

find_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
        echo "$d"
    fi
}

# Run a command as the server's owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
    if [ "$(id -u)" = "0" ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

BINDIR="$(find_bindir)"

if [ "${1:-start}" = "stop" ]; then
    if [ -n "$BINDIR" ] && [ -f "$DIR/data/postmaster.pid" ]; then
        as_owner "$BINDIR/pg_ctl" -D "$DIR/data" -m immediate -w stop >&2 || true
    fi
    rm -rf "$DIR"
    log "stopped and removed $DIR"
    exit 0
fi

if [ -z "$BINDIR" ]; then
    if [ "$(id -u)" != "0" ]; then
        log "PostgreSQL is not installed and we are not root: install the Debian package 'postgresql' first"
        exit 1
    fi
    log "installing the Debian package postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # The package's own 'main' cluster is not needed; do not let it be created.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/argus-ci.conf
    apt-get install -y -qq --no-install-recommends postgresql >&2
    BINDIR="$(find_bindir)"
    [ -n "$BINDIR" ] || { log "postgresql installed but no initdb found"; exit 1; }
fi

if [ "$(id -u)" = "0" ] && ! id postgres >/dev/null 2>&1; then
    log "running as root but there is no 'postgres' user to run the server"
    exit 1
fi

mkdir -p "$DIR"
if [ "$(id -u)" = "0" ]; then
    chown postgres: "$DIR"
fi

if [ ! -f "$DIR/data/PG_VERSION" ]; then
    log "initdb in $DIR/data"
    as_owner "$BINDIR/initdb" -D "$DIR/data" -U "$USER_NAME" -A trust -E UTF8 --no-sync >/dev/null
fi

if ! as_owner "$BINDIR/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
    log "starting on 127.0.0.1:$PORT"
    as_owner "$BINDIR/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start \
        -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >&2 \
        || { log "start failed; server log follows"; cat "$DIR/server.log" >&2 || true; exit 1; }
fi

PSQL="$BINDIR/psql"
[ -x "$PSQL" ] || PSQL="$(command -v psql)"
if ! "$PSQL" -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1; then
    "$PSQL" -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" -d postgres -qc "CREATE DATABASE $DB" >&2
fi

echo "postgresql://$USER_NAME@127.0.0.1:$PORT/$DB"
