#!/usr/bin/env bash
# Builds and runs the Go quickstart (run from the repository root).
# Needs SECINFRA_URL, SECINFRA_JOIN_TOKEN and SECINFRA_BUNDLE_FILE.
set -euo pipefail
: "${SECINFRA_URL:?set SECINFRA_URL (https://127.0.0.1:PORT)}"
: "${SECINFRA_JOIN_TOKEN:?set SECINFRA_JOIN_TOKEN}"
: "${SECINFRA_BUNDLE_FILE:?set SECINFRA_BUNDLE_FILE}"
cd "$(dirname "$0")/.."
go build -o bin/quickstart ./examples/quickstart
exec bin/quickstart
