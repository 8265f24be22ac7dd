# A private redis-server on a free loopback port, persistence off. Sourced
# (after lib.sh), never run: `start_redis_server` exports BREAKERBOX_REDIS_URL
# and installs a trap that always stops the server.
need_cmd redis-server redis-server
redis_server_bin="$(command -v redis-server)"
redis_workdir="$(mktemp -d)"
redis_server_pid=""

stop_redis_server() {
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
