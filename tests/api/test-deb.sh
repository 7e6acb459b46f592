#!/bin/sh
# SPDX-License-Identifier: MIT
# test-deb.sh CPACK BUILD_DIR: CPack builds the Debian package, and it holds what an install
# needs: the programs, libvrpc with its SONAME link and shlibs, the header and vrpc.pc, the
# units, the default configuration as conffiles, the services and their links, vrpc(3);
# and control data dpkg accepts (checked with dpkg-deb, without installing it).
set -eu
cpack=$1 build=$(realpath "$2")
tmp=$(mktemp -d /tmp/vrpc-deb-test-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
(cd "$build" && "$cpack" -G DEB -B "$tmp" >"$tmp/cpack.log" 2>&1) ||
    { cat "$tmp/cpack.log"; fail "cpack"; }
deb=$(ls "$tmp"/vrpc_*.deb)
dpkg-deb --info "$deb" >"$tmp/info"
dpkg-deb --contents "$deb" | awk '{print $6 ($7 ? " " $7 " " $8 : "")}' >"$tmp/contents"
for f in ./usr/bin/vrpc-call ./usr/bin/vrpc-agent ./usr/sbin/vrpc-dispatcher ./usr/sbin/vrpc-ctl \
         ./usr/bin/vrpc-policy ./usr/include/vrpc/vrpc.h ./usr/share/man/man3/vrpc.3 \
         ./usr/lib/systemd/system/vrpc-dispatcher.service ./usr/lib/systemd/system/vrpc-agent.service \
         ./etc/vrpc/dispatcher.yaml ./etc/vrpc/domains.yaml ./etc/vrpc/policy.d/50-default.yaml \
         ./usr/libexec/vrpc/services/vrpc.Ping \
         "./etc/vrpc/services/vrpc.Ping -> /usr/libexec/vrpc/services/vrpc.Ping"; do
    grep -qxF "$f" "$tmp/contents" || fail "$f not in the package"
done
grep -Eq '^\./usr/lib/(.*/)?libvrpc\.so\.0 -> libvrpc\.so\.0\.1\.0$' "$tmp/contents" ||
    fail "libvrpc.so.0 link"
grep -Eq '^\./usr/lib/(.*/)?pkgconfig/vrpc\.pc$' "$tmp/contents" || fail "vrpc.pc"
if grep -E '^\./(usr/local|tmp|work)' "$tmp/contents"; then fail "files outside /usr and /etc"; fi
grep -q '^ Package: vrpc$' "$tmp/info" || fail "package name"
grep -q '^ Depends:.*libc6' "$tmp/info" || fail "no shlibs dependencies"
dpkg-deb --ctrl-tarfile "$deb" | tar -xf - -C "$tmp" ./conffiles ./shlibs ./postinst
for c in /etc/vrpc/dispatcher.yaml /etc/vrpc/domains.yaml /etc/vrpc/policy.d/50-default.yaml; do
    grep -qxF "$c" "$tmp/conffiles" || fail "$c is not a conffile"
done
grep -q '^libvrpc 0 vrpc' "$tmp/shlibs" || fail "shlibs: $(cat "$tmp/shlibs")"
sh -n "$tmp/postinst" || fail "postinst syntax"
echo "ok: $(basename "$deb")"
