"""A drop-in for nodus-circuit-breaker 0.1.0 on breakerbox's lock-free core.

    import breakerbox.nodus as nodus_circuit_breaker

The breaker keeps nodus's interface (``call``, ``async_call``, ``state``,
``failure_count``, ``opened_at``, ``reset``); the LLM adapter classifies
provider errors as breakerbox's Rust ``llm`` feature does: rate limiting
(429), 5xx, timeouts and connection errors count as failures, other 4xx
(the request's own fault) do not.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any, Awaitable, Callable, NoReturn, Protocol, TypeVar, runtime_checkable

from . import CircuitBreakerError, CircuitBreakerListener, CircuitBreakerState, ManualClock, Mode, OpenBackoff, _call_async
from ._breakerbox import BreakerBase as _BreakerBase
from ._breakerbox import CircuitOpenError

if TYPE_CHECKING:
    from . import CircuitBreaker as _PyBreaker

__all__ = [
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "CircuitBreakerLLMClient",
    "LLMCallError",
    "LLMCircuitOpenError",
    "LLMClient",
    "classify_error",
]

T = TypeVar("T")
logger = logging.getLogger(__name__)


class CircuitState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_BY_NAME = {"closed": CircuitState.CLOSED, "open": CircuitState.OPEN, "half-open": CircuitState.HALF_OPEN}


class _StateHook(CircuitBreakerListener):
    """nodus's ``on_state_change(name, previous, new)``; its exceptions are swallowed."""

    def __init__(self, hook: Callable[[str, str, str], None]) -> None:
        self.hook = hook

    def state_change(self, cb: Any, old_state: CircuitBreakerState | None, new_state: CircuitBreakerState) -> None:
        previous = _BY_NAME[old_state.name].value if old_state is not None else CircuitState.CLOSED.value
        try:
            self.hook(cb.name, previous, _BY_NAME[new_state.name].value)
        except Exception:
            pass  # the hook must never break the breaker


