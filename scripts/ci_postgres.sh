#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 for the storage tests, with user
# postgres allowed in without a password and a database "test" (the tests' default DSN is
# postgresql://postgres@127.0.0.1:5432/test). Idempotent; for CI, as root, on Debian 12.
#
# - A server that is already up and lets postgres in is left alone (only "test" is created if
#   it is missing): this is the path on machines that start PostgreSQL before CI.
# - Otherwise: install Debian's postgresql package if needed, trust loopback connections in the
#   cluster's pg_hba.conf (prepended once, marked), start or reload the cluster, wait for it.
set -euo pipefail

HOST=127.0.0.1
PORT=5432
DATABASE=test
WAIT_SECONDS_MAX=60
HBA_MARKER="# sco-settle ci_postgres.sh: trust loopback connections (a CI machine only)"

log() { echo "ci_postgres: $*" >&2; }

server_ready() {
  command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$HOST" -p "$PORT"
}

postgres_can_connect() {
  psql -w -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc 'SELECT 1' >/dev/null 2>&1
}

ensure_database() {
  local exists
  exists=$(psql -w -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")
  if [ "$exists" != 1 ]; then
    log "creating database $DATABASE"
    createdb -w -h "$HOST" -p "$PORT" -U postgres "$DATABASE"
  fi
}

install_server() {
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
    return
  fi
  log "installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q postgresql
}

cluster_version() {
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$version" ] || [ ! -d "/etc/postgresql/$version/main" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    log "creating cluster $version/main"
    pg_createcluster --port "$PORT" "$version" main >&2
  fi
  echo "$version"
}

trust_loopback() {
  local hba="/etc/postgresql/$1/main/pg_hba.conf"
  if grep -qF "$HBA_MARKER" "$hba"; then
    return
  fi
  log "trusting loopback connections in $hba"
  # pg_hba.conf is read top down and the first matching line wins: prepend.
  {
    echo "$HBA_MARKER"
    echo "local all postgres trust"
    echo "host all all 127.0.0.1/32 trust"
    echo "host all all ::1/128 trust"
    cat "$hba"
  } >"$hba.sco-new"
  chown --reference="$hba" "$hba.sco-new"
  chmod --reference="$hba" "$hba.sco-new"
  mv "$hba.sco-new" "$hba"
}

start_or_reload() {
  if pg_ctlcluster --skip-systemctl-redirect "$1" main status >/dev/null 2>&1; then
    log "reloading cluster $1/main"
    pg_ctlcluster --skip-systemctl-redirect "$1" main reload
  else
    log "starting cluster $1/main"
    pg_ctlcluster --skip-systemctl-redirect "$1" main start
  fi
}

wait_until_ready() {
  local waited=0
  until server_ready && postgres_can_connect; do
    if [ "$waited" -ge "$WAIT_SECONDS_MAX" ]; then
      log "PostgreSQL did not accept postgres@$HOST:$PORT within $WAIT_SECONDS_MAX s"
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

if server_ready && postgres_can_connect; then
  ensure_database
  log "PostgreSQL is up on $HOST:$PORT"
  exit 0
fi

install_server
version=$(cluster_version)
trust_loopback "$version"
start_or_reload "$version"
wait_until_ready
ensure_database
log "PostgreSQL $version is up on $HOST:$PORT"
