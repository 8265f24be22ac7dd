"""A breaker shared through a Redis Cluster: a redis-py RedisCluster client,
or a plain client of one node with ``cluster_mode=True``.

Needs the clusters scripts/test-python.sh starts (3 masters each, plain and
over TLS: BREAKERBOX_REDIS_CLUSTER_PORTS, BREAKERBOX_REDIS_TLS_CLUSTER_PORTS,
BREAKERBOX_TLS_DIR).
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis
from redis.cluster import RedisCluster

from breakerbox import CircuitBreaker, CircuitBreakerError, CircuitRedisStorage, CircuitBreakerListener
from polling import within

REFRESH = 0.2
# A call that learns the slot map opens a connection to a node and to the
# slot's owner: room for that on a loaded machine.
COMMAND_TIMEOUT = 1.0
STALENESS = REFRESH + COMMAND_TIMEOUT


def ports(name: str) -> list[int]:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run scripts/test-python.sh")
    return [int(p) for p in value.split()]


def namespace() -> str:
    return f"py-cluster-{uuid.uuid4().hex[:12]}"


class Errors(CircuitBreakerListener):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def storage_error(self, cb, message):
        self.messages.append(message)


def breaker(client, ns: str, errors: Errors, **kwargs) -> CircuitBreaker:
    storage = CircuitRedisStorage("closed", client, namespace=ns, refresh_interval=REFRESH,
                                  command_timeout=COMMAND_TIMEOUT, **kwargs)
    return CircuitBreaker(state_storage=storage, listeners=[errors], fail_max=2)


def fail():
    raise ConnectionError("down")


def assert_one_breaker(a: CircuitBreaker, b: CircuitBreaker) -> None:
    assert a.is_shared and b.is_shared
    with pytest.raises(ConnectionError):
        a.call(fail)
    with pytest.raises(CircuitBreakerError, match="Failures threshold reached"):
        a.call(fail)
    assert within(lambda: b.current_state == "open", STALENESS)
    with pytest.raises(CircuitBreakerError):
        b.call(lambda: 1)


def namespace_keys(cluster: RedisCluster, ns: str) -> dict[str, int]:
    """Every key of the namespace on any master, with its slot."""
    keys = {}
    for node in cluster.get_primaries():
        for key in node.redis_connection.scan_iter(match=f"breakerbox:{{{ns}}}*"):
            keys[key.decode()] = cluster.keyslot(key)
    return keys


def test_a_redis_cluster_client_shares_state_on_one_slot():
    seeds = ports("BREAKERBOX_REDIS_CLUSTER_PORTS")
    ns, errors = namespace(), Errors()
    a = breaker(RedisCluster(host="127.0.0.1", port=seeds[0]), ns, errors)
    b = breaker(RedisCluster(host="127.0.0.1", port=seeds[1]), ns, errors)
    assert_one_breaker(a, b)
    assert errors.messages == []
    cluster = RedisCluster(host="127.0.0.1", port=seeds[2])
    keys = namespace_keys(cluster, ns)
    assert f"breakerbox:{{{ns}}}:state" in keys
    assert len(set(keys.values())) == 1, keys
    assert cluster.hget(f"breakerbox:{{{ns}}}:state", "s") is not None


def test_cluster_mode_takes_a_plain_client_of_one_node_as_the_seed():
    seeds = ports("BREAKERBOX_REDIS_CLUSTER_PORTS")
    ns, errors = namespace(), Errors()
    cluster = RedisCluster(host="127.0.0.1", port=seeds[0])
    owner = cluster.get_node_from_key(f"breakerbox:{{{ns}}}:state")
    # A node that does not own the namespace's slot: only the cluster's
    # redirects lead to the state.
    other = next(p for p in seeds if p != owner.port)
    a = breaker(redis.Redis(host="127.0.0.1", port=other), ns, errors, cluster_mode=True)
    b = breaker(RedisCluster(host="127.0.0.1", port=owner.port), ns, errors)
    assert_one_breaker(a, b)
    assert errors.messages == []
    assert cluster.hget(f"breakerbox:{{{ns}}}:state", "s") is not None


def test_cluster_mode_refuses_what_a_cluster_cannot_be():
    with pytest.raises(ValueError, match="cluster_mode"):
        CircuitRedisStorage("closed", redis.Redis(db=3), cluster_mode=True)
    with pytest.raises(ValueError, match="cluster_mode"):
        CircuitRedisStorage("closed", redis.Redis(unix_socket_path="/run/redis.sock"), cluster_mode=True)


def test_a_redis_cluster_client_over_tls_shares_state():
    seeds = ports("BREAKERBOX_REDIS_TLS_CLUSTER_PORTS")
    ca = os.path.join(os.environ["BREAKERBOX_TLS_DIR"], "ca.crt")
    ns, errors = namespace(), Errors()

    def client(port: int, **kwargs) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=ca, **kwargs)

    assert CircuitRedisStorage("closed", client(seeds[0])).url.startswith("rediss://")
    a, b = breaker(client(seeds[0]), ns, errors), breaker(client(seeds[1]), ns, errors)
    assert_one_breaker(a, b)
    assert errors.messages == []
    assert client(seeds[2]).hget(f"breakerbox:{{{ns}}}:state", "s") is not None
    # The client's CA is the only root: nodes it did not sign are a fault,
    # so fail_closed rejects (the trusted seed above answers).
    rogue = os.path.join(os.environ["BREAKERBOX_TLS_DIR"], "rogue.crt")
    seed = redis.Redis(host="127.0.0.1", port=seeds[0], ssl=True, ssl_ca_certs=rogue)
    untrusted = CircuitRedisStorage("closed", seed, namespace=namespace(), cluster_mode=True, policy="fail_closed",
                                    command_timeout=COMMAND_TIMEOUT)
    with pytest.raises(CircuitBreakerError):
        CircuitBreaker(state_storage=untrusted).call(lambda: 1)
    # A cluster's TLS settings are checked as a single client's.
    with pytest.raises(ValueError, match="ssl_check_hostname"):
        CircuitRedisStorage("closed", client(seeds[0], ssl_check_hostname=False))
