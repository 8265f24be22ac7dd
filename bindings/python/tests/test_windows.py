"""Failure-rate and slow-call windows, open backoff, retry-after and the
shadow modes, from Python. Time is the manual clock's: a "slow" call is one
that advances the clock while it runs."""

import asyncio
import math
import sys

import breakerbox
import breakerbox.nodus as nodus
import pytest
from breakerbox import CircuitBreaker, CircuitBreakerError, ExponentialBackoff, Jitter, ManualClock, Mode


class Boom(Exception):
    pass


def fail() -> None:
    raise Boom("down")


def ok() -> str:
    return "ok"


def run(coro):
    return asyncio.run(coro)


class Recorder(breakerbox.CircuitBreakerListener):
    def __init__(self) -> None:
        self.events: list = []

    def failure(self, cb, exc):
        self.events.append("failure")

    def success(self, cb):
        self.events.append("success")

    def state_change(self, cb, old_state, new_state):
        self.events.append((old_state.name, new_state.name))

    def rejected(self, cb):
        self.events.append("rejected")


def expect_rejected(cb: CircuitBreaker) -> CircuitBreakerError:
    called = []
    with pytest.raises(CircuitBreakerError) as info:
        cb.call(lambda: called.append(1))
    assert called == []
    return info.value


def call_failing(cb: CircuitBreaker) -> None:
    with pytest.raises((Boom, CircuitBreakerError)):
        cb.call(fail)


# The failure rate


def test_a_count_window_trips_on_the_rate_where_consecutive_failures_never_would():
    cb = CircuitBreaker(fail_max=2, count_window=10, minimum_calls=10, failure_rate_threshold=50)
    for _ in range(4):  # S F S F ...: never two failures in a row
        assert cb.call(ok) == "ok"
        with pytest.raises(Boom):
            cb.call(fail)
    assert cb.current_state == "closed" and cb.failure_rate is None  # 8 calls, below the minimum
    assert cb.window_calls == 8
    assert cb.call(ok) == "ok"
    assert cb.failure_rate is None
    with pytest.raises(CircuitBreakerError, match="^Failures threshold reached, circuit breaker opened$") as info:
        cb.call(fail)  # 10 calls, 5 failures: 50 %
    assert isinstance(info.value.__context__, Boom)
    assert cb.current_state == "open"
    # Every transition empties the window.
    assert cb.failure_rate is None and cb.window_calls == 0


def test_below_the_threshold_stays_closed_and_reports_its_rate():
    cb = CircuitBreaker(count_window=10, minimum_calls=10, failure_rate_threshold=50)
    for _ in range(6):
        cb.call(ok)
    for _ in range(4):
        call_failing(cb)
    assert cb.current_state == "closed"
    assert cb.failure_rate == pytest.approx(40.0)
    assert cb.slow_call_rate is None  # no slow calls configured


def test_below_minimum_calls_nothing_trips():
    cb = CircuitBreaker(count_window=100, minimum_calls=10, failure_rate_threshold=50)
    for _ in range(9):
        with pytest.raises(Boom):
            cb.call(fail)
    assert cb.current_state == "closed" and cb.failure_rate is None and cb.window_calls == 9
    with pytest.raises(CircuitBreakerError):
        cb.call(fail)
    assert cb.current_state == "open"


def test_the_default_minimum_is_capped_at_a_count_windows_size():
    cb = CircuitBreaker(count_window=4)  # minimum_calls 100 by default, capped at 4
    for _ in range(2):
        cb.call(ok)
    call_failing(cb)
    assert cb.current_state == "closed"
    call_failing(cb)
    assert cb.current_state == "open"


def test_a_time_window_forgets_calls_older_than_its_span(clock: ManualClock):
    cb = CircuitBreaker(time_window=60, window_buckets=6, minimum_calls=2, failure_rate_threshold=50, clock=clock)
    for _ in range(3):
        cb.call(ok)
    clock.advance(70)
    assert cb.window_calls == 0
    call_failing(cb)
    assert cb.current_state == "closed"  # one call: below the minimum
    call_failing(cb)  # with the old successes this would be 2 of 5
    assert cb.current_state == "open"


