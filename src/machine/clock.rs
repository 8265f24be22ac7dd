//! The time seam: every reading of time goes through [`Clock`].
//!
//! The breaker keeps time as whole milliseconds on a monotonic timeline.
//! Tests inject a [`ManualClock`] and advance it explicitly instead of
//! sleeping; the closed-state path never reads the clock at all.
//!
//! ```
//! use breakerbox::clock::ManualClock;
//! use breakerbox::{CircuitBreaker, State};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let breaker = CircuitBreaker::builder()
//!     .reset_timeout(Duration::from_secs(30))
//!     .clock(clock.clone())
//!     .build()?;
//! breaker.open();
//! clock.advance(Duration::from_secs(29));
//! assert!(breaker.try_acquire().is_err(), "still open");
//! clock.advance(Duration::from_secs(1));
//! let probe = breaker.try_acquire().expect("30 s later: the probe");
//! assert_eq!(breaker.state(), State::HalfOpen);
//! let _ = probe.success();
//! assert_eq!(breaker.state(), State::Closed);
//! # Ok::<(), breakerbox::ConfigError>(())
//! ```

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
/// is on time and rejections far from it stay cheap. Where the coarse clock
/// is refused (some sandboxes and seccomp profiles), every reading is a
/// precise one. Elsewhere both readings come from [`std::time::Instant`].
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    /// 32 bits (at most 8 s) keep the clock as small as before the clock id
    /// came, and so the breaker's layout.
    coarse_lag_ms: u32,
    /// The clock the cheap reading asks.
    #[cfg(target_os = "linux")]
    coarse_id: libc::clockid_t,
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
        #[cfg(target_os = "linux")]
        return Self::with_coarse_clock(libc::CLOCK_MONOTONIC_COARSE);
        #[cfg(not(target_os = "linux"))]
        Self {
            coarse_lag_ms: coarse_lag_bound_ms(coarse_resolution_ms()),
            origin: std::time::Instant::now(),
        }
    }

    /// The coarse clock was refused after it first answered: a precise
    /// reading never lags.
    #[cold]
    #[inline(never)]
    fn coarse_refused(&self) -> u64 {
        self.now_ms()
    }

    /// Reads cheaply from `coarse_id`, unless the system refuses it: then
    /// from the precise clock, with no lag.
    #[cfg(target_os = "linux")]
    fn with_coarse_clock(coarse_id: libc::clockid_t) -> Self {
        match read_ms(coarse_id) {
            Some(_) => Self {
                coarse_lag_ms: coarse_lag_bound_ms(coarse_resolution_ms()),
                coarse_id,
            },
            None => Self {
                coarse_lag_ms: 0,
                coarse_id: libc::CLOCK_MONOTONIC,
            },
        }
    }
}

/// How far the coarse clock may trail the precise one. Its resolution is one
/// tick, but on tickless kernels it trails by several ticks after an idle
/// spell (seen: up to 18 ms with 4 ms ticks), so the bound is generous: within
/// it of the reset deadline, every rejection reads the precise clock.
fn coarse_lag_bound_ms(resolution_ms: u64) -> u32 {
    const FLOOR_MS: u64 = 50;
    // A resolution is at most the 1 s `coarse_resolution_ms` assumes when it
    // cannot ask; a larger one reported is taken as that.
    resolution_ms.min(1000).saturating_mul(8).max(FLOOR_MS) as u32
}

