#!/usr/bin/env bash
# Registers, enables and configures the vendoroauth plugin in an existing
# Vault from a declarative file (see bootstrap/README.md):
#
#   export VAULT_ADDR=https://vault.example.com VAULT_TOKEN=…   # or: vault login
#   export OFFICERND_CLIENT_SECRET=…                           # what the file refers to
#   bootstrap/bootstrap.sh [-check] [-reseed-refresh-tokens] bootstrap/credentials.json
#
# A thin wrapper: it builds the Go tool (bootstrap/cmd/vendoroauth-bootstrap)
# into bin/ and runs it with the same arguments, from the caller's directory,
# so relative paths in the arguments and the file keep their meaning.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/bin/vendoroauth-bootstrap"
(cd "$ROOT" && go build -trimpath -o "$BIN" ./bootstrap/cmd/vendoroauth-bootstrap)
exec "$BIN" "$@"