def test_a_time_window_keeps_calls_within_its_span(clock: ManualClock):
    cb = CircuitBreaker(time_window=60, window_buckets=6, minimum_calls=2, failure_rate_threshold=50, clock=clock)
    for _ in range(3):
        cb.call(ok)
    clock.advance(30)
    call_failing(cb)
    call_failing(cb)
    assert cb.current_state == "closed"
    assert cb.failure_rate == pytest.approx(40.0)


def test_ignored_calls_count_as_nothing_and_excluded_ones_as_successes():
    cb = CircuitBreaker(count_window=4, ignore=[KeyError], exclude=[LookupError])
    with pytest.raises(KeyError):
        cb.call(lambda: {}["x"])
    assert cb.window_calls == 0
    with pytest.raises(IndexError):
        cb.call(lambda: [][1])
    assert cb.window_calls == 1 and cb.current_state == "closed"


def test_half_open_is_still_decided_by_success_threshold(clock: ManualClock):
    cb = CircuitBreaker(count_window=2, reset_timeout=5, success_threshold=2, clock=clock)
    call_failing(cb)
    call_failing(cb)
    assert cb.current_state == "open"
    clock.advance(5)
    cb.call(ok)
    assert cb.current_state == "half-open"
    cb.call(ok)
    assert cb.current_state == "closed"


# Slow calls, timed by the breaker itself


def slow_breaker(clock: ManualClock, **kwargs) -> CircuitBreaker:
    return CircuitBreaker(count_window=10, minimum_calls=4, slow_call_duration=2, slow_call_rate_threshold=50,
                          clock=clock, **kwargs)


def protected_forms(cb: CircuitBreaker, clock: ManualClock):
    """Each way of running a call through `cb`: (name, run(seconds, fails))."""

    def body(seconds: float, fails: bool) -> str:
        clock.advance(seconds)
        if fails:
            raise Boom("slow and failing")
        return "ok"

    async def abody(seconds: float, fails: bool) -> str:
        return body(seconds, fails)

    decorated = cb(body)
    adecorated = cb(abody)

    def with_calling(seconds: float, fails: bool) -> str:
        with cb.calling():
            return body(seconds, fails)

    async def async_calling(seconds: float, fails: bool) -> str:
        async with cb.calling():
            return body(seconds, fails)

    return {
        "call": lambda s, f: cb.call(body, s, f),
        "decorator": decorated,
        "with calling()": with_calling,
        "call_async": lambda s, f: run(cb.call_async(abody, s, f)),
        "async decorator": lambda s, f: run(adecorated(s, f)),
        "async with calling()": lambda s, f: run(async_calling(s, f)),
        "acquired permit": lambda s, f: permit_call(cb, body, s, f),
    }


def permit_call(cb: CircuitBreaker, body, seconds: float, fails: bool) -> str:
    permit = cb._acquire()
    try:
        result = body(seconds, fails)
    except BaseException as exc:
        permit.error(exc)
        raise
    permit.success()
    return result


FORMS = ["call", "decorator", "with calling()", "call_async", "async decorator", "async with calling()",
         "acquired permit"]


@pytest.mark.parametrize("form", FORMS)
def test_slow_successes_trip_at_their_rate_in_every_form(form: str, clock: ManualClock):
    cb = slow_breaker(clock)
    call = protected_forms(cb, clock)[form]
    assert call(0.5, False) == "ok"
    assert call(2.0, False) == "ok"  # exactly the limit is not slow
    assert call(2.001, False) == "ok"
    assert cb.current_state == "closed" and cb.slow_call_rate is None  # 3 calls, below the minimum
    assert call(3, False) == "ok"  # a slow success returns its value, and trips: 2 of 4 slow
    assert cb.current_state == "open"


@pytest.mark.parametrize("form", FORMS)
def test_slow_failures_count_for_both_rates(form: str, clock: ManualClock):
    cb = slow_breaker(clock, failure_rate_threshold=100)
    call = protected_forms(cb, clock)[form]
    for _ in range(3):
        call(0, False)
    with pytest.raises((Boom, CircuitBreakerError)):
        call(5, True)
    # 4 calls: 1 failure (25 %), 1 slow (25 %): neither rate trips.
    assert cb.current_state == "closed"
    assert cb.failure_rate == pytest.approx(25.0) and cb.slow_call_rate == pytest.approx(25.0)


