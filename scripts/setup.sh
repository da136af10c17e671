#!/bin/sh
# setup.sh makes this checkout ready to run: OS packages, npm packages, the
# patched fuse-native addon, and the TypeScript build. Safe to run again; it
# only does what is missing. `--bench` also installs the benchmark peers.
set -eu
cd "$(dirname "$0")/.."

say() { printf 'volmirror setup: %s\n' "$*" >&2; }

# 1. Node: fuse-native, classic-level and the rest need Node 20.19 or newer.
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' || {
  say "Node $(node --version) is too old: install Node 20.19 or newer"; exit 1; }

# 2. OS packages. Runtime: libfuse2 (fuse-native links it) and fuse3 (fusermount).
#    Tests and the demo drive real tools: fio, qemu-img, mkfs/fsck, cmp.
#    The native data path (native/) and fuse-native are built from source by
#    node-gyp: a C compiler, make and python3.
pkgs="libfuse2 fuse3 fio qemu-utils e2fsprogs rsync"
command -v cc >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || pkgs="$pkgs build-essential"
command -v python3 >/dev/null 2>&1 || pkgs="$pkgs python3"
# The tests drive the status page in a real headless Chromium.
if [ "${1:-}" = "--test" ]; then pkgs="$pkgs chromium"; fi
if [ "${1:-}" = "--bench" ]; then pkgs="$pkgs bindfs httpfs2 rclone nbdkit nginx-light chromium"; fi
missing=""
for p in $pkgs; do
  # Debian 13 renamed libfuse2 to libfuse2t64; either one will do.
  if [ "$p" = libfuse2 ] && dpkg-query -W -f='${Status}' libfuse2t64 2>/dev/null | grep -q 'ok installed'; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing OS packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq $missing >/dev/null || {
      # libfuse2 is libfuse2t64 on newer releases.
      apt-get install -y -qq $(echo "$missing" | sed 's/libfuse2/libfuse2t64/') >/dev/null; }
  else
    say "missing OS packages:$missing"
    say "run: sudo apt-get install -y$missing"
    exit 1
  fi
fi
if [ ! -e /dev/fuse ]; then
  [ "$(id -u)" = 0 ] && modprobe fuse 2>/dev/null || true
  [ -e /dev/fuse ] || { say "/dev/fuse is missing: load the fuse kernel module (sudo modprobe fuse)"; exit 1; }
fi

# 3. npm packages, when package-lock.json changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  # zstd-napi would first try to download a prebuilt binary: build it from
  # its bundled libzstd sources instead (node-gyp, the installed Node's headers).
  npm_config_build_from_source=zstd-napi npm ci --no-audit --no-fund --loglevel=error >&2
fi
node scripts/build-native.mjs

# 4. Build.
npx tsc -p tsconfig.json
