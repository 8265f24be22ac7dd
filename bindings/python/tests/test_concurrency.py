"""Threads: no lock across the call, exactly half_open_max_calls probes."""

import threading
import time

import pytest
from breakerbox import CircuitBreaker, CircuitBreakerError, ManualClock


def test_threads_race_for_the_half_open_probe():
    for probes in (1, 3):
        clock = ManualClock()
        cb = CircuitBreaker(fail_max=1, reset_timeout=1, half_open_max_calls=probes, clock=clock)
        for _ in range(20):
            cb.open()
            clock.advance(1)
            threads = 8
            start = threading.Barrier(threads)
            release = threading.Event()
            admitted = []
            rejected = []

            def probe():
                admitted.append(1)
                release.wait(5)

            def racer():
                start.wait()
                try:
                    cb.call(probe)
                except CircuitBreakerError:
                    rejected.append(1)

            workers = [threading.Thread(target=racer) for _ in range(threads)]
            for w in workers:
                w.start()
            # Every rejection decided, every admitted probe running:
            while len(admitted) + len(rejected) < threads and len(rejected) < threads - probes:
                time.sleep(0.001)
            release.set()
            for w in workers:
                w.join()
            assert len(admitted) == probes, f"{len(admitted)} probes admitted, want {probes}"
            assert len(rejected) == threads - probes
            assert cb.current_state == "closed"


def test_calls_through_one_breaker_overlap():
    cb = CircuitBreaker()
    lock = threading.Lock()
    running = 0
    peak = 0

    def slow():
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1

    start = threading.Barrier(8)

    def worker():
        start.wait()
        for _ in range(5):
            cb.call(slow)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # pybreaker holds its lock across the call, so its peak is 1.
    assert peak >= 2


def test_listeners_may_use_the_breaker_without_deadlock():
    seen = []

    class Reentrant:
        def before_call(self, cb, func, *args, **kwargs):
            seen.append(cb.current_state)

        def success(self, cb):
            seen.append(cb.fail_counter)

        def failure(self, cb, exc):
            pass

        def state_change(self, cb, old, new):
            pass

    cb = CircuitBreaker(listeners=[Reentrant()])
    cb.call(lambda: None)
    assert seen == ["closed", 0]
