#!/usr/bin/env bash
# The benchmarks: build every bench so none rots (running them is
# `cargo bench`, see BENCHMARKS.md), check that the instruction-count loops
# run, run the allocation and open-deadline tests, and print instructions per
# call (a few seconds under callgrind; not a timing, so not noisy).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# The peer benchmarks are the benches/ crate (breakerbox-benches); the root
# crate keeps benches/ffi.rs.
step "cargo bench --no-run" cargo bench -p breakerbox -p breakerbox-benches --no-run
step "clippy (benches)" cargo clippy -p breakerbox -p breakerbox-benches --benches -- -D warnings
step "instruction loops run" cargo bench -p breakerbox-benches --bench instructions
step "zero allocations per call" cargo test --test alloc
step "open -> half-open on time" cargo test --test open_deadline
step "instructions per call (callgrind)" bash scripts/callgrind.sh 20000
