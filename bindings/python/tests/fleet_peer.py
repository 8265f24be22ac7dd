"""One Python process of a fleet breaker; the same line protocol as the Rust
peer (`fleet-peer/src/main.rs`): acquire, release, trip, state, quit."""

import sys

import redis

import breakerbox

url, namespace, fail_max, reset_ms, probes, refresh_ms, command_ms = sys.argv[1:8]
storage = breakerbox.CircuitRedisStorage(
    "closed", redis.Redis.from_url(url), namespace=namespace,
    refresh_interval=int(refresh_ms) / 1000, command_timeout=int(command_ms) / 1000,
)
cb = breakerbox.CircuitBreaker(
    fail_max=int(fail_max), reset_timeout=int(reset_ms) / 1000, half_open_max_calls=int(probes),
    state_storage=storage, name="python-peer",
)
held = None


def fail():
    raise ConnectionError("down")


for line in sys.stdin:
    command = line.strip()
    if command == "acquire":
        try:
            held = cb._acquire()
            reply = "probe" if held.is_probe else "closed"
        except breakerbox.CircuitBreakerError:
            reply = "rejected"
    elif command == "release":
        if held is not None:
            held.success()
            held = None
        reply = "ok"
    elif command == "trip":
        for _ in range(cb.fail_max):
            try:
                cb.call(fail)
            except (ConnectionError, breakerbox.CircuitBreakerError):
                pass
        reply = cb.current_state
    elif command == "state":
        reply = cb.current_state
    elif command == "quit":
        break
    else:
        reply = f"unknown command {command!r}"
    print(reply, flush=True)
