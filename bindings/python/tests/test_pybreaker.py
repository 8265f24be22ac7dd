"""pybreaker 1.4.1's contract, and where breakerbox does better."""

import abc
import inspect

import breakerbox as pybreaker
import pytest
from breakerbox import CircuitBreaker, CircuitBreakerError, ManualClock


class Boom(Exception):
    pass


def fail() -> None:
    raise Boom("down")


def ok() -> str:
    return "ok"


def trip(cb: CircuitBreaker) -> None:
    for _ in range(cb.fail_max):
        with pytest.raises((Boom, CircuitBreakerError)):
            cb.call(fail)
    assert cb.current_state == "open"


class Recorder(pybreaker.CircuitBreakerListener):
    def __init__(self) -> None:
        self.events: list = []

    def before_call(self, cb, func, *args, **kwargs):
        self.events.append(("before_call", func.__name__, args, kwargs))

    def failure(self, cb, exc):
        self.events.append(("failure", type(exc).__name__))

    def success(self, cb):
        self.events.append(("success",))

    def state_change(self, cb, old_state, new_state):
        # Listeners see the new state.
        assert cb.current_state == new_state.name
        self.events.append(("state_change", old_state.name, new_state.name))

    def rejected(self, cb):
        self.events.append(("rejected",))

    def ignored(self, cb, exc=None):
        self.events.append(("ignored", type(exc).__name__ if exc else None))


def test_defaults_and_constants():
    cb = CircuitBreaker()
    assert (cb.fail_max, cb.reset_timeout, cb.success_threshold) == (5, 60.0, 1)
    assert cb.name is None and cb.current_state == pybreaker.STATE_CLOSED
    assert (pybreaker.STATE_OPEN, pybreaker.STATE_CLOSED, pybreaker.STATE_HALF_OPEN) == ("open", "closed", "half-open")
    assert cb.state.name == "closed" and cb.fail_counter == 0 and cb.success_counter == 0
    assert cb.excluded_exceptions == () and cb.listeners == ()


def test_trips_at_exactly_fail_max_with_pybreakers_message():
    cb = CircuitBreaker(fail_max=3)
    for n in (1, 2):
        with pytest.raises(Boom):
            cb.call(fail)
        assert cb.fail_counter == n and cb.current_state == "closed"
    with pytest.raises(CircuitBreakerError, match="^Failures threshold reached, circuit breaker opened$") as info:
        cb.call(fail)
    assert isinstance(info.value.__context__, Boom)
    assert cb.current_state == "open"
    called = []
    with pytest.raises(CircuitBreakerError, match="^Timeout not elapsed yet, circuit breaker still open$"):
        cb.call(lambda: called.append(1))
    assert called == []


def test_success_resets_the_failure_count():
    cb = CircuitBreaker(fail_max=2)
    with pytest.raises(Boom):
        cb.call(fail)
    assert cb.call(ok) == "ok" and cb.fail_counter == 0
    with pytest.raises(Boom):
        cb.call(fail)
    assert cb.current_state == "closed"


def test_throw_new_error_on_trip_false_raises_the_original():
    cb = CircuitBreaker(fail_max=1, throw_new_error_on_trip=False)
    with pytest.raises(Boom):
        cb.call(fail)
    assert cb.current_state == "open"


def test_reset_timeout_on_the_manual_clock(clock: ManualClock):
    cb = CircuitBreaker(fail_max=1, reset_timeout=30, clock=clock)
    trip(cb)
    clock.advance(29.999)
    with pytest.raises(CircuitBreakerError):
        cb.call(ok)
    clock.advance(0.001)
    assert cb.call(ok) == "ok"
    assert cb.current_state == "closed"


def test_failed_probe_reopens_with_pybreakers_message(clock: ManualClock):
    cb = CircuitBreaker(fail_max=1, reset_timeout=10, clock=clock)
    trip(cb)
    clock.advance(10)
    with pytest.raises(CircuitBreakerError, match="^Trial call failed, circuit breaker opened$"):
        cb.call(fail)
    assert cb.current_state == "open"
    with pytest.raises(CircuitBreakerError):
        cb.call(ok)


