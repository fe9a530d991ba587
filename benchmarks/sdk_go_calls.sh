#!/usr/bin/env bash
# Runs the Go SDK's call benchmarks (sdk-go/bench_test.go: a GetSecret and a Check cache hit, an
# uncached GetSecret against net/http alone) against the reference server (secinfra-server on PATH,
# or $SECINFRA_REFERENCE_SERVER) and prints them as JSON, also written to --out FILE. Other
# arguments (nox -s bench passes --requests N to every benchmark) are ignored;
# GO_BENCH_COUNT (default 1) and GO_BENCH_TIME (default 1s) set -count and -benchtime.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    *) shift ;;
  esac
done
text="$(SECINFRA_REQUIRE_SERVER=1 go -C "$root/sdk-go" test -run '^$' \
  -bench '^Benchmark(GetSecretCacheHit|CheckCacheHit|GetSecretUncachedVsRawHTTP)$' -benchmem \
  -count "${GO_BENCH_COUNT:-1}" -benchtime "${GO_BENCH_TIME:-1s}" .)"
printf '%s\n' "$text" >&2
json="$(printf '%s\n' "$text" | python3 -c '
import json, platform, sys
runs = []
for line in sys.stdin:
    parts = line.split()
    if not parts or not parts[0].startswith("Benchmark") or len(parts) < 4:
        continue
    run = {"benchmark": parts[0].split("-")[0], "iterations": int(parts[1])}
    for value, unit in zip(parts[2::2], parts[3::2]):
        run[unit] = float(value)
    runs.append(run)
print(json.dumps({"benchmark": "sdk_go_calls", "machine": platform.node(), "runs": runs}, indent=2))
')"
printf '%s\n' "$json"
if [[ -n "$out" ]]; then printf '%s\n' "$json" > "$out"; fi
