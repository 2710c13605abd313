#!/usr/bin/env bash
# Installs what building, the demo and the tests need, on Debian/Ubuntu.
# Idempotent: packages already present are not touched; `apt-get update`
# runs at most once, and only when something is missing.
#   scripts/deps.sh build   -> packages to build the module
#   scripts/deps.sh test    -> + the FastCGI applications the tests use
#   scripts/deps.sh bench   -> + wrk and mod_fcgid for benchmarks
#   scripts/deps.sh deb     -> + what `make deb` needs (debhelper; dh_apache2
#                              comes with apache2-dev, which provides dh-apache2)
set -euo pipefail
level=${1:-build}

pkgs=(apache2 apache2-dev libclang-dev clang gcc make pkg-config curl ca-certificates)
case "$level" in
  test|demo|bench) pkgs+=(libfcgi-dev libfcgi-bin php-fpm php-cgi libfcgi-perl python3 python3-pip python-is-python3 procps strace iproute2 golang-go node-fastcgi ruby-fcgi fcgiwrap openssl) ;;
esac
case "$level" in
  bench) pkgs+=(wrk libapache2-mod-fcgid golang-go) ;;
  deb) pkgs+=(debhelper dpkg-dev) ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "mod_fastcgi: missing packages: ${missing[*]}" >&2
    echo "mod_fastcgi: run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "mod_fastcgi: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  stamp=/var/lib/apt/periodic/mod-fastcgi-apt-updated
  if [ ! -e "$stamp" ] || [ -z "$(find "$stamp" -mmin -600 2>/dev/null)" ]; then
    apt-get update -q
    mkdir -p "$(dirname "$stamp")" && touch "$stamp"
  fi
  # Package installs must not start the distribution's own apache2/php-fpm
  # services: tests run their own instances.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

case "$level" in
  test|demo|bench)
    # flup (the seed guide's Python FastCGI library) is not packaged in
    # Debian 12: install it from PyPI for the system python3.
    if ! /usr/bin/python3 -c 'import flup.server.fcgi' 2>/dev/null; then
      if [ "$(id -u)" -ne 0 ]; then
        echo "mod_fastcgi: python flup missing; run as root: /usr/bin/python3 -m pip install flup" >&2
        exit 1
      fi
      /usr/bin/python3 -m pip install -q --break-system-packages flup 2>/dev/null \
        || /usr/bin/python3 -m pip install -q flup
    fi
    ;;
esac

if ! command -v cargo >/dev/null 2>&1; then
  for c in "$HOME/.cargo/bin/cargo" /root/.cargo/bin/cargo; do
    [ -x "$c" ] && exit 0
  done
  echo "mod_fastcgi: a Rust toolchain (cargo, rustc >= 1.80) is required; see https://rustup.rs" >&2
  exit 1
fi
