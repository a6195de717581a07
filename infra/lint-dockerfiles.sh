#!/usr/bin/env bash
# Lints infra/Dockerfile and infra/Dockerfile.gpu against Docker's best practices with Buddy's dockerfilelinter
# (npm `dockerlinter`: hadolint's rules in Node, ShellCheck over every RUN). hadolint itself is Haskell, with no
# Debian or npm package here. The linter is installed once into ~/.cache/tessera, outside the checkout and
# its dependencies; ShellCheck comes from Debian (its npm install script would download it from GitHub).
# Any finding fails (-e info); a deliberate exception is a `# linter ignore=RULE` line, with its reason, above it.
set -euo pipefail

VERSION="2.0.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/tessera/dockerlinter-${VERSION}"
LINTER="$CACHE_DIR/node_modules/dockerlinter/bin/dockerfilelinter.js"

if ! command -v shellcheck >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends shellcheck >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y --no-install-recommends shellcheck >/dev/null; }
  else
    echo "lint-dockerfiles: install ShellCheck (apt-get install shellcheck)" >&2
    exit 1
  fi
fi
if [[ ! -f "$LINTER" ]]; then
  mkdir -p "$CACHE_DIR"
  (cd "$CACHE_DIR" && echo '{"private":true}' >package.json \
    && npm install --no-audit --no-fund --ignore-scripts --save-exact "dockerlinter@${VERSION}" >/dev/null)
fi

status=0
for file in infra/Dockerfile infra/Dockerfile.gpu; do
  output="$(cd "$ROOT" && node "$LINTER" -f "$file" -s sh -e info 2>&1)" || status=1
  if [[ -n "$output" ]]; then printf '%s:\n%s\n' "$file" "$output"; status=1; else echo "$file: no findings"; fi
done
exit $status
