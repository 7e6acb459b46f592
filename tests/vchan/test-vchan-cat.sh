#!/bin/sh
# SPDX-License-Identifier: MIT
# test-vchan-cat.sh - vchan-cat's command line without Xen: --help/--version exit 0, every
# kind of bad usage exits 2 with one line on stderr, and a connection failure exits 1 with
# one line naming the domain and the path. XENSTORED_PATH points nowhere, so no xenstored
# (or sim) is ever reached.
# Usage: test-vchan-cat.sh PATH-TO-vchan-cat
set -u
cat=$1
XENSTORED_PATH=/nonexistent/vrpc-test/socket
export XENSTORED_PATH
fail=0
err=$(mktemp)
trap 'rm -f "$err"' EXIT

expect() { # expect RC ARGS...: run vchan-cat, check exit code and a one-line stderr
    want=$1
    shift
    "$cat" "$@" </dev/null >/dev/null 2>"$err"
    rc=$?
    lines=$(wc -l <"$err")
    if [ "$rc" -ne "$want" ]; then
        echo "FAIL: vchan-cat $*: exit $rc, expected $want"; cat "$err"; fail=1
    elif [ "$want" -ne 0 ] && [ "$lines" -ne 1 ]; then
        echo "FAIL: vchan-cat $*: $lines lines on stderr, expected 1"; cat "$err"; fail=1
    fi
}

expect 0 --help
expect 0 --version
"$cat" --version | grep -q '^vchan-cat (vrpc) ' || { echo "FAIL: --version text"; fail=1; }
"$cat" --help | grep -q -- '--uppercase' || { echo "FAIL: --help text"; fail=1; }

expect 2
expect 2 client
expect 2 client 3
expect 2 client 3 /p extra
expect 2 serve 3 /p
expect 2 client x /p
expect 2 client -1 /p
expect 2 client 32752 /p
expect 2 client 3 ''
expect 2 client 3 /p --read-min 4096
expect 2 client 3 /p --uppercase
expect 2 server 3 /p --persist
expect 2 server 3 /p --wait 10
expect 2 server 3 /p --read-min 2M
expect 2 server 3 /p --read-min 1x
expect 2 server 3 /p --read-min
expect 2 server 3 /p --bogus
expect 2 client 3 /p --linger -2

expect 1 client 3 /local/domain/0/data/vchan/3/512
grep -q 'domain 3 at /local/domain/0/data/vchan/3/512' "$err" ||
    { echo "FAIL: client failure message does not name domain and path"; cat "$err"; fail=1; }
expect 1 server 7 /local/domain/0/data/vchan/7/513 --read-min 64K --write-min 1M
grep -q 'domain 7 at /local/domain/0/data/vchan/7/513' "$err" ||
    { echo "FAIL: server failure message does not name domain and path"; cat "$err"; fail=1; }
expect 1 client 3 /p --wait 100
expect 1 server 3 /p --uppercase --persist

[ "$fail" -eq 0 ] && echo "vchan-cat CLI: all checks passed"
exit "$fail"
