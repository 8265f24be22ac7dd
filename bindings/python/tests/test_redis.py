"""A breaker shared through Redis, across processes and languages.

Needs a redis-server (BREAKERBOX_REDIS_URL) and the Rust peer
(BREAKERBOX_FLEET_PEER); scripts/test-python.sh provides both.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
import redis

import breakerbox
from breakerbox import CircuitBreaker, CircuitBreakerError, CircuitRedisStorage

REFRESH = 0.2
# Above the default 0.1 s, so that a loaded test machine's latency is not
# taken for a Redis fault (which would switch a member to its local policy).
COMMAND_TIMEOUT = 0.5
# The documented staleness bound: refresh_interval + command_timeout.
STALENESS = REFRESH + COMMAND_TIMEOUT
HERE = os.path.dirname(os.path.abspath(__file__))


def namespace() -> str:
    return f"py-{uuid.uuid4().hex[:12]}"


def shared(url: str, ns: str, **kwargs) -> CircuitBreaker:
    storage = CircuitRedisStorage("closed", redis.Redis.from_url(url), namespace=ns,
                                  refresh_interval=REFRESH, command_timeout=COMMAND_TIMEOUT)
    return CircuitBreaker(state_storage=storage, **kwargs)


def seen_within(check, bound: float) -> float | None:
    """Seconds until `check()` held, or None if not within `bound` (+ one poll)."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > bound:
            return None
        time.sleep(0.005)


def fail():
    raise ConnectionError("down")


def test_the_client_settings_become_the_cores_connection():
    url = breakerbox._redis_url(redis.Redis(host="10.1.2.3", port=6380, db=2, username="app", password="p@ss:w/rd"))
    assert url == "redis://app:p%40ss%3Aw%2Frd@10.1.2.3:6380/2"
    assert breakerbox._redis_url(redis.Redis(unix_socket_path="/run/redis.sock", db=1)) == "unix:///run/redis.sock?db=1"
    storage = CircuitRedisStorage("closed", redis.Redis(password="secret"))
    assert "secret" not in storage.url


def test_two_breakers_of_one_namespace_are_one_breaker(redis_url):
    ns = namespace()
    a, b = shared(redis_url, ns, fail_max=3), shared(redis_url, ns, fail_max=3)
    assert a.is_shared and b.is_shared
    with pytest.raises(ConnectionError):
        a.call(fail)
    with pytest.raises(ConnectionError):
        b.call(fail)
    with pytest.raises(CircuitBreakerError, match="Failures threshold reached"):
        a.call(fail)
    assert seen_within(lambda: b.current_state == "open", STALENESS) is not None
    with pytest.raises(CircuitBreakerError):
        b.call(lambda: 1)
    # The keys are the Rust fleet's.
    client = redis.Redis.from_url(redis_url)
    assert client.hget(f"breakerbox:{{{ns}}}:state", "s") is not None


def test_listeners_see_fleet_transitions_made_elsewhere(redis_url):
    ns = namespace()
    changes = []

    class Listener(breakerbox.CircuitBreakerListener):
        def state_change(self, cb, old, new):
            changes.append((old.name, new.name))

    watcher = shared(redis_url, ns, listeners=[Listener()])
    other = shared(redis_url, ns)
    other.open()
    assert seen_within(lambda: watcher.current_state == "open", STALENESS) is not None
    # Getters only look; the next call applies the fleet's news and reports it.
    assert changes == []
    with pytest.raises(CircuitBreakerError):
        watcher.call(lambda: 1)
    assert changes == [("closed", "open")]


def test_a_fault_met_while_the_breaker_is_built_reaches_its_listeners():
    class Faults(breakerbox.CircuitBreakerListener):
        def __init__(self) -> None:
            self.messages: list[str] = []

        def storage_error(self, cb, message):
            self.messages.append(message)

    # Nothing listens on port 1: the first sync, made while building, fails.
    faults = Faults()
    storage = CircuitRedisStorage("closed", redis.Redis(host="127.0.0.1", port=1), namespace=namespace())
    cb = CircuitBreaker(state_storage=storage, listeners=[faults])
    assert len(faults.messages) == 1, faults.messages
    assert "127.0.0.1:1" in faults.messages[0] or "refused" in faults.messages[0].lower(), faults.messages
    assert cb.current_state == "closed"


def test_a_failing_redis_still_trips():
    # Nothing listens on this port: every call meets the fault, and the local
    # fault policy counts and trips in this process.
    storage = CircuitRedisStorage("closed", redis.Redis(host="127.0.0.1", port=1), namespace=namespace())
    cb = CircuitBreaker(fail_max=2, state_storage=storage)
    with pytest.raises(ConnectionError):
        cb.call(fail)
    with pytest.raises(CircuitBreakerError):
        cb.call(fail)
    assert cb.current_state == "open"


