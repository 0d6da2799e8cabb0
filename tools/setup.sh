#!/bin/sh
# kvmesh set-up for a fresh Debian 12 (bookworm) machine.
# Installs every package the build, the tests and the cross tests need, then builds.
# Idempotent: safe to run again. Must run as root.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: run as root (it installs Debian packages)" >&2
    exit 1
fi

cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive

# arm64 multiarch: the cross builds link against Debian's own arm64 -dev packages.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
fi
# Always refresh: a fresh machine has no lists, and stale lists point at removed versions.
apt-get update

# Host build, tests and tools (libicu-dev: tests/nn/unicode.sh checks the tokenizer's
# Unicode tables against ICU; nothing links it; python3: tools/collab/table.py, the
# collaboration benchmark's markdown tables, which tests/tools/collab-table.sh checks
# against the docs; python3-matplotlib: only the PNG plot of tools/collab/bench.sh,
# tools/collab/plot.py; nothing at run time uses Python).
HOST_PKGS="build-essential pkg-config make git ca-certificates openssl
 libcmocka-dev libmosquitto-dev libmbedtls-dev libzstd-dev libgpiod-dev libinih-dev
 libicu-dev python3 python3-matplotlib
 mosquitto mosquitto-clients
 clang-14 libclang-rt-14-dev
 binutils iproute2 procps psmisc dpkg-dev systemd fakeroot"
# Cross builds and the qemu cross suite.
CROSS_PKGS="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
 libcmocka-dev:arm64 libmosquitto-dev:arm64 libmbedtls-dev:arm64 libzstd-dev:arm64
 libgpiod-dev:arm64 libinih-dev:arm64"

# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $HOST_PKGS $CROSS_PKGS

# libgpiod 2.x headers, to compile-check hal's 2.x backend (tests/hal/gpiod2-build.sh).
# Debian 12 ships libgpiod 1.6; bookworm-backports
# has 2.1. The package is unpacked into GPIOD2_DIR, never installed, so the system
# keeps 1.6. Backports sources get priority 100: nothing else is pulled from them.
GPIOD2_DIR=/opt/kvmesh/libgpiod2
if [ ! -f "$GPIOD2_DIR/usr/include/gpiod.h" ]; then
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        apt-get update
    fi
    gpiod2_ver=$(apt-cache madison libgpiod-dev | awk -F'|' '$3 ~ /bookworm-backports/ { gsub(/ /, "", $2); print $2; exit }')
    if [ -z "$gpiod2_ver" ]; then
        echo "setup.sh: no libgpiod-dev in bookworm-backports" >&2
        exit 1
    fi
    gpiod2_tmp=$(mktemp -d)
    chown _apt "$gpiod2_tmp" 2>/dev/null || chmod 755 "$gpiod2_tmp"
    (cd "$gpiod2_tmp" && apt-get download "libgpiod-dev=$gpiod2_ver")
    mkdir -p "$GPIOD2_DIR"
    dpkg -x "$gpiod2_tmp"/libgpiod-dev_*.deb "$GPIOD2_DIR"
    rm -rf "$gpiod2_tmp"
fi

make -j"$(nproc)"
echo "setup.sh: done. Run the tests with: make check"
