# A private redis-server on a free loopback port, persistence off. Sourced
# (after lib.sh), never run: `start_redis_server` exports BREAKERBOX_REDIS_URL
# and installs a trap that always stops the server.
need_cmd redis-server redis-server
redis_server_bin="$(command -v redis-server)"
redis_workdir="$(mktemp -d)"
redis_server_pid=""
redis_sentinel_pid=""

stop_redis_server() {
    if [ -n "$redis_sentinel_pid" ]; then
        kill "$redis_sentinel_pid" 2>/dev/null || true
        wait "$redis_sentinel_pid" 2>/dev/null || true
    fi
    if [ -n "$redis_server_pid" ]; then
        kill -CONT "$redis_server_pid" 2>/dev/null || true
        kill "$redis_server_pid" 2>/dev/null || true
        wait "$redis_server_pid" 2>/dev/null || true
    fi
    rm -rf "$redis_workdir"
}

# A free port: try random ones until a server starts and answers.
start_redis_server() {
    trap stop_redis_server EXIT
    local attempt port
    for attempt in $(seq 1 20); do
        port=$((20000 + RANDOM % 20000))
        "$redis_server_bin" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$redis_workdir" --logfile "$redis_workdir/redis.log" &
        redis_server_pid=$!
        for _ in $(seq 1 50); do
            if ! kill -0 "$redis_server_pid" 2>/dev/null; then
                break # did not start (port taken): next port
            fi
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                export BREAKERBOX_REDIS_URL="redis://127.0.0.1:$port/"
                echo "==> redis-server $("$redis_server_bin" --version | awk '{print $3}') on 127.0.0.1:$port (pid $redis_server_pid)"
                return 0
            fi
            sleep 0.1
        done
        kill "$redis_server_pid" 2>/dev/null || true
        wait "$redis_server_pid" 2>/dev/null || true
        redis_server_pid=""
    done
    echo "could not start redis-server" >&2
    return 1
}

# A sentinel watching that server as "m" (quorum 1, no failover to make: it
# has no replica), on a free port; exports BREAKERBOX_REDIS_SENTINEL_URL.
# Stopped with the server.
start_redis_sentinel() {
    local attempt port master_port="${BREAKERBOX_REDIS_URL##*:}"
    master_port="${master_port%/}"
    for attempt in $(seq 1 20); do
        port=$((20000 + RANDOM % 20000))
        printf 'sentinel monitor m 127.0.0.1 %s 1\n' "$master_port" >"$redis_workdir/sentinel.conf"
        "$redis_server_bin" "$redis_workdir/sentinel.conf" --sentinel --port "$port" --bind 127.0.0.1 \
            --dir "$redis_workdir" --logfile "$redis_workdir/sentinel.log" &
        redis_sentinel_pid=$!
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
