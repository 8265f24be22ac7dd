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
