#!/usr/bin/env bash
# `make deb`: builds libapache2-mod-fastcgi_<version>_<arch>.deb (and its
# -dbgsym package) into the top directory with dpkg-buildpackage.
#
# The source tree is copied to target/deb/src/ first (dpkg-buildpackage
# writes its results to the parent directory); Cargo builds into
# target/deb/cargo, so rebuilds are incremental and do not wait on, or
# disturb, the target/ of `make` and `cargo test`.
#
# The result is cached: when the .deb exists and the hash of every input
# (the copied files, the Rust toolchain's version) is the one recorded when
# it was built, nothing is rebuilt. DEB_FORCE=1 rebuilds anyway.
#
# `-d`: the Rust toolchain comes from rustup, not from a Debian package,
# so the Build-Depends cannot name it; scripts/deps.sh deb installs the
# others, and debian/rules checks rustc's version itself.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
cargo=${CARGO:-cargo}
if ! command -v "$cargo" >/dev/null 2>&1; then
  cargo=$HOME/.cargo/bin/cargo
fi
# debian/rules runs `cargo` and `rustc` from PATH.
export PATH="$(dirname "$(command -v "$cargo")"):$PATH"

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb=libapache2-mod-fastcgi_${version}_${arch}.deb
dbgsym=libapache2-mod-fastcgi-dbgsym_${version}_${arch}.deb

work=$top/target/deb
src=$work/src/libapache2-mod-fastcgi-$version
mkdir -p "$work"

# The files the package is built from: everything but build output, VCS
# data and built packages.
list_inputs() {
  find . \( -path ./target -o -path ./.git -o -path ./fuzz/target -o -path ./bench/out \
            -o -name '__pycache__' \) -prune -o \
         \( -type f -o -type l \) ! -name '*.deb' ! -name '*.ddeb' ! -path ./mod_fastcgi.so \
         ! -path ./.git -print | LC_ALL=C sort
}

hash=$( { list_inputs | while IFS= read -r f; do
            if [ -L "$f" ]; then printf '%s -> %s\n' "$f" "$(readlink "$f")"
            else printf '%s %s\n' "$f" "$(sha256sum < "$f" | cut -d' ' -f1)"; fi
          done
          rustc --version; "$cargo" --version; } | sha256sum | cut -d' ' -f1)

if [ "${DEB_FORCE:-0}" != 1 ] && [ -f "$deb" ] && [ "$(cat "$work/stamp" 2>/dev/null)" = "$hash" ]; then
  echo "deb: $deb is up to date (inputs unchanged)"
  exit 0
fi

rm -rf "$work/src"
mkdir -p "$src"
list_inputs | tar -cf - --no-recursion -T - | tar -xf - -C "$src"

(
  cd "$src"
  CARGO_TARGET_DIR=$work/cargo dpkg-buildpackage -us -uc -b -d
)

cp -f "$work/src/$deb" "$top/$deb"
if [ -f "$work/src/$dbgsym" ]; then cp -f "$work/src/$dbgsym" "$top/$dbgsym"; fi
echo "$hash" > "$work/stamp"
echo "deb: built $deb ($(dpkg-deb -f "$deb" Installed-Size) KiB installed)"