def _whole(value: Any, argument: str, minimum: int) -> int:
    """nodus's ``int(value)``, refusing what is no number or below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argument} must be an int, not {type(value).__name__}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{argument} must be a finite number, got {value}")
    whole = int(value)
    if whole < minimum:
        raise ValueError(f"{argument} must be at least {minimum}, got {value}")
    return whole


class CircuitBreaker(_BreakerBase):
    """Closed/open/half-open breaker with nodus's interface.

    ``failure_threshold`` consecutive failures open it; after
    ``recovery_timeout_secs`` it admits ``half_open_max_calls`` probes (one by
    default); a probe's success closes it, its failure re-opens it. Only
    ``Exception`` subclasses count as failures; a cancelled call
    (``asyncio.CancelledError``) counts as neither.

    The window, slow-call, mode and backoff options are those of
    ``breakerbox.CircuitBreaker``; with a window, ``failure_threshold`` is
    unused while closed.
    """

    def __init__(
        self,
        name: str,
        failure_threshold: int = 3,
        recovery_timeout_secs: int = 60,
        on_state_change: Callable[[str, str, str], None] | None = None,
        *,
        half_open_max_calls: int = 1,
        clock: ManualClock | None = None,
        count_window: int | None = None,
        time_window: float | None = None,
        window_buckets: int | None = None,
        failure_rate_threshold: float | None = None,
        minimum_calls: int | None = None,
        slow_call_duration: float | None = None,
        slow_call_rate_threshold: float | None = None,
        mode: Mode | str | None = None,
        open_backoff: OpenBackoff | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        if on_state_change is not None and not callable(on_state_change):
            raise TypeError("on_state_change must be callable or None")
        self._init(
            name=name,
            fail_max=_whole(failure_threshold, "failure_threshold", 1),
            reset_timeout=_whole(recovery_timeout_secs, "recovery_timeout_secs", 0),
            success_threshold=1,
            half_open_max_calls=half_open_max_calls,
            probe_lease=None,
            exclude=(),
            ignore=(),
            listeners=(_StateHook(on_state_change),) if on_state_change is not None else (),
            throw_new_error_on_trip=False,
            clock=clock,
            initial_state="closed",
            nodus=True,
            count_window=count_window,
            time_window=time_window,
            window_buckets=window_buckets,
            failure_rate_threshold=failure_rate_threshold,
            minimum_calls=minimum_calls,
            slow_call_duration=slow_call_duration,
            slow_call_rate_threshold=slow_call_rate_threshold,
            mode=mode,
            open_backoff=open_backoff,
        )

    # Admission when the coroutine first runs, before `coro_func` is called.
    async_call = call_async = _call_async

    @property
    def failure_threshold(self) -> int:
        return self.fail_max

    @failure_threshold.setter
    def failure_threshold(self, value: int) -> None:
        self.fail_max = _whole(value, "failure_threshold", 1)

    @property
    def recovery_timeout_secs(self) -> int:
        return int(self.reset_timeout)

    @recovery_timeout_secs.setter
    def recovery_timeout_secs(self, value: int) -> None:
        self.reset_timeout = _whole(value, "recovery_timeout_secs", 0)

    @property  # type: ignore[misc]  # nodus's state is an enum, read-only
    def state(self) -> CircuitState:
        return _BY_NAME[self.current_state]

    @property
    def failure_count(self) -> int:
        """Consecutive failures; ``failure_threshold`` while not closed, as in nodus."""
        if self.current_state != "closed":
            return self.fail_max
        return self.fail_counter

    @property
    def opened_at(self) -> datetime | None:
        """When this process saw the breaker open (UTC); None while closed."""
        ts = self._opened_at
        if ts is None or self.current_state == "closed":
            return None
        return datetime.fromtimestamp(ts, tz=timezone.utc)

    def reset(self) -> None:
        """Force the circuit back to CLOSED regardless of current state."""
        self.close()

    def __repr__(self) -> str:
        return f"<nodus CircuitBreaker name={self.name!r} state={self.state.value!r}>"


class LLMCallError(Exception):
    """A provider call failed. ``provider``, ``status`` (HTTP status or None)
    and ``retryable`` (rate limited, 5xx, timeout, connection, or rejected)."""

    def __init__(self, message: str = "", *, provider: str | None = None, status: int | None = None,
                 retryable: bool = False) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.retryable = retryable


class LLMCircuitOpenError(CircuitOpenError, LLMCallError):
    """The breaker rejected the call; the provider was not contacted.
    ``retry_after``: the rejection's, seconds until a probe may be admitted (or None)."""

    def __init__(self, message: str = "", *, provider: str | None = None,
                 retry_after: float | None = None) -> None:
        LLMCallError.__init__(self, message, provider=provider, retryable=True)
        self.retry_after = retry_after


