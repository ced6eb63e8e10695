#!/bin/sh
# Runs a command (default: make test) on a clean clone of this checkout's HEAD
# inside a chroot whose / is an overlay filesystem, as in a Docker or Podman
# container and many CI runners: the overlay's lower layer is this machine's
# root filesystem, its upper layer a tmpfs that is thrown away at the end.
# Needs root (mount, chroot).
#   sh scripts/overlay-root.sh            # make test
#   sh scripts/overlay-root.sh make run   # any command, run in the clone
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "overlay-root: needs root (mount and chroot)" >&2; exit 2; }
[ $# -gt 0 ] || set -- make test
base=$(mktemp -d /tmp/metrics-agent-overlay.XXXXXX)
root=$base/root
cleanup() {
  umount -R -l "$root" 2>/dev/null || true
  umount -l "$base" 2>/dev/null || true
  rmdir "$base" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
mount -t tmpfs -o size=8g tmpfs "$base"
mkdir -p "$base/upper" "$base/work" "$root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$root"
mount --rbind /proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/tmp"
git clone -q "$src" "$root/tmp/checkout"
echo "overlay-root: / is $(chroot "$root" sh -c 'stat -f -c %T /'), running: $*" >&2
chroot "$root" sh -c 'cd /tmp/checkout && exec "$@"' sh "$@"
