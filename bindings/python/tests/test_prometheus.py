"""The prometheus extra: the Rust metrics listener's series names."""

import pytest
from prometheus_client import CollectorRegistry

from breakerbox import CircuitBreaker, CircuitBreakerError, ManualClock
from breakerbox.prometheus import PrometheusListener


def test_series_and_labels(clock: ManualClock):
    registry = CollectorRegistry()
    cb = CircuitBreaker(name="payments", fail_max=2, reset_timeout=1, ignore=[KeyError], clock=clock,
                        listeners=[PrometheusListener(registry)])

    def fail():
        raise ConnectionError

    def ignored():
        raise KeyError

    cb.call(lambda: 1)
    with pytest.raises(KeyError):
        cb.call(ignored)
    with pytest.raises(ConnectionError):
        cb.call(fail)
    with pytest.raises(CircuitBreakerError):
        cb.call(fail)
    with pytest.raises(CircuitBreakerError):
        cb.call(lambda: 1)
    value = registry.get_sample_value
    b = {"breaker": "payments"}
    assert value("breakerbox_successes_total", b) == 1
    assert value("breakerbox_ignored_total", b) == 1
    assert value("breakerbox_failures_total", b) == 2
    assert value("breakerbox_rejections_total", b) == 1
    assert value("breakerbox_state", b) == 1
    assert value("breakerbox_transitions_total", {**b, "from": "closed", "to": "open"}) == 1
    clock.advance(1)
    cb.call(lambda: 1)
    assert value("breakerbox_state", b) == 0
    assert value("breakerbox_transitions_total", {**b, "from": "open", "to": "half-open"}) == 1
    assert value("breakerbox_transitions_total", {**b, "from": "half-open", "to": "closed"}) == 1
    # A second listener on the same registry shares the series.
    PrometheusListener(registry)


def test_rate_gauges_for_a_windowed_breaker(clock: ManualClock):
    import math

    registry = CollectorRegistry()
    listener = PrometheusListener(registry)
    cb = CircuitBreaker(name="search", count_window=10, minimum_calls=2, failure_rate_threshold=100,
                        clock=clock, listeners=[listener])
    plain = CircuitBreaker(name="plain", clock=clock, listeners=[listener])

    def fail():
        raise ConnectionError

    value = registry.get_sample_value
    with pytest.raises(ConnectionError):
        cb.call(fail)
    assert math.isnan(value("breakerbox_failure_rate", {"breaker": "search"})), "below minimum_calls"
    cb.call(lambda: 1)
    with pytest.raises(ConnectionError):
        cb.call(fail)
    assert value("breakerbox_failure_rate", {"breaker": "search"}) == pytest.approx(200 / 3)
    assert math.isnan(value("breakerbox_slow_call_rate", {"breaker": "search"})), "no slow calls"
    with pytest.raises(ConnectionError):
        plain.call(fail)
    assert value("breakerbox_failure_rate", {"breaker": "plain"}) is None, "no window, no gauge"
