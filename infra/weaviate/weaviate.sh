#!/usr/bin/env bash
# Local single-node Weaviate for Tessera tests and development.
#
# Weaviate is not packaged for Debian/npm here and every "embedded" client
# downloads a release binary from GitHub (no internet), so we build the server
# from the Go module proxy with `go install` and run it in the background.
#
# Usage: infra/weaviate/weaviate.sh {build|start|stop|restart|status|logs|path}
# See infra/weaviate/README.md for the environment variables.
set -euo pipefail

# Pinned release. v1.39.4+ need github.com/weaviate/sroar v0.0.17/v0.0.18, which
# the module proxy reachable from here refuses (403), so v1.39.3 is the newest
# release that builds. Override with WEAVIATE_VERSION=v1.3x.y.
WEAVIATE_VERSION_DEFAULT="v1.39.3"
WEAVIATE_VERSION="${WEAVIATE_VERSION:-$WEAVIATE_VERSION_DEFAULT}"
[[ "$WEAVIATE_VERSION" == v* ]] || WEAVIATE_VERSION="v$WEAVIATE_VERSION"

# Minimum Go for the pinned module (its go.mod says `go 1.26.0`).
GO_MIN_MINOR=26
GO_FALLBACK_TOOLCHAIN="go1.26.8"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/tessera/weaviate-${WEAVIATE_VERSION}"
BIN="$CACHE_DIR/weaviate-server"

STATE_DIR="$REPO_ROOT/.data"
DATA_DIR="${WEAVIATE_DATA_DIR:-$STATE_DIR/weaviate}"
LOG_FILE="$STATE_DIR/weaviate.log"
PID_FILE="$STATE_DIR/weaviate.pid"

HTTP_PORT="${WEAVIATE_HTTP_PORT:-8080}"
GRPC_PORT="${WEAVIATE_GRPC_PORT:-50051}"
# Cluster-internal ports, moved off Weaviate's defaults (7946/7947/8300/8301)
# so they do not collide with Consul/Serf or a second Weaviate.
GOSSIP_PORT="${WEAVIATE_GOSSIP_PORT:-17946}"
DATA_PORT="${WEAVIATE_DATA_PORT:-$((GOSSIP_PORT + 1))}"
RAFT_PORT="${WEAVIATE_RAFT_PORT:-18300}"
RAFT_RPC_PORT="${WEAVIATE_RAFT_RPC_PORT:-$((RAFT_PORT + 1))}"
START_TIMEOUT="${WEAVIATE_START_TIMEOUT:-120}"
HOST="127.0.0.1"
BASE_URL="http://${HOST}:${HTTP_PORT}"

log() { printf '[weaviate] %s\n' "$*"; }
die() { printf '[weaviate] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers ---

find_go() {
  local go_bin
  if go_bin="$(command -v go 2>/dev/null)"; then
    printf '%s\n' "$go_bin"
  elif [[ -x /usr/local/go/bin/go ]]; then
    printf '%s\n' /usr/local/go/bin/go
  else
    die "Go is not installed (no 'go' on PATH and no /usr/local/go/bin/go). Install Go >= 1.${GO_MIN_MINOR} (https://go.dev/dl/) or put it on PATH."
  fi
}

http_ready() {
  local code
  code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$BASE_URL/v1/.well-known/ready" 2>/dev/null || true)"
  [[ "$code" == "200" ]]
}

grpc_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/${HOST}/${GRPC_PORT}" 2>/dev/null
}

is_ready() { http_ready && grpc_open; }

server_version() {
  curl -s -m 2 "$BASE_URL/v1/meta" 2>/dev/null | sed -n 's/.*"version":"\([^"]*\)".*/\1/p'
}

# pid from the pid file, if that process is alive and is a weaviate-server.
running_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'weaviate-server' || return 1
  printf '%s\n' "$pid"
}

port_in_use() {
  timeout 2 bash -c "exec 3<>/dev/tcp/${HOST}/$1" 2>/dev/null
}

tail_log() {
  if [[ -f "$LOG_FILE" ]]; then
    log "last 40 lines of $LOG_FILE:"
    tail -n 40 "$LOG_FILE" >&2
  fi
}

# ------------------------------------------------------------------ build ---

