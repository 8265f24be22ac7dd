#!/usr/bin/env bash
# The fleet-wide breaker against a real Redis: starts a private redis-server
# (Debian's package, installed when missing) on a free loopback port with
# persistence off, runs the Redis suites and the benchmark case against it,
# and always stops it.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

need_cmd redis-server redis-server
server_bin="$(command -v redis-server)"

workdir="$(mktemp -d)"
server_pid=""
stop_server() {
    if [ -n "$server_pid" ]; then
        kill -CONT "$server_pid" 2>/dev/null || true
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
}
trap stop_server EXIT

# A free port: try random ones until a server starts and answers.
start_server() {
    local attempt port
    for attempt in $(seq 1 20); do
        port=$((20000 + RANDOM % 20000))
        "$server_bin" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$workdir" --logfile "$workdir/redis.log" &
        server_pid=$!
        for _ in $(seq 1 50); do
            if ! kill -0 "$server_pid" 2>/dev/null; then
                break # did not start (port taken): next port
            fi
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                export BREAKERBOX_REDIS_URL="redis://127.0.0.1:$port/"
                echo "==> redis-server $("$server_bin" --version | awk '{print $3}') on 127.0.0.1:$port (pid $server_pid)"
                return 0
            fi
            sleep 0.1
        done
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    done
    echo "could not start redis-server" >&2
    return 1
}

start_server
# The fault tests start (and kill, pause, restart) servers of their own.
export BREAKERBOX_REDIS_SERVER="$server_bin"

step "cargo build --features redis (alone)" cargo build --no-default-features --features redis
step "cargo clippy --features redis" cargo clippy --no-default-features --features redis --all-targets -- -D warnings
step "cargo clippy --all-features" cargo clippy --all-features --all-targets -- -D warnings
step "unit tests (redis)" cargo test --features redis --lib
step "doc tests (redis)" cargo test --features redis --doc -- redis Builder::shared
step "redis: one process, shared namespaces" cargo test --features redis --test redis_state
step "redis: the healthy path makes no round trip" cargo test --features redis --test redis_hot_path
step "redis: eight processes" cargo test --features redis --test redis_fleet
step "redis: faults" cargo test --features redis --test redis_faults
step "bench: closed success with Redis state vs one round trip" \
    cargo bench --features redis --bench redis -- --warm-up-time 0.3 --measurement-time 1 --noplot

# The C ABI: cb_new_redis from a C program linked to the static library.
c_abi() {
    local target_dir build
    target_dir="$(cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
    build="$workdir/c"
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
step "C ABI: cb_new_redis (plain, then ASan/UBSan)" c_abi
