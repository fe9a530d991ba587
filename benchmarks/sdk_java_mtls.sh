#!/usr/bin/env bash
# Builds the Java SDK (no tests) and runs benchmarks/SdkJavaMtls.java on it; arguments go to the
# benchmark (--handshakes N, --requests N, --out FILE). Used by `nox -s bench`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mvn -B -ntp -q -f "$root/sdk-java/pom.xml" -DskipTests package
exec java -cp "$root/sdk-java/target/classes:$root/sdk-java/target/lib/*" \
  "$root/benchmarks/SdkJavaMtls.java" "$@"
