#!/usr/bin/env bash
# The fleet-wide breaker against a real Redis: starts a private redis-server
# (Debian's package, installed when missing) on a free loopback port with
# persistence off, runs the Redis suites and the benchmark case against it,
# and always stops it.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

source scripts/redis-server.sh

start_redis_server
# For the C ABI's Sentinel case.
start_redis_sentinel
# The fault tests start (and kill, pause, restart) servers of their own.
export BREAKERBOX_REDIS_SERVER="$redis_server_bin"

step "cargo build --features redis (alone)" cargo build --no-default-features --features redis
step "cargo clippy --features redis" cargo clippy --no-default-features --features redis --all-targets -- -D warnings
step "cargo clippy --all-features" cargo clippy --all-features --all-targets -- -D warnings
step "unit tests (redis)" cargo test --features redis --lib
step "doc tests (redis)" cargo test --features redis --doc -- redis Builder::shared
step "redis: one process, shared namespaces" cargo test --features redis --test redis_state
step "redis: the healthy path makes no round trip" cargo test --features redis --test redis_hot_path
step "redis: a transport from outside the crate" cargo test --features redis --test redis_transport
step "redis: the review findings" cargo test --features redis --test redis_review
step "redis: one connection set per process" cargo test --features redis --test redis_scale -- --nocapture
step "redis: options at their extremes, health, reachability" cargo test --features redis --test redis_options
step "redis: the cost model (script runs per failure)" cargo test --features redis --test redis_cost -- --nocapture
step "redis: eight processes" cargo test --features redis --test redis_fleet
step "redis: fleet-wide rate windows" cargo test --features redis --test redis_fleet_window
step "redis: a fleet-wide exponential open backoff" cargo test --features redis --test redis_backoff
step "redis: faults" cargo test --features redis --test redis_faults
step "redis: an async call's round trip always wakes its task" cargo test --features redis --test redis_async_wake
step "redis: a view read before the mirror moved on its own comes too late" cargo test --features redis --test redis_late_views
step "redis: MetricsOnly watches the fleet decide" cargo test --features redis --test redis_metrics_only
step "redis: async calls and the tower layer never block a current_thread runtime" \
    cargo test -p breakerbox-integration --features redis --test redis_async -- --nocapture
step "bench: closed success with Redis state vs one round trip" \
    cargo bench -p breakerbox-benches --features redis --bench redis -- --warm-up-time 0.3 --measurement-time 1 --noplot

# The C ABI: cb_new_redis from a C program linked to the static library.
c_abi() {
    local target_dir build
    target_dir="$(cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
    build="$redis_workdir/c"
    mkdir -p "$build"
    cargo build -p breakerbox-ffi --lib --features redis
    cp "$target_dir/debug/libbreakerbox_ffi.a" "$build/libbreakerbox.a"
    cc -std=c11 -Wall -Wextra -Wpedantic -Werror -g -DBREAKERBOX_REDIS -Iinclude \
        tests/redis_ffi.c -L"$build" -lbreakerbox -lpthread -ldl -lm -o "$build/redis_ffi"
    "$build/redis_ffi"
    cc -std=c11 -Wall -Wextra -Wpedantic -Werror -g -DBREAKERBOX_REDIS -Iinclude \
        -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
        tests/redis_ffi.c -L"$build" -lbreakerbox -lpthread -ldl -lm -o "$build/redis_ffi_asan"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 "$build/redis_ffi_asan"
}
need_cmd cc gcc
step "C ABI: cb_new_redis, the builder, Sentinel (plain, then ASan/UBSan)" c_abi
