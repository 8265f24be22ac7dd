"""half_open_rule="failure_rate": half-open decided by the failure rate over
the permitted probes, on the manual clock."""

import pytest

import breakerbox
from breakerbox import CircuitBreaker, ManualClock


def _half_open(probes: int, **kwargs):
    clock = ManualClock()
    cb = CircuitBreaker(
        fail_max=1,
        reset_timeout=10,
        half_open_max_calls=probes,
        half_open_rule="failure_rate",
        clock=clock,
        **kwargs,
    )
    cb.half_open()
    return cb


def test_the_successes_rule_is_the_default():
    assert CircuitBreaker().half_open_rule == "successes"
    assert _half_open(2).half_open_rule == "failure_rate"


def test_probes_decide_by_their_failure_rate_once_all_are_recorded():
    cb = _half_open(4)
    permits = [cb._acquire() for _ in range(4)]
    assert all(p.is_probe for p in permits)
    with pytest.raises(breakerbox.CircuitBreakerError):
        cb._acquire()
    permits[0].failure()
    assert cb.current_state == "half-open", "a failure does not re-open at once"
    permits[1].success()
    permits[2].success()
    assert cb.success_counter == 2
    permits[3].failure()
    assert cb.current_state == "open", "2 of 4 failed: 50%"

    cb.half_open()
    permits = [cb._acquire() for _ in range(4)]
    permits[0].failure()
    for p in permits[1:]:
        p.success()
    assert cb.current_state == "closed", "1 of 4 failed"


def test_bad_half_open_rule_arguments_name_the_argument():
    with pytest.raises(ValueError, match="half_open_rule must be 'successes' or 'failure_rate'"):
        CircuitBreaker(half_open_rule="rate")
    with pytest.raises(TypeError, match="half_open_rule must be a str"):
        CircuitBreaker(half_open_rule=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="half_open_max_calls"):
        CircuitBreaker(half_open_rule="failure_rate", half_open_max_calls=32)
    with pytest.raises(ValueError, match="success_threshold must be left at 1"):
        CircuitBreaker(half_open_rule="failure_rate", success_threshold=2)
    cb = _half_open(2)
    with pytest.raises(ValueError, match="half_open_max_calls"):
        cb.half_open_max_calls = 32
    assert cb.half_open_max_calls == 2
