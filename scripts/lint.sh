#!/usr/bin/env bash
# Runs the pinned golangci-lint (.golangci.yml), building it once from the
# Go module proxy into the cache scripts/vault.sh uses.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${GOLANGCI_LINT_VERSION:-v2.15.0}"
CACHE_DIR="${VENDOROAUTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-vendoroauth}"
BIN="$CACHE_DIR/golangci-lint-$VERSION/golangci-lint"
if [[ ! -x "$BIN" ]]; then
  mkdir -p "$(dirname "$BIN")"
  exec 9>"$CACHE_DIR/golangci-lint.lock"
  flock 9
  if [[ ! -x "$BIN" ]]; then
    echo "lint.sh: building golangci-lint $VERSION into $BIN (a few minutes; done once)" >&2
    GOBIN="$(dirname "$BIN")" GOFLAGS=-mod=mod go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$VERSION" >&2
  fi
fi
exec "$BIN" run ./...
