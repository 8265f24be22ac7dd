//! The time seam: every reading of time goes through [`Clock`].
//!
//! The breaker keeps time as whole milliseconds on a monotonic timeline.
//! Tests inject a [`ManualClock`] and advance it explicitly instead of
//! sleeping; the closed-state path never reads the clock at all.

use crate::sync::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A monotonic source of milliseconds.
///
/// Implementations must never go backwards. The origin is arbitrary.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since this clock's origin.
    fn now_ms(&self) -> u64;

    /// A cheaper reading that may lag [`Clock::now_ms`] by at most
    /// [`Clock::coarse_lag_ms`] and never leads it.
    ///
    /// The open state uses it to reject calls without paying for a precise
    /// reading while the reset deadline is still clearly ahead.
    fn coarse_now_ms(&self) -> u64 {
        self.now_ms()
    }

    /// The most [`Clock::coarse_now_ms`] can lag behind [`Clock::now_ms`].
    fn coarse_lag_ms(&self) -> u64 {
        0
    }
}

/// The operating system's monotonic clock.
///
/// On Linux, rejections in the open state read `CLOCK_MONOTONIC_COARSE`
/// (a vDSO memory read) and fall back to `CLOCK_MONOTONIC` only near the
/// reset deadline (within eight ticks, and at least 50 ms), so the transition
/// is on time and rejections far from it stay cheap. Elsewhere both readings
/// come from [`std::time::Instant`].
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    coarse_lag_ms: u64,
    #[cfg(not(target_os = "linux"))]
    origin: std::time::Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl MonotonicClock {
    /// A clock on the system's monotonic timeline.
    pub fn new() -> Self {
        Self {
            coarse_lag_ms: coarse_lag_bound_ms(coarse_resolution_ms()),
            #[cfg(not(target_os = "linux"))]
            origin: std::time::Instant::now(),
        }
    }
}

/// How far the coarse clock may trail the precise one. Its resolution is one
/// tick, but on tickless kernels it trails by several ticks after an idle
/// spell (seen: up to 18 ms with 4 ms ticks), so the bound is generous: within
/// it of the reset deadline, every rejection reads the precise clock.
fn coarse_lag_bound_ms(resolution_ms: u64) -> u64 {
    const FLOOR_MS: u64 = 50;
    resolution_ms.saturating_mul(8).max(FLOOR_MS)
}

#[cfg(target_os = "linux")]
#[inline]
fn read_ms(clock_id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock ids used here
    // exist on every Linux this crate supports, so the call cannot fail.
    unsafe { libc::clock_gettime(clock_id, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1000)
        .saturating_add(ts.tv_nsec as u64 / 1_000_000)
}

#[cfg(all(target_os = "linux", not(miri)))]
fn coarse_resolution_ms() -> u64 {
    let mut res = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `res` is a valid, writable timespec.
    let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut res) };
    if rc != 0 {
        // Unknown resolution: a generous bound keeps the gate correct.
        return 1000;
    }
    let nanos = (res.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(res.tv_nsec as u64);
    nanos.div_ceil(1_000_000)
}

#[cfg(not(target_os = "linux"))]
fn coarse_resolution_ms() -> u64 {
    0
}

/// Miri cannot ask for the resolution; a generous bound keeps the gate correct.
#[cfg(all(target_os = "linux", miri))]
fn coarse_resolution_ms() -> u64 {
    1000
}

impl Clock for MonotonicClock {
    #[cfg(target_os = "linux")]
    #[inline]
    fn now_ms(&self) -> u64 {
        read_ms(libc::CLOCK_MONOTONIC)
    }

    #[cfg(not(target_os = "linux"))]
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    #[cfg(target_os = "linux")]
    #[inline]
    fn coarse_now_ms(&self) -> u64 {
        read_ms(libc::CLOCK_MONOTONIC_COARSE)
    }

    #[inline]
    fn coarse_lag_ms(&self) -> u64 {
        self.coarse_lag_ms
    }
}

/// A clock that moves only when told to: for tests and simulations.
///
/// Clones share one timeline, so a test keeps a clone and advances it while
/// the breaker reads it.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now_ms: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock standing at zero.
    pub fn new() -> Self {
        Self {
            now_ms: Arc::new(AtomicU64::new(0)),
            reads: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves time forward by `by` (whole milliseconds).
    pub fn advance(&self, by: Duration) {
        self.now_ms.fetch_add(duration_to_ms(by), Ordering::AcqRel);
    }

    /// How many times the breaker has read this clock, precise or coarse.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Acquire)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.reads.fetch_add(1, Ordering::AcqRel);
        self.now_ms.load(Ordering::Acquire)
    }
}

/// Whole milliseconds in `d`, saturating at `u64::MAX`.
pub(crate) fn duration_to_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The clock a breaker holds: the system clock without dynamic dispatch,
/// or an injected one.
#[derive(Clone)]
pub(crate) enum ClockSource {
    Monotonic(MonotonicClock),
    Custom(Arc<dyn Clock>),
}

impl ClockSource {
    #[inline]
    fn now_ms(&self) -> u64 {
        match self {
            ClockSource::Monotonic(c) => c.now_ms(),
            ClockSource::Custom(c) => c.now_ms(),
        }
    }

    #[inline]
    fn coarse(&self) -> (u64, u64) {
        match self {
            ClockSource::Monotonic(c) => (c.coarse_now_ms(), c.coarse_lag_ms()),
            ClockSource::Custom(c) => (c.coarse_now_ms(), c.coarse_lag_ms()),
        }
    }

    /// A coarse reading: never ahead of the precise time.
    #[inline]
    pub(crate) fn coarse_ms(&self) -> u64 {
        self.coarse().0
    }

    /// A precise reading.
    #[inline]
    pub(crate) fn precise_ms(&self) -> u64 {
        self.now_ms()
    }

    /// A reading taken at most once per decision, and only if needed.
    pub(crate) fn lazy(&self) -> LazyNow<'_> {
        LazyNow {
            clock: self,
            cached: None,
            coarse: None,
        }
    }
}

/// Reads the clock on first use and remembers the answer, so one decision
/// (however many CAS retries it takes) sees one instant.
pub(crate) struct LazyNow<'a> {
    clock: &'a ClockSource,
    cached: Option<u64>,
    /// The coarse reading `reached` took, if any.
    coarse: Option<u64>,
}

impl LazyNow<'_> {
    /// The latest reading this decision took (precise, else coarse), or a
    /// coarse one now: never ahead of the precise time.
    #[inline]
    pub(crate) fn latest_ms(&mut self) -> u64 {
        match (self.cached, self.coarse) {
            (Some(now), _) | (None, Some(now)) => now,
            (None, None) => *self.coarse.insert(self.clock.coarse().0),
        }
    }
}

impl crate::state::Now for LazyNow<'_> {
    #[inline]
    fn now_ms(&mut self) -> u64 {
        *self.cached.get_or_insert_with(|| self.clock.now_ms())
    }

    #[inline]
    fn reached(&mut self, deadline_ms: u64) -> bool {
        if let Some(now) = self.cached {
            return now >= deadline_ms;
        }
        let (coarse, lag) = self.clock.coarse();
        self.coarse = Some(coarse);
        if coarse.saturating_add(lag) < deadline_ms {
            // The precise time is at most `lag` ahead: still before the deadline.
            return false;
        }
        self.now_ms() >= deadline_ms
    }
}
