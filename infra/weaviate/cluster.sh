#!/usr/bin/env bash
# A three-node Weaviate cluster on this machine, from the binary weaviate.sh builds: each node has its own HTTP, gRPC,
# gossip, data and Raft ports and its own data folder; all three vote in Raft (RAFT_BOOTSTRAP_EXPECT=3) and join one
# memberlist (CLUSTER_JOIN to node 1's gossip port). For the cluster tests (replication factor 2) and trying by hand.
#
#   bash infra/weaviate/cluster.sh start            # all three, waits until each is ready and the cluster has 3 nodes
#   bash infra/weaviate/cluster.sh stop             # all three (data folders removed)
#   bash infra/weaviate/cluster.sh stop-node N      # kill node N (1-3), keeping its data: a node failure
#   bash infra/weaviate/cluster.sh start-node N     # start node N again on its data; it rejoins
#   bash infra/weaviate/cluster.sh status
#
# Node N (1-3): HTTP 8180+N, gRPC 50160+N, gossip 17200+2N (data +1), Raft 18400+2N (internal RPC +1);
# base ports WEAVIATE_CLUSTER_HTTP_BASE, _GRPC_BASE, _GOSSIP_BASE, _RAFT_BASE. State under WEAVIATE_CLUSTER_DIR
# (default ~/.cache/tessera/weaviate-cluster). Tessera then uses WEAVIATE_URL=http://127.0.0.1:8181,
# WEAVIATE_GRPC_PORT=50161 and WEAVIATE_REPLICATION_FACTOR=2.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HOST=127.0.0.1
HTTP_BASE="${WEAVIATE_CLUSTER_HTTP_BASE:-8180}"
GRPC_BASE="${WEAVIATE_CLUSTER_GRPC_BASE:-50160}"
GOSSIP_BASE="${WEAVIATE_CLUSTER_GOSSIP_BASE:-17200}"
RAFT_BASE="${WEAVIATE_CLUSTER_RAFT_BASE:-18400}"
DIR="${WEAVIATE_CLUSTER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera/weaviate-cluster}"
START_TIMEOUT="${WEAVIATE_START_TIMEOUT:-300}"
NODES=(1 2 3)

log() { printf '[weaviate-cluster] %s\n' "$*"; }
die() { printf '[weaviate-cluster] ERROR: %s\n' "$*" >&2; exit 1; }

http_port() { echo $((HTTP_BASE + $1)); }
grpc_port() { echo $((GRPC_BASE + $1)); }
gossip_port() { echo $((GOSSIP_BASE + 2 * $1)); }
raft_port() { echo $((RAFT_BASE + 2 * $1)); }

raft_join() {
  local n out=""
  for n in "${NODES[@]}"; do out+="node$n:$(raft_port "$n"),"; done
  echo "${out%,}"
}

ready() { [[ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$HOST:$(http_port "$1")/v1/.well-known/ready" 2>/dev/null || true)" == 200 ]]; }

node_pid() {
  local file="$DIR/node$1.pid" pid
  [[ -f "$file" ]] || return 1
  pid="$(tr -dc '0-9' <"$file")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q weaviate-server || return 1
  echo "$pid"
}

