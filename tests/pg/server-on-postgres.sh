#!/usr/bin/env bash
# Stands in for the server binary (OPTOVAULT_SERVER_BIN) so the native end-to-end tests run the
# real server on PostgreSQL: each --data-dir the test kit passes gets its own database on the
# cluster in OPTOVAULT_TEST_PG_URL (so a restart on the same directory finds its data), and the
# real binary (OPTOVAULT_REAL_SERVER_BIN) runs with --store pointing at it.
set -euo pipefail
: "${OPTOVAULT_TEST_PG_URL:?set OPTOVAULT_TEST_PG_URL (scripts/pg-cluster.sh start)}"
: "${OPTOVAULT_REAL_SERVER_BIN:?set OPTOVAULT_REAL_SERVER_BIN to the optovault-server binary}"
dir="" prev=""
for a in "$@"; do
  # A test that picks its own database (two_processes.rs) runs the binary as it is.
  [ "$a" = "--store" ] && exec "$OPTOVAULT_REAL_SERVER_BIN" "$@"
  [ "$prev" = "--data-dir" ] && dir="$a"
  prev="$a"
done
[ -n "$dir" ] || dir="default"
name="ov_e2e_$(printf '%s' "$dir" | sha256sum | cut -c1-24)"
psql=psql
command -v psql >/dev/null || psql=$(ls -d /usr/lib/postgresql/*/bin/psql | sort -V | tail -1)
if ! "$psql" -qtA "$OPTOVAULT_TEST_PG_URL" -c "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
  # A concurrent start on the same directory may create it first.
  "$psql" -q "$OPTOVAULT_TEST_PG_URL" -c "CREATE DATABASE $name" >/dev/null 2>&1 || true
fi
url="${OPTOVAULT_TEST_PG_URL%/*}/$name"
if [ -z "${OPTOVAULT_PG_DUMP_ON_EXIT:-}" ]; then
  exec "$OPTOVAULT_REAL_SERVER_BIN" --store "$url" "$@"
fi
# For the canary scan: when the server stops, a plain pg_dump of its database (bytea as escaped
# text, so stored JSON and base64 appear as they are) and the cluster's log go into the data
# directory, where the test scans every file. Not for tests that SIGKILL the server (this shell
# would be killed, not the server).
"$OPTOVAULT_REAL_SERVER_BIN" --store "$url" "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' TERM INT
status=0
wait "$child" || status=$?
if kill -0 "$child" 2>/dev/null; then wait "$child" || status=$?; fi
pg_dump=pg_dump
command -v pg_dump >/dev/null || pg_dump=$(ls -d /usr/lib/postgresql/*/bin/pg_dump | sort -V | tail -1)
PGOPTIONS="-c bytea_output=escape" "$pg_dump" --no-owner "$url" >"$dir/pg_dump.sql"
if [ -n "${OPTOVAULT_PG_CLUSTER:-}" ]; then
  cp "$OPTOVAULT_PG_CLUSTER/log/postgresql.log" "$dir/postgresql.log" 2>/dev/null || true
fi
exit "$status"
