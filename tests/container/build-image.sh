#!/usr/bin/env bash
# tests/container/build-image.sh [IMAGE_DIR]
# Builds containers/aifc.def into IMAGE_DIR/aifc.sif (default /tmp/aifc-image) for the
# container-mode tests, as the test cluster's user with `apptainer build --fakeroot`.
# No container registry is reachable from the test machines, so the definition's
# "Bootstrap: docker / From: debian:12[-slim]" headers are replaced by a debootstrap of
# Debian 12 from the Debian mirror; everything else in the file is built as written.
# AIFC_IMAGE_BOOTSTRAP=docker builds the file unchanged. An image built from the same sources
# is reused. Prints the image path.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
image_dir=${1:-/tmp/aifc-image}
user=${AIFC_CLUSTER_USER:-aifctest}
mirror=${AIFC_IMAGE_MIRROR:-http://deb.debian.org/debian}
bootstrap=${AIFC_IMAGE_BOOTSTRAP:-debootstrap}
say() { echo "[image] $*" >&2; }
fail() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "must run as root (it builds as $user)"
command -v apptainer >/dev/null || fail "apptainer is not installed (scripts/install-apptainer.sh)"
id "$user" >/dev/null 2>&1 || fail "user $user does not exist (tests/cluster/start.sh creates it)"
# --fakeroot maps root in the build to the user's subordinate ids.
for f in /etc/subuid /etc/subgid; do
  grep -q "^$user:" "$f" 2>/dev/null || {
    usermod --add-subuids 300000-365535 --add-subgids 300000-365535 "$user"
    break
  }
done

mkdir -p "$image_dir"
chown "$user:" "$image_dir"
staging=$image_dir/src
rm -rf "$staging.new"
mkdir -p "$staging.new"
# Only what the definition's own %files sections copy from the host (not "%files from STAGE"),
# so that the image is rebuilt when those change and not for every edit elsewhere.
mapfile -t sources < <(awk '/^%/ { copying = ($1 == "%files" && NF == 1); next }
                            copying && NF >= 2 { print $1 }' "$root/containers/aifc.def")
[ ${#sources[@]} -gt 0 ] || fail "containers/aifc.def copies nothing from the source tree"
(cd "$root" && tar -cf - "${sources[@]}") | tar -xf - -C "$staging.new"
case "$bootstrap" in
  debootstrap)
    awk -v mirror="$mirror" '
      /^Bootstrap: docker$/ { print "Bootstrap: debootstrap"; next }
      /^From: debian:12(-slim)?$/ { print "OSVersion: bookworm"; print "MirrorURL: " mirror; next }
      { print }' "$root/containers/aifc.def" > "$staging.new/aifc.def"
    grep -q '^From:' "$staging.new/aifc.def" && fail "containers/aifc.def has a From: this script does not map"
    ;;
  docker) cp "$root/containers/aifc.def" "$staging.new/aifc.def" ;;
  *) fail "AIFC_IMAGE_BOOTSTRAP must be debootstrap or docker, not $bootstrap" ;;
esac
key=$( (cd "$staging.new" && find . -type f -print0 | sort -z | xargs -0 sha256sum; echo "$bootstrap $mirror") |
       sha256sum | cut -d' ' -f1)
image=$image_dir/aifc.sif
if [ -s "$image" ] && [ "$(cat "$image_dir/aifc.sif.key" 2>/dev/null)" = "$key" ]; then
  rm -rf "$staging.new"
  say "up to date: $image"
  echo "$image"
  exit 0
fi
rm -rf "$staging" && mv "$staging.new" "$staging"
chown -R "$user:" "$staging"
say "building $image from containers/aifc.def ($bootstrap; about three minutes)"
started=$(date +%s)
log=$image_dir/build.log
if ! su -s /bin/sh "$user" -c "cd '$staging' && apptainer build --force --fakeroot '$image.new' aifc.def" \
     > "$log" 2>&1; then
  tail -n 30 "$log" >&2
  fail "apptainer build failed (full log: $log)"
fi
mv "$image.new" "$image"
echo "$key" > "$image_dir/aifc.sif.key"
say "built $image ($(du -h "$image" | cut -f1), $(( $(date +%s) - started )) s)"
echo "$image"
