#!/bin/sh
# The Debian package and the deploy tool: the .deb's contents, control fields, conffile
# and maintainer scripts (dpkg-deb); the unit passes systemd-analyze verify; the host's
# package installs (user, files, the service user can run a configuration check) and
# purges leaving nothing behind; kvmesh-deploy's usage and dry run.
. "$(dirname "$0")/../lib/tap.sh"
top=$KVMESH_TOP
case ${KVMESH_TARGET_ARCH:-$(uname -m)} in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) arch=unknown ;;
esac

deb=$(sh "$top/packaging/mkdeb.sh" "$BIN" "${KVMESH_BOARD:-host}" 0.8.0+test "$TMPD" 2>"$TMPD/mkdeb.err")
check "packaging/mkdeb.sh builds $(basename "${deb:-none}")" [ -f "$deb" ]
[ -f "$deb" ] || { cat "$TMPD/mkdeb.err"; done_testing; }
check "the package is for $arch" [ "$(dpkg-deb --field "$deb" Architecture)" = "$arch" ]
check "control: name and version" [ "$(dpkg-deb --field "$deb" Package)-$(dpkg-deb --field "$deb" Version)" = kvmesh-0.8.0+test ]
deps=$(dpkg-deb --field "$deb" Depends)
echo "# Depends: $deps"
for d in libmosquitto1 libmbedcrypto7 libzstd1 libgpiod2 libinih1 libc6; do
    check "depends on $d (read from the binaries)" sh -c "echo '$deps' | grep -q '\\b$d\\b'"
done
dpkg-deb --contents "$deb" | awk '{print $NF}' >"$TMPD/contents"
for f in ./usr/bin/kvmesh ./usr/bin/kvmesh-kv ./usr/bin/kvmesh-monitor ./usr/bin/kvmesh-convert ./usr/bin/kvmesh-eval \
         ./usr/bin/kvmesh-deploy ./etc/kvmesh/kvmesh.conf ./lib/systemd/system/kvmesh.service \
         ./usr/share/doc/kvmesh/kvmesh.conf.example ./usr/share/doc/kvmesh/firmware.md; do
    check "contains $f" grep -qx "$f" "$TMPD/contents"
done
check "everything is owned by root" sh -c "! dpkg-deb --contents '$deb' | awk '{print \$2}' | grep -v '^root/root$' | grep -q ."
mkdir -p "$TMPD/ctl" "$TMPD/x"
dpkg-deb --control "$deb" "$TMPD/ctl"
dpkg-deb -x "$deb" "$TMPD/x"
check "/etc/kvmesh/kvmesh.conf is a conffile" grep -qx /etc/kvmesh/kvmesh.conf "$TMPD/ctl/conffiles"
for s in postinst prerm postrm; do
    check "$s is an executable shell script that parses" sh -c "[ -x '$TMPD/ctl/$s' ] && sh -n '$TMPD/ctl/$s'"
done
check "postinst creates the system user and group, and joins gpio where it exists" sh -c \
    "grep -q 'useradd --system' '$TMPD/ctl/postinst' && grep -q 'groupadd --system kvmesh' '$TMPD/ctl/postinst' && grep -q 'usermod -a -G gpio' '$TMPD/ctl/postinst'"
check "postrm purges the user, the state and the secret" sh -c \
    "grep -q userdel '$TMPD/ctl/postrm' && grep -q 'rm -rf /var/lib/kvmesh' '$TMPD/ctl/postrm'"
check "the default configuration is the documented example" cmp -s "$TMPD/x/etc/kvmesh/kvmesh.conf" "$top/firmware/kvmesh.conf.example"
unit="$TMPD/x/lib/systemd/system/kvmesh.service"
for k in User=kvmesh Restart=on-failure NoNewPrivileges=yes ProtectSystem=strict ReadWritePaths=/var/lib/kvmesh \
         ProtectHome=yes PrivateTmp=yes CapabilityBoundingSet= ; do
    check "the unit sets $k" grep -qx "$k" "$unit"
done
# systemd-analyze verify checks that ExecStart exists: against the built binary here
# (the installed one is verified after the install below).
sed "s|/usr/bin/kvmesh|$BIN/kvmesh|g" "$unit" >"$TMPD/kvmesh.service"
check "the unit passes systemd-analyze verify" sh -c "systemd-analyze verify '$TMPD/kvmesh.service' >'$TMPD/verify.txt' 2>&1"
sed 's/^/# /' "$TMPD/verify.txt"

