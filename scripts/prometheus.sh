#!/usr/bin/env bash
# Prints the path of a Prometheus binary (or, with the argument promtool,
# of promtool), installing Prometheus when none is available, for the
# end-to-end tests of the metrics, the shipped alerting rules and their
# `promtool test rules` unit tests.
#
# Order: $PROMETHEUS_BIN (promtool beside it), then the binary on PATH,
# then Debian's package (`apt-get install prometheus`, as root with
# apt-get), then a build of the pinned release from the Go module proxy
# into the cache scripts/vault.sh uses. Exits non-zero, saying why, when
# none of these works; the tests then skip with that message.
set -euo pipefail

WANT="${1:-prometheus}"
case "$WANT" in
prometheus | promtool) ;;
*)
  echo "usage: $0 [prometheus|promtool]" >&2
  exit 2
  ;;
esac
# The Go module of Prometheus 3.x (v0.3xx.y is Prometheus 3.xx.y) for the
# build fallback; Debian's package is 2.42, which the shipped rules and the
# tests work with too.
PROMETHEUS_MODULE_VERSION="${PROMETHEUS_MODULE_VERSION:-v0.316.0}"
CACHE_DIR="${VENDOROAUTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-vendoroauth}"
OUT_DIR="$CACHE_DIR/prometheus-$PROMETHEUS_MODULE_VERSION"

log() { echo "prometheus.sh: $*" >&2; }

if [[ -n "${PROMETHEUS_BIN:-}" ]]; then
  bin="$PROMETHEUS_BIN"
  [[ "$WANT" == promtool ]] && bin="$(dirname "$PROMETHEUS_BIN")/promtool"
  if [[ ! -x "$bin" ]]; then
    log "PROMETHEUS_BIN=$PROMETHEUS_BIN: $bin is not an executable file"
    exit 1
  fi
  echo "$bin"
  exit 0
fi
if command -v "$WANT" >/dev/null 2>&1; then
  command -v "$WANT"
  exit 0
fi
if [[ -x "$OUT_DIR/$WANT" ]]; then
  echo "$OUT_DIR/$WANT"
  exit 0
fi

mkdir -p "$CACHE_DIR"
# One installer at a time: parallel test runs wait for the first.
exec 9>"$CACHE_DIR/prometheus.lock"
flock 9
if command -v "$WANT" >/dev/null 2>&1; then
  command -v "$WANT"
  exit 0
fi

if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  log "installing Debian's prometheus package (it brings promtool)"
  export DEBIAN_FRONTEND=noninteractive
  if { apt-get install -y -qq --no-install-recommends prometheus >&2 ||
    { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends prometheus >&2; }; } &&
    command -v "$WANT" >/dev/null 2>&1; then
    command -v "$WANT"
    exit 0
  fi
  log "apt-get could not install prometheus; building it from the Go module proxy instead"
fi

work="$(mktemp -d "$CACHE_DIR/prometheus-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log "building prometheus and promtool $PROMETHEUS_MODULE_VERSION from the Go module proxy into $OUT_DIR (several minutes on 2 cores; done once)"
if ! (
  cd "$work"
  go mod init promtoolbuild >/dev/null 2>&1
  GOFLAGS=-mod=mod go get "github.com/prometheus/prometheus@$PROMETHEUS_MODULE_VERSION" >&2
  mkdir -p bin
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -o bin/ github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool >&2
); then
  log "could not install Prometheus: no apt-get as root, and the build from the Go module proxy failed (see above)"
  exit 1
fi
mkdir -p "$OUT_DIR"
mv "$work/bin/prometheus" "$work/bin/promtool" "$OUT_DIR/"
echo "$OUT_DIR/$WANT"