@runtime_checkable
class LLMClient(Protocol):
    """What ``CircuitBreakerLLMClient`` wraps: ``chat`` and ``is_available``."""

    def chat(
        self,
        messages: list[dict[str, Any]],
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int | None = None,
    ) -> str: ...

    def is_available(self) -> bool: ...


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a client library's error, found by duck typing:
    ``status_code`` (openai, anthropic), ``response.status_code`` (httpx,
    requests), ``status`` (aiohttp)."""
    for holder in (exc, getattr(exc, "response", None)):
        if holder is None:
            continue
        for attr in ("status_code", "status"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
                return value
    return None


def _mro_names(exc: BaseException) -> list[str]:
    return [c.__name__ for c in type(exc).__mro__]


def _is_timeout(exc: BaseException) -> bool:
    import asyncio
    import socket

    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, socket.timeout)):
        return True
    return any("Timeout" in n for n in _mro_names(exc))


def _is_connection(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError):
        return True
    return any(n in ("ConnectError", "ConnectionError", "APIConnectionError", "RemoteProtocolError",
                     "ClientConnectionError", "NetworkError")
               for n in _mro_names(exc))


def classify_error(exc: BaseException) -> tuple[str, int | None, bool]:
    """How a provider error counts: (``"failure"`` or ``"success"``, status, retryable).

    429, 5xx, timeouts and connection errors are failures and retryable;
    other 4xx are the request's fault: the provider answered, a success, not
    retryable. Anything else is a failure, not retryable.
    """
    status = _status(exc)
    if status is not None:
        if status == 429 or 500 <= status <= 599:
            return "failure", status, True
        if 400 <= status <= 499:
            return "success", status, False
        return "failure", status, False
    if _is_timeout(exc) or _is_connection(exc):
        return "failure", None, True
    return "failure", None, False


class CircuitBreakerLLMClient:
    """Any ``LLMClient`` behind a breaker named after the provider.

    A rejection raises ``LLMCircuitOpenError`` (the provider is not
    contacted); a provider error raises ``LLMCallError`` from it, counted by
    ``classify_error`` after the breaker's own ``exclude``/``ignore``.
    """

    def __init__(self, client: LLMClient, *, provider: str,
                 breaker: CircuitBreaker | _PyBreaker | None = None) -> None:
        if not isinstance(client, LLMClient):
            raise TypeError(f"client must satisfy LLMClient protocol, got {type(client)!r}")
        if not isinstance(provider, str):
            raise TypeError(f"provider must be a str, not {type(provider).__name__}")
        if breaker is not None and not isinstance(breaker, _BreakerBase):
            raise TypeError(f"breaker must be a breakerbox breaker, not {type(breaker).__name__}")
        self._client = client
        self._provider = provider
        self._breaker = breaker or CircuitBreaker(name=provider, failure_threshold=5, recovery_timeout_secs=60)

    @property
    def breaker(self) -> Any:
        return self._breaker

    @property
    def provider(self) -> str:
        return self._provider

    def _admit(self) -> Any:
        try:
            return self._breaker._acquire()
        except (CircuitOpenError, CircuitBreakerError) as exc:
            logger.warning("[LLM:%s] circuit open; rejecting call", self._provider)
            raise LLMCircuitOpenError(str(exc), provider=self._provider, retry_after=exc.retry_after) from exc

    def _reraise(self, permit: Any, exc: BaseException) -> NoReturn:
        """Records `exc`, then raises it, or the `LLMCallError` made from it."""
        error = self._failed(permit, exc)
        if error is None:
            raise exc
        raise error from exc

    def _failed(self, permit: Any, exc: BaseException) -> LLMCallError | None:
        """Records `exc`; the error to raise, or None to re-raise `exc` itself."""
        if not isinstance(exc, Exception):
            permit.ignore(exc)
            return None
        outcome: str = self._breaker._classify(exc)
        if outcome == "failure" and not isinstance(exc, LLMCallError):
            outcome, status, retryable = classify_error(exc)
        else:
            status = getattr(exc, "status", None)
            retryable = bool(getattr(exc, "retryable", False))
        if outcome == "failure":
            permit.failure(exc)
        elif outcome == "success":
            permit.success()
        else:
            permit.ignore(exc)
        if isinstance(exc, LLMCallError):
            return None
        error = LLMCallError(f"{self._provider} call failed", provider=self._provider, status=status,
                             retryable=retryable)
        return error

    def _call_with_breaker(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        permit = self._admit()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            self._reraise(permit, exc)
        permit.success()
        return result

    async def _acall_with_breaker(self, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        permit = self._admit()
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            self._reraise(permit, exc)
        permit.success()
        return result

    def chat(
        self,
        messages: list[dict[str, Any]],
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int | None = None,
    ) -> str:
        return self._call_with_breaker(
            self._client.chat, messages, model=model, temperature=temperature, max_tokens=max_tokens
        )

    def call_method(self, method_name: str, *args: Any, **kwargs: Any) -> Any:
        """Call an arbitrary method on the wrapped client through the breaker."""
        return self._call_with_breaker(getattr(self._client, method_name), *args, **kwargs)

    async def acall_method(self, method_name: str, *args: Any, **kwargs: Any) -> Any:
        """Await an async method of the wrapped client through the breaker."""
        return await self._acall_with_breaker(getattr(self._client, method_name), *args, **kwargs)

    def is_available(self) -> bool:
        return self._client.is_available()
