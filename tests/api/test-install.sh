#!/bin/sh
# SPDX-License-Identifier: MIT
# test-install.sh BUILD_DIR SOURCE_DIR VRPC_SIM: the install test.
#  1. `cmake --install` into a temporary prefix, and again with DESTDIR: every program,
#     libvrpc.so with its SONAME links, the header, vrpc.pc, man pages (vrpc(3) too),
#     systemd units naming the installed programs, the default /etc/vrpc, the services.
#  2. Build examples/vrpc-example.c from the INSTALLED tree with
#     `pkg-config --cflags --libs vrpc` (nothing of the source or build tree).
#  3. Bring up the emulated host with the INSTALLED default configuration (so its policy:
#     deny everything but vrpc.Ping) and run the example in a guest: vrpc.Ping works,
#     demo.Echo is refused (126), and 20 calls at once on one connection all answer.
set -eu
build=$(realpath "$1") src=$(realpath "$2") sim=$(realpath "$3")
tmp=$(mktemp -d /tmp/vrpc-install-test-XXXXXX)
ns="inst$$"
cleanup() {
    test -n "${keep:-}" && return   # keep=1: leave the tree for a look
    "$sim" down --ns "$ns" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
unset LD_LIBRARY_PATH
fail() { echo "FAIL: $*" >&2; exit 1; }

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; fail "cmake --install"; }

for f in bin/vrpc-call bin/vrpc-agent bin/vrpc-policy bin/vchan-cat bin/vrpc-bench \
         sbin/vrpc-dispatcher sbin/vrpc-ctl include/vrpc/vrpc.h \
         share/man/man3/vrpc.3 share/man/man1/vrpc-call.1 share/man/man8/vrpc-dispatcher.8 \
         etc/vrpc/dispatcher.yaml etc/vrpc/domains.yaml etc/vrpc/policy.d/50-default.yaml \
         lib/systemd/system/vrpc-dispatcher.service lib/systemd/system/vrpc-agent.service \
         libexec/vrpc/services/vrpc.Ping etc/vrpc/services/vrpc.Ping; do
    test -e "$prefix/$f" || fail "$f not installed"
done
pcdir=$(find "$prefix" -name vrpc.pc -printf '%h\n')
test -n "$pcdir" || fail "vrpc.pc not installed"
lib=$(dirname "$pcdir")
test -L "$lib/libvrpc.so" && test -L "$lib/libvrpc.so.0" && test -f "$lib/libvrpc.so.0.1.0" ||
    fail "libvrpc.so and its SONAME links"
grep -q "ExecStart=$prefix/sbin/vrpc-dispatcher --etc $prefix/etc/vrpc " \
    "$prefix/lib/systemd/system/vrpc-dispatcher.service" || fail "dispatcher unit paths"
grep -q "ExecStart=$prefix/bin/vrpc-agent --etc $prefix/etc/vrpc " \
    "$prefix/lib/systemd/system/vrpc-agent.service" || fail "agent unit paths"
if command -v systemd-analyze >/dev/null 2>&1; then
    # only unit syntax; the programs exist under the prefix
    systemd-analyze verify --man=no "$prefix/lib/systemd/system/vrpc-agent.service" \
        "$prefix/lib/systemd/system/vrpc-dispatcher.service" \
        >"$tmp/verify.log" 2>&1 || { cat "$tmp/verify.log"; fail "unit syntax"; }
fi
"$prefix/bin/vrpc-policy" check --etc "$prefix/etc/vrpc" >/dev/null 2>"$tmp/policy.log" ||
    { cat "$tmp/policy.log"; fail "the default policy does not check"; }
"$prefix/bin/vrpc-call" --version | grep -q "vrpc-call (vrpc)" || fail "installed vrpc-call"

# DESTDIR: everything under it, nothing at the prefix itself
dd=$tmp/destdir
DESTDIR=$dd cmake --install "$build" --prefix /opt/vrpc-test >"$tmp/install2.log" 2>&1 ||
    { cat "$tmp/install2.log"; fail "DESTDIR install"; }
