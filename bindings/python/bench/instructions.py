"""Instructions per call of the installed breakerbox package, counted by
valgrind's callgrind: independent of the machine's load, so two builds
compare exactly where wall-clock timings on a shared machine do not.

    python bindings/python/bench/instructions.py        # needs valgrind

Each case runs N calls in a fresh interpreter and again with none, with
address randomisation off; the difference over N (the median of three) is
one call's cost, the loop's own bytecode included. Under valgrind the
system clock is a system call, whose instructions are not counted.
Not a test: it prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys

N = 20_000

SETUP = """
import asyncio, breakerbox
def f(): return 1
async def g(): return 1
async def awaits(cb, n):
    for _ in range(n): await cb.call_async(g)
"""

PLAIN = "plain = breakerbox.CircuitBreaker()\n"
OPENED = "opened = breakerbox.CircuitBreaker(reset_timeout=1000); opened.open()\n"
WINDOWED = "windowed = breakerbox.CircuitBreaker(count_window=100)\n"
TIMED = "timed = breakerbox.CircuitBreaker(count_window=100, slow_call_duration=1)\n"

# name: (setup, the loop of n calls)
CASES = {
    "`breaker.call(f)`": (PLAIN, "for _ in range(n): plain.call(f)"),
    "decorated call": (PLAIN + "decorated = plain(f)\n", "for _ in range(n): decorated()"),
    "`with calling():`": (PLAIN, "for _ in range(n):\n    with plain.calling(): pass"),
    "open rejection, raised and caught": (
        OPENED, "for _ in range(n):\n    try: opened.call(f)\n    except breakerbox.CircuitBreakerError: pass"
    ),
    "`await call_async(g)`": (PLAIN, "asyncio.run(awaits(plain, n))"),
    "`call(f)`, `count_window=100`": (WINDOWED, "for _ in range(n): windowed.call(f)"),
    "`call(f)`, `count_window=100, slow_call_duration=1` (timed)": (TIMED, "for _ in range(n): timed.call(f)"),
    "`await call_async(g)`, timed": (TIMED, "asyncio.run(awaits(timed, n))"),
}


def instructions(setup: str, body: str, n: int) -> int | None:
    """Instructions of the whole program; None where this build lacks the case."""
    program = SETUP + setup + f"n = {n}\n" + body + "\n"
    run = subprocess.run(
        ["setarch", platform.machine(), "-R", "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", program],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = re.search(r"Collected : (\d+)", run.stderr)
    return int(found.group(1)) if run.returncode == 0 and found else None


def per_call(setup: str, body: str) -> float | None:
    """The median over three runs of (N calls less none) / N: without address
    randomisation, a few dozen instructions per call still vary by run."""
    diffs = []
    for _ in range(3):
        full, empty = instructions(setup, body, N), instructions(setup, body, 0)
        if full is None or empty is None:
            return None
        diffs.append((full - empty) / N)
    return sorted(diffs)[1]


def main() -> None:
    print("| case | instructions per call |")
    print("|---|---|")
    for name, (setup, body) in CASES.items():
        cost = per_call(setup, body)
        cell = "n/a" if cost is None else f"{cost:.0f}"
        print(f"| {name} | {cell} |", flush=True)


if __name__ == "__main__":
    main()
