"""A program written for nodus-circuit-breaker 0.1.0, unchanged but for its import."""

import asyncio
import time

from nodus_circuit_breaker import (
    CircuitBreaker,
    CircuitBreakerLLMClient,
    CircuitOpenError,
    CircuitState,
    LLMCallError,
    LLMCircuitOpenError,
)

transitions = []
breaker = CircuitBreaker(
    name="search",
    failure_threshold=2,
    recovery_timeout_secs=0,
    on_state_change=lambda name, old, new: transitions.append((name, old, new)),
)


def flaky(ok):
    if not ok:
        raise RuntimeError("boom")
    return "ok"


for _ in range(2):
    try:
        breaker.call(flaky, False)
    except RuntimeError:
        pass
assert breaker.state == CircuitState.OPEN
assert breaker.failure_count == 2
assert breaker.opened_at is not None
assert breaker.call(flaky, True) == "ok"  # recovery_timeout_secs=0: probe at once
assert breaker.state == CircuitState.CLOSED


async def main():
    async def fetch(x):
        await asyncio.sleep(0)
        return x * 2

    assert await breaker.async_call(fetch, 21) == 42
    results = await asyncio.gather(*(breaker.async_call(fetch, i) for i in range(3)))
    assert results == [0, 2, 4]


asyncio.run(main())

strict = CircuitBreaker("strict", failure_threshold=1, recovery_timeout_secs=60)
try:
    strict.call(flaky, False)
except RuntimeError:
    pass
try:
    strict.call(flaky, True)
    raise AssertionError("should be open")
except CircuitOpenError as exc:
    assert "strict" in str(exc)
strict.reset()
assert strict.state == CircuitState.CLOSED


class Provider:
    def __init__(self):
        self.fail = True

    def chat(self, messages, model=None, temperature=0.7, max_tokens=None):
        if self.fail:
            raise TimeoutError("provider timed out")
        return "hello"

    def is_available(self):
        return True


provider = Provider()
llm = CircuitBreakerLLMClient(provider, provider="openai",
                              breaker=CircuitBreaker("openai", failure_threshold=1, recovery_timeout_secs=60))
try:
    llm.chat([{"role": "user", "content": "hi"}])
except LLMCallError:
    pass
try:
    llm.chat([{"role": "user", "content": "hi"}])
except LLMCircuitOpenError as exc:
    assert isinstance(exc, CircuitOpenError)
assert llm.breaker.state == CircuitState.OPEN
assert llm.is_available()
assert ("search", "closed", "open") in transitions
print("nodus program: ok")
