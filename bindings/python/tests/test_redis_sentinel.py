"""A breaker shared through the master Redis Sentinel names: a redis-py
``Sentinel.master_for`` client. Needs the sentinel scripts/test-python.sh
starts beside its server (BREAKERBOX_REDIS_SENTINEL_URL, naming the server
of BREAKERBOX_REDIS_URL as master "m").
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit

import pytest
import redis
import redis.sentinel

from breakerbox import CircuitBreaker, CircuitBreakerError, CircuitRedisStorage
from polling import within

REFRESH = 0.2
COMMAND_TIMEOUT = 1.0


def sentinels(**kwargs) -> redis.sentinel.Sentinel:
    url = os.environ.get("BREAKERBOX_REDIS_SENTINEL_URL")
    if not url:
        pytest.fail("BREAKERBOX_REDIS_SENTINEL_URL is not set: run scripts/test-python.sh")
    parts = urlsplit(url)
    # A port nothing listens on first: it is skipped.
    return redis.sentinel.Sentinel([("127.0.0.1", 1), (parts.hostname, parts.port)], **kwargs)


def breaker(client, ns: str, **kwargs) -> CircuitBreaker:
    storage = CircuitRedisStorage("closed", client, namespace=ns, refresh_interval=REFRESH,
                                  command_timeout=COMMAND_TIMEOUT, **kwargs)
    return CircuitBreaker(state_storage=storage, fail_max=2, reset_timeout=3600)


def fail():
    raise ConnectionError("down")


def test_a_sentinel_client_shares_state_with_a_client_of_the_master(redis_url):
    ns = f"py-sentinel-{uuid.uuid4().hex[:12]}"
    through_sentinels = breaker(sentinels().master_for("m"), ns)
    direct = breaker(redis.Redis.from_url(redis_url), ns)
    assert through_sentinels.current_state == "closed"
    for _ in range(2):
        with pytest.raises((ConnectionError, CircuitBreakerError)):
            through_sentinels.call(fail)
    assert through_sentinels.current_state == "open"
    # The failures were counted on the master: the other breaker sees the trip.
    assert within(lambda: direct.current_state == "open", REFRESH + COMMAND_TIMEOUT + 1)
    stored = redis.Redis.from_url(redis_url).hgetall(f"breakerbox:{{{ns}}}:state")
    assert stored[b"s"] == b"1"
    with pytest.raises(CircuitBreakerError):
        direct.call(lambda: None)


def test_a_master_the_sentinels_do_not_know_is_a_fault_the_policy_decides():
    ns = f"py-sentinel-{uuid.uuid4().hex[:12]}"
    unknown = breaker(sentinels().master_for("nobody"), ns, policy="fail_closed")
    with pytest.raises(CircuitBreakerError):
        unknown.call(lambda: None)
    assert CircuitRedisStorage("closed", sentinels().master_for("m")).url.startswith("redis://127.0.0.1:1/")


def test_the_masters_password_is_the_clients_and_the_sentinels_their_own():
    storage = CircuitRedisStorage(
        "closed",
        sentinels(sentinel_kwargs={"password": "s3ntinel"}).master_for("m", password="hunter2", db=3),
    )
    # The core asks each sentinel with its own password, and the master
    # with the client's credentials and database.
    assert storage._endpoint.sentinel == ("m", "", "hunter2", 3)
    assert all(url.startswith("redis://:s3ntinel@") for url in storage._endpoint.urls)
    assert storage.url == "redis://:***@127.0.0.1:1/"
