//! The cost of the C boundary: `cb_try_acquire` + `cb_record` called through
//! `extern "C"` function pointers (as a C caller linking the library does),
//! against the same acquire + record through the Rust API.

use breakerbox::{CircuitBreaker, Outcome};
use breakerbox_ffi::{
    cb_breaker, cb_config, cb_config_default, cb_force_open, cb_free, cb_new, cb_permit, cb_record,
    cb_status, cb_try_acquire, RawOutcome,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::ptr;
use std::time::Duration;

/// The settings of the core's benches, so the figures compare.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .without_plots()
        .configure_from_args()
}

/// Long enough that no open breaker half-opens while a case runs.
const LONG: Duration = Duration::from_secs(3600);

type TryAcquire = unsafe extern "C" fn(*const cb_breaker, *mut cb_permit) -> cb_status;
type Record = unsafe extern "C" fn(*const cb_breaker, cb_permit, RawOutcome) -> cb_status;

/// A handle from `cb_new`, freed on drop.
struct Handle(*mut cb_breaker);

impl Handle {
    fn new() -> Handle {
        let config = cb_config_default();
        let mut handle = ptr::null_mut();
        // SAFETY: `config` is a valid config and `handle` is writable.
        let status = unsafe { cb_new(&config, &mut handle) };
        assert_eq!(status, cb_status::Ok);
        assert!(!handle.is_null());
        Handle(handle)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from `cb_new` and is released once, here.
        unsafe { cb_free(self.0) }
    }
}

/// One C-style call: acquire, then record success. Calls go through
/// function pointers hidden from the optimiser, so nothing is inlined
/// across the boundary.
fn c_acquire_record(handle: *const cb_breaker, acquire: TryAcquire, record: Record) -> cb_status {
    let mut permit = cb_permit { bits: 0 };
    // SAFETY: `handle` is live for the whole bench and `permit` is writable.
    match unsafe { acquire(handle, &mut permit) } {
        // SAFETY: as above; the permit was just issued by this breaker.
        cb_status::Ok => unsafe { record(handle, permit, RawOutcome(0)) },
        status => status,
    }
}

fn ffi(c: &mut Criterion) {
    let mut g = c.benchmark_group("ffi_acquire_record");
    let acquire: TryAcquire = cb_try_acquire;
    let record: Record = cb_record;

    let handle = Handle::new();
    let h = handle.0 as *const cb_breaker;
    g.bench_function("breakerbox_c_abi", |b| {
        b.iter(|| {
            black_box(c_acquire_record(
                black_box(h),
                black_box(acquire),
                black_box(record),
            ))
        })
    });
    assert_eq!(c_acquire_record(h, acquire, record), cb_status::Ok);

    let bb = CircuitBreaker::builder().build().unwrap();
    g.bench_function("breakerbox_rust_ticket", |b| {
        b.iter(|| {
            let bb = black_box(&bb);
            black_box(
                bb.acquire_ticket()
                    .map(|ticket| bb.record(ticket, Outcome::Success)),
            )
        })
    });
    g.bench_function("breakerbox_rust_permit", |b| {
        b.iter(|| black_box(black_box(&bb).try_acquire().map(|permit| permit.success())))
    });
    g.finish();

    // Rejections through the boundary, for the open-state figure.
    let mut g = c.benchmark_group("ffi_open_rejection");
    let config = cb_config {
        reset_timeout_ms: LONG.as_millis() as u64,
        ..cb_config_default()
    };
    let mut open = ptr::null_mut();
    // SAFETY: `config` is valid and `open` is writable.
    assert_eq!(unsafe { cb_new(&config, &mut open) }, cb_status::Ok);
    let open = Handle(open);
    // SAFETY: a live handle.
    assert_eq!(unsafe { cb_force_open(open.0) }, cb_status::Ok);
    let o = open.0 as *const cb_breaker;
    g.bench_function("breakerbox_c_abi", |b| {
        b.iter(|| {
            black_box(c_acquire_record(
                black_box(o),
                black_box(acquire),
                black_box(record),
            ))
        })
    });
    assert_eq!(c_acquire_record(o, acquire, record), cb_status::Rejected);

    let bb = CircuitBreaker::builder().reset_timeout(LONG).build().unwrap();
    bb.open();
    g.bench_function("breakerbox_rust_ticket", |b| {
        b.iter(|| black_box(black_box(&bb).acquire_ticket().is_err()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = ffi
}
criterion_main!(benches);
