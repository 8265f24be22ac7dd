# Private redis-servers on free loopback ports, persistence off. Sourced
# (after lib.sh), never run: `start_redis_server` exports BREAKERBOX_REDIS_URL;
# `launch_redis_server` and `start_redis_cluster` start others. The first
# start installs a trap that always stops every server started.
need_cmd redis-server redis-server
redis_server_bin="$(command -v redis-server)"
redis_workdir="$(mktemp -d)"
redis_server_pids=()
redis_server_pid=""
redis_sentinel_pid=""

stop_redis_server() {
    local pid
    for pid in "${redis_server_pids[@]}"; do
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$redis_workdir"
}

# launch_redis_server NAME [ARG...]: a server on a free port (tried at
# random until one starts and answers), every `{port}` in the arguments
# replaced by it (default `--port {port}`). Sets `launched_port`.
launch_redis_server() {
    trap stop_redis_server EXIT
    local name="$1" attempt port pid args
    shift
    [ "$#" -gt 0 ] || set -- --port "{port}"
    mkdir -p "$redis_workdir/$name"
    for attempt in $(seq 1 20); do
        port=$((20000 + RANDOM % 20000))
        args=("${@//\{port\}/$port}")
        "$redis_server_bin" "${args[@]}" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$redis_workdir/$name" --logfile "$redis_workdir/$name.log" &
        pid=$!
        redis_server_pids+=("$pid")
        for _ in $(seq 1 50); do
            if ! kill -0 "$pid" 2>/dev/null; then
                break # did not start (port taken): next port
            fi
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                launched_port="$port"
                redis_server_pid="$pid"
                echo "==> redis-server $name on 127.0.0.1:$port (pid $pid)"
                return 0
            fi
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    echo "could not start redis-server $name" >&2
    return 1
}

start_redis_server() {
    launch_redis_server redis
    export BREAKERBOX_REDIS_URL="redis://127.0.0.1:$launched_port/"
    echo "==> redis-server $("$redis_server_bin" --version | awk '{print $3}')"
}

# start_redis_cluster NAME MASTERS [ARG...]: a Redis Cluster of MASTERS
# masters (no replicas), each launched with ARG (default `--port {port}`)
# and cluster mode on; `redis_cli_args` (an array, default empty) is given
# to redis-cli, for TLS. Sets `cluster_ports` (space-separated) once every
# node reports cluster_state:ok.
redis_cli_args=()
start_redis_cluster() {
    need_cmd redis-cli redis-tools
    need_cmd timeout coreutils
    local name="$1" masters="$2" i node port
    shift 2
    [ "$#" -gt 0 ] || set -- --port "{port}"
    cluster_ports=""
    local addresses=()
    for i in $(seq 1 "$masters"); do
        # The cluster bus listens on port + 10000: 20000..39999 leaves room.
        launch_redis_server "$name-$i" "$@" --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout 2000
        cluster_ports="$cluster_ports $launched_port"
        addresses+=("127.0.0.1:$launched_port")
    done
    cluster_ports="${cluster_ports# }"
    timeout 60 redis-cli "${redis_cli_args[@]}" --cluster create "${addresses[@]}" --cluster-replicas 0 \
        --cluster-yes </dev/null >"$redis_workdir/$name-create.log" 2>&1 || {
        cat "$redis_workdir/$name-create.log" >&2
        return 1
    }
    for _ in $(seq 1 100); do
        local ok=0
        for port in $cluster_ports; do
            if redis-cli "${redis_cli_args[@]}" -p "$port" cluster info 2>/dev/null | grep -q "cluster_state:ok"; then
                ok=$((ok + 1))
            fi
        done
        if [ "$ok" -eq "$masters" ]; then
            echo "==> redis cluster $name: $masters masters on ports $cluster_ports"
            return 0
        fi
        sleep 0.1
    done
    echo "redis cluster $name did not reach cluster_state:ok" >&2
    return 1
}

# A sentinel watching that server as "m" (quorum 1, no failover to make: it
# has no replica), on a free port; exports BREAKERBOX_REDIS_SENTINEL_URL.
# Stopped with the servers.
start_redis_sentinel() {
    local attempt port master_port="${BREAKERBOX_REDIS_URL##*:}"
    master_port="${master_port%/}"
    for attempt in $(seq 1 20); do
        port=$((20000 + RANDOM % 20000))
        printf 'sentinel monitor m 127.0.0.1 %s 1\n' "$master_port" >"$redis_workdir/sentinel.conf"
        "$redis_server_bin" "$redis_workdir/sentinel.conf" --sentinel --port "$port" --bind 127.0.0.1 \
            --dir "$redis_workdir" --logfile "$redis_workdir/sentinel.log" &
        redis_sentinel_pid=$!
        redis_server_pids+=("$redis_sentinel_pid")
        for _ in $(seq 1 50); do
            if ! kill -0 "$redis_sentinel_pid" 2>/dev/null; then
                break # did not start (port taken): next port
            fi
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                export BREAKERBOX_REDIS_SENTINEL_URL="redis://127.0.0.1:$port/"
                echo "==> redis sentinel on 127.0.0.1:$port (pid $redis_sentinel_pid) watching 127.0.0.1:$master_port as m"
                return 0
            fi
            sleep 0.1
        done
        kill "$redis_sentinel_pid" 2>/dev/null || true
        wait "$redis_sentinel_pid" 2>/dev/null || true
        redis_sentinel_pid=""
    done
    echo "could not start a redis sentinel" >&2
    return 1
}
