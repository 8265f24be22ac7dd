#!/usr/bin/env bash
# The fleet against real Redis deployments: the Rust/Lua differential test,
# auth (password, ACL user), TLS, Sentinel, and faults between the breaker and Redis.
# The tests start their own redis-server processes on loopback (killed on
# drop); each records its pid here, and the trap stops any still running.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

need_cmd redis-server redis-server
need_cmd redis-cli redis-tools
need_cmd timeout coreutils

workdir="$(mktemp -d)"
export BREAKERBOX_REDIS_SERVER="$(command -v redis-server)"
export BREAKERBOX_REDIS_CLI="$(command -v redis-cli)"
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

# A throwaway CA, server and client certificates it signs, and a rogue
# self-signed one the client must refuse.
source scripts/redis-tls.sh
export BREAKERBOX_TLS_DIR="$workdir/tls"
mkdir -p "$BREAKERBOX_TLS_DIR"
step "throwaway CA and certificates" make_test_certs "$BREAKERBOX_TLS_DIR"
require_tls_redis_server "$BREAKERBOX_REDIS_SERVER"

step "redis-deploy: the Lua script and the in-memory breaker decide alike" \
    cargo test --features redis --test redis_differential
step "redis-deploy: announcements arrive after idle ticks" cargo test --features redis --test redis_pubsub
step "redis-deploy: password and ACL user" cargo test --features redis --test redis_auth
step "redis-deploy: partitions through a fault-injecting proxy (cut-off, 50 ms latency, 5% stalls)" \
    cargo test --features redis --test redis_partition
# A real partition: redis-server in a network namespace of the test's own.
need_cmd ip iproute2
step "redis-deploy: a partition across a network namespace (veth pair)" \
    cargo test --features redis --test redis_netns
step "redis-deploy: failover to a replica (REPLICAOF NO ONE, clients re-pointed; READONLY)" \
    cargo test --features redis --test redis_failover
step "redis-deploy: Redis Sentinel, a master, its replica, 3 sentinels: failovers (asked for, master killed)" \
    cargo test --features redis --test redis_sentinel
step "clippy, feature redis-tls alone" cargo clippy --lib --no-default-features --features redis-tls -- -D warnings
# Built first: SSL_CERT_FILE (the test CA) is set for the test run alone.
cargo test --features redis-tls --test redis_tls --no-run
step "redis-deploy: TLS (rediss://)" \
    env SSL_CERT_FILE="$BREAKERBOX_TLS_DIR/ca.crt" cargo test --features redis-tls --test redis_tls
step "clippy, feature redis-cluster alone" cargo clippy --lib --no-default-features --features redis-cluster -- -D warnings
step "unit tests (redis-cluster)" cargo test --features redis-cluster --lib redis::cluster
step "redis-deploy: Redis Cluster, 3 masters + 3 replicas: resharding (ASK, MOVED), failover" \
    cargo test --features redis-cluster --test redis_cluster
