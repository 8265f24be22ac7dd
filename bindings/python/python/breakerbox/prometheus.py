"""A listener exporting a breaker's events through ``prometheus_client``
(the ``breakerbox[prometheus]`` extra), under the series names of the Rust
``metrics`` listener, each labelled ``breaker="<name>"``:

``breakerbox_successes_total``, ``breakerbox_failures_total``,
``breakerbox_ignored_total``, ``breakerbox_rejections_total``,
``breakerbox_transitions_total`` (also labelled ``from`` and ``to``), the
gauge ``breakerbox_state`` (0 closed, 1 open, 2 half-open) and, for a breaker
with a rate window, the gauges ``breakerbox_failure_rate`` and
``breakerbox_slow_call_rate`` (percent; NaN while there is no rate: below
``minimum_calls``, after a transition empties the window, or without slow
calls). The rates are set on each failure and each transition, never on a
success, so they show the window as of the latest failure.

    from breakerbox.prometheus import PrometheusListener
    breaker = breakerbox.CircuitBreaker(name="payments", listeners=[PrometheusListener()])
"""

from __future__ import annotations

import math
import threading
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from . import CircuitBreakerListener, CircuitBreakerState

__all__ = ["PrometheusListener"]

STATE_VALUE = {"closed": 0, "open": 1, "half-open": 2}

_lock = threading.Lock()
_Series = tuple[Counter, Counter, Counter, Counter, Counter, Gauge, Gauge, Gauge]
_series: dict[int, _Series] = {}


def _metrics(registry: CollectorRegistry) -> _Series:
    """One set of series per registry, however many listeners share it."""
    with _lock:
        found = _series.get(id(registry))
        if found is None:
            def counter(name: str, doc: str, labels: tuple[str, ...] = ("breaker",)) -> Counter:
                return Counter(name, doc, labels, registry=registry)

            found = (
                counter("breakerbox_successes_total", "Calls recorded as successes by a circuit breaker"),
                counter("breakerbox_failures_total", "Calls recorded as failures by a circuit breaker"),
                counter("breakerbox_ignored_total", "Calls recorded as neither success nor failure"),
                counter("breakerbox_rejections_total", "Calls rejected without running by a circuit breaker"),
                counter("breakerbox_transitions_total", "Circuit breaker state changes", ("breaker", "from", "to")),
                Gauge("breakerbox_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open", ("breaker",),
                      registry=registry),
                Gauge("breakerbox_failure_rate", "Failure rate of a circuit breaker's window, in percent",
                      ("breaker",), registry=registry),
                Gauge("breakerbox_slow_call_rate", "Slow-call rate of a circuit breaker's window, in percent",
                      ("breaker",), registry=registry),
            )
            _series[id(registry)] = found
        return found


class PrometheusListener(CircuitBreakerListener):
    """Counts a breaker's events; one listener may serve many breakers."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        (self._successes, self._failures, self._ignored, self._rejections, self._transitions,
         self._state, self._failure_rate, self._slow_call_rate) = _metrics(
            registry if registry is not None else REGISTRY)

    @staticmethod
    def _name(cb: Any) -> str:
        return cb.name or ""

    def success(self, cb: Any) -> None:
        self._successes.labels(self._name(cb)).inc()

    def failure(self, cb: Any, exc: BaseException) -> None:
        self._failures.labels(self._name(cb)).inc()
        self._rates(cb)

    def _rates(self, cb: Any) -> None:
        """The window's rates, for a breaker that has a window."""
        if getattr(cb, "window_calls", None) is None:
            return
        name = self._name(cb)
        for gauge, rate in ((self._failure_rate, cb.failure_rate), (self._slow_call_rate, cb.slow_call_rate)):
            gauge.labels(name).set(math.nan if rate is None else rate)

    def ignored(self, cb: Any, exc: BaseException | None = None) -> None:
        self._ignored.labels(self._name(cb)).inc()

    def rejected(self, cb: Any) -> None:
        self._rejections.labels(self._name(cb)).inc()

    def state_change(self, cb: Any, old_state: CircuitBreakerState | None, new_state: CircuitBreakerState) -> None:
        name = self._name(cb)
        # The state now, rather than `new_state`: of two racing reports the
        # last one leaves the gauge at the breaker's state.
        self._state.labels(name).set(STATE_VALUE[cb.current_state])
        old = old_state.name if old_state is not None else "closed"
        self._transitions.labels(name, old, new_state.name).inc()
        self._rates(cb)