class Peer:
    """A fleet member in another process, Python or Rust."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(self, command: str) -> str:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"peer exited ({self.proc.poll()})"
        return line.strip()

    def close(self):
        try:
            self.ask("quit")
        except Exception:
            pass
        self.proc.wait(10)


def peers(url: str, ns: str, fail_max: int, reset_ms: int, probes: int):
    rust = os.environ.get("BREAKERBOX_FLEET_PEER")
    if not rust:
        pytest.fail("BREAKERBOX_FLEET_PEER is not set: run scripts/test-python.sh")
    args = [url, ns, str(fail_max), str(reset_ms), str(probes), str(int(REFRESH * 1000)),
            str(int(COMMAND_TIMEOUT * 1000))]
    python = [Peer([sys.executable, os.path.join(HERE, "fleet_peer.py"), *args]) for _ in range(3)]
    return python, Peer([rust, *args])


@pytest.mark.parametrize("probes", [1, 2])
def test_cross_language_fleet_admits_exactly_half_open_max_calls(redis_url, probes):
    ns = namespace()
    reset_ms = 60
    python, rust = peers(redis_url, ns, 3, reset_ms, probes)
    members = [*python, rust]
    coordinator = shared(redis_url, ns, fail_max=3, reset_timeout=reset_ms / 1000, half_open_max_calls=probes)
    try:
        for member in members:
            assert member.ask("state") == "closed"
        for round_ in range(100):
            coordinator.open()
            # A trip made in Python, seen by every member within the bound.
            for m in members:
                assert seen_within(lambda: m.ask("state") == "open", STALENESS) is not None, f"round {round_}"
            # Past the reset timeout on the server's clock.
            time.sleep(reset_ms / 1000 + 0.01)
            answers = [m.ask("acquire") for m in members]
            assert answers.count("probe") == probes, f"round {round_}: {answers}"
            assert answers.count("closed") == 0, f"round {round_}: {answers}"
            for m in members:
                m.ask("release")
            assert seen_within(lambda: coordinator.current_state == "closed", STALENESS) is not None
    finally:
        for m in members:
            m.close()


def test_a_trip_in_one_language_is_seen_by_the_other(redis_url):
    ns = namespace()
    python, rust = peers(redis_url, ns, 2, 60_000, 1)
    py = python[0]
    try:
        assert rust.ask("trip") == "open"
        assert seen_within(lambda: py.ask("state") == "open", STALENESS) is not None
        local = shared(redis_url, ns, fail_max=2, reset_timeout=60)
        local.close()
        assert seen_within(lambda: rust.ask("state") == "closed", STALENESS) is not None
        # Python's mirror must see the close too: while it still shows the
        # trip, its calls are rejected locally and trip nothing.
        assert seen_within(lambda: py.ask("state") == "closed", STALENESS) is not None
        assert py.ask("trip") == "open"
        assert seen_within(lambda: rust.ask("state") == "open", STALENESS) is not None
    finally:
        for m in [*python, rust]:
            m.close()


def test_a_shared_breaker_made_before_fork_works_in_the_child(redis_url):
    ns = namespace()
    cb = shared(redis_url, ns, fail_max=2, reset_timeout=60)
    cb.call(lambda: 1)
    read, write = os.pipe()
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        status = 1
        try:
            os.close(read)
            os.close(go_write)
            assert cb.call(lambda: 2) == 2
            os.write(write, b"ready\n")
            os.read(go_read, 1)  # the parent opened the fleet
            # Only a watcher of the child's own brings the news here.
            if seen_within(lambda: cb.current_state == "open", STALENESS) is not None:
                cb.close()
                status = 0
        finally:
            os.write(write, b"done %d\n" % status)
            os._exit(status)
    os.close(write)
    os.close(go_read)
    with os.fdopen(read) as from_child:
        assert from_child.readline().strip() == "ready"
        cb.open()
        os.write(go_write, b"x")
        assert from_child.readline().strip() == "done 0"
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The child closed the fleet through its own connection; the parent's still work.
    assert seen_within(lambda: cb.current_state == "closed", STALENESS) is not None
    with pytest.raises(ConnectionError):
        cb.call(fail)
    assert cb.fail_counter == 1


def test_the_gil_is_released_during_a_round_trip(redis_url):
    import threading

    cb = shared(redis_url, namespace(), fail_max=5)
    ticks = 0
    done = threading.Event()

    def count():
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    counter = threading.Thread(target=count)
    counter.start()
    time.sleep(0.01)
    # The counter's pace while this thread waits with the GIL released.
    before = ticks
    time.sleep(0.1)
    per_second = (ticks - before) / 0.1
    redis.Redis.from_url(redis_url).execute_command("CLIENT", "PAUSE", 300, "ALL")
    before, start = ticks, time.monotonic()
    with pytest.raises(ConnectionError):
        cb.call(fail)  # its record waits for the paused server
    blocked, counted = time.monotonic() - start, ticks - before
    done.set()
    counter.join()
    assert blocked >= 0.2, f"the round trip did not wait ({blocked:.3f} s)"
    # Python ran on the other thread for most of the wait; with the GIL held
    # it could have run for one switch interval (5 ms) at most.
    assert counted > per_second * 0.05, (counted, per_second)


def test_the_fleet_decides_half_open_by_the_probes_failure_rate(redis_url):
    ns = namespace()
    a = shared(redis_url, ns, half_open_rule="failure_rate", half_open_max_calls=2, reset_timeout=600)
    a.half_open()
    # Built after: its first sync shows the fleet half-open.
    b = shared(redis_url, ns, half_open_rule="failure_rate", half_open_max_calls=2, reset_timeout=600)
    assert b.current_state == "half-open"
    assert a.call(lambda: 1) == 1
    # One success of two permitted probes decides nothing (the successes
    # rule would have closed): the other process's probe is the last.
    assert a.current_state == "half-open"
    assert b.call(lambda: 2) == 2
    assert b.current_state == "closed"
    assert seen_within(lambda: a.current_state == "closed", STALENESS) is not None
