#!/usr/bin/env bash
# Everything a fresh Debian machine needs before `npm start` or `npm test`:
# system packages, PostgreSQL and Redis running, node modules installed.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v pdftotext >/dev/null || missing+=(poppler-utils)
# The default offline transcriber (issue #21): CMU pocketsphinx and its US English model.
command -v pocketsphinx_continuous >/dev/null || missing+=(pocketsphinx)
[ -d /usr/share/pocketsphinx/model/en-us/en-us ] || missing+=(pocketsphinx-en-us)
# The studio's browser tests drive Debian's chromium (no browser download reaches these machines).
command -v chromium >/dev/null || missing+=(chromium)
# The observability tests scrape the gateway and a worker with Debian's Prometheus.
command -v prometheus >/dev/null || missing+=(prometheus)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
# The tests build Weaviate from the Go module proxy; an old Debian Go fetches the toolchain it needs.
command -v go >/dev/null || [ -x /usr/local/go/bin/go ] || missing+=(golang-go)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  sudo_if_needed apt-get update -q
  sudo_if_needed apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL"
  sudo_if_needed pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  sudo_if_needed mkdir -p /var/lib/redis /var/log/redis
  sudo_if_needed redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
    --dir /var/lib/redis --logfile /var/log/redis/tessera.log
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
  sleep 1
done
pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { echo "PostgreSQL did not start" >&2; exit 1; }
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis did not start" >&2; exit 1; }

# The database `npm start` uses (the tests create their own).
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'tessera'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE tessera" >/dev/null

# Tessera runs on Node 24 LTS. A machine with an older Node gets the official
# binary the npm registry serves as node-linux-<arch>, cached outside the
# checkout and linked into /usr/local/bin, which comes before /usr/bin on PATH.
NODE_VERSION=24.22.3
if [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 24 ]; then
  case "$(uname -m)" in x86_64) node_arch=x64 ;; aarch64) node_arch=arm64 ;; *) echo "no Node 24 package for $(uname -m): install Node 24 yourself" >&2; exit 1 ;; esac
  node_dir="${XDG_CACHE_HOME:-$HOME/.cache}/tessera/node-$NODE_VERSION"
  node_bin="$node_dir/node_modules/node-linux-$node_arch/bin/node"
  if [ ! -x "$node_bin" ]; then
    echo "installing Node $NODE_VERSION into $node_dir"
    npm install --prefix "$node_dir" --no-save --no-audit --no-fund --no-package-lock "node-linux-$node_arch@$NODE_VERSION" >/dev/null
  fi
  sudo_if_needed ln -sf "$node_bin" /usr/local/bin/node
  hash -r
  if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 24 ]; then
    echo "Node $NODE_VERSION is at /usr/local/bin/node, but $(command -v node) comes first on PATH: put /usr/local/bin before it" >&2
    exit 1
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
echo "ready: Node $(node -v), PostgreSQL, Redis, ffmpeg, espeak-ng, pocketsphinx, node modules"
