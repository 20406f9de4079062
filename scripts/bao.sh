#!/usr/bin/env bash
# Prints the path of an OpenBao `bao` binary, unpacking the one provided in
# ../shared/openbao/ into the cache when none is available; fails, saying
# why, when there is none to be had.
#
# Order: $BAO_BIN, then `bao` on PATH, then the cached copy (reused while
# its sha256 matches ../shared/openbao/README.md), then a fresh unpack of
# ../shared/openbao/bao-$BAO_VERSION-linux-amd64.xz into the cache that
# scripts/vault.sh uses. The Go module proxy does not serve OpenBao, so
# unlike Vault it cannot be built here.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

# The pinned OpenBao.
BAO_VERSION="${BAO_VERSION:-2.6.2}"
SHARED="${BAO_SHARED_DIR:-$ROOT/../shared/openbao}"
CACHE_DIR="${VENDOROAUTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-vendoroauth}"
OUT="$CACHE_DIR/bao-$BAO_VERSION/bao"

log() { echo "bao.sh: $*" >&2; }

is_openbao() { "$1" version 2>/dev/null | grep -q '^OpenBao '; }

if [[ -n "${BAO_BIN:-}" ]]; then
  if [[ ! -x "$BAO_BIN" ]]; then
    log "BAO_BIN=$BAO_BIN is not an executable file; unset it or point it at a bao binary"
    exit 1
  fi
  if ! is_openbao "$BAO_BIN"; then
    log "BAO_BIN=$BAO_BIN is not OpenBao: \`$BAO_BIN version\` prints \"$("$BAO_BIN" version 2>&1 | head -1)\""
    exit 1
  fi
  echo "$BAO_BIN"
  exit 0
fi
if command -v bao >/dev/null 2>&1; then
  command -v bao
  exit 0
fi

archive="$SHARED/bao-$BAO_VERSION-linux-amd64.xz"
want=""
if [[ -f "$SHARED/README.md" ]]; then
  want="$(grep -oE 'sha256 of the unpacked binary: [0-9a-f]{64}' "$SHARED/README.md" | grep -oE '[0-9a-f]{64}$' || true)"
fi
sha() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -x "$OUT" ]]; then
  if [[ -z "$want" ]]; then
    # Nothing to check against: it was checked when it was unpacked.
    echo "$OUT"
    exit 0
  fi
  if [[ "$(sha "$OUT")" == "$want" ]]; then
    echo "$OUT"
    exit 0
  fi
  log "$OUT does not match the sha256 in $SHARED/README.md; unpacking it again"
fi

if [[ ! -f "$archive" ]]; then
  log "no OpenBao: BAO_BIN is not set, there is no bao on PATH, no $OUT, and no $archive to unpack"
  exit 1
fi
if [[ -z "$want" ]]; then
  log "$SHARED/README.md gives no \"sha256 of the unpacked binary\" to check $archive against"
  exit 1
fi

mkdir -p "$(dirname "$OUT")"
# One unpacker at a time.
exec 9>"$CACHE_DIR/bao.lock"
flock 9
if [[ -x "$OUT" && "$(sha "$OUT")" == "$want" ]]; then
  echo "$OUT"
  exit 0
fi
tmp="$(mktemp "$OUT.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
xz -dc "$archive" >"$tmp"
got="$(sha "$tmp")"
if [[ "$got" != "$want" ]]; then
  log "$archive unpacks to sha256 $got, not $want as $SHARED/README.md says; not using it"
  exit 1
fi
chmod 0755 "$tmp"
mv "$tmp" "$OUT"
log "unpacked OpenBao $BAO_VERSION into $OUT"
echo "$OUT"
