#!/bin/sh
# SPDX-License-Identifier: MIT
# test-cli.sh: every vrpc program speaks one command-line dialect (issue 11 item 8):
#   --version prints one line "NAME (vrpc) X.Y.Z"; --help starts with "Usage: NAME";
#   a bad option (and, for the tools, no arguments) is exit 2 with ONE line on stderr,
#   "NAME: ... (try --help)"; and no message echoes control or escape bytes that came
#   from the command line (issue 12 item 5): they are shown as \xHH.
# Also: vrpc-agent and vrpc-dispatcher without a xenstore say what is missing (item 6).
#
# Usage: test-cli.sh BUILD-DIR
set -u
b=$1
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
esc=$(printf 'x\033]0;pwned\007')

bad() { echo "FAIL: $*"; fail=1; }

# run NAME ARGS...: runs the program, stdout in $tmp/out, stderr in $tmp/err, status in $rc.
run() {
    prog=$1; shift
    "$prog" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    rc=$?
}

# no_control FILE WHAT: FILE holds no byte below 0x20 but newline and tab.
no_control() {
    if LC_ALL=C grep -q "$(printf '[\001-\010\013-\037\177]')" "$1"; then
        bad "$2: control bytes in the output: $(cat -v "$1")"
    fi
}

# one_usage_line NAME WHAT: exit 2 and exactly one line "NAME: ... (try --help)".
one_usage_line() {
    [ "$rc" -eq 2 ] || bad "$2: exit $rc, want 2"
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || bad "$2: $(wc -l <"$tmp/err") lines on stderr: $(cat "$tmp/err")"
    grep -q "^$1: .* (try --help)\$" "$tmp/err" || bad "$2: stderr '$(cat -v "$tmp/err")'"
    no_control "$tmp/err" "$2"
}

for p in agent/vrpc-agent agent/vrpc-call dispatcher/vrpc-dispatcher dispatcher/vrpc-ctl \
         policy/vrpc-policy sim/vrpc-sim bench/vrpc-bench vchan/vchan-cat; do
    name=$(basename "$p")
    prog="$b/$p"
    [ -x "$prog" ] || { bad "$prog is missing"; continue; }
    run "$prog" --version
    [ "$rc" -eq 0 ] || bad "$name --version: exit $rc"
    [ "$(wc -l <"$tmp/out")" -eq 1 ] || bad "$name --version: not one line"
    grep -Eq "^$name \(vrpc\) [0-9]+\.[0-9]+\.[0-9]+\$" "$tmp/out" ||
        bad "$name --version: '$(cat "$tmp/out")'"
    run "$prog" --help
    [ "$rc" -eq 0 ] || bad "$name --help: exit $rc"
    head -n 1 "$tmp/out" | grep -q "^Usage: $name " || bad "$name --help: '$(head -n 1 "$tmp/out")'"
    run "$prog" --no-such-option
    one_usage_line "$name" "$name --no-such-option"
    run "$prog" "--$esc"
    one_usage_line "$name" "$name with an escape sequence in an option"
    case $name in
    vrpc-agent|vrpc-dispatcher) ;;   # daemons: no arguments means run
    *)
        run "$prog"
        one_usage_line "$name" "$name without arguments" ;;
    esac
done

# Names from the command line, escaped wherever a tool shows them.
check_escaped() {
    what=$1; shift
    run "$@"
    [ "$rc" -ne 0 ] || bad "$what: exit 0"
    no_control "$tmp/err" "$what"
    grep -qF 'x\x1b]0;pwned\x07' "$tmp/err" || bad "$what: name not shown escaped: $(cat -v "$tmp/err")"
}
check_escaped "vrpc-call service" "$b/agent/vrpc-call" dom0 "$esc"
check_escaped "vrpc-call target" "$b/agent/vrpc-call" "$esc" vrpc.Ping
check_escaped "vrpc-policy explain" "$b/policy/vrpc-policy" explain "$esc" dom0 vrpc.Ping
check_escaped "vrpc-policy command" "$b/policy/vrpc-policy" "$esc"
check_escaped "vrpc-ctl count" "$b/dispatcher/vrpc-ctl" wait-guests "$esc"
check_escaped "vrpc-sim command" "$b/sim/vrpc-sim" "$esc"
check_escaped "vrpc-bench benchmark" "$b/bench/vrpc-bench" "$esc"
check_escaped "vchan-cat domid" "$b/vchan/vchan-cat" server "$esc" /x
check_escaped "vrpc-agent argument" "$b/agent/vrpc-agent" "$esc"
check_escaped "vrpc-dispatcher argument" "$b/dispatcher/vrpc-dispatcher" "$esc"
check_escaped "vrpc-dispatcher --sched" "$b/dispatcher/vrpc-dispatcher" --sched "$esc"

# Service names that can never name a service (docs/services.md) are usage errors of
# vrpc-call, found before it connects anywhere.
for svc in .hidden t.x.yaml t.Arg+cfg.yaml; do
    VRPC_SOCKET="$tmp/nowhere.sock" run "$b/agent/vrpc-call" dom0 "$svc"
    [ "$rc" -eq 2 ] || bad "vrpc-call dom0 $svc: exit $rc, want 2"
    grep -q "invalid service name" "$tmp/err" || bad "vrpc-call dom0 $svc: $(cat "$tmp/err")"
done

# Without a xenstore the daemons say what is missing, the cause first.
XENSTORED_PATH="$tmp/no-xenstore" run "$b/agent/vrpc-agent" --socket "$tmp/agent.sock"
[ "$rc" -eq 1 ] || bad "vrpc-agent without xenstore: exit $rc"
grep -q "cannot open xenstore .*vrpc-sim exec" "$tmp/err" || bad "vrpc-agent without xenstore: $(cat "$tmp/err")"
mkdir -p "$tmp/etc/policy.d"
printf 'rules: [\n' >"$tmp/etc/policy.d/broken.yaml"
XENSTORED_PATH="$tmp/no-xenstore" run "$b/dispatcher/vrpc-dispatcher" --etc "$tmp/etc" \
    --socket "$tmp/d.sock" --control "$tmp/c.sock"
[ "$rc" -eq 1 ] || bad "vrpc-dispatcher without xenstore: exit $rc"
grep -q "cannot open xenstore .*vrpc-sim" "$tmp/err" || bad "vrpc-dispatcher without xenstore: $(cat "$tmp/err")"
# the cause (FILE:LINE) comes before the summary it leads to
cause=$(grep -n "broken.yaml" "$tmp/err" | head -n 1 | cut -d: -f1)
summary=$(grep -n "INVALID, every call is denied" "$tmp/err" | head -n 1 | cut -d: -f1)
[ -n "$cause" ] && [ -n "$summary" ] && [ "$cause" -lt "$summary" ] ||
    bad "vrpc-dispatcher: the policy error does not come before its summary: $(cat "$tmp/err")"

[ $fail -eq 0 ] && echo "cli: all checks passed"
exit $fail
