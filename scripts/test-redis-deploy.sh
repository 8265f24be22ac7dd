#!/usr/bin/env bash
# The fleet against real Redis deployments: the Rust/Lua differential test,
# auth (password, ACL user), TLS, and faults between the breaker and Redis.
# The tests start their own redis-server processes on loopback (killed on
# drop); each records its pid here, and the trap stops any still running.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

need_cmd redis-server redis-server
need_cmd redis-cli redis-tools

workdir="$(mktemp -d)"
export BREAKERBOX_REDIS_SERVER="$(command -v redis-server)"
export BREAKERBOX_TEST_PIDS="$workdir/pids"
mkdir -p "$BREAKERBOX_TEST_PIDS"
stop_servers() {
    local f pid
    for f in "$BREAKERBOX_TEST_PIDS"/*; do
        [ -e "$f" ] || continue
        pid="$(cat "$f")"
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
    done
    rm -rf "$workdir"
}
trap stop_servers EXIT

step "redis-deploy: the Lua script and the in-memory breaker decide alike" \
    cargo test --features redis --test redis_differential
