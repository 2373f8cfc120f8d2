#!/usr/bin/env bash
# Installs every Debian package that leakgate's build, tests and benchmarks need.
# Idempotent: when all packages are present it does not call apt at all.
# Usage: scripts/setup.sh            (as root, or with sudo available)
set -euo pipefail

packages=(
  build-essential cmake pkg-config ninja-build
  libgoogle-perftools-dev google-perftools
  libunwind-dev
  nlohmann-json3-dev
  libcpp-httplib-dev
  libsqlite3-dev sqlite3
  libgtest-dev libgmock-dev
  libbenchmark-dev
  libfmt-dev libcli11-dev
  binutils perl procps curl
  libxml2-utils
  # The HTML report's browser test (headless Chromium) and the fonts it renders with: Latin and
  # Chinese text (a site or thread name may be in either).
  chromium fonts-dejavu-core fonts-noto-cjk
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    echo "setup: error: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq || echo "setup: warning: apt-get update failed; trying the cached lists" >&2
if ! "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/leakgate-setup-apt.log 2>&1; then
  echo "setup: error: apt-get install failed; log in /tmp/leakgate-setup-apt.log" >&2
  for p in "${missing[@]}"; do
    if ! apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
      echo "setup: error: package '$p' is not available from the configured Debian sources" >&2
    fi
  done
  tail -n 20 /tmp/leakgate-setup-apt.log >&2
  exit 1
fi

still=()
for p in "${missing[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || still+=("$p")
done
if ((${#still[@]})); then
  echo "setup: error: still missing after install: ${still[*]}" >&2
  exit 1
fi
echo "setup: done"
