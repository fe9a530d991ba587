#!/usr/bin/env bash
# Builds the Java SDK (no tests) and runs benchmarks/SdkJavaCalls.java on it against the reference
# server (SECINFRA_REFERENCE_SERVER, else secinfra-server on PATH); arguments go to the benchmark
# (--hits N, --requests N, --out FILE). JAVA_OPTS reach the JVM, for example
# JAVA_OPTS="-XX:StartFlightRecording=filename=/tmp/calls.jfr,settings=profile" for a profile.
# Used by `nox -s bench`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mvn -B -ntp -q -f "$root/sdk-java/pom.xml" -DskipTests package
# shellcheck disable=SC2086
exec java ${JAVA_OPTS:-} -cp "$root/sdk-java/target/classes:$root/sdk-java/target/lib/*" \
  "$root/benchmarks/SdkJavaCalls.java" "$@"
