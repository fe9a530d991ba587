#!/usr/bin/env bash
# Makes sure PostgreSQL's server programs (initdb, pg_ctl, postgres) are present
# for the server tests, which start a throwaway cluster of their own
# (server/tests/postgres_cluster.py). Idempotent and fast when they are: it only
# looks for initdb on PATH or under /usr/lib/postgresql/<version>/bin. Otherwise
# installs Debian's postgresql with apt-get, pinned to Debian 12 (bookworm);
# override with POSTGRESQL_PKG_VERSION (empty = the candidate) on another release.
#
# Debian's package also creates and starts a cluster of its own ("main" on port
# 5432); the tests never use it.
set -euo pipefail
POSTGRESQL_PKG_VERSION="${POSTGRESQL_PKG_VERSION-15+248+deb12u1}"

find_initdb() {
  command -v initdb 2>/dev/null && return 0
  ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 | grep . && return 0
  return 1
}

if find_initdb >/dev/null; then
  exit 0
fi
source "$(dirname "$0")/_apt.sh"
apt_install ensure-postgresql "postgresql=$POSTGRESQL_PKG_VERSION"
if ! initdb="$(find_initdb)"; then
  echo "ensure-postgresql: initdb still missing after apt-get install" >&2
  exit 1
fi
echo "ensure-postgresql: $("$initdb" --version)" >&2