cmd_build() {
  if [[ -x "$BIN" ]]; then
    log "binary already built: $BIN"
    return 0
  fi
  local go_bin go_ver minor
  go_bin="$(find_go)"
  go_ver="$("$go_bin" env GOVERSION 2>/dev/null || true)"
  log "using $go_bin ($go_ver)"
  minor="$(sed -n 's/^go1\.\([0-9]*\).*/\1/p' <<<"$go_ver")"
  if [[ -n "$minor" && "$minor" -lt "$GO_MIN_MINOR" && -z "${GOTOOLCHAIN:-}" ]]; then
    # Older local Go: let it fetch a new enough toolchain from the module proxy.
    log "Go $go_ver is older than 1.${GO_MIN_MINOR}; using GOTOOLCHAIN=${GO_FALLBACK_TOOLCHAIN} (downloaded via GOPROXY)"
    export GOTOOLCHAIN="$GO_FALLBACK_TOOLCHAIN"
  fi

  mkdir -p "$CACHE_DIR"
  local tmp_bin build_log
  tmp_bin="$(mktemp -d "$CACHE_DIR/.build.XXXXXX")"
  build_log="$CACHE_DIR/build.log"
  log "building weaviate-server ${WEAVIATE_VERSION} from the Go module proxy ($("$go_bin" env GOPROXY))"
  log "cold: downloads ~230 modules (~2 GB module cache) and compiles ~1900 packages, ~3 min on 2 cores (log: $build_log)"

  local start_ts=$SECONDS rc=0
  (
    cd "$tmp_bin" # outside any go.mod, so `go install pkg@version` is in module-aware global mode
    CGO_ENABLED=0 GOFLAGS=-trimpath GOBIN="$tmp_bin" \
      "$go_bin" install -v "github.com/weaviate/weaviate/cmd/weaviate-server@${WEAVIATE_VERSION}"
  ) >"$build_log" 2>&1 &
  local build_pid=$!
  # Heartbeat so a long build is not silent.
  while kill -0 "$build_pid" 2>/dev/null; do
    sleep 15
    if kill -0 "$build_pid" 2>/dev/null; then
      local dl pk
      dl="$(grep -c '^go: downloading' "$build_log" 2>/dev/null || true)"
      pk="$(grep -vc '^go: ' "$build_log" 2>/dev/null || true)"
      log "  ... $((SECONDS - start_ts))s elapsed, ${dl:-0} modules downloaded, ${pk:-0} packages built"
    fi
  done
  wait "$build_pid" || rc=$?
  if [[ $rc -ne 0 || ! -x "$tmp_bin/weaviate-server" ]]; then
    rm -rf "$tmp_bin"
    log "build failed (exit $rc); last 30 lines of $build_log:"
    tail -n 30 "$build_log" >&2
    die "could not build weaviate-server ${WEAVIATE_VERSION} (needs the Go module proxy to be reachable; see README)"
  fi
  mv -f "$tmp_bin/weaviate-server" "$BIN"
  rm -rf "$tmp_bin"
  log "built $BIN in $((SECONDS - start_ts))s ($(du -h "$BIN" | cut -f1))"
}

# ------------------------------------------------------------------ start ---

