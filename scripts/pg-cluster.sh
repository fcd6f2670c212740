#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests, on 127.0.0.1 only, owned by nothing but this script.
#
#   scripts/pg-cluster.sh start [DIR]   initdb into DIR (default: a new temp directory), start the
#                                       server on a free port, create the role and database; print
#                                       `export OPTOVAULT_TEST_PG_URL=postgres://…` (also written
#                                       to DIR/env) and `export OPTOVAULT_PG_CLUSTER=DIR`
#   scripts/pg-cluster.sh stop DIR      stop the server and remove DIR (only a DIR this script made)
#   scripts/pg-cluster.sh url DIR       print the URL again
#
# OV_PG_OPTS adds server settings (`-c name=value …`), e.g. the bench loads pg_stat_statements.
#
# Installs Debian's `postgresql` package with apt if no `initdb` is found. initdb refuses to run
# as root, so when run as root the cluster belongs to the `postgres` user (`runuser`). The role
# `optovault` may create databases (the tests make one per test) and logs in with a random
# password over TCP; the unix socket lives inside DIR, so nothing touches /var/run/postgresql.
# Usage from a script:  eval "$(scripts/pg-cluster.sh start)"; trap '… stop "$OPTOVAULT_PG_CLUSTER"' EXIT
set -euo pipefail

MARKER=".optovault-pg-cluster"

die() { echo "pg-cluster: $*" >&2; exit 1; }
log() { echo "pg-cluster: $*" >&2; }

find_bindir() {
  local d
  if [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/initdb" ]; then echo "$PG_BINDIR"; return 0; fi
  # Debian keeps the server binaries out of PATH, one directory per major version: take the newest.
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then echo "$d"; return 0; fi
  done
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(readlink -f "$(command -v initdb)")"; return 0
  fi
  return 1
}

ensure_installed() {
  local bindir
  if bindir=$(find_bindir); then echo "$bindir"; return 0; fi
  log "no initdb found: installing Debian's postgresql package"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >&2
  # The package starts a system cluster on 5432 on some images; the tests never use it.
  bindir=$(find_bindir) || die "postgresql installed but no initdb found"
  echo "$bindir"
}

# Runs a command as the cluster's owner.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null \
    || echo $((20000 + RANDOM % 30000))
}

cmd_start() {
  local dir="${1:-}"
  local bindir
  bindir=$(ensure_installed)
  if [ -z "$dir" ]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/optovault-pg.XXXXXX")
  else
    mkdir -p "$dir"
    [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
  fi
  dir=$(cd "$dir" && pwd)
  touch "$dir/$MARKER"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "no postgres user (is the postgresql package installed?)"
    chown postgres: "$dir"
    # The owner must be able to reach DIR (a directory under /root is not).
    runuser -u postgres -- test -w "$dir" || die "the postgres user cannot write $dir"
  fi
  local password
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=' | head -c 24)
  as_owner mkdir -p "$dir/data" "$dir/socket" "$dir/log"
  # The superuser's password file lives only as long as initdb runs.
  local pwfile="$dir/.pw"
  as_owner sh -c "umask 077; printf '%s\n' '$password' > '$pwfile'"
  as_owner "$bindir/initdb" -D "$dir/data" -U postgres --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/log/initdb.log" 2>&1 \
    || { cat "$dir/log/initdb.log" >&2; die "initdb failed"; }
  as_owner rm -f "$pwfile"
  local port tries=0
  while :; do
    port=$(free_port)
    if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log/postgresql.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir/socket -c max_connections=200 -c log_min_messages=warning ${OV_PG_OPTS:-}" \
      start >/dev/null 2>&1; then
      break
    fi
    tries=$((tries + 1))
    [ "$tries" -lt 5 ] || { tail -20 "$dir/log/postgresql.log" >&2 || true; die "the server did not start"; }
    log "port $port taken? trying another"
  done
  echo "$bindir" >"$dir/bindir"
  echo "$port" >"$dir/port"
  as_owner "$bindir/psql" -q -h "$dir/socket" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "CREATE ROLE optovault LOGIN CREATEDB PASSWORD '$password'" \
    -c "CREATE DATABASE optovault OWNER optovault" >/dev/null
  local url="postgres://optovault:$password@127.0.0.1:$port/optovault"
  printf 'OPTOVAULT_TEST_PG_URL=%s\n' "$url" >"$dir/env"
  chmod 600 "$dir/env"
  log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, cluster in $dir"
  printf 'export OPTOVAULT_TEST_PG_URL=%q\n' "$url"
  printf 'export OPTOVAULT_PG_CLUSTER=%q\n' "$dir"
}

cmd_stop() {
  local dir="${1:-}"
  [ -n "$dir" ] || die "usage: $0 stop DIR"
  [ -d "$dir" ] || { log "$dir is gone already"; return 0; }
  [ -f "$dir/$MARKER" ] || die "$dir was not made by this script; not touching it"
  if [ -f "$dir/data/postmaster.pid" ]; then
    local bindir
    bindir=$(cat "$dir/bindir" 2>/dev/null || find_bindir)
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 \
      || as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  log "stopped and removed $dir"
}

cmd_url() {
  local dir="${1:-}"
  [ -f "$dir/env" ] || die "no cluster in $dir"
  sed -n 's/^OPTOVAULT_TEST_PG_URL=//p' "$dir/env"
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  url) shift; cmd_url "$@" ;;
  *) die "usage: $0 start [DIR] | stop DIR | url DIR" ;;
esac
