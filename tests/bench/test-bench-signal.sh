#!/bin/sh
# SPDX-License-Identifier: MIT
# test-bench-signal.sh: a benchmark stopped by a signal in the middle of a run takes down
# what it brought up: `vrpc-bench calls` killed with SIGTERM and `vrpc-bench remote` with
# SIGHUP, each once its calls are running, die of that signal and leave no sim instance under
# a private VRPCSIM_ROOT, no process of one, and (remote) no temporary PKI directory;
# `vrpc-bench policy --reload` killed with SIGINT mid-reload leaves no policy folder in its
# TMPDIR. Waits on state (an audit log or the output filling), never on a clock.
#
# Usage: test-bench-signal.sh BUILD-DIR
b=$1
. "$(dirname "$0")/common.sh"

# stop NAME SIGNAL SIGNUM AUDIT-LOG CMD...: start CMD, wait until AUDIT-LOG (with PID for the
# benchmark's pid) has a line, send SIGNAL, expect death by it and nothing left behind
stop() {
    name=$1 sig=$2 signum=$3 audit=$4
    shift 4
    "$@" >"$root/$name.out" 2>&1 </dev/null &
    pid=$!
    log=$(echo "$audit" | sed "s/PID/$pid/")
    while kill -0 "$pid" 2>/dev/null && ! [ -s "$root/$log" ]; do
        sleep 0.1
    done
    if ! kill -"$sig" "$pid" 2>/dev/null; then
        bad "$name: ended before its calls ran: $(cat "$root/$name.out")"
        wait "$pid"
        return
    fi
    wait "$pid"
    rc=$?
    want=$((128 + signum))
    [ "$rc" -eq "$want" ] || bad "$name: exit $rc after SIG$sig, not $want"
    left_behind "$name"
    if ls -d /tmp/vrpc-bench-remote-"$pid"-* >/dev/null 2>&1; then
        bad "$name: temporary directory left behind: $(ls -d /tmp/vrpc-bench-remote-"$pid"-*)"
    fi
}

stop calls TERM 15 bench-calls-PID/audit.log \
    "$b/bench/vrpc-bench" calls --calls 300 --reps 2 --bytes 65536
stop remote HUP 1 bench-ra-PID/audit.log \
    "$b/bench/vrpc-bench" remote --calls 5000 --reps 1 --bytes 65536

# policy --reload: its rounds start once the folder is written and loaded. SIGINT is ignored
# by a background job of a non-interactive shell: env restores it for the benchmark.
mkdir "$root/tmp.out"
TMPDIR="$root/tmp.out" env --default-signal=INT "$b/bench/vrpc-bench" policy --reload --rounds 63 \
    >"$root/policy.out" 2>&1 </dev/null &
pid=$!
while kill -0 "$pid" 2>/dev/null && ! grep -q "^ *1 " "$root/policy.out"; do
    sleep 0.1
done
[ -n "$(ls -A "$root/tmp.out")" ] || bad "policy: no folder in TMPDIR while it reloads"
kill -INT "$pid" 2>/dev/null || bad "policy: ended before its rounds ran: $(cat "$root/policy.out")"
wait "$pid"
rc=$?
[ "$rc" -eq 130 ] || bad "policy: exit $rc after SIGINT, not 130"
left=$(ls -A "$root/tmp.out")
[ -z "$left" ] || bad "policy: temporary folder left behind: $left"

[ "$fail" -eq 0 ] && echo "ok"
exit "$fail"
