#!/usr/bin/env bash
# Starts a local PostgreSQL server for the store tests and prints the URL they use.
#
# Usage (as root, on Debian):
#   eval "$(.ci/postgres.sh)"            # sets DISCOVER_TEST_PG_URL in this shell
#   .ci/postgres.sh /tmp/pg.env          # the same, and writes the export line to a file
#
# Installs Debian's postgresql package if no server is installed, creates the cluster if
# there is none, starts it if it is down, and creates (or updates) the role and database
# `discover_test`. Safe to run again: every step checks first. It stops nothing.
# Progress goes to stderr; stdout carries only the export line.
#
# Settings: DISCOVER_TEST_PG_PASSWORD (default discover_test).
set -euo pipefail

ROLE=discover_test
DB=discover_test
PASSWORD=${DISCOVER_TEST_PG_PASSWORD:-discover_test}
ENV_FILE=${1:-}

log() { echo "postgres.sh: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (it installs packages and runs commands as the postgres user)"
  exit 1
fi

newest_version() { ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1; }

if [ -z "$(newest_version)" ] || ! command -v pg_ctlcluster >/dev/null; then
  log "installing PostgreSQL from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2
  apt-get install -y postgresql >&2
fi
VERSION=$(newest_version)

# The cluster "main" of the newest installed version; create it if the package did not.
if ! pg_lsclusters --no-header | awk -v v="$VERSION" '$1 == v && $2 == "main" {found = 1} END {exit !found}'; then
  log "creating cluster $VERSION/main"
  pg_createcluster "$VERSION" main >&2
fi
PORT=$(pg_lsclusters --no-header | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $3}')
STATUS=$(pg_lsclusters --no-header | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $4}')
if [ "$STATUS" != "online" ]; then
  log "starting cluster $VERSION/main on port $PORT"
  pg_ctlcluster "$VERSION" main start >&2
fi
pg_isready -q -h 127.0.0.1 -p "$PORT" -t 30 || { log "server on 127.0.0.1:$PORT did not become ready"; exit 1; }

# Role and database, created once; the password is (re)set every time so a changed
# DISCOVER_TEST_PG_PASSWORD takes effect.
cd /tmp  # psql runs as postgres, which may not be allowed into the current folder
runuser -u postgres -- psql -X -q -p "$PORT" -d postgres -v ON_ERROR_STOP=1 -v pw="$PASSWORD" >&2 <<SQL
SELECT 'CREATE ROLE $ROLE LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE')
\gexec
ALTER ROLE $ROLE WITH LOGIN PASSWORD :'pw';
SELECT 'CREATE DATABASE $DB OWNER $ROLE' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB')
\gexec
SQL

ENCODED=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$PASSWORD")
LINE="export DISCOVER_TEST_PG_URL=postgresql+psycopg://$ROLE:$ENCODED@127.0.0.1:$PORT/$DB"
log "PostgreSQL $VERSION ready on 127.0.0.1:$PORT, database $DB"
if [ -n "$ENV_FILE" ]; then
  echo "$LINE" > "$ENV_FILE"
fi
echo "$LINE"