start_node() {
  local n="$1"
  if node_pid "$n" >/dev/null; then return 0; fi
  local bin
  bin="$(bash "$SCRIPT_DIR/weaviate.sh" path)"
  [[ -x "$bin" ]] || bash "$SCRIPT_DIR/weaviate.sh" build >&2
  mkdir -p "$DIR/node$n"
  local join=""
  [[ "$n" != 1 ]] && join="$HOST:$(gossip_port 1)"
  # Node 1 also joins the others when it restarts after them, so the memberlist heals from whichever is up.
  [[ "$n" == 1 ]] && join="$HOST:$(gossip_port 2),$HOST:$(gossip_port 3)"
  (
    cd "$DIR"
    exec env \
      PERSISTENCE_DATA_PATH="$DIR/node$n" \
      AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED=true \
      DEFAULT_VECTORIZER_MODULE=none \
      ENABLE_MODULES= \
      API_BASED_MODULES_DISABLED=true \
      GRPC_PORT="$(grpc_port "$n")" \
      CLUSTER_HOSTNAME="node$n" \
      CLUSTER_IN_LOCALHOST=true \
      CLUSTER_BIND_ADDR="$HOST" \
      CLUSTER_ADVERTISE_ADDR="$HOST" \
      CLUSTER_GOSSIP_BIND_PORT="$(gossip_port "$n")" \
      CLUSTER_DATA_BIND_PORT="$(($(gossip_port "$n") + 1))" \
      CLUSTER_JOIN="$join" \
      RAFT_PORT="$(raft_port "$n")" \
      RAFT_INTERNAL_RPC_PORT="$(($(raft_port "$n") + 1))" \
      RAFT_JOIN="$(raft_join)" \
      RAFT_BOOTSTRAP_EXPECT=3 \
      RAFT_TIMEOUTS_MULTIPLIER="${WEAVIATE_RAFT_TIMEOUTS_MULTIPLIER:-3}" \
      ASYNC_REPLICATION_FREQUENCY="${WEAVIATE_ASYNC_REPLICATION_FREQUENCY:-5s}" \
      DISABLE_TELEMETRY=true \
      GO_PROFILING_DISABLE=true \
      PROMETHEUS_MONITORING_ENABLED=false \
      LOG_LEVEL="${WEAVIATE_LOG_LEVEL:-warning}" \
      setsid nohup "$bin" --host "$HOST" --port "$(http_port "$n")" --scheme http \
      </dev/null >>"$DIR/node$n.log" 2>&1
  ) &
  echo $! >"$DIR/node$n.pid"
  disown $! 2>/dev/null || true
  log "node$n starting: http $(http_port "$n"), grpc $(grpc_port "$n"), pid $!"
}

wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT)) n
  for n in "$@"; do
    until ready "$n"; do
      node_pid "$n" >/dev/null || { tail -n 30 "$DIR/node$n.log" >&2; die "node$n exited"; }
      ((SECONDS < deadline)) || { tail -n 30 "$DIR/node$n.log" >&2; die "node$n not ready within ${START_TIMEOUT}s"; }
      sleep 1
    done
  done
  # Every node sees the whole cluster (three healthy nodes in /v1/nodes).
  until [[ "$(curl -s -m 5 "http://$HOST:$(http_port "$1")/v1/nodes" | grep -o '"status":"HEALTHY"' | wc -l)" -ge 3 ]]; do
    ((SECONDS < deadline)) || die "the cluster did not reach 3 healthy nodes within ${START_TIMEOUT}s"
    sleep 1
  done
}

stop_node() {
  local n="$1" pid signal="${2:-TERM}"
  pid="$(node_pid "$n")" || return 0
  kill "-$signal" "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$DIR/node$n.pid"
  log "node$n stopped"
}

case "${1:-}" in
  start)
    for n in "${NODES[@]}"; do start_node "$n"; done
    wait_ready "${NODES[@]}"
    log "ready: http://$HOST:$(http_port 1) (grpc $(grpc_port 1)), http://$HOST:$(http_port 2), http://$HOST:$(http_port 3)"
    ;;
  stop)
    for n in "${NODES[@]}"; do stop_node "$n"; done
    rm -rf "$DIR"
    ;;
  stop-node) [[ "${2:-}" =~ ^[123]$ ]] || die "usage: $0 stop-node 1|2|3"; stop_node "$2" KILL ;;
  start-node)
    [[ "${2:-}" =~ ^[123]$ ]] || die "usage: $0 start-node 1|2|3"
    start_node "$2"
    wait_ready "$2"
    ;;
  status) for n in "${NODES[@]}"; do ready "$n" || { echo "node$n not ready"; exit 1; }; done; echo ok ;;
  *) echo "usage: $0 start|stop|stop-node N|start-node N|status" >&2; exit 64 ;;
esac
