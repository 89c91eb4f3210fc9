#!/usr/bin/env bash
# A throw-away PostgreSQL for the platform's PostgreSQL tests and benchmark.
#
#   eval "$(bash scripts/ci_postgres.sh)"        # install if missing, start, export GLA_TEST_DATABASE_URL
#   bash scripts/ci_postgres.sh stop             # stop it and remove its data directory
#
# Installs the Debian package `postgresql` when no server binaries are found (needs root or sudo),
# initialises a cluster in a temporary directory owned by a non-root user (`postgres` when run as
# root), starts it on a free port on 127.0.0.1 (trust authentication, local only), creates the
# database `gla_test` and prints `export GLA_TEST_DATABASE_URL=postgresql+psycopg://...` on stdout.
# Everything else goes to stderr. State (data dir, port) is kept in ${GLA_PG_STATE:-/tmp/gla-ci-postgres.env}.
set -euo pipefail
STATE="${GLA_PG_STATE:-/tmp/gla-ci-postgres.env}"
log() { echo "[ci_postgres] $*" >&2; }

pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"; return 0
  fi
  return 1
}

as_owner() {  # run a command as the cluster owner
  if [ "$(id -u)" = "0" ]; then
    runuser -u "$OWNER" -- "$@"
  else
    "$@"
  fi
}

if [ "${1:-start}" = "stop" ]; then
  if [ -f "$STATE" ]; then
    # shellcheck disable=SC1090
    source "$STATE"
    OWNER="$PG_OWNER"
    as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast stop >&2 || true
    rm -rf "$PG_DATA" "$STATE"
    log "stopped and removed $PG_DATA"
  else
    log "nothing to stop ($STATE not found)"
  fi
  exit 0
fi

if [ -f "$STATE" ]; then  # already started by an earlier call: reuse it if it still runs
  # shellcheck disable=SC1090
  source "$STATE"
  OWNER="$PG_OWNER"
  if as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    log "reusing the running cluster on 127.0.0.1:$PG_PORT (data $PG_DATA)"
    echo "export GLA_TEST_DATABASE_URL=postgresql+psycopg://gla@127.0.0.1:$PG_PORT/gla_test"
    exit 0
  fi
  rm -f "$STATE"
fi

BIN="$(pg_bindir || true)"
if [ -z "$BIN" ]; then
  log "PostgreSQL server not found: installing the Debian package postgresql"
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq postgresql >&2
  BIN="$(pg_bindir)"
fi
log "server binaries: $BIN"

if [ "$(id -u)" = "0" ]; then
  OWNER="postgres"
  id "$OWNER" >/dev/null 2>&1 || useradd --system --no-create-home "$OWNER"
else
  OWNER="$(id -un)"
fi

PORT="${GLA_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')}"
DATA="$(mktemp -d /tmp/gla-pg-XXXXXX)"
chmod 700 "$DATA"
if [ "$(id -u)" = "0" ]; then chown "$OWNER" "$DATA"; fi

as_owner "$BIN/initdb" -D "$DATA" -U gla --auth=trust --encoding=UTF8 --no-instructions >&2
as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
  -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >&2
as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U gla gla_test >&2

cat > "$STATE" <<STATE_EOF
PG_BIN=$BIN
PG_DATA=$DATA
PG_PORT=$PORT
PG_OWNER=$OWNER
STATE_EOF
log "PostgreSQL running on 127.0.0.1:$PORT (data $DATA); stop with: bash scripts/ci_postgres.sh stop"
echo "export GLA_TEST_DATABASE_URL=postgresql+psycopg://gla@127.0.0.1:$PORT/gla_test"
