#!/usr/bin/env bash
# A local Redis Cluster of three masters (no replicas) for the cluster tests and trying scale-out by hand.
#   bash infra/redis-cluster/redis-cluster.sh start|stop|status
# Ports REDIS_CLUSTER_PORTS (default 7101 7102 7103; each also uses its port + 10000 for the cluster bus), data under
# REDIS_CLUSTER_DIR (default ~/.cache/tessera/redis-cluster). Then run Tessera with
#   REDIS_CLUSTER_NODES=127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103 QUEUE_PREFIX={tessera}
set -euo pipefail

PORTS=(${REDIS_CLUSTER_PORTS:-7101 7102 7103})
DIR="${REDIS_CLUSTER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera/redis-cluster}"

ping_port() { redis-cli -p "$1" ping >/dev/null 2>&1; }

cluster_ok() { redis-cli -p "${PORTS[0]}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

start() {
  command -v redis-server >/dev/null || { echo "redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }
  for port in "${PORTS[@]}"; do
    if ping_port "$port"; then continue; fi
    mkdir -p "$DIR/$port"
    # Each node keeps its cluster state (nodes.conf) in its own folder; no persistence needed for tests.
    redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 5000 --dir "$DIR/$port" --appendonly no --save "" \
      --daemonize yes --pidfile "$DIR/$port/redis.pid" --logfile "$DIR/$port/redis.log"
  done
  for port in "${PORTS[@]}"; do
    for _ in $(seq 1 100); do ping_port "$port" && break; sleep 0.1; done
    ping_port "$port" || { echo "redis on port $port did not start; see $DIR/$port/redis.log" >&2; exit 1; }
  done
  if ! cluster_ok; then
    local known
    known=$(redis-cli -p "${PORTS[0]}" cluster info | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')
    if [ "${known:-1}" -le 1 ]; then
      redis-cli --cluster create $(printf '127.0.0.1:%s ' "${PORTS[@]}") --cluster-replicas 0 --cluster-yes >/dev/null
    fi
    for _ in $(seq 1 100); do cluster_ok && break; sleep 0.2; done
    cluster_ok || { echo "the cluster did not reach state ok" >&2; redis-cli -p "${PORTS[0]}" cluster info >&2; exit 1; }
  fi
  echo "Redis Cluster up: $(printf '127.0.0.1:%s,' "${PORTS[@]}" | sed 's/,$//')"
}

stop() {
  for port in "${PORTS[@]}"; do
    if ping_port "$port"; then redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; fi
  done
  rm -rf "$DIR"
  echo "Redis Cluster stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) cluster_ok && echo ok || { echo "not running"; exit 1; } ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 64 ;;
esac