# Install and purge the host's package on this machine (not the sanitizer build's, whose
# programs need the sanitizer runtime).
case "$KVMESH_BUILD" in *-asan) native=0 ;; *) native=1 ;; esac
[ "$arch" = "$(dpkg --print-architecture)" ] || native=0
if [ "$native" -eq 1 ]; then
    if dpkg -s kvmesh >/dev/null 2>&1; then
        fail "kvmesh is installed on this machine: this test installs and purges its own build; remove it first (dpkg -P kvmesh)"
        done_testing
    fi
    trap 'dpkg -P kvmesh >/dev/null 2>&1; rm -rf "$TMPD"' EXIT
    check "dpkg -i installs it" sh -c "dpkg -i '$deb' >'$TMPD/install.log' 2>&1"
    sed 's/^/# /' "$TMPD/install.log" | tail -5
    check "the system user and group kvmesh exist" sh -c "getent passwd kvmesh | grep -q nologin && getent group kvmesh >/dev/null"
    check "/var/lib/kvmesh belongs to kvmesh" [ "$(stat -c %U:%G /var/lib/kvmesh/cache)" = kvmesh:kvmesh ]
    check "the programs are installed" sh -c "/usr/bin/kvmesh version && /usr/bin/kvmesh-monitor --help && /usr/bin/kvmesh-deploy --help" >/dev/null
    check "the installed unit passes systemd-analyze verify" systemd-analyze verify /lib/systemd/system/kvmesh.service
    check "the service user can check the installed configuration" \
        runuser -u kvmesh -- /usr/bin/kvmesh run --config /etc/kvmesh/kvmesh.conf --check
    check "dpkg -P removes it" sh -c "dpkg -P kvmesh >'$TMPD/purge.log' 2>&1"
    check "nothing is left: files, state, configuration, user, group" sh -c \
        "[ ! -e /usr/bin/kvmesh ] && [ ! -e /lib/systemd/system/kvmesh.service ] && [ ! -e /var/lib/kvmesh ] && [ ! -e /etc/kvmesh ] && ! getent passwd kvmesh && ! getent group kvmesh && ! dpkg -s kvmesh >/dev/null 2>&1"
fi

# kvmesh-deploy: usage and the dry run (no host is contacted).
D="$top/tools/deploy/kvmesh-deploy"
check "kvmesh-deploy --help" sh -c "'$D' --help | grep -q 'usage: kvmesh-deploy'"
expect_fail "kvmesh-deploy without a host" 2 "which HOST" "$D" --deb "$deb"
expect_fail "kvmesh-deploy without a package" 2 "board B or --deb" "$D" pi@board
expect_fail "kvmesh-deploy with a missing file" 1 "no such file" "$D" --deb "$deb" --config "$TMPD/nope.conf" pi@board
printf 'k' >"$TMPD/fleet.key"
"$D" --dry-run --deb "$deb" --config "$top/firmware/kvmesh.conf.example" --secret "$TMPD/fleet.key" \
    --ssh "ssh -p 2222" pi@board.local >"$TMPD/dry.txt" 2>&1
check "--dry-run exits 0 and contacts nobody" [ $? -eq 0 ]
sed 's/^/# /' "$TMPD/dry.txt"
check "--dry-run shows the copy, the install, the files, the check and the start" sh -c \
    "grep -q '^+ scp .*$(basename "$deb").*pi@board.local:/tmp/kvmesh-deploy' '$TMPD/dry.txt' &&
     grep -q '^+ ssh -p 2222 pi@board.local sudo apt-get install -y /tmp/kvmesh-deploy.*/$(basename "$deb")' '$TMPD/dry.txt' &&
     grep -q 'install -o root -g kvmesh -m 0640 .*fleet.key /etc/kvmesh/fleet.key' '$TMPD/dry.txt' &&
     grep -q 'kvmesh run --config /etc/kvmesh/kvmesh.conf --check' '$TMPD/dry.txt' &&
     grep -q 'systemctl enable kvmesh.service && sudo systemctl restart kvmesh.service' '$TMPD/dry.txt'"
done_testing
