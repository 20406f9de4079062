#!/usr/bin/env bash
# Runs the end-to-end tests: the plugin binary in a real server, driven
# through its HTTP API, once per server in the matrix:
#
#   Vault     $VAULT_BIN, else what scripts/vault.sh provides (building a
#             pinned Vault once if none is installed), so it works from a
#             clean clone;
#   OpenBao   $BAO_BIN, else a `bao` on PATH (.ci/run sets BAO_BIN from
#             scripts/bao.sh); skipped, saying why, when there is neither,
#             or with E2E_BAO=0.
#
# The tests find the server in VAULT_BIN and ask it what it is
# (vaulttest.Server), so a test that only makes sense on one server skips
# on the other. Arguments go to `go test`; E2E_RUN picks tests, E2E_TIMEOUT
# bounds each run. Ends with one summary line per server and fails if any
# run failed.
set -euo pipefail
cd "$(dirname "$0")/.."

servers=()
skipped=()
VAULT="$(scripts/vault.sh)"
servers+=("$VAULT")
if "$VAULT" version 2>/dev/null | grep -q '^OpenBao '; then
  skipped+=("OpenBao (second run): VAULT_BIN=$VAULT is OpenBao already")
elif [[ "${E2E_BAO:-1}" == 0 ]]; then
  skipped+=("OpenBao: E2E_BAO=0")
elif [[ -n "${BAO_BIN:-}" ]]; then
  if ! BAO="$(BAO_BIN="$BAO_BIN" scripts/bao.sh)"; then
    echo "e2e: BAO_BIN=$BAO_BIN cannot be used (see above)" >&2
    exit 1
  fi
  servers+=("$BAO")
elif command -v bao >/dev/null 2>&1; then
  servers+=("$(command -v bao)")
else
  skipped+=("OpenBao: BAO_BIN is not set and there is no bao on PATH (scripts/bao.sh provides one where ../shared/openbao/ exists; .ci/run sets BAO_BIN from it)")
fi

summary=()
failed=0
for bin in "${servers[@]}"; do
  name="$("$bin" version | head -1)"
  name="${name%%, built *}" # a Vault built from source stamps the build time
  echo "e2e: using $name ($bin)"
  start=$SECONDS
  rc=0
  VAULT_BIN="$bin" go test -tags e2e -count=1 -timeout "${E2E_TIMEOUT:-30m}" ${E2E_RUN:+-run "$E2E_RUN"} ./e2e/... "$@" || rc=$?
  secs=$((SECONDS - start))
  result=PASS
  if [[ $rc -ne 0 ]]; then
    result="FAIL (exit $rc)"
    failed=1
  fi
  summary+=("$(printf '%-60s %-14s %dm%02ds' "$name" "$result" $((secs / 60)) $((secs % 60)))")
done

echo
echo "e2e summary${E2E_RUN:+ (E2E_RUN=$E2E_RUN)}:"
for line in "${summary[@]}"; do echo "  $line"; done
for line in "${skipped[@]}"; do echo "  skipped: $line"; done
exit $failed