/// Milliseconds on `clock_id`, or `None` if the system refuses the clock.
#[cfg(target_os = "linux")]
#[inline]
fn read_ms(clock_id: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; a clock the system
    // refuses is reported in the return code, which is checked.
    let rc = unsafe { libc::clock_gettime(clock_id, &mut ts) };
    // Seconds since boot cannot overflow these in 584 million years, so the
    // arithmetic is plain: saturating, it cost three instructions on every
    // rejection.
    (rc == 0).then(|| {
        (ts.tv_sec as u64)
            .wrapping_mul(1000)
            .wrapping_add(ts.tv_nsec as u64 / 1_000_000)
    })
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
        // `std::time::Instant` itself panics if this clock is refused; here
        // time stands still instead.
        read_ms(libc::CLOCK_MONOTONIC).unwrap_or(0)
    }

    #[cfg(not(target_os = "linux"))]
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    #[cfg(target_os = "linux")]
    #[inline]
    fn coarse_now_ms(&self) -> u64 {
        match read_ms(self.coarse_id) {
            Some(ms) => ms,
            None => self.coarse_refused(),
        }
    }

    #[inline]
    fn coarse_lag_ms(&self) -> u64 {
        u64::from(self.coarse_lag_ms)
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

    /// A coarse reading: never ahead of the precise time. An injected clock
    /// is asked for the reading alone, not its lag too.
    #[inline]
    pub(crate) fn coarse_ms(&self) -> u64 {
        match self {
            ClockSource::Monotonic(c) => c.coarse_now_ms(),
            ClockSource::Custom(c) => c.coarse_now_ms(),
        }
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
        }
    }
}

/// Reads the clock on first use and remembers the answer, so one decision
/// (however many CAS retries it takes) sees one instant.
pub(crate) struct LazyNow<'a> {
    clock: &'a ClockSource,
    cached: Option<u64>,
}

/// Near the deadline the precise reading decides: out of line, and taking
/// the clock rather than the `LazyNow`, so a rejection's reading stays in
/// registers.
#[inline(never)]
fn precise_ms(clock: &ClockSource) -> u64 {
    clock.now_ms()
}

impl crate::machine::state::Now for LazyNow<'_> {
    #[inline]
    fn now_ms(&mut self) -> u64 {
        *self.cached.get_or_insert_with(|| self.clock.now_ms())
    }

    // Always inlined: every rejection comes through here, and out of line it
    // cost about twice the instructions.
    #[inline(always)]
    fn reached(&mut self, deadline_ms: u64) -> bool {
        self.left(deadline_ms).is_none()
    }

    // The reading that decides also says how long is left: a coarse one is
    // never ahead of the truth, so the time left is never short.
    #[inline(always)]
    fn left(&mut self, deadline_ms: u64) -> Option<u64> {
        if let Some(now) = self.cached {
            return (now < deadline_ms).then(|| deadline_ms - now);
        }
        let (coarse, lag) = self.clock.coarse();
        if coarse.saturating_add(lag) < deadline_ms {
            // The precise time is at most `lag` ahead: still before the deadline.
            return Some(deadline_ms - coarse);
        }
        let now = *self.cached.insert(precise_ms(self.clock));
        (now < deadline_ms).then(|| deadline_ms - now)
    }
}

#[cfg(all(test, target_os = "linux", not(miri)))]
mod tests {
    use super::*;
    use crate::machine::state::Now;

    /// A clock id no kernel knows, standing in for a coarse clock that a
    /// sandbox or seccomp profile refuses.
    const REFUSED: libc::clockid_t = 0x7fff;

    #[test]
    fn a_refused_coarse_clock_falls_back_to_the_precise_one() {
        let clock = MonotonicClock {
            coarse_id: REFUSED,
            ..MonotonicClock::new()
        };
        let before = clock.now_ms();
        let coarse = clock.coarse_now_ms();
        assert!(
            coarse >= before && coarse <= clock.now_ms(),
            "coarse {coarse} ms, precise {before} ms: the fallback reads the precise clock"
        );
        let deadline = clock.now_ms();
        assert!(
            ClockSource::Monotonic(clock).lazy().reached(deadline),
            "a deadline that has passed is reached"
        );
    }

    #[test]
    fn a_coarse_clock_refused_from_the_start_is_never_asked() {
        let clock = MonotonicClock::with_coarse_clock(REFUSED);
        assert_eq!((clock.coarse_id, clock.coarse_lag_ms), (libc::CLOCK_MONOTONIC, 0));
        let before = clock.now_ms();
        assert!(clock.coarse_now_ms() >= before);
    }
}
