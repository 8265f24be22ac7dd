"""The C ABI from Python through ctypes, against the cdylib.

Run: BREAKERBOX_LIB=path/to/libbreakerbox.so python3 test_breakerbox.py
"""

import ctypes
import os
import sys
import threading
import time
import unittest
from ctypes import CFUNCTYPE, POINTER, Structure, byref, c_char_p, c_uint32, c_uint64, c_void_p

HERE = os.path.dirname(os.path.abspath(__file__))
LIB_PATH = os.environ.get("BREAKERBOX_LIB", os.path.join(HERE, "..", "build", "shared", "libbreakerbox.so"))
lib = ctypes.CDLL(LIB_PATH)

CLOSED, OPEN, HALF_OPEN = 0, 1, 2
SUCCESS, FAILURE, IGNORED = 0, 1, 2
OK, REJECTED, STALE_PERMIT, INVALID_ARGUMENT, PANIC, STORAGE_ERROR = 0, 1, 2, 3, 4, 5

STATE_CHANGE = CFUNCTYPE(None, c_void_p, c_void_p, c_uint32, c_uint32)


class Config(Structure):
    _fields_ = [
        ("fail_max", c_uint32),
        ("reset_timeout_ms", c_uint64),
        ("success_threshold", c_uint32),
        ("half_open_max_calls", c_uint32),
        ("name", c_char_p),
        ("on_state_change", STATE_CHANGE),
        ("user_data", c_void_p),
    ]


class Permit(Structure):
    _fields_ = [("bits", c_uint64)]


Handle = c_void_p


