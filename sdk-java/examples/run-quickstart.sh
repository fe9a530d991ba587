#!/usr/bin/env bash
# Builds the Java SDK and runs the quickstart (run from the repository root).
# Needs SECINFRA_URL, SECINFRA_JOIN_TOKEN and SECINFRA_BUNDLE_FILE.
set -euo pipefail
: "${SECINFRA_URL:?set SECINFRA_URL (https://127.0.0.1:PORT)}"
: "${SECINFRA_JOIN_TOKEN:?set SECINFRA_JOIN_TOKEN}"
: "${SECINFRA_BUNDLE_FILE:?set SECINFRA_BUNDLE_FILE}"
cd "$(dirname "$0")/.."
mvn -B -ntp -q -DskipTests package >&2
exec java -cp "target/classes:target/lib/*" examples/quickstart/Quickstart.java
