#!/usr/bin/env bash
# Jaeger all-in-one (v2, OTLP in, query API out) for Tessera's trace tests and local development.
#
# No container engine and no GitHub downloads here: the binary is built from the Go module proxy
# (github.com/jaegertracing/jaeger/cmd/jaeger, pinned) into ~/.cache/tessera, as infra/weaviate/weaviate.sh does.
#
# Usage: infra/observability/jaeger.sh {build|start|stop|status|path}
#   JAEGER_OTLP_HTTP_PORT (4318)  OTLP/HTTP receiver: set OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
#   JAEGER_OTLP_GRPC_PORT (4317)  JAEGER_QUERY_PORT (16686, UI and /api/traces/<id>)
# Memory storage: traces are gone when it stops.
set -euo pipefail

JAEGER_VERSION="${JAEGER_VERSION:-v1.75.0}"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/tessera/jaeger-${JAEGER_VERSION}"
BIN="$CACHE_DIR/jaeger"
STATE_DIR="$REPO_ROOT/.data"
PID_FILE="$STATE_DIR/jaeger.pid"
LOG_FILE="$STATE_DIR/jaeger.log"
CONFIG_FILE="$STATE_DIR/jaeger.yaml"
OTLP_HTTP_PORT="${JAEGER_OTLP_HTTP_PORT:-4318}"
OTLP_GRPC_PORT="${JAEGER_OTLP_GRPC_PORT:-4317}"
QUERY_PORT="${JAEGER_QUERY_PORT:-16686}"

log() { echo "jaeger.sh: $*" >&2; }

cmd_build() {
  if [[ -x "$BIN" ]]; then log "already built: $BIN"; return 0; fi
  command -v go >/dev/null || { log "needs Go (apt-get install golang, or /usr/local/go)"; exit 1; }
  mkdir -p "$CACHE_DIR"
  local work; work="$(mktemp -d "$CACHE_DIR/.build.XXXXXX")"
  log "building jaeger ${JAEGER_VERSION} from $(go env GOPROXY) (log: $CACHE_DIR/build.log); cold, this takes many minutes"
  (
    cd "$work"
    # A throwaway module that requires Jaeger as a tool: `go install pkg@version` refuses modules with replace directives.
    go mod init tessera.local/jaeger-build
    go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@${JAEGER_VERSION}"
    CGO_ENABLED=0 go build -trimpath -o "$work/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger
  ) >"$CACHE_DIR/build.log" 2>&1 || { tail -n 30 "$CACHE_DIR/build.log" >&2; rm -rf "$work"; exit 1; }
  mv "$work/jaeger" "$BIN"
  rm -rf "$work"
  log "built $BIN"
}

running() { [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

cmd_start() {
  cmd_build
  if running; then log "already running (pid $(cat "$PID_FILE"))"; return 0; fi
  mkdir -p "$STATE_DIR"
  # Jaeger v2 is an OpenTelemetry Collector: OTLP receivers -> memory store <- query service.
  cat >"$CONFIG_FILE" <<YAML
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:${QUERY_PORT}
    grpc:
      endpoint: 127.0.0.1:0
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:${OTLP_GRPC_PORT}
      http:
        endpoint: 127.0.0.1:${OTLP_HTTP_PORT}
processors:
  batch: {}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
YAML
  nohup "$BIN" --config "$CONFIG_FILE" >"$LOG_FILE" 2>&1 &
  echo $! >"$PID_FILE"
  for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:${QUERY_PORT}/api/services" >/dev/null 2>&1; then
      log "ready: OTLP/HTTP http://127.0.0.1:${OTLP_HTTP_PORT}, query http://127.0.0.1:${QUERY_PORT}"
      return 0
    fi
    running || { log "exited; last lines of $LOG_FILE:"; tail -n 30 "$LOG_FILE" >&2; exit 1; }
    sleep 0.5
  done
  log "not ready after 60 s (log: $LOG_FILE)"; exit 1
}

cmd_stop() {
  if running; then
    local pid; pid="$(cat "$PID_FILE")"
    kill "$pid"
    # Wait for it to go (10 s), then make sure.
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    log "stopped"
  fi
  rm -f "$PID_FILE"
}

case "${1:-}" in
  build) cmd_build ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) if running; then echo "running (pid $(cat "$PID_FILE"))"; else echo "stopped"; exit 1; fi ;;
  path) echo "$BIN" ;;
  *) echo "usage: $0 {build|start|stop|status|path}" >&2; exit 2 ;;
esac
