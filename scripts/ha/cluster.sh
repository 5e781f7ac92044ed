#!/usr/bin/env bash
# A PostgreSQL 15 primary with a synchronous standby and automatic failover, on loopback, for the
# HA tests and for trying the deployment by hand (docs/deployment-ha.md). pg_auto_failover
# (Debian's postgresql-15-auto-failover): one monitor and two data nodes, each its own cluster
# in a temp directory, run as the postgres user, on ports that miss the system server's 5432.
#
#   scripts/ha/cluster.sh start    create (or restart) the formation; prints the formation URI
#   scripts/ha/cluster.sh uri      the formation URI (libpq multi-host, target_session_attrs)
#   scripts/ha/cluster.sh state    the monitor's view: which node is primary, which secondary
#   scripts/ha/cluster.sh wait     until one node is primary and the other secondary
#   scripts/ha/cluster.sh node NAME start|pids   restart a killed node / its keeper and postgres pids
#   scripts/ha/cluster.sh stop     stop every node and the monitor (the data stays)
#   scripts/ha/cluster.sh destroy  stop, then remove the directory
#
# SCO_HA_DIR (default /tmp/sco-ha) and SCO_HA_PORT (default 6540: monitor; +1, +2: nodes).
# As root it apt-installs the package when absent (CI on a fresh Debian machine).
set -euo pipefail

DIR=${SCO_HA_DIR:-/tmp/sco-ha}
PORT=${SCO_HA_PORT:-6540}
HOST=127.0.0.1
DATABASE=test
WAIT_SECONDS_MAX=${SCO_HA_WAIT_SECONDS:-120}
PARTITION_S=3  # a data node's keeper: demote itself when alone this long
DEMOTE_MS=6000  # the monitor: wait this long for a lost primary to demote itself; > PARTITION_S
NODES=(node1 node2)
PG_BIN=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || true)

log() { echo "ha-cluster: $*" >&2; }

install_package() {
  if command -v pg_autoctl >/dev/null 2>&1 && [ -n "$PG_BIN" ]; then
    return
  fi
  [ "$(id -u)" = 0 ] || { log "pg_autoctl is missing: apt-get install postgresql-15-auto-failover"; exit 1; }
  log "installing Debian's postgresql-15-auto-failover"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q postgresql-15 postgresql-15-auto-failover >&2
  PG_BIN=/usr/lib/postgresql/15/bin
}

# Everything runs as postgres, with pg_autoctl's config, state and pid files inside $DIR.
as_postgres() {
  local env=(env "PATH=$PG_BIN:/usr/bin:/bin" "XDG_CONFIG_HOME=$DIR/xdg/config"
    "XDG_DATA_HOME=$DIR/xdg/data" "XDG_RUNTIME_DIR=$DIR/xdg/run" "PG_CONFIG=$PG_BIN/pg_config")
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "${env[@]}" "$@"
  else
    "${env[@]}" "$@"
  fi
}

monitor_uri() { echo "postgres://autoctl_node@$HOST:$PORT/pg_auto_failover?sslmode=disable"; }

node_port() {
  local index
  for index in "${!NODES[@]}"; do
    [ "${NODES[$index]}" = "$1" ] && { echo $((PORT + index + 1)); return; }
  done
  log "no node $1"; exit 1
}

run_in_background() {  # NAME, then the pg_autoctl arguments; output to $DIR/NAME.log
  local name=$1; shift
  as_postgres nohup pg_autoctl "$@" >>"$DIR/$name.log" 2>&1 &
}

start_monitor() {
  if [ -d "$DIR/monitor" ]; then
    run_in_background monitor run --pgdata "$DIR/monitor"
  else
    run_in_background monitor create monitor --pgdata "$DIR/monitor" --pgport "$PORT" \
      --hostname "$HOST" --auth trust --no-ssl --run
  fi
  wait_for "the monitor" monitor_ready
  # Fail over within seconds of losing the primary (defaults: 20 s before a node is unhealthy, and
  # 30 s for a lost primary to demote itself). The order that keeps one primary is kept: a keeper
  # that loses the monitor and its peer stops its postgres after $PARTITION_S s
  # (timeout.network_partition_timeout), before the monitor promotes the standby ($DEMOTE_MS ms).
  local setting
  for setting in health_check_period=1000 health_check_timeout=1000 health_check_max_retries=1 \
    health_check_retry_delay=500 node_considered_unhealthy_timeout=3000 \
    primary_demote_timeout="$DEMOTE_MS"; do
    as_postgres psql -qX -h "$HOST" -p "$PORT" -d pg_auto_failover \
      -c "ALTER SYSTEM SET pgautofailover.${setting%%=*} = ${setting#*=}" >/dev/null
  done
  as_postgres psql -qX -h "$HOST" -p "$PORT" -d pg_auto_failover -c 'SELECT pg_reload_conf()' >/dev/null
}

