#!/usr/bin/env bash
# Helm for linting and rendering infra/helm/tessera, built from the Go module proxy (no release downloads
# reach this machine) and cached outside the checkout, like infra/weaviate/weaviate.sh does for Weaviate.
#
# Usage: infra/helm/helm.sh build         build (once) and print the binary's path
#        infra/helm/helm.sh lint          helm lint --strict + helm template with each of the chart's ci/*-values.yaml
#        infra/helm/helm.sh <helm args>   any helm command, e.g. `infra/helm/helm.sh template t infra/helm/tessera`
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v4.3.2}"
GO_FALLBACK_TOOLCHAIN="go1.26.8"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHART="$SCRIPT_DIR/tessera"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/tessera/helm-${HELM_VERSION}"
BIN="$CACHE_DIR/helm"

log() { printf '[helm] %s\n' "$*" >&2; }
die() { printf '[helm] ERROR: %s\n' "$*" >&2; exit 1; }

find_go() {
  if command -v go >/dev/null 2>&1; then command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go
  else die "Go is not installed (no 'go' on PATH and no /usr/local/go/bin/go); install Go >= 1.25"; fi
}

build() {
  [[ -x "$BIN" ]] && return 0
  local go_bin; go_bin="$(find_go)"
  # helm v4's go.mod wants a recent Go; an older local one fetches this toolchain through the module proxy.
  local minor; minor="$("$go_bin" env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
  if [[ -n "$minor" && "$minor" -lt 25 && -z "${GOTOOLCHAIN:-}" ]]; then export GOTOOLCHAIN="$GO_FALLBACK_TOOLCHAIN"; fi
  mkdir -p "$CACHE_DIR"
  local tmp; tmp="$(mktemp -d "$CACHE_DIR/.build.XXXXXX")"
  local build_log="$CACHE_DIR/build.log" start=$SECONDS rc=0
  log "building helm ${HELM_VERSION} from the Go module proxy ($("$go_bin" env GOPROXY)); log: $build_log"
  # Outside any go.mod, so `go install pkg@version` runs in module-aware global mode. nice: the machine is shared.
  (cd "$tmp" && CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" GOBIN="$tmp" \
    nice -n 10 "$go_bin" install "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}") >"$build_log" 2>&1 || rc=$?
  if [[ $rc -ne 0 || ! -x "$tmp/helm" ]]; then
    rm -rf "$tmp"; tail -n 30 "$build_log" >&2
    die "could not build helm ${HELM_VERSION} (exit $rc; needs the Go module proxy)"
  fi
  mv -f "$tmp/helm" "$BIN"; rm -rf "$tmp"
  log "built $BIN in $((SECONDS - start))s"
}

# helm keeps its own cache and config under $HOME; keep them beside the binary, not in the checkout.
export HELM_CACHE_HOME="$CACHE_DIR/cache" HELM_CONFIG_HOME="$CACHE_DIR/config" HELM_DATA_HOME="$CACHE_DIR/data"

case "${1:-lint}" in
  build) build; echo "$BIN" ;;
  lint)
    build
    for values in "$CHART"/ci/*-values.yaml; do
      "$BIN" lint --strict "$CHART" -f "$values"
      "$BIN" template tessera "$CHART" -f "$values" >/dev/null
    done
    log "lint and template passed ($(basename -a "$CHART"/ci/*-values.yaml | tr '\n' ' '))" ;;
  *) build; exec "$BIN" "$@" ;;
esac