cmd_start() {
  if is_ready; then
    log "already running and ready at $BASE_URL (version $(server_version), gRPC ${HOST}:${GRPC_PORT})"
    return 0
  fi

  local pid
  if pid="$(running_pid)"; then
    log "weaviate-server (pid $pid) is running but not ready yet; waiting"
  else
    local spec
    for spec in "HTTP:$HTTP_PORT" "GRPC:$GRPC_PORT" "GOSSIP:$GOSSIP_PORT" "DATA:$DATA_PORT" \
      "RAFT:$RAFT_PORT" "RAFT_RPC:$RAFT_RPC_PORT"; do
      if port_in_use "${spec#*:}"; then
        die "port ${spec#*:} is already in use (and no ready Weaviate at $BASE_URL); free it or set WEAVIATE_${spec%%:*}_PORT"
      fi
    done
    cmd_build
    mkdir -p "$STATE_DIR" "$DATA_DIR"
    log "starting weaviate-server ${WEAVIATE_VERSION}: http ${BASE_URL}, grpc ${HOST}:${GRPC_PORT}, data ${DATA_DIR}"
    printf '\n==== %s start %s ====\n' "$(date -u +%FT%TZ)" "$WEAVIATE_VERSION" >>"$LOG_FILE"
    (
      cd "$STATE_DIR"
      exec env \
        PERSISTENCE_DATA_PATH="$DATA_DIR" \
        AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED=true \
        DEFAULT_VECTORIZER_MODULE=none \
        ENABLE_MODULES= \
        API_BASED_MODULES_DISABLED=true \
        QUERY_DEFAULTS_LIMIT="${WEAVIATE_QUERY_DEFAULTS_LIMIT:-25}" \
        GRPC_PORT="$GRPC_PORT" \
        CLUSTER_HOSTNAME="${WEAVIATE_NODE_NAME:-node1}" \
        CLUSTER_IN_LOCALHOST=true \
        CLUSTER_BIND_ADDR="$HOST" \
        CLUSTER_ADVERTISE_ADDR="$HOST" \
        CLUSTER_GOSSIP_BIND_PORT="$GOSSIP_PORT" \
        CLUSTER_DATA_BIND_PORT="$DATA_PORT" \
        RAFT_PORT="$RAFT_PORT" \
        RAFT_INTERNAL_RPC_PORT="$RAFT_RPC_PORT" \
        RAFT_BOOTSTRAP_EXPECT=1 \
        RAFT_JOIN="${WEAVIATE_NODE_NAME:-node1}:${RAFT_RPC_PORT}" \
        RAFT_TIMEOUTS_MULTIPLIER="${WEAVIATE_RAFT_TIMEOUTS_MULTIPLIER:-1}" \
        DISABLE_TELEMETRY=true \
        GO_PROFILING_DISABLE=true \
        PROMETHEUS_MONITORING_ENABLED=false \
        LOG_LEVEL="${WEAVIATE_LOG_LEVEL:-info}" \
        setsid nohup "$BIN" --host "$HOST" --port "$HTTP_PORT" --scheme http \
        </dev/null >>"$LOG_FILE" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$PID_FILE"
    disown "$pid" 2>/dev/null || true
  fi

  local wait_start=$SECONDS deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if is_ready; then
      log "ready after $((SECONDS - wait_start))s: $BASE_URL (version $(server_version)), gRPC ${HOST}:${GRPC_PORT}, pid $pid"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      tail_log
      die "weaviate-server exited during startup"
    fi
    sleep 1
  done
  tail_log
  die "weaviate-server (pid $pid) not ready after ${START_TIMEOUT}s (HTTP ready: $(http_ready && echo yes || echo no), gRPC port open: $(grpc_open && echo yes || echo no))"
}

# ------------------------------------------------------------------- stop ---

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    if http_ready; then
      log "not started by this script (no live pid in $PID_FILE), but a Weaviate answers at $BASE_URL; leaving it alone"
    else
      log "not running"
    fi
    return 0
  fi
  log "stopping weaviate-server (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 30; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "still alive after 30s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

# ----------------------------------------------------------------- status ---

cmd_status() {
  local pid=""
  pid="$(running_pid || true)"
  if is_ready; then
    log "ready: $BASE_URL (version $(server_version)), gRPC ${HOST}:${GRPC_PORT}${pid:+, pid $pid}"
    return 0
  fi
  if [[ -n "$pid" ]]; then
    log "process running (pid $pid) but not ready (HTTP ready: $(http_ready && echo yes || echo no), gRPC port open: $(grpc_open && echo yes || echo no))"
  else
    log "not running"
  fi
  return 1
}

usage() {
  cat <<EOF
usage: $0 {build|start|stop|restart|status|logs|path}
  build    go install weaviate-server ${WEAVIATE_VERSION} into $CACHE_DIR (skipped if present)
  start    build if needed, start in the background, wait until ready (idempotent)
  stop     stop the server started by 'start' (TERM, then KILL; idempotent)
  restart  stop + start
  status   print whether it is ready (exit 0 if ready, 1 otherwise)
  logs     tail -f the server log ($LOG_FILE)
  path     print the binary path
EOF
}

case "${1:-}" in
  build) cmd_build ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status) cmd_status ;;
  logs) exec tail -n 100 -f "$LOG_FILE" ;;
  path) printf '%s\n' "$BIN" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
