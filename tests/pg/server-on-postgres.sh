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
exec "$OPTOVAULT_REAL_SERVER_BIN" --store "${OPTOVAULT_TEST_PG_URL%/*}/$name" "$@"
