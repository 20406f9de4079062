#!/usr/bin/env bash
# Runs the end-to-end tests: the plugin binary in a real Vault server,
# driven through Vault's HTTP API. Provides Vault first (building it once if
# none is installed), so it works from a clean clone.
set -euo pipefail
cd "$(dirname "$0")/.."
VAULT_BIN="$(scripts/vault.sh)"
export VAULT_BIN
echo "e2e: using $("$VAULT_BIN" version)"
exec go test -tags e2e -count=1 -timeout "${E2E_TIMEOUT:-30m}" ${E2E_RUN:+-run "$E2E_RUN"} ./e2e/... "$@"
