//! The C ABI driven by arbitrary bytes: configurations with any field values
//! and names (invalid UTF-8, an embedded NUL, NULL), permits (issued, edited,
//! forged), outcome and status values outside their enums, and NULL pointers.
//! Every call must return a status from the documented list (never
//! `CB_STATUS_PANIC`) that the documentation predicts for its arguments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicU32, Ordering};

// The ABI under test, named in one place.
use breakerbox_ffi as abi;

use abi::{cb_breaker, cb_config, cb_permit, cb_state, cb_status, RawOutcome, RawStatus};

const OK: u32 = cb_status::Ok as u32;
const REJECTED: u32 = cb_status::Rejected as u32;
const STALE: u32 = cb_status::StalePermit as u32;
const INVALID: u32 = cb_status::InvalidArgument as u32;

/// The fuzzer's bytes, read front to back; zeros once they run out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }

    fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    fn u64(&mut self) -> u64 {
        let mut bytes = [0; 8];
        let taken = self.take(8);
        bytes[..taken.len()].copy_from_slice(taken);
        u64::from_le_bytes(bytes)
    }

    /// A count, mostly at and around the limits that matter.
    fn count(&mut self) -> u32 {
        match self.u8() % 8 {
            0 => 0,
            1 => 1,
            2 => 65_535,
            3 => 65_536,
            4 => u32::MAX,
            5 => self.u64() as u32,
            _ => u32::from(self.u8() % 4),
        }
    }

    /// Milliseconds, mostly small, sometimes anything.
    fn millis(&mut self) -> u64 {
        match self.u8() % 4 {
            0 => 0,
            1 => self.u64(),
            _ => u64::from(self.u8()),
        }
    }
}

fn count_is_valid(value: u32, max: u32) -> bool {
    (1..=max).contains(&value)
}

static TRANSITIONS: AtomicU32 = AtomicU32::new(0);

unsafe extern "C-unwind" fn on_state_change(
    _: *mut c_void,
    breaker: *const cb_breaker,
    from: cb_state,
    to: cb_state,
) {
    assert_ne!(from as u32, to as u32, "a transition changes the state");
    assert!(!breaker.is_null());
    TRANSITIONS.fetch_add(1, Ordering::Relaxed);
}

/// A status must be one of `allowed`.
fn expect(what: &str, status: cb_status, allowed: &[u32]) {
    let raw = status as u32;
    assert!(
        allowed.contains(&raw),
        "{what}: status {raw}, expected one of {allowed:?}"
    );
}