test -x "$dd/opt/vrpc-test/bin/vrpc-call" && test -f "$dd/opt/vrpc-test/etc/vrpc/dispatcher.yaml" ||
    fail "DESTDIR not honoured"
test ! -e /opt/vrpc-test || fail "files outside DESTDIR"
# the staged tree is usable as it is: vrpc.pc finds its prefix from its own place
test "$(realpath "$(PKG_CONFIG_PATH=$(dirname "$(find "$dd" -name vrpc.pc)") \
    pkg-config --variable=includedir vrpc)")" = "$dd/opt/vrpc-test/include" ||
    fail "vrpc.pc under DESTDIR"
test "$(readlink "$dd/opt/vrpc-test/etc/vrpc/services/vrpc.Ping")" = \
    /opt/vrpc-test/libexec/vrpc/services/vrpc.Ping || fail "service link under DESTDIR"

# Build the example from the installed tree only
mkdir "$tmp/ex"
cp "$src/examples/vrpc-example.c" "$src/examples/Makefile" "$tmp/ex/"
export PKG_CONFIG_PATH="$pcdir"
cflags=$(pkg-config --cflags vrpc)
libs=$(pkg-config --libs vrpc)
case "$cflags $libs" in *"$build"*|*"$src"*) fail "pkg-config points into the build tree";; esac
test "$(realpath "$(pkg-config --variable=prefix vrpc)")" = "$prefix" || fail "vrpc.pc's prefix"
# no LD_LIBRARY_PATH, no rpath of our own: vrpc.pc gives one for a non-standard prefix
make -s -C "$tmp/ex" CFLAGS="-O2 -Wall -Wextra -Werror" >"$tmp/make.log" 2>&1 ||
    { cat "$tmp/make.log"; fail "building the example with pkg-config"; }
used=$(ldd "$tmp/ex/vrpc-example" | awk '$1 == "libvrpc.so.0" {print $3}')
test -n "$used" && test "$(realpath "$used")" = "$(realpath "$lib/libvrpc.so.0")" ||
    { ldd "$tmp/ex/vrpc-example"; fail "the example does not use the installed library"; }

# Run it in a guest, with the installed default configuration
"$sim" up --ns "$ns" --vrpc --etc "$prefix/etc/vrpc" work vault >"$tmp/up.log" 2>&1 ||
    { cat "$tmp/up.log"; fail "vrpc-sim up with the installed configuration"; }
out=$("$sim" exec --ns "$ns" work -- "$tmp/ex/vrpc-example" vault vrpc.Ping+install)
test "$out" = "pong install
exit=0" || fail "vrpc.Ping from the example: '$out'"
out=$("$sim" exec --ns "$ns" work -- "$tmp/ex/vrpc-example" dom0 demo.Echo hello)
test "$out" = "exit=126" || fail "demo.Echo under the default policy: '$out'"
out=$("$sim" exec --ns "$ns" vault -- "$tmp/ex/vrpc-example" --many 20 dom0 vrpc.Ping)
test "$out" = "20 calls, 20 exit 0, identical outputs: yes
pong" || fail "--many: '$out'"
# The complete example of docs/api.md, as printed there
awk '/^```c$/ {grab = 1; buf = ""; next} /^```$/ {if (grab && buf ~ /int main/) {print buf; exit} grab = 0; next} grab {buf = buf $0 "\n"}' \
    "$src/docs/api.md" >"$tmp/ex/doc-example.c"
grep -q "int main" "$tmp/ex/doc-example.c" || fail "no complete example in docs/api.md"
cc -O2 -Wall -Wextra -Werror -o "$tmp/ex/doc-example" "$tmp/ex/doc-example.c" $cflags $libs ||
    fail "docs/api.md's example does not build"
out=$("$sim" exec --ns "$ns" work -- "$tmp/ex/doc-example")
test "$out" = "call 0: exit 126, demo.Uppercase to dom0 refused
call 1: exit 126, demo.Uppercase to dom0 refused
call 2: exit 126, demo.Uppercase to dom0 refused" || fail "docs/api.md's example: '$out'"
"$sim" down --ns "$ns" >/dev/null
echo "ok: installed into $prefix, example built with pkg-config and run in a guest"
