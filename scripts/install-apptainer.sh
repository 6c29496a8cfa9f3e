#!/usr/bin/env bash
# Installs Apptainer when it is missing (the container-mode tests run real `apptainer`).
# Debian 12 does not package Apptainer, so this builds the pinned release from its Go module
# (github.com/apptainer/apptainer, fetched by `go mod download` through the Go module proxy and
# checked against the pinned go.sum-style hash below; its own dependencies are checked by its
# go.sum) with Debian's build dependencies, and installs it under PREFIX
# (default /usr/local). Uses the Go on PATH when it is >= 1.21, else fetches one (see below).
# Safe to run again: does nothing when an `apptainer` is already on PATH. Takes about five
# minutes on two cores.
set -euo pipefail
version=${AIFC_APPTAINER_VERSION:-1.4.1}
# h1 hash of the v1.4.1 module as first downloaded for aifc (the proxy here serves no checksum
# database, so the hash is pinned); another version needs its own AIFC_APPTAINER_SUM.
sum=${AIFC_APPTAINER_SUM:-h1:rkify3P3kwgkAbD1sEI04ZOPvatROgSH/wqr8EFGwZY=}
prefix=${AIFC_APPTAINER_PREFIX:-/usr/local}
say() { echo "[aifc] $*" >&2; }
fail() { say "error: $*"; exit 1; }

if command -v apptainer >/dev/null; then
  exit 0
fi
[ "$(id -u)" = 0 ] || fail "run as root: Apptainer is built and installed under $prefix"

# Apptainer's build and run dependencies.
install_packages=$(dirname "$0")/install-packages.sh
"$install_packages" build-essential pkg-config libseccomp-dev squashfs-tools uidmap fakeroot \
  debootstrap fuse3 cryptsetup-bin

# Go >= 1.21 builds it: the one on PATH, else the Go toolchain module from the Go module proxy
# (golang.org/toolchain, as the go command's own toolchain switch fetches it; its sha256 is
# pinned, and its bin/go is byte-identical to the go1.26.8 release binary), kept in
# $go_home for later runs.
go_ok() { command -v go >/dev/null && [ "$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')" -ge 21 ] 2>/dev/null; }
if ! go_ok; then
  go_release=go1.26.8
  go_zip_sha256=30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7
  go_home=$prefix/lib/aifc-$go_release
  if [ ! -x "$go_home/bin/go" ]; then
    [ "$(uname -m)" = x86_64 ] ||
      fail "no Go >= 1.21 on PATH and only the linux-amd64 toolchain is pinned here; install Go >= 1.21"
    "$install_packages" curl unzip
    say "no Go >= 1.21 on PATH: fetching $go_release from the Go module proxy into $go_home"
    go_tmp=$(mktemp -d "${TMPDIR:-/tmp}/aifc-go.XXXXXX")
    curl -fsSL -o "$go_tmp/go.zip" \
      "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-$go_release.linux-amd64.zip" ||
      fail "could not download the Go toolchain from proxy.golang.org"
    echo "$go_zip_sha256  $go_tmp/go.zip" | sha256sum -c --quiet - ||
      fail "the Go toolchain download does not have the pinned sha256"
    unzip -q "$go_tmp/go.zip" -d "$go_tmp"
    mkdir -p "$(dirname "$go_home")"
    rm -rf "$go_home" && mv "$go_tmp/golang.org/toolchain@v0.0.1-$go_release.linux-amd64" "$go_home"
    rm -rf "$go_tmp"
  fi
  export PATH=$go_home/bin:$PATH GOTOOLCHAIN=local
  go_ok || fail "the Go toolchain in $go_home does not run"
fi

say "building Apptainer $version from its Go module (about five minutes; log: \$TMPDIR/aifc-apptainer-build.log)"
work=$(mktemp -d "${TMPDIR:-/tmp}/aifc-apptainer.XXXXXX")
log=${TMPDIR:-/tmp}/aifc-apptainer-build.log
trap 'rm -rf "$work"' EXIT
info=$(cd "$work" && GONOSUMDB=github.com/apptainer/apptainer \
       go mod download -json "github.com/apptainer/apptainer@v$version") || true
field() { sed -n "s/^[[:space:]]*\"$1\": \"\\(.*\\)\",\\?$/\\1/p" <<< "$info"; }
module_dir=$(field Dir)
[ -d "$module_dir" ] ||
  fail "could not download github.com/apptainer/apptainer@v$version from the Go module proxy: $(field Error)"
[ "$(field Sum)" = "$sum" ] ||
  fail "github.com/apptainer/apptainer@v$version has hash $(field Sum), expected $sum"
cp -r "$module_dir" "$work/src"
chmod -R u+w "$work/src"
# Module archives drop file modes; the build runs its shell and awk scripts directly.
grep -rlI '^#!' "$work/src" | xargs chmod +x
echo "$version" > "$work/src/VERSION"
if ! (cd "$work/src" &&
      sh ./mconfig --without-network --without-libsubid -V "$version" -b builddir --prefix="$prefix" &&
      make -C builddir -j"$(nproc)" && make -C builddir install) > "$log" 2>&1; then
  tail -n 30 "$log" >&2
  fail "building Apptainer $version failed (full log: $log)"
fi
say "installed $("$prefix/bin/apptainer" --version) under $prefix"
