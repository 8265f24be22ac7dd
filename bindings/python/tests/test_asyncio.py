"""asyncio: admission before the first await, exact probes, cancellation."""

import asyncio
import inspect

import pytest
from breakerbox import CircuitBreaker, CircuitBreakerError, ManualClock


class Boom(Exception):
    pass


def run(coro):
    return asyncio.run(coro)


def test_call_async_returns_the_result_and_counts_failures():
    cb = CircuitBreaker(fail_max=2)

    async def answer(x, y=0):
        await asyncio.sleep(0)
        return x + y

    async def broken():
        await asyncio.sleep(0)
        raise Boom

    async def main():
        assert await cb.call_async(answer, 1, y=2) == 3
        with pytest.raises(Boom):
            await cb.call_async(broken)
        with pytest.raises(CircuitBreakerError, match="Failures threshold reached"):
            await cb.call_async(broken)
        with pytest.raises(CircuitBreakerError, match="still open"):
            await cb.call_async(answer, 1)

    run(main())
    assert cb.current_state == "open"


def test_decorator_on_async_def_keeps_it_a_coroutine_function():
    cb = CircuitBreaker(fail_max=1)

    @cb
    async def fetch(x: int) -> int:
        """Fetches."""
        return x * 2

    assert inspect.iscoroutinefunction(fetch)
    assert fetch.__name__ == "fetch" and fetch.__doc__ == "Fetches."
    assert run(fetch(21)) == 42


def test_async_with_calling():
    cb = CircuitBreaker(fail_max=1)

    async def main():
        async with cb.calling():
            await asyncio.sleep(0)
        with pytest.raises(CircuitBreakerError, match="Failures threshold reached"):
            async with cb.calling():
                raise Boom
        with pytest.raises(CircuitBreakerError, match="still open"):
            async with cb.calling():
                pass

    run(main())


def test_admission_happens_before_the_protected_call(clock: ManualClock):
    cb = CircuitBreaker(fail_max=1, reset_timeout=1, clock=clock)
    cb.open()
    clock.advance(1)
    built = []

    async def probe():
        built.append(cb.probes_in_flight)
        await asyncio.sleep(0)
        return 1

    async def main():
        call = cb.call_async(probe)
        # A rejected call never builds the protected coroutine: nothing yet.
        assert built == [] and cb.probes_in_flight == 0
        assert await call == 1
        # Admitted before `probe` was even called.
        assert built == [1]
        with pytest.raises(CircuitBreakerError):
            cb.open()
            await cb.call_async(probe)
        assert built == [1]

    run(main())


def test_tasks_race_for_the_half_open_probe():
    async def main(probes):
        clock = ManualClock()
        cb = CircuitBreaker(fail_max=1, reset_timeout=1, half_open_max_calls=probes, clock=clock)
        for _ in range(20):
            cb.open()
            clock.advance(1)
            release = asyncio.Event()
            admitted = 0

            async def probe():
                nonlocal admitted
                admitted += 1
                await release.wait()

            async def racer():
                try:
                    await cb.call_async(probe)
                    return "ran"
                except CircuitBreakerError:
                    return "rejected"

            tasks = [asyncio.create_task(racer()) for _ in range(10)]
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            release.set()
            results = await asyncio.gather(*tasks)
            assert results.count("ran") == probes == admitted
            assert results.count("rejected") == 10 - probes
            assert cb.current_state == "closed"

    run(main(1))
    run(main(3))


def test_a_cancelled_probe_counts_as_neither_and_frees_its_slot(clock: ManualClock):
    cb = CircuitBreaker(fail_max=1, reset_timeout=1, clock=clock)
    cb.open()
    clock.advance(1)

    async def hang():
        await asyncio.sleep(3600)

    async def quick():
        return "ok"

    async def main():
        task = asyncio.create_task(cb.call_async(hang))
        await asyncio.sleep(0)
        assert cb.probes_in_flight == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Not wedged: half-open still, the slot free, and no failure counted.
        assert cb.current_state == "half-open" and cb.probes_in_flight == 0
        assert await cb.call_async(quick) == "ok"

    run(main())
    assert cb.current_state == "closed"


def test_a_timeout_counts_as_neither():
    cb = CircuitBreaker(fail_max=1)

    async def hang():
        await asyncio.sleep(3600)

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(cb.call_async(hang), 0.01)

    run(main())
    assert cb.current_state == "closed" and cb.fail_counter == 0


def test_a_probe_abandoned_mid_call_frees_its_slot(clock: ManualClock):
    cb = CircuitBreaker(fail_max=1, reset_timeout=1, clock=clock)
    cb.open()
    clock.advance(1)

    class Pending:
        def __await__(self):
            yield

    async def probe():
        await Pending()

    call = cb.call_async(probe)
    call.send(None)  # runs up to the first suspension inside `probe`
    assert cb.probes_in_flight == 1
    call.close()
    assert cb.probes_in_flight == 0 and cb.current_state == "half-open"


def test_awaitables_other_than_coroutines():
    cb = CircuitBreaker()

    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.call_soon(fut.set_result, 7)
        assert await cb.call_async(lambda: fut) == 7
        with pytest.raises(TypeError):
            await cb.call_async(lambda: 3)

    run(main())
    assert cb.probes_in_flight == 0