monitor_ready() {
  as_postgres psql -qtA -h "$HOST" -p "$PORT" -d pg_auto_failover -c 'SELECT 1' >/dev/null 2>&1
}

start_node() {
  local name=$1 port
  port=$(node_port "$name")
  if [ -d "$DIR/$name" ]; then
    run_in_background "$name" run --pgdata "$DIR/$name"
  else
    run_in_background "$name" create postgres --pgdata "$DIR/$name" --pgport "$port" \
      --hostname "$HOST" --name "$name" --dbname "$DATABASE" --auth trust --no-ssl \
      --monitor "$(monitor_uri)" --run
  fi
}

state() { as_postgres pg_autoctl show state --pgdata "$DIR/monitor" "$@"; }

# The two data nodes' reported states, e.g. "primary secondary".
node_states() {
  as_postgres psql -qtA -h "$HOST" -p "$PORT" -d pg_auto_failover -c \
    "SELECT string_agg(reportedstate::text, ' ' ORDER BY reportedstate::text)
       FROM pgautofailover.node WHERE reportedstate = goalstate" 2>/dev/null
}

formation_ready() { [ "$(node_states)" = "primary secondary" ]; }

first_node_ready() { [ "$(node_states)" = "single" ]; }

wait_for() {  # WHAT, CHECK-FUNCTION
  local waited=0
  until "$2"; do
    if [ "$waited" -ge $((WAIT_SECONDS_MAX * 2)) ]; then
      log "$1 not ready within $WAIT_SECONDS_MAX s; logs in $DIR"; exit 1
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
}

uri() { as_postgres pg_autoctl show uri --formation default --pgdata "$DIR/monitor"; }

start() {
  install_package
  if [ -d "$DIR/monitor" ] && monitor_ready && formation_ready; then
    uri  # Already up.
    return
  fi
  mkdir -p "$DIR/xdg/config" "$DIR/xdg/data" "$DIR/xdg/run"
  chmod 700 "$DIR/xdg/run"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$DIR"
  start_monitor
  local fresh=1
  [ -d "$DIR/${NODES[0]}" ] && fresh=0
  start_node "${NODES[0]}"
  # A new formation: the first node must be up as "single" before the second joins it.
  if [ "$fresh" = 1 ]; then
    wait_for "${NODES[0]}" first_node_ready
    # The standby is cloned by pg_basebackup, which waits for a spread checkpoint (up to 4.5 min
    # by default): finish checkpoints at once instead, a setting the clone inherits.
    as_postgres psql -qX -h "$HOST" -p "$(node_port "${NODES[0]}")" -d postgres \
      -c 'ALTER SYSTEM SET checkpoint_completion_target = 0' -c 'SELECT pg_reload_conf()' >/dev/null
  fi
  start_node "${NODES[1]}"
  wait_for "the formation (primary + synchronous secondary)" formation_ready
  local name
  for name in "${NODES[@]}"; do
    as_postgres pg_autoctl config set --pgdata "$DIR/$name" \
      timeout.network_partition_timeout "$PARTITION_S" >/dev/null
    as_postgres pg_autoctl reload --pgdata "$DIR/$name" >/dev/null 2>&1 || true
  done
  uri
}

keeper_pid() { as_postgres pg_autoctl status --pgdata "$DIR/$1" 2>&1 | sed -n 's/.*pid \([0-9]*\).*/\1/p' | head -n 1; }

postmaster_pid() { head -n 1 "$DIR/$1/postmaster.pid" 2>/dev/null || true; }

stop() {
  local name
  for name in "${NODES[@]}" monitor; do
    [ -d "$DIR/$name" ] || continue
    as_postgres pg_autoctl stop --pgdata "$DIR/$name" --fast >/dev/null 2>&1 || true
  done
  for name in "${NODES[@]}" monitor; do  # pg_autoctl stop returns before its children exit
    local waited=0
    while [ -f "$DIR/$name/postmaster.pid" ] && [ "$waited" -lt 60 ]; do
      sleep 0.5; waited=$((waited + 1))
    done
    if [ -f "$DIR/$name/postmaster.pid" ]; then
      as_postgres pg_ctl -D "$DIR/$name" stop -m immediate >/dev/null 2>&1 || true
    fi
  done
}

case "${1:-}" in
  start) start ;;
  uri) uri ;;
  state) state ;;
  wait) wait_for "the formation (primary + synchronous secondary)" formation_ready ;;
  node)
    case "${3:-}" in
      start) start_node "$2" ;;
      pids) echo "keeper $(keeper_pid "$2") postmaster $(postmaster_pid "$2")" ;;
      *) log "usage: $0 node NAME start|pids"; exit 2 ;;
    esac ;;
  stop) stop ;;
  destroy) stop; rm -rf "$DIR" ;;
  *) log "usage: $0 start|uri|state|wait|node NAME start|pids|stop|destroy"; exit 2 ;;
esac