def _declare(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


cb_config_default = _declare("cb_config_default", Config)
cb_new = _declare("cb_new", c_uint32, POINTER(Config), POINTER(Handle))
cb_free = _declare("cb_free", None, Handle)
cb_try_acquire = _declare("cb_try_acquire", c_uint32, Handle, POINTER(Permit))
cb_record = _declare("cb_record", c_uint32, Handle, Permit, c_uint32)
cb_current_state = _declare("cb_current_state", c_uint32, Handle)
cb_fail_counter = _declare("cb_fail_counter", c_uint32, Handle)
cb_success_counter = _declare("cb_success_counter", c_uint32, Handle)
cb_probes_in_flight = _declare("cb_probes_in_flight", c_uint32, Handle)
cb_force_open = _declare("cb_force_open", c_uint32, Handle)
cb_force_half_open = _declare("cb_force_half_open", c_uint32, Handle)
cb_force_close = _declare("cb_force_close", c_uint32, Handle)
cb_set_fail_max = _declare("cb_set_fail_max", c_uint32, Handle, c_uint32)
cb_set_reset_timeout_ms = _declare("cb_set_reset_timeout_ms", c_uint32, Handle, c_uint64)
cb_set_success_threshold = _declare("cb_set_success_threshold", c_uint32, Handle, c_uint32)
cb_set_half_open_max_calls = _declare("cb_set_half_open_max_calls", c_uint32, Handle, c_uint32)
cb_set_probe_lease_ms = _declare("cb_set_probe_lease_ms", c_uint32, Handle, c_uint64)
cb_name = _declare("cb_name", c_char_p, Handle)
cb_status_str = _declare("cb_status_str", c_char_p, c_uint32)
cb_version = _declare("cb_version", c_char_p)


def config(fail_max=5, reset_timeout_ms=60000, success_threshold=1, half_open_max_calls=1, name=None):
    c = cb_config_default()
    c.fail_max = fail_max
    c.reset_timeout_ms = reset_timeout_ms
    c.success_threshold = success_threshold
    c.half_open_max_calls = half_open_max_calls
    c.name = name
    return c


class BreakerTest(unittest.TestCase):
    def new(self, cfg):
        handle = Handle()
        self.assertEqual(cb_new(byref(cfg), byref(handle)), OK)
        self.assertTrue(handle.value)
        self.addCleanup(cb_free, handle)
        return handle

    def acquire(self, b):
        p = Permit()
        status = cb_try_acquire(b, byref(p))
        return status, p

    def acquire_within(self, b, seconds):
        """Asks every millisecond until admitted or `seconds` have passed."""
        deadline = time.monotonic() + seconds
        while True:
            status, p = self.acquire(b)
            if status != REJECTED or time.monotonic() > deadline:
                return status, p
            time.sleep(0.001)

    def call(self, b, outcome):
        status, p = self.acquire(b)
        return status if status != OK else cb_record(b, p, outcome)

    def test_layout_defaults_and_version(self):
        self.assertEqual(ctypes.sizeof(Config), 48)
        c = cb_config_default()
        self.assertEqual((c.fail_max, c.reset_timeout_ms, c.success_threshold, c.half_open_max_calls), (5, 60000, 1, 1))
        self.assertIsNone(c.name)
        self.assertIsNone(c.user_data)
        self.assertRegex(cb_version().decode(), r"^\d+\.\d+\.\d+")
        self.assertEqual(cb_status_str(OK), b"ok")
        self.assertEqual(cb_status_str(7), b"unknown status")
        for status in (REJECTED, STALE_PERMIT, INVALID_ARGUMENT, PANIC, STORAGE_ERROR):
            self.assertNotIn(cb_status_str(status), (b"", b"unknown status"))

    def test_trips_at_fail_max_and_rejects(self):
        b = self.new(config(fail_max=3, name=b"search"))
        self.assertEqual(cb_name(b), b"search")
        for _ in range(2):
            self.assertEqual(self.call(b, FAILURE), OK)
        self.assertEqual((cb_current_state(b), cb_fail_counter(b)), (CLOSED, 2))
        self.assertEqual(self.call(b, SUCCESS), OK)
        self.assertEqual(cb_fail_counter(b), 0)
        for _ in range(3):
            self.assertEqual(self.call(b, FAILURE), OK)
        self.assertEqual(cb_current_state(b), OPEN)
        p = Permit(1234)
        self.assertEqual(cb_try_acquire(b, byref(p)), REJECTED)
        self.assertEqual(p.bits, 1234)

    def test_reset_timeout_single_probe_and_success_threshold(self):
        b = self.new(config(fail_max=1, reset_timeout_ms=50, success_threshold=2))
        start = time.monotonic()
        self.assertEqual(self.call(b, FAILURE), OK)
        self.assertEqual(self.acquire(b)[0], REJECTED)
        status, probe = self.acquire_within(b, 5.0)
        self.assertEqual(status, OK)
        self.assertGreaterEqual(time.monotonic() - start, 0.049)
        self.assertEqual(cb_current_state(b), HALF_OPEN)
        self.assertEqual(self.acquire(b)[0], REJECTED)  # one probe at a time
        self.assertEqual(cb_record(b, probe, SUCCESS), OK)
        self.assertEqual((cb_current_state(b), cb_success_counter(b)), (HALF_OPEN, 1))
        self.assertEqual(self.call(b, SUCCESS), OK)
        self.assertEqual(cb_current_state(b), CLOSED)

    def test_forced_states_and_setters(self):
        b = self.new(config(fail_max=5))
        self.assertEqual(cb_force_open(b), OK)
        self.assertEqual(cb_current_state(b), OPEN)
        self.assertEqual(cb_force_half_open(b), OK)
        self.assertEqual(cb_current_state(b), HALF_OPEN)
        self.assertEqual(cb_force_close(b), OK)
        self.assertEqual(cb_current_state(b), CLOSED)
        self.assertEqual(self.call(b, FAILURE), OK)
        self.assertEqual(self.call(b, FAILURE), OK)
        self.assertEqual(cb_set_fail_max(b, 2), OK)  # already at 2: trips now
        self.assertEqual(cb_current_state(b), OPEN)
        self.assertEqual(self.acquire(b)[0], REJECTED)
        self.assertEqual(cb_set_reset_timeout_ms(b, 0), OK)
        self.assertEqual(cb_set_half_open_max_calls(b, 2), OK)
        self.assertEqual(self.acquire_within(b, 2.0)[0], OK)
        self.assertEqual(self.acquire(b)[0], OK)
        self.assertEqual(cb_probes_in_flight(b), 2)
        for setter in (cb_set_fail_max, cb_set_success_threshold, cb_set_half_open_max_calls, cb_set_probe_lease_ms):
            self.assertEqual(setter(b, 0), INVALID_ARGUMENT)
        self.assertEqual(cb_set_success_threshold(b, 70000), INVALID_ARGUMENT)

    def test_stale_and_double_records(self):
        b = self.new(config(fail_max=2, success_threshold=3))
        self.assertEqual(cb_force_half_open(b), OK)
        status, probe = self.acquire(b)
        self.assertEqual(status, OK)
        self.assertEqual(cb_record(b, probe, SUCCESS), OK)
        self.assertEqual(cb_record(b, probe, SUCCESS), STALE_PERMIT)
        self.assertEqual(cb_success_counter(b), 1)
        self.assertEqual(cb_force_close(b), OK)
        status, old = self.acquire(b)
        self.assertEqual(cb_force_open(b), OK)
        self.assertEqual(cb_force_close(b), OK)
        self.assertEqual(cb_record(b, old, FAILURE), STALE_PERMIT)
        self.assertEqual(cb_fail_counter(b), 0)

    def test_callback_once_per_transition_sees_new_state(self):
        seen = []

        def on_change(user_data, breaker, frm, to):
            seen.append((frm, to, cb_current_state(breaker), breaker, cb_name(breaker)))

        callback = STATE_CHANGE(on_change)  # kept alive for the breaker's life
        cfg = config(fail_max=1, name=b"db")
        cfg.on_state_change = callback
        b = self.new(cfg)
        self.assertEqual(self.call(b, FAILURE), OK)
        self.assertEqual(cb_force_open(b), OK)  # no change
        self.assertEqual(cb_force_half_open(b), OK)
        self.assertEqual(self.call(b, SUCCESS), OK)
        self.assertEqual(
            seen,
            [
                (CLOSED, OPEN, OPEN, b.value, b"db"),
                (OPEN, HALF_OPEN, HALF_OPEN, b.value, b"db"),
                (HALF_OPEN, CLOSED, CLOSED, b.value, b"db"),
            ],
        )

    def test_bad_input(self):
        handle = Handle(0x10)
        for cfg in (config(fail_max=0), config(success_threshold=0), config(half_open_max_calls=0),
                    config(half_open_max_calls=70000), config(name=b"\xff\xfe")):
            self.assertEqual(cb_new(byref(cfg), byref(handle)), INVALID_ARGUMENT)
        self.assertEqual(cb_new(None, byref(handle)), INVALID_ARGUMENT)
        self.assertEqual(cb_new(byref(config()), None), INVALID_ARGUMENT)
        self.assertEqual(handle.value, 0x10)  # written only on success
        p = Permit(7)
        self.assertEqual(cb_try_acquire(None, byref(p)), INVALID_ARGUMENT)
        self.assertEqual(cb_record(None, p, SUCCESS), INVALID_ARGUMENT)
        self.assertEqual(cb_current_state(None), OPEN)
        self.assertEqual(cb_fail_counter(None), 0)
        self.assertEqual(cb_name(None), b"")
        self.assertEqual(cb_force_open(None), INVALID_ARGUMENT)
        self.assertEqual(cb_set_fail_max(None, 1), INVALID_ARGUMENT)
        cb_free(None)

        b = self.new(config(fail_max=1))
        self.assertEqual(cb_try_acquire(b, None), INVALID_ARGUMENT)
        status, p = self.acquire(b)
        self.assertEqual(cb_record(b, p, 7), INVALID_ARGUMENT)
        self.assertEqual(cb_record(b, Permit(0xDEADBEEFDEADBEEF), FAILURE), INVALID_ARGUMENT)
        self.assertEqual(cb_current_state(b), CLOSED)
        self.assertEqual(cb_record(b, p, FAILURE), OK)
        self.assertEqual(cb_current_state(b), OPEN)

    def test_threads_half_open_admits_at_most_the_limit(self):
        limit = 2
        b = self.new(config(success_threshold=65535, half_open_max_calls=limit))
        self.assertEqual(cb_set_probe_lease_ms(b, 600000), OK)
        self.assertEqual(cb_force_half_open(b), OK)
        lock = threading.Lock()
        stats = {"in_flight": 0, "max": 0, "admitted": 0, "bad": 0}

        def hammer():
            for _ in range(300):
                status, p = self.acquire(b)
                if status != OK:
                    continue
                with lock:
                    stats["in_flight"] += 1
                    stats["max"] = max(stats["max"], stats["in_flight"])
                    stats["admitted"] += 1
                time.sleep(0.0001)  # hold the probe so that others race
                with lock:
                    stats["in_flight"] -= 1
                if cb_record(b, p, SUCCESS) != OK:
                    with lock:
                        stats["bad"] += 1

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertGreaterEqual(stats["max"], 2)  # the probes did overlap
        self.assertLessEqual(stats["max"], limit)
        self.assertEqual(stats["bad"], 0)
        self.assertEqual(cb_current_state(b), HALF_OPEN)
        self.assertEqual(cb_success_counter(b), stats["admitted"])


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    ok = result.wasSuccessful()
    print(f"Python tests: {result.testsRun - len(result.failures) - len(result.errors)}/{result.testsRun} passed")
    print("Python tests: PASS" if ok else "Python tests: FAIL")
    sys.exit(0 if ok else 1)
