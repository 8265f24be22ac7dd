"""Typical use, checked by `mypy --strict`: signatures survive the decorator."""

from __future__ import annotations

import asyncio

import breakerbox
import breakerbox.nodus
from breakerbox import CircuitBreaker, CircuitBreakerError, CircuitBreakerListener, ManualClock


class NotFound(Exception):
    pass


def is_benign(exc: BaseException) -> bool:
    return "benign" in str(exc)


class Log(CircuitBreakerListener):
    def state_change(
        self,
        cb: CircuitBreaker,
        old_state: breakerbox.CircuitBreakerState | None,
        new_state: breakerbox.CircuitBreakerState,
    ) -> None:
        print(cb.name, new_state.name)


clock = ManualClock()
breaker = CircuitBreaker(
    fail_max=3,
    reset_timeout=30,
    exclude=[NotFound, is_benign],
    listeners=[Log()],
    name="db",
    half_open_max_calls=2,
    clock=clock,
)


@breaker
def lookup(key: str, default: int = 0) -> int:
    return len(key) + default


@breaker()
def other(x: float) -> float:
    return x


@breaker
async def fetch(url: str) -> bytes:
    return url.encode()


async def main() -> bytes:
    direct: int = await breaker.call_async(lambda_free, 2)
    async with breaker.calling():
        pass
    return await fetch("x") + bytes(direct)


async def lambda_free(n: int) -> int:
    return n


value: int = lookup("abc", default=1)
same: float = other(1.5)
called: int = breaker.call(lookup, "abc")
state: str = breaker.current_state
try:
    with breaker.calling():
        pass
except CircuitBreakerError:
    pass
clock.advance(1.0)
data: bytes = asyncio.run(main())

nodus_breaker = breakerbox.nodus.CircuitBreaker("search", failure_threshold=2)
answer: int = nodus_breaker.call(lookup, "x")
is_closed: bool = nodus_breaker.state is breakerbox.nodus.CircuitState.CLOSED


def backoff(attempt: int, failure_rate: float | None) -> float:
    return min(300.0, 10.0 * 2.0**attempt)


windowed = CircuitBreaker(
    count_window=100,
    failure_rate_threshold=50,
    minimum_calls=20,
    slow_call_duration=2.5,
    slow_call_rate_threshold=80,
    mode=breakerbox.Mode.METRICS_ONLY,
    open_backoff=breakerbox.ExponentialBackoff(2, 300, jitter=breakerbox.Jitter.EQUAL),
)
timed = CircuitBreaker(time_window=60, window_buckets=6, mode="enforcing", open_backoff=backoff)
rate: float | None = windowed.failure_rate
slow: float | None = windowed.slow_call_rate
held: int | None = windowed.window_calls
mode: breakerbox.Mode = windowed.mode
lasts: float | None = timed.open_for
try:
    timed.call(lookup, "y")
except CircuitBreakerError as rejected:
    wait: float | None = rejected.retry_after
nodus_windowed = breakerbox.nodus.CircuitBreaker("llm", count_window=10, open_backoff=backoff)
