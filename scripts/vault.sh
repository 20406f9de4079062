#!/usr/bin/env bash
# Prints the path of a `vault` binary, building a pinned Vault from the Go
# module proxy when none is available.
#
# Order: $VAULT_BIN, then `vault` on PATH, then the cached build, then a fresh
# build into the cache. The cache lives outside the checkout so clean clones
# and later runs reuse it.
set -euo pipefail

# The pinned Vault. Vault's in-tree sdk is unpublished; v0.20.0 is the newest
# published sdk that compiles against v1.21.0. Vault 1.21.4, the newest patch
# the proxy serves, builds with none: its in-tree sdk has sdk 0.21.0's
# TryRecordObservationWithRequest, sdk 0.20.0's two-argument ActivationFunc
# and sdk 0.24.0's RestorePolicy returning (string, error), a mix no
# published sdk has (tried 0.20.0, 0.21.0; 0.20.1-0.20.3 and 0.21.1 are not
# served). Move the pin when a published sdk fits a newer release.
VAULT_VERSION="${VAULT_VERSION:-1.21.0}"
VAULT_SDK_VERSION="${VAULT_SDK_VERSION:-0.20.0}"
CACHE_DIR="${VENDOROAUTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-vendoroauth}"
OUT="$CACHE_DIR/vault-$VAULT_VERSION/vault"

log() { echo "vault.sh: $*" >&2; }

if [[ -n "${VAULT_BIN:-}" ]]; then
  if [[ ! -x "$VAULT_BIN" ]]; then
    log "VAULT_BIN=$VAULT_BIN is not an executable file; unset it or point it at a vault binary"
    exit 1
  fi
  echo "$VAULT_BIN"
  exit 0
fi
if command -v vault >/dev/null 2>&1; then
  command -v vault
  exit 0
fi
if [[ -x "$OUT" ]]; then
  echo "$OUT"
  exit 0
fi

mkdir -p "$CACHE_DIR"
# One builder at a time: parallel test runs wait for the first build.
exec 9>"$CACHE_DIR/build.lock"
if ! flock -n 9; then
  log "waiting for another build of Vault to finish (it holds $CACHE_DIR/build.lock; a build takes 10-15 minutes on 2 cores)"
  flock 9
fi
if [[ -x "$OUT" ]]; then
  echo "$OUT"
  exit 0
fi

work="$(mktemp -d "$CACHE_DIR/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log "building Vault $VAULT_VERSION from the Go module proxy into $OUT (10-15 minutes on 2 cores; done once)"
cat >"$work/go.mod" <<MOD
module vaultbuild

go 1.24

require github.com/hashicorp/vault v$VAULT_VERSION

replace github.com/hashicorp/vault/sdk => github.com/hashicorp/vault/sdk v$VAULT_SDK_VERSION
MOD
cat >"$work/main.go" <<'GO'
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
GO
(
  cd "$work"
  GOFLAGS=-mod=mod go mod tidy -e >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/vault" . >&2
)
mkdir -p "$(dirname "$OUT")"
mv "$work/vault" "$OUT"
log "built $OUT"
echo "$OUT"
