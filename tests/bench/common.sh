# SPDX-License-Identifier: MIT
# common.sh: sourced by the benchmark tests after `b=BUILD-DIR`. Gives a private VRPCSIM_ROOT
# ($root, removed at exit) for the instances a benchmark brings up, a failure count ($fail)
# and bad(), which reports one failure, and left_behind NAME, which reports any instance or
# process of one still there under $root (files named *.out and *.err are the test's own).
set -u
fail=0
root=$(mktemp -d /tmp/vbt.XXXXXX)
trap 'rm -rf "$root"' EXIT
export VRPCSIM_ROOT="$root"

bad() { echo "FAIL: $*"; fail=1; }

left_behind() {
    left=$(ls -A "$root" | grep -v '\.\(out\|err\)$')
    [ -z "$left" ] || bad "$1: instance left behind under $root: $left"
    if pgrep -f "$root" >/dev/null; then
        bad "$1: processes left behind: $(pgrep -af "$root")"
    fi
}
