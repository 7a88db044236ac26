#!/usr/bin/env bash
# Installs the Debian packages Copycat Lab needs to build, test and run.
#
# Idempotent: when everything is installed it prints nothing and exits 0 without
# touching apt. Otherwise it runs apt-get (as root, or through sudo) once for
# the missing packages. `make run` and `make test` call it first.
#
# Environment:
#   COPYCAT_EXTRA_PACKAGES  space-separated packages to require in addition
#   COPYCAT_SKIP_DEPS=1     do nothing (for machines whose packages are managed otherwise)
set -euo pipefail

# The one list of required Debian 12 packages; add new ones here.
PACKAGES=(
  cmake ninja-build g++ make
  qt6-base-dev qt6-tools-dev qt6-l10n-tools libqcustomplot-dev
  libgtest-dev libbenchmark-dev gcovr
  protobuf-compiler libprotobuf-dev libcereal-dev zlib1g-dev libxxhash-dev
  libgoogle-perftools-dev
)

if [[ "${COPYCAT_SKIP_DEPS:-0}" == 1 ]]; then
  exit 0
fi

if [[ -n "${COPYCAT_EXTRA_PACKAGES:-}" ]]; then
  read -r -a extra <<<"$COPYCAT_EXTRA_PACKAGES"
  PACKAGES+=("${extra[@]}")
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: dpkg-query not found; this script knows Debian 12 only." >&2
  echo "install-deps: install the equivalents of: ${PACKAGES[*]}" >&2
  echo "install-deps: then rerun with COPYCAT_SKIP_DEPS=1." >&2
  exit 1
fi

# Prints the packages of "$@" that are not installed (one dpkg-query for all).
missing_packages() {
  local installed
  installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null |
    awk '$2 == "installed" { print $1 }' || true)
  local p
  for p in "$@"; do
    if ! grep -qxF -- "$p" <<<"$installed"; then
      echo "$p"
    fi
  done
}

mapfile -t missing < <(missing_packages "${PACKAGES[@]}")
if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: missing Debian packages: ${missing[*]}"

if [[ "$(id -u)" == 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [[ -t 0 ]]; }; then
  as_root=(sudo)
else
  echo "install-deps: cannot install them: not root, and sudo is missing or needs a password" >&2
  echo "install-deps: but there is no terminal to ask for it. As root, run:" >&2
  echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi

apt_get=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q)
echo "install-deps: ${as_root[*]:+${as_root[*]} }apt-get update"
"${apt_get[@]}" update
echo "install-deps: ${as_root[*]:+${as_root[*]} }apt-get install -y ${missing[*]}"
"${apt_get[@]}" install -y "${missing[@]}"

mapfile -t still_missing < <(missing_packages "${missing[@]}")
if ((${#still_missing[@]} > 0)); then
  echo "install-deps: still missing after apt-get: ${still_missing[*]}" >&2
  exit 1
fi
echo "install-deps: done"
