#!/usr/bin/env bash
# Instructions per call, counted by callgrind: a figure that, unlike a
# timing, does not move with the machine's load.
#
#   bash scripts/callgrind.sh [calls]     (default 100000)
#
# Each case of benches/instructions.rs (crate breakerbox-benches) runs `calls` and 2 x `calls` times
# under `valgrind --tool=callgrind`; the difference of the two totals divided
# by `calls` is the cost of one call, free of start-up and set-up. The loop's
# own cost (the `empty` case) is reported beside it. Clock reads through the
# vDSO are not counted by valgrind (it makes them system calls), so the
# open-state figures leave out the clock's own few instructions.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

need_cmd valgrind valgrind
need_cmd python3 python3

calls="${1:-100000}"
case "$calls" in
    '' | *[!0-9]*) echo "calls must be a whole number, got '$calls'" >&2; exit 2 ;;
esac
if [ "$calls" -lt 1000 ]; then
    echo "calls must be at least 1000, got $calls" >&2
    exit 2
fi

# Build the loops and find the executable cargo made.
bin="$(cargo bench -p breakerbox-benches --no-run --bench instructions --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "instructions" and msg.get("executable"):
        print(msg["executable"])
')"
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "could not build the instructions bench" >&2
    exit 1
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# total_ir CASE CALLS: instructions executed by the whole run.
total_ir() {
    valgrind --tool=callgrind --callgrind-out-file="$out/$1.$2" "$bin" count "$1" "$2" \
        >/dev/null 2>"$out/$1.$2.log" || { cat "$out/$1.$2.log" >&2; exit 1; }
    sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$out/$1.$2"
}

printf '%-22s %14s\n' "case" "instr/call"
for case in empty closed_success closed_success_async count_window_success time_window_success closed_failure open_rejection half_open_rejection; do
    one="$(total_ir "$case" "$calls")"
    two="$(total_ir "$case" $((2 * calls)))"
    python3 -c "print('%-22s %14.1f' % ('$case', ($two - $one) / $calls))"
done
