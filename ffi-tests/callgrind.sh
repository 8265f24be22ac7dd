#!/usr/bin/env bash
# Instructions per C ABI call (cb_try_acquire + cb_record), counted by
# callgrind: a figure that, unlike a timing, does not move with the
# machine's load. Each case of ffi-tests/c/instructions.c runs `calls` and
# 2 x `calls` times; the difference divided by `calls` is one call.
#
#   bash ffi-tests/callgrind.sh [calls]     (default 100000)
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

need_cmd valgrind valgrind
need_cmd cc gcc

calls="${1:-100000}"
[[ "$calls" =~ ^[1-9][0-9]*$ ]] || { echo "calls must be a positive whole number, got '$calls'" >&2; exit 2; }

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
cargo build --quiet --release -p breakerbox-ffi
cp "$TARGET_DIR/release/libbreakerbox_ffi.a" "$out/libbreakerbox.a"
cc -std=c11 -O2 -Iinclude ffi-tests/c/instructions.c -L"$out" -lbreakerbox -lpthread -ldl -lm -o "$out/instructions"

total_ir() { # CASE CALLS
    valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$out/instructions" "$1" "$2" >/dev/null 2>&1
    sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$out/cg"
}

printf '%-16s %12s\n' "case" "instr/call"
for case in empty closed_success open_rejection; do
    one="$(total_ir "$case" "$calls")"
    two="$(total_ir "$case" $((2 * calls)))"
    printf '%-16s %12d\n' "$case" $(((two - one) / calls))
done
