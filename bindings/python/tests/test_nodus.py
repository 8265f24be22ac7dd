"""nodus-circuit-breaker 0.1.0's contract, and the LLM adapter."""

import asyncio
from datetime import datetime, timezone

import breakerbox.nodus as nodus
import pytest
from breakerbox import ManualClock
from breakerbox.nodus import (
    CircuitBreaker,
    CircuitBreakerLLMClient,
    CircuitOpenError,
    CircuitState,
    LLMCallError,
    LLMCircuitOpenError,
)


class Boom(Exception):
    pass


def fail():
    raise Boom


def test_trips_rejects_and_recovers(clock: ManualClock):
    changes = []
    cb = CircuitBreaker("payments", failure_threshold=2, recovery_timeout_secs=30,
                        on_state_change=lambda *a: changes.append(a), clock=clock)
    assert cb.state is CircuitState.CLOSED and cb.name == "payments"
    assert cb.failure_count == 0 and cb.opened_at is None
    with pytest.raises(Boom):
        cb.call(fail)
    assert cb.failure_count == 1
    with pytest.raises(Boom):  # nodus re-raises the call's own error on a trip
        cb.call(fail)
    assert cb.state is CircuitState.OPEN and cb.failure_count == 2
    assert isinstance(cb.opened_at, datetime) and cb.opened_at.tzinfo is timezone.utc
    with pytest.raises(CircuitOpenError, match="^Circuit 'payments' is open; rejecting call$"):
        cb.call(lambda: 1)
    clock.advance(30)
    assert cb.call(lambda: "ok") == "ok"
    assert cb.state is CircuitState.CLOSED and cb.opened_at is None
    assert changes == [
        ("payments", "closed", "open"),
        ("payments", "open", "half_open"),
        ("payments", "half_open", "closed"),
    ]


def test_one_probe_in_flight(clock: ManualClock):
    cb = CircuitBreaker("db", failure_threshold=1, recovery_timeout_secs=1, clock=clock)
    with pytest.raises(Boom):
        cb.call(fail)
    clock.advance(1)
    permit = cb._acquire()
    assert cb.state is CircuitState.HALF_OPEN
    with pytest.raises(CircuitOpenError, match="^Circuit 'db' is half-open; probe already in flight$"):
        cb.call(lambda: 1)
    permit.failure()
    assert cb.state is CircuitState.OPEN


def test_async_call_and_cancellation(clock: ManualClock):
    cb = CircuitBreaker("llm", failure_threshold=1, recovery_timeout_secs=1, clock=clock)

    async def hang():
        await asyncio.sleep(3600)

    async def answer():
        return 42

    async def main():
        assert await cb.async_call(answer) == 42
        with pytest.raises(Boom):
            await cb.async_call(lambda: _raise())
        clock.advance(1)
        task = asyncio.create_task(cb.async_call(hang))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # nodus wedges here for good (CancelledError is no Exception); this does not.
        assert cb.state is CircuitState.HALF_OPEN
        assert await cb.async_call(answer) == 42
        assert cb.state is CircuitState.CLOSED

    async def _boom():
        raise Boom

    def _raise():
        return _boom()

    asyncio.run(main())


def test_reset_and_hook_errors_are_swallowed():
    def hook(*args):
        raise RuntimeError("hook broke")

    cb = CircuitBreaker("x", failure_threshold=1, on_state_change=hook)
    with pytest.raises(Boom):
        cb.call(fail)
    assert cb.state is CircuitState.OPEN
    cb.reset()
    assert cb.state is CircuitState.CLOSED and cb.failure_count == 0


def test_settable_attributes():
    cb = CircuitBreaker("x")
    assert (cb.failure_threshold, cb.recovery_timeout_secs) == (3, 60)
    cb.failure_threshold = 1
    cb.recovery_timeout_secs = 5
    cb.name = "y"
    assert (cb.failure_threshold, cb.recovery_timeout_secs, cb.name) == (1, 5, "y")


class FakeClient:
    def __init__(self, errors):
        self.errors = list(errors)
        self.calls = 0

    def chat(self, messages, model=None, temperature=0.7, max_tokens=None):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "reply"

    def is_available(self):
        return True


class StatusError(Exception):
    def __init__(self, status):
        super().__init__(f"HTTP {status}")
        self.status_code = status


class Response:
    def __init__(self, status):
        self.status_code = status


class HTTPStatusError(Exception):  # httpx- and requests-style: the status is on .response
    def __init__(self, status):
        super().__init__(f"HTTP {status}")
        self.response = Response(status)


class ConnectError(Exception):  # httpx's name
    pass


class APITimeoutError(Exception):  # openai's name
    pass


@pytest.mark.parametrize("error,counts,retryable", [
    (StatusError(429), True, True),
    (StatusError(503), True, True),
    (HTTPStatusError(500), True, True),
    (HTTPStatusError(404), False, False),
    (StatusError(400), False, False),
    (TimeoutError(), True, True),
    (APITimeoutError(), True, True),
    (ConnectionResetError(), True, True),
    (ConnectError(), True, True),
    (ValueError("bad json"), True, False),
])
def test_llm_errors_are_classified_like_the_rust_llm_feature(error, counts, retryable):
    breaker = CircuitBreaker("openai", failure_threshold=1)
    client = CircuitBreakerLLMClient(FakeClient([error]), provider="openai", breaker=breaker)
    with pytest.raises(LLMCallError) as info:
        client.chat([{"role": "user", "content": "hi"}])
    assert info.value.__cause__ is error
    assert info.value.provider == "openai" and info.value.retryable is retryable
    assert breaker.state is (CircuitState.OPEN if counts else CircuitState.CLOSED)


def test_llm_rejection_is_both_errors():
    client = CircuitBreakerLLMClient(FakeClient([StatusError(503)] * 5), provider="anthropic")
    assert client.breaker.failure_threshold == 5 and client.breaker.name == "anthropic"
    for _ in range(5):
        with pytest.raises(LLMCallError):
            client.chat([])
    with pytest.raises(LLMCircuitOpenError) as info:
        client.chat([])
    assert isinstance(info.value, CircuitOpenError) and isinstance(info.value, LLMCallError)
    assert client._client.calls == 5


def test_llm_client_protocol_is_checked():
    with pytest.raises(TypeError, match="LLMClient protocol"):
        CircuitBreakerLLMClient(object(), provider="x")
    assert isinstance(FakeClient([]), nodus.LLMClient)


def test_llm_async_method():
    class AsyncClient(FakeClient):
        async def achat(self, messages):
            return "async reply"

    client = CircuitBreakerLLMClient(AsyncClient([]), provider="local")
    assert asyncio.run(client.acall_method("achat", [])) == "async reply"
