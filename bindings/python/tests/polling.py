"""Waiting for a condition the fleet brings about, bounded: no test sleeps
for a fixed time to let something happen."""

from __future__ import annotations

import time
from typing import Callable


def within(check: Callable[[], object], bound: float) -> bool:
    """Whether `check()` held within `bound` seconds (polled every 5 ms)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > bound:
            return False
        time.sleep(0.005)
    return True