fn c_str<'a>(ptr: *const std::ffi::c_char) -> &'a CStr {
    assert!(!ptr.is_null(), "never NULL");
    // SAFETY: the library returns static or handle-owned NUL-terminated strings.
    unsafe { CStr::from_ptr(ptr) }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);

    let mut config: cb_config = abi::cb_config_default();
    config.fail_max = input.count();
    config.reset_timeout_ms = input.millis();
    config.success_threshold = input.count();
    config.half_open_max_calls = input.count();
    // The name is exactly its bytes and one NUL, in a buffer of that size, so
    // a read past the NUL is an out-of-bounds read the sanitizer reports.
    let name_len = usize::from(input.u8() % 24);
    let mut name = input.take(name_len).to_vec();
    name.push(0);
    let named = input.u8() % 4 != 0;
    config.name = if named { name.as_ptr().cast() } else { null() };
    if input.u8() % 2 == 0 {
        config.on_state_change = Some(on_state_change);
    }
    let name_given = CStr::from_bytes_until_nul(&name).expect("ends in NUL");
    let valid = count_is_valid(config.fail_max, u32::MAX)
        && count_is_valid(config.success_threshold, 65_535)
        && count_is_valid(config.half_open_max_calls, 65_535)
        && (!named || name_given.to_str().is_ok());

    let mut handle: *mut cb_breaker = null_mut();
    // SAFETY (every call below): pointers are NULL, valid, or the live handle.
    unsafe {
        expect(
            "cb_new(NULL config)",
            abi::cb_new(null(), &mut handle),
            &[INVALID],
        );
        expect("cb_new(NULL out)", abi::cb_new(&config, null_mut()), &[INVALID]);
        assert!(handle.is_null(), "out is written only on success");
        let status = abi::cb_new(&config, &mut handle);
        expect("cb_new", status, if valid { &[OK] } else { &[INVALID] });
        if !valid {
            assert!(handle.is_null(), "out is written only on success");
            return;
        }
        let expected_name = if named { name_given.to_bytes() } else { b"" };
        assert_eq!(c_str(abi::cb_name(handle)).to_bytes(), expected_name);

        let mut permits: Vec<cb_permit> = Vec::new();
        while !input.is_empty() {
            match input.u8() % 12 {
                0 | 1 => {
                    let mut permit = cb_permit { bits: 0 };
                    match abi::cb_try_acquire(handle, &mut permit) {
                        cb_status::Ok => permits.push(permit),
                        other => expect("cb_try_acquire", other, &[REJECTED]),
                    }
                    expect(
                        "cb_try_acquire(out NULL)",
                        abi::cb_try_acquire(handle, null_mut()),
                        &[INVALID],
                    );
                }
                2 | 3 => {
                    // An issued permit (perhaps again), one with edited bits, or forged bits.
                    let issued = permits.get(usize::from(input.u8())).copied();
                    let permit = match (input.u8() % 3, issued) {
                        (0, Some(p)) => p,
                        (1, Some(p)) => cb_permit {
                            bits: p.bits ^ (1 << (input.u8() % 64)),
                        },
                        _ => cb_permit { bits: input.u64() },
                    };
                    let outcome = match input.u8() % 4 {
                        3 => input.u64() as u32,
                        o => u32::from(o),
                    };
                    let status = abi::cb_record(handle, permit, RawOutcome(outcome));
                    if outcome > 2 {
                        expect("cb_record(bad outcome)", status, &[INVALID]);
                    } else {
                        expect("cb_record", status, &[OK, STALE, INVALID]);
                    }
                    expect(
                        "cb_record(NULL)",
                        abi::cb_record(null(), permit, RawOutcome(0)),
                        &[INVALID],
                    );
                }
                4 => {
                    let status = match input.u8() % 3 {
                        0 => abi::cb_force_open(handle),
                        1 => abi::cb_force_half_open(handle),
                        _ => abi::cb_force_close(handle),
                    };
                    expect("cb_force_*", status, &[OK]);
                }
                kind @ 5..=7 => {
                    type Setter = unsafe extern "C" fn(*const cb_breaker, u32) -> cb_status;
                    let (name, set, max): (&str, Setter, u32) = match kind {
                        5 => ("cb_set_fail_max", abi::cb_set_fail_max, u32::MAX),
                        6 => ("cb_set_success_threshold", abi::cb_set_success_threshold, 65_535),
                        _ => (
                            "cb_set_half_open_max_calls",
                            abi::cb_set_half_open_max_calls,
                            65_535,
                        ),
                    };
                    let v = input.count();
                    expect(
                        name,
                        set(handle, v),
                        if count_is_valid(v, max) { &[OK] } else { &[INVALID] },
                    );
                }
                8 => {
                    let v = input.millis();
                    expect(
                        "cb_set_reset_timeout_ms",
                        abi::cb_set_reset_timeout_ms(handle, v),
                        &[OK],
                    );
                    let lease = input.millis();
                    expect(
                        "cb_set_probe_lease_ms",
                        abi::cb_set_probe_lease_ms(handle, lease),
                        if lease > 0 { &[OK] } else { &[INVALID] },
                    );
                }
                9 => {
                    let status = input.u64() as u32;
                    let text = c_str(abi::cb_status_str(RawStatus(status)));
                    assert!(!text.to_bytes().is_empty());
                }
                10 => {
                    // NULL handles: documented errors and defaults, never a crash.
                    expect("cb_force_open(NULL)", abi::cb_force_open(null()), &[INVALID]);
                    expect(
                        "cb_set_fail_max(NULL)",
                        abi::cb_set_fail_max(null(), 1),
                        &[INVALID],
                    );
                    expect(
                        "cb_set_probe_lease_ms(NULL)",
                        abi::cb_set_probe_lease_ms(null(), 1),
                        &[INVALID],
                    );
                    let mut permit = cb_permit { bits: 0 };
                    expect(
                        "cb_try_acquire(NULL)",
                        abi::cb_try_acquire(null(), &mut permit),
                        &[INVALID],
                    );
                    assert_eq!(abi::cb_current_state(null()) as u32, cb_state::Open as u32);
                    assert_eq!(abi::cb_fail_counter(null()), 0);
                    assert_eq!(abi::cb_probes_in_flight(null()), 0);
                    assert_eq!(c_str(abi::cb_name(null())).to_bytes(), b"");
                    abi::cb_free(null_mut());
                }
                _ => {
                    let state = abi::cb_current_state(handle) as u32;
                    assert!(state <= 2, "state {state}");
                    let in_flight = abi::cb_probes_in_flight(handle);
                    assert!(in_flight <= 65_535, "probes in flight {in_flight}");
                    if state != cb_state::HalfOpen as u32 {
                        assert_eq!((in_flight, abi::cb_success_counter(handle)), (0, 0));
                    }
                    if state != cb_state::Closed as u32 {
                        assert_eq!(abi::cb_fail_counter(handle), 0);
                    }
                }
            }
        }
        abi::cb_free(handle);
    }
    assert!(!c_str(abi::cb_version()).to_bytes().is_empty());
});
