"""A program written for pybreaker 1.4.1, unchanged but for its import."""

import logging
import time

import pybreaker

log = logging.getLogger("orders")


class LogListener(pybreaker.CircuitBreakerListener):
    def __init__(self):
        self.lines = []

    def before_call(self, cb, func, *args, **kwargs):
        self.lines.append(f"calling {func.__name__}")

    def state_change(self, cb, old_state, new_state):
        self.lines.append(f"{cb.name}: {old_state.name if old_state else None} -> {new_state.name}")

    def failure(self, cb, exc):
        self.lines.append(f"failure {exc}")

    def success(self, cb):
        self.lines.append("success")


class NotFound(Exception):
    pass


listener = LogListener()
db_breaker = pybreaker.CircuitBreaker(
    fail_max=2,
    reset_timeout=0.05,
    exclude=[NotFound],
    listeners=[listener],
    name="orders-db",
)

healthy = {"up": False}


@db_breaker
def query(order_id):
    if order_id == 0:
        raise NotFound("no such order")
    if not healthy["up"]:
        raise ConnectionError("db down")
    return {"id": order_id}


def fetch(order_id):
    try:
        return query(order_id)
    except pybreaker.CircuitBreakerError:
        return "fallback"
    except NotFound:
        return None
    except ConnectionError:
        return "error"


results = [fetch(0), fetch(1), fetch(2), fetch(3)]
assert results == [None, "error", "fallback", "fallback"], results
assert db_breaker.current_state == pybreaker.STATE_OPEN
assert db_breaker.fail_counter >= 0
time.sleep(0.06)
healthy["up"] = True
assert fetch(4) == {"id": 4}
assert db_breaker.current_state == pybreaker.STATE_CLOSED

with db_breaker.calling():
    pass

db_breaker.add_excluded_exception(KeyError)
assert KeyError in db_breaker.excluded_exceptions
db_breaker.fail_max = 3
db_breaker.reset_timeout = 30
db_breaker.name = "orders"
db_breaker.open()
assert db_breaker.state.name == "open"
db_breaker.close()
assert "orders-db: closed -> open" in listener.lines
assert "orders-db: open -> half-open" in listener.lines
assert "orders-db: half-open -> closed" in listener.lines
assert "calling query" in listener.lines
storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
other = pybreaker.CircuitBreaker(state_storage=storage, throw_new_error_on_trip=False, fail_max=1)
try:
    other.call(lambda: 1 / 0)
except ZeroDivisionError:
    pass
assert other.current_state == "open"
print("pybreaker program: ok")
