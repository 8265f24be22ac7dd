"""breakerbox against pybreaker 1.4.1 and nodus-circuit-breaker 0.1.0, in one
process and one run. Prints a Markdown table: nanoseconds per call (the best
of several repeats), each ratio to the peer, and the project's bars.

Not a test: timings on a shared machine vary; compare the ratios of one run.
"""

import asyncio
import logging
import platform
import sys
import threading
import time
import timeit

import breakerbox
import breakerbox.nodus
import nodus_circuit_breaker
import pybreaker

# Many short repeats, ours and the peer's interleaved, the best of each kept:
# a burst of load from elsewhere on the machine then hits both sides alike.
REPEATS = 25
NUMBER = 20_000


def f():
    return 1


def best_ns(stmt, number=NUMBER, **names):
    """A measurement: call it to time one repeat, in ns per call."""
    timer = timeit.Timer(stmt, globals=names)
    return lambda: timer.timeit(number) / number * 1e9


def pair(ours, peer, repeats=REPEATS):
    """The best of interleaved repeats of two measurements."""
    a, b = [], []
    for _ in range(repeats):
        a.append(ours())
        b.append(peer())
    return min(a), min(b)


def rejection(cb, error):
    def stmt():
        try:
            cb.call(f)
        except error:
            pass

    return best_ns("step()", step=stmt)


def calling(cb):
    def stmt():
        with cb.calling():
            pass

    return best_ns("step()", step=stmt)


def await_ns(call, number=NUMBER // 2):
    async def g():
        return 1

    async def loop():
        start = time.perf_counter_ns()
        for _ in range(number):
            await call(g)
        return (time.perf_counter_ns() - start) / number

    return lambda: asyncio.run(loop())


def threads_wall(cb, threads, calls=10):
    def slow():
        time.sleep(0.01)

    def worker():
        for _ in range(calls):
            cb.call(slow)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - start


class Listener(pybreaker.CircuitBreakerListener):
    pass


class BoxListener(breakerbox.CircuitBreakerListener):
    pass


def main():
    logging.disable(logging.WARNING)  # nodus logs every transition
    bb = breakerbox.CircuitBreaker()
    pb = pybreaker.CircuitBreaker()
    nb = nodus_circuit_breaker.CircuitBreaker("bench")
    bn = breakerbox.nodus.CircuitBreaker("bench")
    bb_dec, pb_dec = bb(f), pb(f)
    bb_open = breakerbox.CircuitBreaker()
    bb_open.open()
    pb_open = pybreaker.CircuitBreaker()
    pb_open.open()
    nb_open = nodus_circuit_breaker.CircuitBreaker("open", failure_threshold=1)
    try:
        nb_open.call(lambda: 1 / 0)
    except ZeroDivisionError:
        pass
    bb_l = breakerbox.CircuitBreaker(listeners=[BoxListener()])
    pb_l = pybreaker.CircuitBreaker(listeners=[Listener()])

    rows = []

    def row(case, ours, peer, peer_name, bar, limit):
        ours, peer = pair(ours, peer)
        ratio = ours / peer
        met = "met" if limit is None or ratio <= limit else "missed"
        rows.append((case, ours, peer, peer_name, ratio, bar, met if limit is not None else ""))

    row("`breaker.call(f)`", best_ns("cb.call(f)", cb=bb, f=f), best_ns("cb.call(f)", cb=pb, f=f),
        "pybreaker", "≤ 1/8", 1 / 8)
    row("decorated call", best_ns("g()", g=bb_dec), best_ns("g()", g=pb_dec), "pybreaker", "≤ 1/8", 1 / 8)
    row("`with calling():`", calling(bb), calling(pb), "pybreaker", "", None)
    row("open rejection, raised and caught", rejection(bb_open, breakerbox.CircuitBreakerError),
        rejection(pb_open, pybreaker.CircuitBreakerError), "pybreaker", "≤ 1/4", 1 / 4)
    row("call with one listener", best_ns("cb.call(f)", cb=bb_l, f=f), best_ns("cb.call(f)", cb=pb_l, f=f),
        "pybreaker", "", None)
    row("nodus `call(f)`", best_ns("cb.call(f)", cb=bn, f=f), best_ns("cb.call(f)", cb=nb, f=f),
        "nodus", "", None)
    row("nodus open rejection", rejection(bn_open := _open_nodus(), breakerbox.nodus.CircuitOpenError),
        rejection(nb_open, nodus_circuit_breaker.CircuitOpenError), "nodus", "", None)
    row("`await call_async(g)`", await_ns(bb.call_async), await_ns(nb.async_call), "nodus `async_call`",
        "≤ 1/3", 1 / 3)
    row("`await async_call(g)` (breakerbox.nodus)", await_ns(bn.async_call), await_ns(nb.async_call),
        "nodus `async_call`", "", None)
    plain = min(best_ns("f()", f=f)() for _ in range(REPEATS))

    one_bb, eight_bb = pair(lambda: threads_wall(bb, 1), lambda: threads_wall(bb, 8), repeats=5)
    one_pb, eight_pb = pair(lambda: threads_wall(pb, 1), lambda: threads_wall(pb, 8), repeats=3)
    del bn_open

    print(f"Python {platform.python_version()} on {platform.machine()}, {sys.platform}; "
          f"best of {REPEATS} repeats; a bare `f()` costs {plain:.0f} ns\n")
    print("| case | breakerbox (ns) | peer (ns) | peer | ratio | bar | |")
    print("|---|---|---|---|---|---|---|")
    for case, ours, peer, name, ratio, bar, met in rows:
        print(f"| {case} | {ours:.0f} | {peer:.0f} | {name} | {ratio:.3f} | {bar} | {met} |")
    ratio_bb, ratio_pb = eight_bb / one_bb, eight_pb / one_pb
    print(f"| 8 threads × 10 calls of a 10 ms function, wall time / one thread's | "
          f"{eight_bb * 1000:.0f} ms / {one_bb * 1000:.0f} ms | {eight_pb * 1000:.0f} ms / {one_pb * 1000:.0f} ms | "
          f"pybreaker | {ratio_bb:.2f} (pybreaker {ratio_pb:.2f}) | ≤ 1.5 | {'met' if ratio_bb <= 1.5 else 'missed'} |")


def _open_nodus():
    cb = breakerbox.nodus.CircuitBreaker("open", failure_threshold=1)
    try:
        cb.call(lambda: 1 / 0)
    except ZeroDivisionError:
        pass
    return cb


if __name__ == "__main__":
    main()
