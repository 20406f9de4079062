#!/usr/bin/env bash
# Builds the release: static plugin binaries for linux and darwin on amd64
# and arm64 into dist/, named
#   vault-plugin-secrets-vendoroauth_<version>_<os>_<arch>
# (the naming of HashiCorp's own plugin releases), and dist/SHA256SUMS for
# `vault plugin register -sha256=`.
#
#   make release                      # version from the latest v* git tag
#   VERSION=v0.1.0 scripts/release.sh
#   ALLOW_DEV_RELEASE=1 VERSION=v0.1.0-dev make release   # a -dev build, on purpose
#
# The version is stamped into the binary (-X main.version); Vault refuses
# to run a registered version that the binary does not report, so it must
# be the one you register with. CGO is off, so the binaries run on any
# distribution (and in Vault's official images) without a libc match.
set -euo pipefail
cd "$(dirname "$0")/.."

PLUGIN=vault-plugin-secrets-vendoroauth
VERSION="${VERSION:-$(git describe --tags --match 'v[0-9]*' 2>/dev/null || true)}"
if [[ -z "$VERSION" ]]; then
  echo "release: no v* git tag and no VERSION given; tag the commit (git tag v0.1.0) or set VERSION" >&2
  exit 1
fi
if [[ ! "$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]*)?$ ]]; then
  echo "release: version $VERSION is not semver with a leading v (v1.2.3); Vault would refuse it" >&2
  exit 1
fi
# A -dev version is what a build without a tag calls itself; shipping one
# is a mistake unless someone asked for it.
if [[ "$VERSION" == *-dev* && "${ALLOW_DEV_RELEASE:-0}" != 1 ]]; then
  echo "release: version $VERSION is a development version; tag the commit (git tag v0.1.0), set VERSION, or set ALLOW_DEV_RELEASE=1 to ship it anyway" >&2
  exit 1
fi
if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
  echo "release: warning: the work tree has uncommitted changes; the binaries include them" >&2
fi

DIST=dist
rm -rf "$DIST"
mkdir -p "$DIST"
for os in linux darwin; do
  for arch in amd64 arm64; do
    out="$DIST/${PLUGIN}_${VERSION}_${os}_${arch}"
    echo "release: $out"
    CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" go build -trimpath \
      -ldflags "-s -w -X main.version=$VERSION" -o "$out" "./cmd/$PLUGIN"
  done
done
(cd "$DIST" && sha256sum "${PLUGIN}_${VERSION}"_* > SHA256SUMS)
echo "release: $DIST/SHA256SUMS"
cat "$DIST/SHA256SUMS"
