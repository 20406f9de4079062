#!/usr/bin/env bash
# Runs the benchmarks: the testing.B hot paths inside the plugin, then the
# load generator (bench/cmd/vendoroauth-bench), which starts its own Vault
# dev server and vendor stand-ins on loopback and measures the plugin beside
# KV v1, KV v2 and a null plugin in the same run. Prints one table and
# writes it as JSON to bench/results/ (or $BENCH_OUT).
#
# Flags after the script name go to the load generator, e.g.
#   scripts/bench.sh -profile 10s          # also take CPU profiles
#   scripts/bench.sh -only throughput      # one phase
#   scripts/bench.sh -only connections -connections 20000   # a smaller many-connections cell
# BENCH_DURATION, BENCH_ROUNDS, BENCH_WARMUP, BENCH_PROFILE and BENCH_OUT
# are read by the load generator; BENCH_GOTIME sets -benchtime.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

VAULT_BIN="$(scripts/vault.sh)"
export VAULT_BIN
echo "bench: using $("$VAULT_BIN" version)" >&2

work="$(mktemp -d "${TMPDIR:-/tmp}/vendoroauth-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The load generator is built first, so a compile error stops the run before
# minutes of go test -bench.
go build -o "$work/vendoroauth-bench" ./bench/cmd/vendoroauth-bench

echo "bench: go test -bench (backend/ and the root package)" >&2
go test -run '^$' -bench . -benchmem -count=1 -benchtime "${BENCH_GOTIME:-1s}" \
  ./backend/ . | tee "$work/gobench.txt" >&2

rc=0
"$work/vendoroauth-bench" -gobench "$work/gobench.txt" "$@" || rc=$?
echo "bench: total wall time $((SECONDS - started))s" >&2
exit "$rc"
