#!/bin/sh
# Builds the kvmesh .deb with dpkg-deb (no debhelper): the programs of one build, the
# default configuration (a conffile), the hardened systemd unit and the maintainer
# scripts. Dependencies are read from the binaries: each shared library they need, and
# the package (of the target architecture) that ships it.
#
#   packaging/mkdeb.sh BINDIR BOARD VERSION OUTDIR     -> OUTDIR/kvmesh_VERSION_ARCH.deb
#
# `make deb` (and `make BOARD=rpi4 deb`) calls it; the path of the package is printed.
set -eu
if [ $# -ne 4 ]; then
    echo "usage: packaging/mkdeb.sh BINDIR BOARD VERSION OUTDIR" >&2
    exit 2
fi
bindir=$1 board=$2 version=$3 outdir=$4
top=$(cd "$(dirname "$0")/.." && pwd)
for p in kvmesh kvmesh-kv kvmesh-monitor kvmesh-convert kvmesh-eval; do
    [ -x "$bindir/$p" ] || { echo "mkdeb: $bindir/$p is missing: build first (make BOARD=$board)" >&2; exit 1; }
done
case $(od -An -j18 -N2 -tu2 "$bindir/kvmesh" | tr -d ' ') in   # ELF e_machine
    62) arch=amd64 triplet=x86_64-linux-gnu ;;
    183) arch=arm64 triplet=aarch64-linux-gnu ;;
    *) echo "mkdeb: $bindir/kvmesh is neither x86-64 nor aarch64" >&2; exit 1 ;;
esac
command -v dpkg-deb >/dev/null || { echo "mkdeb: dpkg-deb not found (apt-get install dpkg-dev)" >&2; exit 1; }

stage=$(mktemp -d "${TMPDIR:-/tmp}/kvmesh-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
install -d "$root/DEBIAN" "$root/usr/bin" "$root/etc/kvmesh" "$root/lib/systemd/system" "$root/usr/share/doc/kvmesh"
for p in kvmesh kvmesh-kv kvmesh-monitor kvmesh-convert kvmesh-eval; do
    install -m 0755 "$bindir/$p" "$root/usr/bin/$p"
done
install -m 0755 "$top/tools/deploy/kvmesh-deploy" "$root/usr/bin/kvmesh-deploy"
install -m 0644 "$top/firmware/kvmesh.conf.example" "$root/etc/kvmesh/kvmesh.conf"
install -m 0644 "$top/packaging/kvmesh.service" "$root/lib/systemd/system/kvmesh.service"
install -m 0644 "$top/firmware/kvmesh.conf.example" "$root/usr/share/doc/kvmesh/kvmesh.conf.example"
install -m 0644 "$top/docs/firmware.md" "$root/usr/share/doc/kvmesh/firmware.md"
cat >"$root/usr/share/doc/kvmesh/copyright" <<COPY
kvmesh: a firmware-style C runtime for small language models on ARM boards, with
KV caches shared over MQTT. Built for board "$board" from the kvmesh sources.
COPY
for s in postinst prerm postrm; do install -m 0755 "$top/packaging/debian/$s" "$root/DEBIAN/$s"; done
echo /etc/kvmesh/kvmesh.conf >"$root/DEBIAN/conffiles"

# Depends: the package that ships each library the programs load.
deps=""
for lib in $(for p in "$root"/usr/bin/kvmesh*; do
                 [ "$(head -c4 "$p" | od -An -c | tr -d ' ')" = 177ELF ] && readelf -d "$p"
             done | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | sort -u); do
    path=""
    for d in /lib/$triplet /usr/lib/$triplet; do [ -e "$d/$lib" ] && path="$d/$lib" && break; done
    [ -n "$path" ] || { echo "mkdeb: no $lib for $arch on this machine (tools/setup.sh installs them)" >&2; exit 1; }
    pkg=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1)
    [ -n "$pkg" ] || pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1)
    [ -n "$pkg" ] || { echo "mkdeb: no package ships $path" >&2; exit 1; }
    case " $deps " in *" $pkg "*) ;; *) deps="$deps $pkg" ;; esac
done
depends=$(echo $deps | tr ' ' '\n' | sort | tr '\n' ',' | sed 's/,$//; s/,/, /g')
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CTL
Package: kvmesh
Version: $version
Architecture: $arch
Maintainer: kvmesh developers <kvmesh@localhost>
Installed-Size: $size
Depends: $depends, passwd
Recommends: systemd
Section: misc
Priority: optional
Description: small language models on ARM boards, sharing KV caches over MQTT
 kvmesh runs small llama-family models with integer-only arithmetic and a
 statically allocated arena, bit-identically on every board. Boards share
 compressed, end-to-end encrypted KV caches through an MQTT broker, so a context
 one board has read need not be read again by another.
 .
 This package is built for the board "$board": the device service (kvmesh run,
 a systemd unit), kvmesh-kv, kvmesh-monitor, kvmesh-convert, kvmesh-eval and
 kvmesh-deploy.
CTL
mkdir -p "$outdir"
deb="$outdir/kvmesh_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