def test_success_threshold(clock: ManualClock):
    cb = CircuitBreaker(fail_max=1, reset_timeout=1, success_threshold=3, clock=clock)
    trip(cb)
    clock.advance(1)
    for n in (1, 2):
        cb.call(ok)
        assert cb.current_state == "half-open" and cb.success_counter == n
    cb.call(ok)
    assert cb.current_state == "closed"


def test_exclude_types_predicates_and_abcs():
    class Meta(Exception, metaclass=abc.ABCMeta):
        pass

    class Virtual(Exception):
        pass

    Meta.register(Virtual)

    class NotFound(Exception):
        pass

    cb = CircuitBreaker(fail_max=1, exclude=[NotFound, lambda e: "benign" in str(e), Meta])
    for exc in (NotFound(), Boom("benign"), Virtual()):
        def raise_it(exc=exc):
            raise exc
        with pytest.raises(type(exc)):
            cb.call(raise_it)
        assert cb.current_state == "closed"
    assert not cb.is_system_error(Virtual()) and cb.is_system_error(Boom("x"))
    # pybreaker tests `type(exclusion) is type`: an ABC then excludes everything. Here it does not.
    with pytest.raises(CircuitBreakerError):
        cb.call(fail)


def test_add_and_remove_excluded_exceptions():
    cb = CircuitBreaker(fail_max=1)
    cb.add_excluded_exception(Boom)
    cb.add_excluded_exceptions(KeyError, ValueError)
    assert cb.excluded_exceptions == (Boom, KeyError, ValueError)
    with pytest.raises(Boom):
        cb.call(fail)
    assert cb.current_state == "closed"
    cb.remove_excluded_exception(Boom)
    with pytest.raises(CircuitBreakerError):
        cb.call(fail)
    with pytest.raises(ValueError):
        cb.remove_excluded_exception(Boom)


def test_ignore_counts_neither(clock: ManualClock):
    rec = Recorder()
    cb = CircuitBreaker(fail_max=1, reset_timeout=1, ignore=[KeyError], listeners=[rec], clock=clock)
    with pytest.raises(KeyError):
        cb.call(lambda: {}["x"])
    assert cb.current_state == "closed" and cb.fail_counter == 0
    assert ("ignored", "KeyError") in rec.events
    trip(cb)
    clock.advance(1)
    with pytest.raises(KeyError):
        cb.call(lambda: {}["x"])
    # The ignored probe freed its slot: the next probe runs at once.
    assert cb.current_state == "half-open" and cb.probes_in_flight == 0
    cb.call(ok)
    assert cb.current_state == "closed"


def test_base_exceptions_that_are_not_errors_count_as_neither():
    cb = CircuitBreaker(fail_max=1)

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cb.call(interrupted)
    assert cb.current_state == "closed" and cb.fail_counter == 0


def test_listener_order_matches_pybreaker(clock: ManualClock):
    rec = Recorder()
    cb = CircuitBreaker(fail_max=2, reset_timeout=5, listeners=[rec], clock=clock)
    cb.call(ok)
    with pytest.raises(Boom):
        cb.call(fail)
    with pytest.raises(CircuitBreakerError):
        cb.call(fail)
    with pytest.raises(CircuitBreakerError):
        cb.call(ok)
    clock.advance(5)
    cb.call(ok)
    assert rec.events == [
        ("before_call", "ok", (), {}),
        ("success",),
        ("before_call", "fail", (), {}),
        ("failure", "Boom"),
        ("before_call", "fail", (), {}),
        ("failure", "Boom"),
        ("state_change", "closed", "open"),
        ("rejected",),
        ("state_change", "open", "half-open"),
        ("before_call", "ok", (), {}),
        ("state_change", "half-open", "closed"),
        ("success",),
    ]


def test_before_call_gets_the_arguments():
    rec = Recorder()
    cb = CircuitBreaker(listeners=[rec])
    cb.call(lambda a, b=0: a + b, 1, b=2)
    assert rec.events[0] == ("before_call", "<lambda>", (1,), {"b": 2})


