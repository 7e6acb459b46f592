#!/bin/sh
# SPDX-License-Identifier: MIT
# test-bench-json.sh: `vrpc-bench calls --json` and `vrpc-bench rpc-mux --json` print every
# row that issue 13 names, each one line {"bench": B, "row": NAME, "value": NUMBER,
# "unit": U} with a finite number, and the human table goes to stderr. Tiny sizes: this
# checks behaviour, never timing. Each benchmark brings up its own sim instance, here under
# a private VRPCSIM_ROOT, which must be empty again afterwards (no instance left behind), with
# no process of it still running.
#
# Usage: test-bench-json.sh BUILD-DIR
b=$1
. "$(dirname "$0")/common.sh"

# check BENCH FILE ROWS...: each row appears exactly once with a finite numeric value
check() {
    bench=$1 file=$2
    shift 2
    for row in "$@"; do
        n=$(grep -cE "^\{\"bench\": \"$bench\", \"row\": \"$row\", \"value\": -?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?, \"unit\": \"[A-Za-z/]+\"\}\$" "$file")
        [ "$n" -eq 1 ] || bad "$bench: row $row appears $n times with a number: $(grep "\"$row\"" "$file")"
    done
    # nothing but rows on stdout
    if grep -vq '^{"bench": ' "$file"; then
        bad "$bench: stdout has more than rows: $(grep -v '^{"bench": ' "$file")"
    fi
}

"$b/bench/vrpc-bench" calls --json --calls 5 --concurrent 4 --bytes 65536 --reps 3 \
    >"$root/calls.out" 2>"$root/calls.err" </dev/null
rc=$?
[ "$rc" -eq 0 ] || bad "calls: exit $rc: $(cat "$root/calls.err")"
check calls "$root/calls.out" floor_p50_us ping_g2d_p50_us ping_g2g_p50_us ping_events_per_call \
    stream_g2d_gbps stream_g2g_gbps pipeline_gbps
grep -q '^latency ' "$root/calls.err" || bad "calls: no human table on stderr"
# a Ping call needs at least one event each way between dispatcher and agent
ev=$(sed -n 's/.*"row": "ping_events_per_call", "value": \([0-9.e+-]*\),.*/\1/p' "$root/calls.out")
awk -v e="${ev:-0}" 'BEGIN { exit !(e >= 2) }' || bad "calls: ping_events_per_call $ev < 2"

"$b/bench/vrpc-bench" rpc-mux --json --bytes 1048576 --rtt 100 --reps 3 \
    >"$root/mux.out" 2>"$root/mux.err" </dev/null
rc=$?
[ "$rc" -eq 0 ] || bad "rpc-mux: exit $rc: $(cat "$root/mux.err")"
check rpc-mux "$root/mux.out" raw_gbps mux1_gbps mux64_gbps rtt64_raw_p50_us rtt64_mux_p50_us
grep -q '^measurement ' "$root/mux.err" || bad "rpc-mux: no human table on stderr"

# no instance and no process left behind
left_behind "calls and rpc-mux"

[ "$fail" -eq 0 ] && echo "ok"
exit "$fail"
