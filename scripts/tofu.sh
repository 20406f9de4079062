#!/usr/bin/env bash
# Prints the path of an OpenTofu `tofu` binary set up to install the Vault
# provider from a local filesystem mirror, unpacking both from
# ../shared/terraform/ into the cache when they are not there yet; fails,
# saying why, when there is nothing to unpack. Beside the binary it leaves
# `tofurc`, the CLI configuration that names the mirror:
#
#   TF_CLI_CONFIG_FILE="$(dirname "$(scripts/tofu.sh)")/tofurc" tofu init
#
# The end-to-end tests apply bootstrap/terraform/ with it. No Terraform or
# provider registry can be reached from this project's machines, so the
# binaries come from ../shared/terraform/ (its README says how they were
# built), checked against the sha256 sums it gives. Users install OpenTofu
# or Terraform and the provider from their own releases.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

# The pinned OpenTofu and Vault provider.
TOFU_VERSION="${TOFU_VERSION:-1.12.6}"
PROVIDER_VERSION="${VAULT_PROVIDER_VERSION:-5.11.0}"
SHARED="${TOFU_SHARED_DIR:-$ROOT/../shared/terraform}"
CACHE_DIR="${VENDOROAUTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-vendoroauth}"
DIR="$CACHE_DIR/tofu-$TOFU_VERSION"
MIRROR="$DIR/mirror"
PROVIDER="$MIRROR/registry.opentofu.org/hashicorp/vault/$PROVIDER_VERSION/linux_amd64/terraform-provider-vault_v$PROVIDER_VERSION"

log() { echo "tofu.sh: $*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# want NAME prints the sha256 ../shared/terraform/README.md gives for the
# unpacked binary of the paragraph that names NAME.
want() {
  [[ -f "$SHARED/README.md" ]] || return 0
  awk -v name="$1" '
    index($0, name) { found = 1 }
    found && match($0, /sha256 of the unpacked binary: [0-9a-f]+/) {
      print substr($0, RSTART + 31, 64); exit
    }' "$SHARED/README.md"
}

# unpack ARCHIVE OUT SHA256 puts the checked binary at OUT.
unpack() {
  local archive="$1" out="$2" sum="$3" tmp got
  if [[ -x "$out" && ( -z "$sum" || "$(sha "$out")" == "$sum" ) ]]; then
    return 0
  fi
  if [[ ! -f "$archive" ]]; then
    log "no $archive to unpack (and no usable $out): the Terraform tests need ../shared/terraform/"
    return 1
  fi
  if [[ -z "$sum" ]]; then
    log "$SHARED/README.md gives no sha256 for $(basename "$archive"); not using it"
    return 1
  fi
  mkdir -p "$(dirname "$out")"
  tmp="$(mktemp "$out.XXXXXX")"
  xz -dc "$archive" >"$tmp"
  got="$(sha "$tmp")"
  if [[ "$got" != "$sum" ]]; then
    rm -f "$tmp"
    log "$archive unpacks to sha256 $got, not $sum as $SHARED/README.md says; not using it"
    return 1
  fi
  chmod 0755 "$tmp"
  mv "$tmp" "$out"
  log "unpacked $(basename "$archive") into $out"
}

mkdir -p "$DIR"
# One unpacker at a time.
exec 9>"$DIR/.lock"
flock 9
unpack "$SHARED/tofu-$TOFU_VERSION-linux-amd64.xz" "$DIR/tofu" "$(want "tofu-$TOFU_VERSION-linux-amd64.xz")"
unpack "$SHARED/terraform-provider-vault_${PROVIDER_VERSION}_linux_amd64.xz" "$PROVIDER" \
  "$(want "terraform-provider-vault_${PROVIDER_VERSION}_linux_amd64.xz")"
cat >"$DIR/tofurc.tmp" <<EOF
provider_installation {
  filesystem_mirror {
    path    = "$MIRROR"
    include = ["registry.opentofu.org/hashicorp/vault"]
  }
}
EOF
mv "$DIR/tofurc.tmp" "$DIR/tofurc"
echo "$DIR/tofu"
