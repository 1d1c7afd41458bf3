#!/usr/bin/env bash
# A private PostgreSQL cluster for development and tests: socket only, no TCP port.
#
#   ops/dev/pg.sh start [DATA_DIR]   init (when missing) and start; prints the DSN last
#   ops/dev/pg.sh stop  [DATA_DIR]   stop it (fast shutdown)
#   ops/dev/pg.sh destroy [DATA_DIR] stop it and delete the cluster (tests use this)
#   ops/dev/pg.sh url   [DATA_DIR]   print the DSN
#   ops/dev/pg.sh status [DATA_DIR]
#
# Uses the machine's PostgreSQL binaries (installs Debian's `postgresql` when missing and
# we are root). initdb refuses to run as root, so as root the cluster belongs to the
# `postgres` user and lives under a short path in the temporary directory (the postgres
# user cannot enter /root, and a Unix socket path must stay under ~100 characters);
# otherwise it lives in DATA_DIR/pg.
set -euo pipefail

action=${1:-start}
data_dir=$(realpath -m "${2:-.data}")

bindir=""
if command -v pg_config >/dev/null 2>&1; then
  bindir=$(pg_config --bindir)
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  if [ "$(id -u)" = 0 ] && [ "$action" = start ]; then
    echo "pg.sh: installing PostgreSQL (apt-get install postgresql)" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  else
    echo "pg.sh: no PostgreSQL server binaries found (install postgresql)" >&2
    exit 1
  fi
fi

if [ "$(id -u)" = 0 ]; then
  hash=$(printf '%s' "$data_dir" | sha256sum | cut -c1-12)
  root="${TMPDIR:-/tmp}/vep-pg-$hash"
  as_owner() { runuser -u postgres -- "$@"; }
  owner=postgres
else
  root="$data_dir/pg"
  as_owner() { "$@"; }
  owner=$(id -un)
fi
cluster="$root/data"
sock="$root/sock"
log="$root/postgres.log"
dsn="postgresql://$owner@/postgres?host=$sock"

# PG_DISPOSABLE=1 (the test suite) trades durability for speed: a test cluster is thrown
# away anyway, and CREATE/DROP DATABASE per test would otherwise wait on fsync.
if [ "${PG_DISPOSABLE:-0}" = 1 ]; then
  durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
else
  durability="-c fsync=on"
fi

running() { as_owner "$bindir/pg_ctl" -D "$cluster" status >/dev/null 2>&1; }

case "$action" in
  start)
    mkdir -p "$root"
    [ "$owner" = postgres ] && chown postgres: "$root" && chmod 700 "$root"
    if [ ! -f "$cluster/PG_VERSION" ]; then
      as_owner mkdir -p "$cluster" "$sock"
      as_owner "$bindir/initdb" -D "$cluster" -U "$owner" -A trust -E UTF8 --no-locale >/dev/null
    fi
    as_owner mkdir -p "$sock"
    if ! running; then
      as_owner "$bindir/pg_ctl" -D "$cluster" -l "$log" -w -t 30 \
        -o "-c listen_addresses='' -k $sock -c max_connections=200 $durability" start >/dev/null
    fi
    mkdir -p "$data_dir"
    ln -sfn "$root" "$data_dir/pg-cluster"
    echo "$dsn"
    ;;
  stop)
    if [ -f "$cluster/PG_VERSION" ] && running; then
      as_owner "$bindir/pg_ctl" -D "$cluster" -m fast -w stop >/dev/null
    fi
    ;;
  destroy)
    if [ -f "$cluster/PG_VERSION" ] && running; then
      as_owner "$bindir/pg_ctl" -D "$cluster" -m immediate -w stop >/dev/null
    fi
    rm -rf "$root" "$data_dir/pg-cluster"
    ;;
  url)
    echo "$dsn"
    ;;
  status)
    if running; then echo "running: $dsn"; else echo "stopped"; exit 3; fi
    ;;
  *)
    echo "usage: $0 start|stop|destroy|url|status [DATA_DIR]" >&2
    exit 2
    ;;
esac