def test_a_raising_listener_propagates_but_corrupts_nothing():
    class Raising(pybreaker.CircuitBreakerListener):
        def state_change(self, cb, old_state, new_state):
            raise RuntimeError("listener broke")

    rec = Recorder()
    cb = CircuitBreaker(fail_max=1, listeners=[Raising(), rec])
    with pytest.raises(RuntimeError, match="listener broke") as info:
        cb.call(fail)
    assert isinstance(info.value.__context__, Boom)
    # The transition happened and the other listener saw it.
    assert cb.current_state == "open"
    assert ("state_change", "closed", "open") in rec.events
    cb.remove_listener(cb.listeners[0])
    with pytest.raises(CircuitBreakerError):
        cb.call(ok)


def test_a_raising_before_call_frees_the_probe(clock: ManualClock):
    class Raising(pybreaker.CircuitBreakerListener):
        armed = True

        def before_call(self, cb, func, *args, **kwargs):
            if self.armed:
                raise RuntimeError("no")

    listener = Raising()
    cb = CircuitBreaker(fail_max=1, reset_timeout=1, clock=clock)
    trip(cb)
    clock.advance(1)
    cb.add_listener(listener)
    with pytest.raises(RuntimeError):
        cb.call(ok)
    assert cb.current_state == "half-open" and cb.probes_in_flight == 0
    listener.armed = False
    cb.call(ok)
    assert cb.current_state == "closed"


def test_add_and_remove_listeners():
    a, b = Recorder(), Recorder()
    cb = CircuitBreaker()
    cb.add_listener(a)
    cb.add_listeners(b)
    assert cb.listeners == (a, b)
    cb.remove_listener(a)
    assert cb.listeners == (b,)
    cb.call(ok)
    assert a.events == [] and b.events[-1] == ("success",)
    with pytest.raises(ValueError):
        cb.remove_listener(a)


def test_decorator_in_every_form():
    cb = CircuitBreaker(fail_max=1)

    @cb
    def plain(x: int, y: int = 1) -> int:
        """Adds."""
        return x + y

    @cb()
    def called(x: int) -> int:
        return x

    def later(x: int) -> int:
        return -x

    wrapped = cb(later)
    assert plain(1, y=2) == 3 and called(4) == 4 and wrapped(5) == -5
    assert plain.__name__ == "plain" and plain.__doc__ == "Adds." and plain.__wrapped__ is not None
    assert str(inspect.signature(plain)) == "(x: int, y: int = 1) -> int"

    class Service:
        @cb
        def method(self, x):
            return (self, x)

    s = Service()
    assert s.method(1) == (s, 1)
    assert Service.method(s, 2) == (s, 2)


@pybreaker.CircuitBreaker()
def module_level(x):
    return x + 1


def test_a_decorated_function_pickles_by_name():
    import pickle

    assert pickle.loads(pickle.dumps(module_level)) is module_level


def test_decorated_failures_count():
    cb = CircuitBreaker(fail_max=2)

    @cb
    def broken():
        raise Boom

    with pytest.raises(Boom):
        broken()
    with pytest.raises(CircuitBreakerError):
        broken()
    assert cb.current_state == "open"


def test_generator_outcome_is_recorded_when_it_ends():
    rec = Recorder()
    cb = CircuitBreaker(fail_max=1, listeners=[rec])

    @cb
    def numbers(n):
        yield from range(n)

    gen = numbers(3)
    assert [e[0] for e in rec.events] == ["before_call"]
    assert list(gen) == [0, 1, 2]
    assert rec.events[-1] == ("success",)

    @cb
    def broken():
        yield 1
        raise Boom

    gen = broken()
    assert next(gen) == 1
    with pytest.raises(CircuitBreakerError):
        next(gen)
    assert cb.current_state == "open"


def test_generator_send_and_throw_are_forwarded():
    cb = CircuitBreaker()

    @cb
    def echo():
        got = yield "ready"
        try:
            yield got
        except KeyError:
            yield "caught"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("hi") == "hi"
    assert gen.throw(KeyError) == "caught"


def test_calling_context_manager(clock: ManualClock):
    cb = CircuitBreaker(fail_max=2, clock=clock)
    with cb.calling():
        pass
    with pytest.raises(Boom):
        with cb.calling():
            raise Boom
    assert cb.fail_counter == 1
    with pytest.raises(CircuitBreakerError, match="Failures threshold reached"):
        with cb.calling():
            raise Boom
    ran = []
    with pytest.raises(CircuitBreakerError, match="still open"):
        with cb.calling():
            ran.append(1)
    assert ran == []


