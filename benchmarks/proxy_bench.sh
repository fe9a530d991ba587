#!/usr/bin/env bash
# secinfra-proxy against HAProxy (benchmarks/proxy-bench/bench_test.go says what is measured),
# in one run, as JSON on stdout and in the file given as the one argument (optional). Installs
# Debian's haproxy package when it is missing (apt-get update + apt-get install -y), and the
# reference server through scripts/ensure-server.sh. PROXY_BENCH_ROUNDS (3), PROXY_BENCH_SECONDS
# (4) and PROXY_BENCH_CONNECTIONS (32) set the run's size.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-}"
if ! command -v haproxy >/dev/null 2>&1; then
  sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y haproxy
fi
server="${SECINFRA_REFERENCE_SERVER:-$(bash "$root/scripts/ensure-server.sh" | tail -n 1)}"
SECINFRA_REFERENCE_SERVER="$server" SECINFRA_REQUIRE_SERVER=1 PROXY_BENCH_OUT="${out:+$(realpath -m "$out")}" \
  go -C "$root/benchmarks/proxy-bench" test -count=1 -timeout 15m -run '^TestProxyVsHAProxy$' -v .
