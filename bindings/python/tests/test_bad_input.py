"""Every bad input is a ValueError or TypeError naming the argument."""

import breakerbox
import breakerbox.nodus as nodus
import pytest
from breakerbox import CircuitBreaker


@pytest.mark.parametrize("kwargs,error,words", [
    ({"fail_max": 0}, ValueError, "fail_max"),
    ({"fail_max": -1}, ValueError, "fail_max"),
    ({"fail_max": 2**32}, ValueError, "fail_max"),
    ({"fail_max": "5"}, TypeError, "fail_max"),
    ({"fail_max": 1.5}, TypeError, "fail_max"),
    ({"fail_max": True}, TypeError, "fail_max"),
    ({"reset_timeout": -1}, ValueError, "reset_timeout"),
    ({"reset_timeout": float("nan")}, ValueError, "reset_timeout"),
    ({"reset_timeout": float("inf")}, ValueError, "reset_timeout"),
    ({"reset_timeout": "60"}, TypeError, "reset_timeout"),
    ({"success_threshold": 0}, ValueError, "success_threshold"),
    ({"success_threshold": 70000}, ValueError, "success_threshold"),
    ({"half_open_max_calls": 0}, ValueError, "half_open_max_calls"),
    ({"half_open_max_calls": None}, TypeError, "half_open_max_calls"),
    ({"probe_lease": 0}, ValueError, "probe_lease"),
    ({"probe_lease": -2}, ValueError, "probe_lease"),
    ({"name": 3}, TypeError, "name"),
    ({"exclude": ValueError}, TypeError, "exclude"),
    ({"exclude": [3]}, TypeError, "exclude"),
    ({"exclude": ["ValueError"]}, TypeError, "exclude"),
    ({"ignore": [int]}, TypeError, "ignore"),
    ({"listeners": 5}, TypeError, "listeners"),
    ({"throw_new_error_on_trip": "yes"}, TypeError, "throw_new_error_on_trip"),
    ({"clock": object()}, TypeError, "clock"),
    ({"state_storage": object()}, TypeError, "state_storage"),
])
def test_constructor(kwargs, error, words):
    with pytest.raises(error, match=words):
        CircuitBreaker(**kwargs)


def test_unknown_states():
    with pytest.raises(ValueError, match="Unknown state 'ajar'"):
        breakerbox.CircuitMemoryStorage("ajar")
    with pytest.raises(TypeError, match="state"):
        breakerbox.CircuitMemoryStorage(1)
    cb = CircuitBreaker()
    with pytest.raises(ValueError, match="Unknown state"):
        cb.state = "HALF_OPEN"
    with pytest.raises(TypeError, match="state"):
        cb.state = 3


@pytest.mark.parametrize("attr,value,error", [
    ("fail_max", 0, ValueError),
    ("fail_max", "x", TypeError),
    ("success_threshold", -3, ValueError),
    ("half_open_max_calls", 0, ValueError),
    ("reset_timeout", -0.5, ValueError),
    ("reset_timeout", None, TypeError),
    ("probe_lease", 0, ValueError),
    ("name", 7, TypeError),
    ("throw_new_error_on_trip", 1.0, TypeError),
])
def test_setters_refuse_and_change_nothing(attr, value, error):
    cb = CircuitBreaker(fail_max=3)
    before = getattr(cb, attr)
    with pytest.raises(error, match=attr):
        setattr(cb, attr, value)
    assert getattr(cb, attr) == before


def test_clock_and_decorator():
    with pytest.raises(ValueError, match="seconds"):
        breakerbox.ManualClock().advance(-1)
    with pytest.raises(TypeError, match="callable"):
        CircuitBreaker()(3)


def test_uninitialised_subclass_is_an_error_not_a_crash():
    class Lazy(CircuitBreaker):
        def __init__(self):
            pass

    with pytest.raises(RuntimeError, match="__init__"):
        Lazy().call(lambda: 1)


@pytest.mark.parametrize("kwargs,error,words", [
    ({"failure_threshold": 0}, ValueError, "failure_threshold"),
    ({"failure_threshold": "x"}, TypeError, "failure_threshold"),
    ({"recovery_timeout_secs": -1}, ValueError, "recovery_timeout_secs"),
    ({"on_state_change": 5}, TypeError, "on_state_change"),
])
def test_nodus_constructor(kwargs, error, words):
    with pytest.raises(error, match=words):
        nodus.CircuitBreaker("x", **kwargs)
    with pytest.raises(TypeError, match="name"):
        nodus.CircuitBreaker(3)


def test_redis_storage_refuses_what_it_cannot_honour():
    import redis

    # TLS is carried, but never with less verification than the client asks.
    with pytest.raises(ValueError, match="ssl_cert_reqs"):
        breakerbox.CircuitRedisStorage("closed", redis.Redis(ssl=True, ssl_cert_reqs="none"))
    with pytest.raises(TypeError, match="redis_object"):
        breakerbox.CircuitRedisStorage("closed", object())
    with pytest.raises(ValueError, match="cluster_mode"):
        breakerbox.CircuitRedisStorage("closed", redis.Redis(db=1), cluster_mode=True)
    with pytest.raises(TypeError, match="cluster_mode"):
        breakerbox.CircuitRedisStorage("closed", redis.Redis(), cluster_mode="yes")
    with pytest.raises(ValueError, match="policy"):
        breakerbox.CircuitRedisStorage("closed", redis.Redis(), policy="maybe")
    with pytest.raises(ValueError, match="Unknown state"):
        breakerbox.CircuitRedisStorage("ajar", redis.Redis())
    import redis.sentinel

    sentinels = redis.sentinel.Sentinel([("127.0.0.1", 1)])
    with pytest.raises(TypeError, match="replica client"):
        breakerbox.CircuitRedisStorage("closed", sentinels.slave_for("mymaster"))
    with pytest.raises(TypeError, match="TLS through Sentinel"):
        breakerbox.CircuitRedisStorage("closed", sentinels.master_for("mymaster", ssl=True))
    with pytest.raises(ValueError, match="cluster_mode"):
        breakerbox.CircuitRedisStorage("closed", sentinels.master_for("mymaster"), cluster_mode=True)
