# Sourced by the ensure-*.sh scripts: installs pinned Debian packages with apt-get.
#
#   source "$(dirname "$0")/_apt.sh"
#   apt_install <tag> name=version [name=version ...]
#
# Runs `apt-get update` first (a fresh machine has no package lists), as root or
# with passwordless sudo. An empty version installs the distribution's candidate.
set -euo pipefail

apt_install() {
  local tag="$1"
  shift
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$tag: apt-get is not available; install $* yourself" >&2
    return 1
  fi
  local sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      echo "$tag: installing $* needs root (or passwordless sudo)" >&2
      return 1
    fi
  fi
  local packages=()
  local spec
  for spec in "$@"; do
    packages+=("${spec%=}")
  done
  echo "$tag: installing Debian's ${packages[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq >/dev/null
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}
