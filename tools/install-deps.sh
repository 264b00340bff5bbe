#!/usr/bin/env bash
# Installs the Debian 12 packages lrsa needs to build, test and run (CPU path).
# Idempotent: skips apt when everything is already installed (set LRSA_FORCE_APT=1 to force).
set -euo pipefail
PKGS=(build-essential cmake ninja-build pkg-config
      libhdf5-dev hdf5-tools libopenblas-dev libopenmpi-dev openmpi-bin
      libcjson-dev libpcre2-dev libutf8proc-dev libyaml-dev libcmocka-dev
      clang-format python3 python3-pip unzip ca-certificates)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ] && [ -z "${LRSA_FORCE_APT:-}" ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]:-${PKGS[*]}}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
echo "install-deps: done"
