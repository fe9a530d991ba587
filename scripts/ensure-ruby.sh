#!/usr/bin/env bash
# Makes sure Ruby, rake and minitest are present for the Ruby SDK (sdk-ruby/).
#
# Idempotent and fast when they are: it only checks `ruby`, `rake` and
# `require "minitest"`. When any is missing it installs Debian's packages with
# apt-get (needs root, or sudo without a password). The versions are pinned to
# Debian 12 (bookworm); override with RUBY_PKG_VERSION / MINITEST_PKG_VERSION /
# RAKE_PKG_VERSION (empty = the distribution's candidate) on another release.
set -euo pipefail

RUBY_PKG_VERSION="${RUBY_PKG_VERSION-1:3.1}"
MINITEST_PKG_VERSION="${MINITEST_PKG_VERSION-5.17.0-1}"
RAKE_PKG_VERSION="${RAKE_PKG_VERSION-13.0.6-3}"

have_ruby() {
  command -v ruby >/dev/null 2>&1 \
    && command -v rake >/dev/null 2>&1 \
    && ruby -e 'require "minitest"' >/dev/null 2>&1
}

if have_ruby; then
  exit 0
fi

source "$(dirname "$0")/_apt.sh"
apt_install ensure-ruby \
  "ruby=$RUBY_PKG_VERSION" \
  "ruby-minitest=$MINITEST_PKG_VERSION" \
  "rake=$RAKE_PKG_VERSION"

if ! have_ruby; then
  echo "ensure-ruby: ruby, rake or minitest still missing after apt-get install" >&2
  exit 1
fi
echo "ensure-ruby: $(ruby --version)" >&2
