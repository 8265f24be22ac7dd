#!/usr/bin/env bash
# The Python package: makes a virtual environment under target/ (ignored by
# git), installs maturin, pytest, redis-py, mypy and prometheus_client into it
# when missing, builds and installs the wheel from ./bindings/python (maturin
# as the PEP 517 backend, as `pip install ./bindings/python` does anywhere),
# then runs pytest against the installed wheel (with private redis-servers:
# a plain one, TLS ones with a throwaway CA, a 3-master Redis Cluster plain
# and over TLS; and the Rust fleet peer) and mypy --strict on a typed
# example.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
source scripts/redis-server.sh

need_cmd python3 python3
python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
venv="$ROOT/target/python-venv"
[ -x "$venv/bin/python" ] || step "python venv" python3 -m venv "$venv"
py="$venv/bin/python"
if ! "$py" -c 'import maturin, pytest, redis, mypy, prometheus_client' 2>/dev/null; then
    step "pip install test tools" "$py" -m pip install -q maturin pytest redis mypy prometheus_client
fi
export PATH="$venv/bin:$PATH"
export PYTHONDONTWRITEBYTECODE=1

step "pip install ./bindings/python" "$py" -m pip install -q --force-reinstall --no-deps ./bindings/python
step "clippy (python crates)" cargo clippy -p breakerbox-python -p breakerbox-fleet-peer --all-targets -- -D warnings
step "build the Rust fleet peer" cargo build -q -p breakerbox-fleet-peer
export BREAKERBOX_FLEET_PEER="$ROOT/target/debug/fleet-peer"

start_redis_server
# A sentinel naming that server as master "m" (BREAKERBOX_REDIS_SENTINEL_URL).
start_redis_sentinel

# TLS: one server that takes any client, one that requires a client
# certificate the test CA signed.
source scripts/redis-tls.sh
require_tls_redis_server "$redis_server_bin"
export BREAKERBOX_TLS_DIR="$redis_workdir/tls"
mkdir -p "$BREAKERBOX_TLS_DIR"
step "throwaway CA and certificates" make_test_certs "$BREAKERBOX_TLS_DIR"
tls=(--port 0 --tls-port "{port}" --tls-cert-file "$BREAKERBOX_TLS_DIR/server.crt"
    --tls-key-file "$BREAKERBOX_TLS_DIR/server.key" --tls-ca-cert-file "$BREAKERBOX_TLS_DIR/ca.crt")
launch_redis_server tls "${tls[@]}" --tls-auth-clients no
export BREAKERBOX_REDIS_TLS_URL="rediss://127.0.0.1:$launched_port/"
launch_redis_server mtls "${tls[@]}" --tls-auth-clients yes
export BREAKERBOX_REDIS_MTLS_URL="rediss://127.0.0.1:$launched_port/"
# Redis Cluster, 3 masters: plain, then over TLS.
start_redis_cluster cluster 3
export BREAKERBOX_REDIS_CLUSTER_PORTS="$cluster_ports"
# The cluster bus over TLS too: a node presents the client certificate to
# the others, which always require one.
redis_cli_args=(--tls --cacert "$BREAKERBOX_TLS_DIR/ca.crt")
start_redis_cluster tls-cluster 3 "${tls[@]}" --tls-auth-clients no --tls-cluster yes \
    --tls-client-cert-file "$BREAKERBOX_TLS_DIR/client.crt" --tls-client-key-file "$BREAKERBOX_TLS_DIR/client.key"
export BREAKERBOX_REDIS_TLS_CLUSTER_PORTS="$cluster_ports"

# From outside the tree, so only the installed wheel can be imported.
run_pytest() {
    local rc=0
    (cd "$redis_workdir" && "$py" -m pytest -q -p no:cacheprovider "$ROOT/bindings/python/tests") || rc=$?
    if [ "$rc" -eq 5 ]; then
        echo "pytest collected no tests" >&2
        return 1
    fi
    return "$rc"
}
step "pytest (installed wheel)" run_pytest
step "mypy --strict on a typed example and the package" \
    "$py" -m mypy --strict --cache-dir "$ROOT/target/mypy-cache" bindings/python/tests/typed_example.py \
    bindings/python/python/breakerbox
