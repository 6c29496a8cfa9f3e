#!/usr/bin/env bash
# Installs Apptainer when it is missing (the container-mode tests run real `apptainer`).
# Debian 12 does not package Apptainer, so this builds the pinned release from its Go module
# (github.com/apptainer/apptainer, fetched by `go mod download` through the Go module proxy and
# checked against the pinned go.sum-style hash below; its own dependencies are checked by its
# go.sum) with Debian's build dependencies, and installs it under PREFIX
# (default /usr/local). Needs Go >= 1.21 on PATH. Safe to run again: does nothing when an
# `apptainer` is already on PATH. Takes about five minutes on two cores.
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

packages=(build-essential pkg-config libseccomp-dev squashfs-tools uidmap fakeroot debootstrap
          fuse3 cryptsetup-bin)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Apptainer's build and run dependencies: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v go >/dev/null ||
  fail "Apptainer is built from source and that needs Go >= 1.21 on PATH (https://go.dev/doc/install)"
go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
[ "${go_minor:-0}" -ge 21 ] 2>/dev/null ||
  fail "Go $(go env GOVERSION) is too old to build Apptainer $version; install Go >= 1.21"

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
