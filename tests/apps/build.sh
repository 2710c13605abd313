#!/bin/sh
# Builds the probe FastCGI application used by the integration tests.
#   tests/apps/build.sh [OUTPUT]     (default: <crate>/target/apps/probe)
# Idempotent: rebuilds only when probe.c is newer than the binary.  Writes to a temporary
# file and renames it, so concurrent test processes never see a half-written binary.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src="$here/probe.c"
out=${1:-"$here/../../target/apps/probe"}
mkdir -p "$(dirname "$out")"
chmod 0755 "$(dirname "$out")"
if [ -x "$out" ] && [ ! "$src" -nt "$out" ]; then
    exit 0
fi
tmp="$out.tmp.$$"
gcc -O2 -Wall -Wextra -o "$tmp" "$src" -lfcgi
chmod 0755 "$tmp"
mv -f "$tmp" "$out"
