#!/usr/bin/env bash
# The fuzz suite: each cargo-fuzz target (fuzz/fuzz_targets/) runs for a
# bounded time from its committed corpus and fails on any crash, sanitizer
# report or model mismatch. `make fuzz` runs it.
#
#   bash scripts/test-fuzz.sh [seconds per target]   (default 60)
#
# New inputs go to a scratch copy of the corpus, so the tree stays clean; a
# crashing input is kept under fuzz/artifacts/<target>/ and printed in hex.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

seconds="${1:-${FUZZ_SECONDS:-60}}"
case "$seconds" in
    '' | *[!0-9]*) echo "seconds per target must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "==> rustup toolchain install nightly"
    rustup toolchain install nightly --profile minimal
fi
need_cargo_bin cargo-fuzz cargo-fuzz 0.13.1

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Optimised, with debug assertions (overflow checks) and AddressSanitizer.
step "fuzz: build the targets" cargo +nightly fuzz build --release --debug-assertions

suite_start=$SECONDS
for target in model c_abi; do
    mkdir -p "$work/$target" "fuzz/artifacts/$target"
    log="$work/$target.log"
    echo "==> fuzz $target for ${seconds} s (corpus fuzz/corpus/$target)"
    if ! cargo +nightly fuzz run --release --debug-assertions "$target" "$work/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -max_len=1024 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1; then
        grep -v -E '^#[0-9]+' "$log" | tail -40 >&2
        for crash in "fuzz/artifacts/$target"/*; do
            [ -f "$crash" ] && echo "==> crashing input $crash: $(od -An -tx1 -v "$crash" | tr -d ' \n')" >&2
        done
        echo "==> fuzz $target FAILED; reproduce with: cargo +nightly fuzz run $target <input>" >&2
        exit 1
    fi
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
    echo "==> fuzz $target: ${runs:-?} executions (${rate:-?}/s), no crash, no mismatch"
done
echo "==> fuzz suite took $((SECONDS - suite_start)) s of fuzzing"