def test_the_clock_is_read_for_a_call_only_when_slow_calls_are_configured(clock: ManualClock):
    for kwargs in ({}, {"count_window": 10}):
        cb = CircuitBreaker(clock=clock, **kwargs)
        before = clock.reads
        for _ in range(5):
            cb.call(ok)
            with cb.calling():
                pass
            run(cb.call_async(asyncio.sleep, 0))
        assert clock.reads == before, kwargs
    cb = slow_breaker(clock)
    before = clock.reads
    cb.call(ok)
    assert clock.reads - before >= 2  # the start and the end of the call


def test_a_generator_is_timed_until_it_ends(clock: ManualClock):
    cb = CircuitBreaker(count_window=2, minimum_calls=1, slow_call_duration=1, slow_call_rate_threshold=100,
                        clock=clock)

    @cb
    def gen():
        yield 1
        clock.advance(5)
        yield 2

    it = gen()
    assert next(it) == 1
    assert cb.current_state == "closed"
    assert list(it) == [2]
    assert cb.current_state == "open"


def test_a_cancelled_or_forgotten_timed_call_counts_as_neither(clock: ManualClock):
    cb = slow_breaker(clock)

    async def hang():
        await asyncio.sleep(3600)

    async def main():
        task = asyncio.create_task(cb.call_async(hang))
        await asyncio.sleep(0)
        clock.advance(10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    permit = cb._acquire()
    clock.advance(10)
    del permit
    assert cb.window_calls == 0 and cb.current_state == "closed"


# The open backoff


def fail_probe(cb: CircuitBreaker) -> None:
    with pytest.raises(CircuitBreakerError, match="Trial call failed"):
        cb.call(fail)


def test_exponential_backoff_grows_per_reopen_to_its_cap_and_restarts_on_close(clock: ManualClock):
    cb = CircuitBreaker(fail_max=1, reset_timeout=10, open_backoff=ExponentialBackoff(2, 35), clock=clock)
    call_failing(cb)
    for expected in (10, 20, 35, 35):
        assert cb.open_for == pytest.approx(expected)
        assert expect_rejected(cb).retry_after == pytest.approx(expected)
        clock.advance(expected - 0.001)
        assert expect_rejected(cb).retry_after == pytest.approx(0.001)
        clock.advance(0.001)
        fail_probe(cb)
    assert cb.open_for == pytest.approx(35)
    clock.advance(35)
    assert cb.call(ok) == "ok" and cb.current_state == "closed"
    call_failing(cb)
    assert cb.open_for == pytest.approx(10)


@pytest.mark.parametrize("jitter,low", [(Jitter.FULL, 0.0), (Jitter.EQUAL, 0.5), ("full", 0.0), ("equal", 0.5)])
def test_jittered_backoff_waits_exactly_what_it_drew(jitter, low: float, clock: ManualClock):
    cb = CircuitBreaker(fail_max=1, reset_timeout=1, open_backoff=ExponentialBackoff(2, 8, jitter=jitter),
                        clock=clock)
    call_failing(cb)
    for attempt in range(1, 6):
        full = min(8, 2 ** (attempt - 1))
        drawn = cb.open_for
        assert low * full <= drawn <= full
        if drawn >= 0.001:
            clock.advance(drawn - 0.001)
            expect_rejected(cb)
            clock.advance(0.001)
        fail_probe(cb)


def test_a_custom_backoff_gets_the_attempt_and_the_failure_rate(clock: ManualClock):
    seen = []

    def backoff(attempt, rate):
        seen.append((attempt, rate))
        return attempt * 7.5

    cb = CircuitBreaker(count_window=5, minimum_calls=5, failure_rate_threshold=60, reset_timeout=1,
                        open_backoff=backoff, clock=clock)
    for _ in range(2):
        cb.call(ok)
    for _ in range(3):
        call_failing(cb)
    assert cb.current_state == "open" and cb.open_for == pytest.approx(7.5)
    clock.advance(7.499)
    assert expect_rejected(cb).retry_after == pytest.approx(0.001)
    clock.advance(0.001)
    fail_probe(cb)
    assert cb.open_for == pytest.approx(15)
    assert seen[0][0] == 1 and seen[0][1] == pytest.approx(60.0)
    assert seen[1] == (2, None)  # the probe's failure, no window rate


def test_a_custom_backoff_without_a_window_sees_no_rate(clock: ManualClock):
    seen = []
    cb = CircuitBreaker(fail_max=1, open_backoff=lambda a, r: seen.append((a, r)) or 3, clock=clock)
    call_failing(cb)
    assert seen == [(1, None)] and cb.open_for == pytest.approx(3)


@pytest.mark.parametrize("bad", [
    lambda a, r: 1 / 0,
    lambda a, r: "soon",
    lambda a, r: -1,
    lambda a, r: math.nan,
    lambda a, r: math.inf,
    lambda a, r: None,
    lambda: 5,  # the wrong arity is a TypeError when called
])
def test_a_failing_custom_backoff_falls_back_to_the_reset_timeout(bad, clock: ManualClock,
                                                                  monkeypatch: pytest.MonkeyPatch):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    cb = CircuitBreaker(fail_max=1, reset_timeout=4, open_backoff=bad, clock=clock)
    call_failing(cb)
    assert cb.current_state == "open" and cb.open_for == pytest.approx(4)
    assert len(reported) == 1 and reported[0].object is bad
    clock.advance(3.999)
    expect_rejected(cb)
    clock.advance(0.001)
    # The fallback follows the reset timeout as set now.
    cb.reset_timeout = 9
    fail_probe(cb)
    assert cb.open_for == pytest.approx(9) and len(reported) == 2
    clock.advance(9)
    assert cb.call(ok) == "ok" and cb.current_state == "closed"


# Shadow modes


def test_metrics_only_decides_and_reports_but_rejects_nothing(clock: ManualClock):
    rec = Recorder()
    cb = CircuitBreaker(count_window=4, reset_timeout=10, mode="metrics_only", listeners=[rec], clock=clock)
    assert cb.mode is Mode.METRICS_ONLY and cb.mode == "metrics_only" and str(cb.mode) == "metrics_only"
    cb.call(ok)
    cb.call(ok)
    with pytest.raises(Boom):
        cb.call(fail)
    with pytest.raises(Boom):  # the trip: the call's own exception, never CircuitBreakerError
        cb.call(fail)
    assert cb.current_state == "open"
    assert rec.events == ["success", "success", "failure", "failure", ("closed", "open")]
    rec.events.clear()
    # Open: the call runs anyway, and the would-be rejection is reported.
    assert cb.call(ok) == "ok"
    with pytest.raises(Boom):
        cb.call(fail)
    assert rec.events == ["rejected", "rejected"]  # admitted where it would be rejected: not counted
    clock.advance(10)
    rec.events.clear()
    assert cb.call(ok) == "ok"  # the probe is real
    assert rec.events == [("open", "half-open"), ("half-open", "closed"), "success"]


def test_metrics_only_trips_on_consecutive_failures_too():
    cb = CircuitBreaker(fail_max=2, mode=Mode.METRICS_ONLY)
    for _ in range(5):
        with pytest.raises(Boom):
            cb.call(fail)
    assert cb.current_state == "open"
    assert cb.call(ok) == "ok"


def test_disabled_admits_everything_and_counts_nothing():
    rec = Recorder()
    cb = CircuitBreaker(fail_max=1, count_window=2, mode="disabled", listeners=[rec])
    assert cb.mode is Mode.DISABLED
    for _ in range(5):
        with pytest.raises(Boom):
            cb.call(fail)
    assert cb.current_state == "closed" and cb.fail_counter == 0 and cb.window_calls == 0
    assert rec.events == []
    cb.open()  # a forced state still changes, and rejects nothing
    assert cb.current_state == "open"
    assert cb.call(ok) == "ok"


def test_mode_is_read_only_and_defaults_to_enforcing():
    cb = CircuitBreaker()
    assert cb.mode is Mode.ENFORCING
    assert cb.failure_rate is None and cb.slow_call_rate is None and cb.window_calls is None
    for attr in ("mode", "failure_rate", "slow_call_rate"):
        with pytest.raises(AttributeError):
            setattr(cb, attr, None)


# Retry-after


def test_an_open_rejection_says_how_long_until_a_probe(clock: ManualClock):
    cb = CircuitBreaker(fail_max=1, reset_timeout=30, clock=clock)
    with pytest.raises(CircuitBreakerError) as trip:
        cb.call(fail)
    assert trip.value.retry_after == pytest.approx(30)  # the trip itself says so
    assert expect_rejected(cb).retry_after == pytest.approx(30)
    clock.advance(12.5)
    assert expect_rejected(cb).retry_after == pytest.approx(17.5)


def test_a_half_open_rejection_says_the_lease_remaining(clock: ManualClock):
    cb = CircuitBreaker(fail_max=1, reset_timeout=5, probe_lease=20, clock=clock)
    cb.open()
    clock.advance(5)
    permit = cb._acquire()
    clock.advance(4)
    assert expect_rejected(cb).retry_after == pytest.approx(16)
    permit.success()


def test_retry_after_is_none_on_errors_not_made_by_a_rejection():
    assert CircuitBreakerError("mine").retry_after is None
    assert nodus.CircuitOpenError("mine").retry_after is None
    assert nodus.LLMCircuitOpenError("mine").retry_after is None


def test_async_rejections_carry_retry_after(clock: ManualClock):
    cb = CircuitBreaker(fail_max=1, reset_timeout=8, clock=clock)
    cb.open()

    async def g():
        return 1

    with pytest.raises(CircuitBreakerError) as info:
        run(cb.call_async(g))
    assert info.value.retry_after == pytest.approx(8)


# nodus


def test_nodus_takes_the_window_backoff_and_mode_options(clock: ManualClock):
    changes = []
    cb = nodus.CircuitBreaker("llm", failure_threshold=50, recovery_timeout_secs=10,
                              on_state_change=lambda *a: changes.append(a[1:]),
                              count_window=4, failure_rate_threshold=50,
                              open_backoff=ExponentialBackoff(3, 100), clock=clock)
    cb.call(ok)
    cb.call(ok)
    for _ in range(2):
        with pytest.raises(Boom):
            cb.call(fail)
    assert cb.state is nodus.CircuitState.OPEN and changes == [("closed", "open")]
    with pytest.raises(nodus.CircuitOpenError) as info:
        cb.call(ok)
    assert info.value.retry_after == pytest.approx(10)
    clock.advance(10)
    with pytest.raises(Boom):
        cb.call(fail)
    assert cb.open_for == pytest.approx(30)
    assert cb.failure_rate is None and cb.mode is Mode.ENFORCING


def test_the_llm_adapter_passes_retry_after_on(clock: ManualClock):
    class Client:
        def chat(self, messages, model=None, temperature=0.7, max_tokens=None):
            return "hi"

        def is_available(self):
            return True

    breaker = nodus.CircuitBreaker("p", recovery_timeout_secs=20, clock=clock)
    llm = nodus.CircuitBreakerLLMClient(Client(), provider="p", breaker=breaker)
    breaker.open()
    clock.advance(5)
    with pytest.raises(nodus.LLMCircuitOpenError) as info:
        llm.chat([])
    assert info.value.retry_after == pytest.approx(15)


def test_nodus_shadow_mode_never_rejects():
    cb = nodus.CircuitBreaker("x", failure_threshold=1, mode="metrics_only")
    with pytest.raises(Boom):
        cb.call(fail)
    assert cb.state is nodus.CircuitState.OPEN
    assert cb.call(ok) == "ok"


# Bad values: a ValueError or TypeError naming the argument, nothing built


@pytest.mark.parametrize("kwargs,error,words", [
    ({"count_window": 0}, ValueError, "count_window"),
    ({"count_window": 2.5}, TypeError, "count_window"),
    ({"count_window": True}, TypeError, "count_window"),
    ({"time_window": 0}, ValueError, "time_window"),
    ({"time_window": -5}, ValueError, "time_window"),
    ({"time_window": "60"}, TypeError, "time_window"),
    ({"count_window": 10, "time_window": 60}, ValueError, "count_window"),
    ({"count_window": 10, "window_buckets": 0}, ValueError, "window_buckets"),
    ({"count_window": 10, "window_buckets": 17}, ValueError, "window_buckets"),
    ({"count_window": 10, "failure_rate_threshold": 0}, ValueError, "failure_rate_threshold"),
    ({"count_window": 10, "failure_rate_threshold": 100.5}, ValueError, "failure_rate_threshold"),
    ({"count_window": 10, "failure_rate_threshold": math.nan}, ValueError, "failure_rate_threshold"),
    ({"count_window": 10, "failure_rate_threshold": "50"}, TypeError, "failure_rate_threshold"),
    ({"count_window": 10, "minimum_calls": 0}, ValueError, "minimum_calls"),
    ({"count_window": 10, "slow_call_duration": 0}, ValueError, "slow_call_duration"),
    ({"count_window": 10, "slow_call_duration": math.inf}, ValueError, "slow_call_duration"),
    ({"count_window": 10, "slow_call_rate_threshold": -1}, ValueError, "slow_call_rate_threshold"),
    # Window settings without a window would be silently unused.
    ({"failure_rate_threshold": 50}, ValueError, "failure_rate_threshold"),
    ({"minimum_calls": 5}, ValueError, "minimum_calls"),
    ({"window_buckets": 5}, ValueError, "window_buckets"),
    ({"slow_call_duration": 1}, ValueError, "slow_call_duration"),
    ({"slow_call_rate_threshold": 50}, ValueError, "slow_call_rate_threshold"),
    ({"mode": "shadow"}, ValueError, "mode"),
    ({"mode": 1}, TypeError, "mode"),
    ({"open_backoff": 5}, TypeError, "open_backoff"),
    ({"open_backoff": "exponential"}, TypeError, "open_backoff"),
])
def test_bad_window_options_name_the_argument(kwargs, error, words):
    with pytest.raises(error, match=words):
        CircuitBreaker(**kwargs)
    with pytest.raises(error, match=words):
        nodus.CircuitBreaker("x", **kwargs)


@pytest.mark.parametrize("args,kwargs,error,words", [
    ((0.5, 10), {}, ValueError, "multiplier"),
    ((math.nan, 10), {}, ValueError, "multiplier"),
    (("2", 10), {}, TypeError, "multiplier"),
    ((2, -1), {}, ValueError, "cap"),
    ((2, math.inf), {}, ValueError, "cap"),
    ((2, None), {}, TypeError, "cap"),
    ((2, 10), {"jitter": "some"}, ValueError, "jitter"),
    ((2, 10), {"jitter": 1}, TypeError, "jitter"),
])
def test_bad_backoff_values_name_the_argument(args, kwargs, error, words):
    with pytest.raises(error, match=words):
        ExponentialBackoff(*args, **kwargs)


def test_exponential_backoff_reads_back():
    b = ExponentialBackoff(1.5, cap=120, jitter=Jitter.EQUAL)
    assert (b.multiplier, b.cap, b.jitter) == (1.5, 120.0, "equal")
    assert ExponentialBackoff(2, 60).jitter == Jitter.NONE
    assert repr(b) == "ExponentialBackoff(multiplier=1.5, cap=120.0, jitter='equal')"


def test_a_shared_breaker_takes_windows_and_refuses_per_process_rules_before_connecting():
    import redis

    # Nothing listens on port 1: the refusal comes before any round trip, and
    # a breaker that builds decides by its fault policy until Redis answers.
    storage = breakerbox.CircuitRedisStorage("closed", redis.Redis(host="127.0.0.1", port=1))
    for kwargs in ({"count_window": 10}, {"time_window": 30, "slow_call_duration": 1.0},
                   {"count_window": 10, "mode": "metrics_only"},
                   {"count_window": 10, "open_backoff": ExponentialBackoff(2, 60, jitter=Jitter.FULL)}):
        assert CircuitBreaker(state_storage=storage, **kwargs).window_calls == 0
    # The fleet decides half-open by the probes' failure rate too.
    for kwargs in ({"half_open_rule": "failure_rate"},
                   {"half_open_rule": "failure_rate", "count_window": 10, "slow_call_duration": 1.0}):
        assert CircuitBreaker(state_storage=storage, half_open_max_calls=4, **kwargs).half_open_rule == "failure_rate"
    # An exponential backoff is the fleet's: it builds, closed, not open for anything yet.
    for jitter in (Jitter.NONE, Jitter.EQUAL):
        shared = CircuitBreaker(state_storage=storage, open_backoff=ExponentialBackoff(2, 60, jitter=jitter))
        assert shared.open_for is None
    for kwargs in ({"mode": "disabled"}, {"open_backoff": lambda attempt, rate: 1.0}):
        with pytest.raises(ValueError, match="state_storage") as info:
            CircuitBreaker(state_storage=storage, **kwargs)
        assert next(iter(kwargs)) in str(info.value)
        assert "per-process" in str(info.value)