def test_forced_states_and_the_state_setter():
    rec = Recorder()
    cb = CircuitBreaker(listeners=[rec])
    assert cb.open() is True
    assert cb.current_state == "open"
    cb.half_open()
    assert cb.current_state == "half-open"
    cb.close()
    assert cb.current_state == "closed"
    cb.state = "open"
    assert cb.state.name == "open"
    with pytest.raises(ValueError, match="Unknown state 'ajar'"):
        cb.state = "ajar"
    assert [e for e in rec.events if e[0] == "state_change"] == [
        ("state_change", "closed", "open"),
        ("state_change", "open", "half-open"),
        ("state_change", "half-open", "closed"),
        ("state_change", "closed", "open"),
    ]
    assert CircuitBreaker(throw_new_error_on_trip=False).open() is False


def test_settable_properties():
    cb = CircuitBreaker(fail_max=5)
    cb.fail_max = 2
    cb.reset_timeout = 1.5
    cb.success_threshold = 3
    cb.name = "db"
    cb.half_open_max_calls = 4
    cb.probe_lease = 2
    assert (cb.fail_max, cb.reset_timeout, cb.success_threshold, cb.name) == (2, 1.5, 3, "db")
    assert (cb.half_open_max_calls, cb.probe_lease) == (4, 2.0)
    with pytest.raises(Boom):
        cb.call(fail)
    with pytest.raises(CircuitBreakerError):
        cb.call(fail)


def test_lowering_fail_max_trips_a_breaker_already_there():
    rec = Recorder()
    cb = CircuitBreaker(fail_max=5, listeners=[rec])
    for _ in range(2):
        with pytest.raises(Boom):
            cb.call(fail)
    cb.fail_max = 2
    assert cb.current_state == "open"
    assert rec.events[-1] == ("state_change", "closed", "open")


def test_storages():
    assert CircuitBreaker(state_storage=pybreaker.CircuitMemoryStorage("open")).current_state == "open"
    assert CircuitBreaker(state_storage=pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)).current_state == "closed"
    assert issubclass(pybreaker.CircuitMemoryStorage, pybreaker.CircuitBreakerStorage)
    assert issubclass(pybreaker.CircuitRedisStorage, pybreaker.CircuitBreakerStorage)

    class Custom(pybreaker.CircuitBreakerStorage):
        pass

    with pytest.raises(TypeError, match="state_storage"):
        CircuitBreaker(state_storage=Custom("custom"))


def test_half_open_max_calls_and_the_probe_lease(clock: ManualClock):
    cb = CircuitBreaker(fail_max=1, reset_timeout=1, half_open_max_calls=2, probe_lease=5, clock=clock)
    trip(cb)
    clock.advance(1)
    first, second = cb._acquire(), cb._acquire()
    assert first.is_probe and second.is_probe
    with pytest.raises(CircuitBreakerError, match="half-open"):
        cb.call(ok)
    second.success()
    assert cb.current_state == "closed"
    trip(cb)
    clock.advance(1)
    lost = cb._acquire()
    other = cb._acquire()
    other.ignore()
    assert cb.probes_in_flight == 1
    clock.advance(5)
    # The lost probe's lease ran out: its slot is reclaimed, its late record is stale.
    cb.call(ok)
    assert cb.current_state == "closed"
    lost.failure()
    assert cb.current_state == "closed"


def test_a_permit_is_recorded_once():
    cb = CircuitBreaker(fail_max=1)
    permit = cb._acquire()
    permit.success()
    assert permit.recorded
    permit.failure()
    assert cb.current_state == "closed"


def test_a_forgotten_permit_counts_as_neither(clock: ManualClock):
    cb = CircuitBreaker(fail_max=1, reset_timeout=1, clock=clock)
    trip(cb)
    clock.advance(1)
    permit = cb._acquire()
    assert cb.probes_in_flight == 1
    del permit
    assert cb.probes_in_flight == 0 and cb.current_state == "half-open"
