//! Failure-rate and slow-call windows: the closed state's alternative to a
//! consecutive-failure count.
//!
//! # Counting without shared writes
//!
//! The window is a set of *stripes*, one cache line each (`CachePadded`).
//! A thread claims one of 15 stripes on first use and frees it when it
//! exits; while it owns it no other thread writes it, so it records with a
//! plain load and store (no read-modify-write, so no `lock` prefix). With
//! more than 15 live threads the rest share the 16th stripe, with a CAS. A stripe is a ring of 16 words, one per epoch
//! (the slot is the epoch modulo 16); the window reads the last `buckets`:
//!
//! | bits   | field                                          |
//! |--------|------------------------------------------------|
//! | 0..16  | calls                                          |
//! | 16..32 | failures                                       |
//! | 32..48 | slow calls                                     |
//! | 48..64 | the bucket's epoch, modulo 2^16                |
//!
//! A word whose epoch tag is older is restarted at the new epoch by the same
//! store (or CAS), so a bucket rolls over without losing or keeping a count.
//! A record that arrives late for its bucket, finding the slot already holds
//! the epoch one turn of the ring (16) later, is dropped. Any other tag,
//! however far behind (the tag is the epoch modulo 2^16), counts as older,
//! as does a word never written: a stripe idle for half the tag range or
//! more records again at once. The price of 16 bits: a record late by two
//! turns or more restarts the word (that stripe's newer counts in the slot
//! are lost), and a word last written exactly 65,520 epochs (modulo 2^16)
//! before a record is taken as one turn ahead (that bucket's calls on that
//! stripe in that slot are dropped). A stripe's bucket saturates at 65,535
//! calls: later calls of that thread in that bucket are not counted at all
//! (a sample, not a bias).
//!
//! Only failures and slow calls read the window (every word of every stripe)
//! to decide whether to trip; a plain success never does, so it is one
//! store (or, on the shared stripe, one CAS). The rate a decision sees is therefore exact
//! for records that finished before it, and may miss records racing it.
//!
//! # Buckets
//!
//! * **Time-based** (`time_window(T)`): `buckets` buckets of `T / buckets`
//!   each (the bucket width). The window covers the current, partial bucket
//!   and the `buckets - 1` before it: between `T - width` and `T` of history.
//!   The bucket is chosen with the coarse clock, so a call near a bucket
//!   edge may land in the bucket before (by at most the coarse lag).
//! * **Count-based** (`count_window(N)`): `buckets` buckets of
//!   `ceil(N / buckets)` calls. The bucket advances when a failure or slow
//!   call finds the current one full, so a run of successes may over-fill it:
//!   the window then holds more old successes than `N`, which can only delay
//!   a trip, never hasten one. After a roll it holds at least
//!   `N - ceil(N / buckets)` calls.
//!
//! Every transition clears the window (as resilience4j does): the epoch
//! jumps ahead by `buckets`, so every older word is out of range at once.
//! Epoch tags are kept modulo 2^16: a stripe not written for a multiple of
//! 65,536 bucket widths could be read as current for one bucket.

use crate::machine::clock::duration_to_ms;
use crate::machine::config_error::ConfigError;
use crate::sync::{owns_stripe, thread_index, AtomicU64, Ordering, OWNED_STRIPES};
use crossbeam_utils::CachePadded;
use std::time::Duration;

/// Most buckets a window can have: one stripe is one 128-byte line of words.
pub const MAX_WINDOW_BUCKETS: u32 = 16;
/// Default buckets per window.
pub const DEFAULT_WINDOW_BUCKETS: u32 = 10;
/// Default failure-rate threshold, in percent (resilience4j's).
pub const DEFAULT_FAILURE_RATE_THRESHOLD: f32 = 50.0;
/// Default slow-call rate threshold, in percent (resilience4j's).
pub const DEFAULT_SLOW_CALL_RATE_THRESHOLD: f32 = 100.0;
/// Default calls a window must hold before it may trip (resilience4j's).
pub const DEFAULT_MINIMUM_CALLS: u32 = 100;

/// Stripes owned by one live thread each; threads beyond share the last.
const OWNED: usize = OWNED_STRIPES;
const STRIPES: usize = OWNED + 1;

/// Slots per stripe: a power of two, so a slot is a mask away from its epoch.
const RING: usize = MAX_WINDOW_BUCKETS as usize;

const COUNT_BITS: u32 = 16;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
const FAILURE_SHIFT: u32 = 16;
const SLOW_SHIFT: u32 = 32;
const TAG_SHIFT: u32 = 48;
const TAG_MASK: u64 = COUNT_MAX;

/// How the closed state decides to trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowKind {
    /// `fail_max` consecutive failures (pybreaker's rule; the default).
    #[default]
    Consecutive,
    /// A rate over the last `size` calls.
    Count {
        /// Calls in the window.
        size: u32,
    },
    /// A rate over the calls of the last `duration`.
    Time {
        /// The window's span.
        duration: Duration,
    },
}

/// The window settings a builder collects; checked by [`WindowConfig::build`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowConfig {
    pub(crate) kind: WindowKind,
    pub(crate) buckets: u32,
    pub(crate) failure_rate_threshold: f32,
    pub(crate) minimum_calls: u32,
    pub(crate) slow_call_duration: Option<Duration>,
    pub(crate) slow_call_rate_threshold: f32,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            kind: WindowKind::Consecutive,
            buckets: DEFAULT_WINDOW_BUCKETS,
            failure_rate_threshold: DEFAULT_FAILURE_RATE_THRESHOLD,
            minimum_calls: DEFAULT_MINIMUM_CALLS,
            slow_call_duration: None,
            slow_call_rate_threshold: DEFAULT_SLOW_CALL_RATE_THRESHOLD,
        }
    }
}

/// A percentage in (0, 100] as basis points.
pub(crate) fn check_percent(field: &'static str, value: f32) -> Result<u32, ConfigError> {
    if value > 0.0 && value <= 100.0 {
        Ok(((value * 100.0).round() as u32).max(1))
    } else {
        Err(ConfigError::Invalid {
            field,
            expected: "a percentage above 0 and at most 100",
        })
    }
}

impl WindowConfig {
    /// Checks the settings; `None` for the consecutive rule.
    pub(crate) fn build(&self) -> Result<Option<Window>, ConfigError> {
        let failure_rate_bp = check_percent("failure_rate_threshold", self.failure_rate_threshold)?;
        let slow_rate_bp = check_percent("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        if self.buckets == 0 {
            return Err(ConfigError::Zero {
                field: "window_buckets",
            });
        }
        if self.buckets > MAX_WINDOW_BUCKETS {
            return Err(ConfigError::TooLarge {
                field: "window_buckets",
                max: u64::from(MAX_WINDOW_BUCKETS),
            });
        }
        if self.minimum_calls == 0 {
            return Err(ConfigError::Zero {
                field: "minimum_calls",
            });
        }
        let slow_after_ms = match self.slow_call_duration {
            None => None,
            Some(d) => match duration_to_ms(d) {
                0 => {
                    return Err(ConfigError::Zero {
                        field: "slow_call_duration",
                    })
                }
                ms => Some(ms),
            },
        };
        let (buckets, span) = match self.kind {
            WindowKind::Consecutive if slow_after_ms.is_some() => {
                return Err(ConfigError::Invalid {
                    field: "slow_call_duration",
                    expected: "used with a count or time window",
                })
            }
            WindowKind::Consecutive => return Ok(None),
            WindowKind::Count { size: 0 } => {
                return Err(ConfigError::Zero {
                    field: "count_window",
                })
            }
            WindowKind::Count { size } => {
                let buckets = self.buckets.min(size);
                (buckets, Span::Calls(u64::from(size.div_ceil(buckets))))
            }
            WindowKind::Time { duration } => match duration_to_ms(duration) {
                0 => return Err(ConfigError::Zero { field: "time_window" }),
                ms => {
                    let buckets = u64::from(self.buckets).min(ms);
                    (buckets as u32, Span::Millis(Width::new(ms / buckets)))
                }
            },
        };
        let minimum_calls = match self.kind {
            // resilience4j: a count window never needs more calls than it holds.
            WindowKind::Count { size } => self.minimum_calls.min(size),
            _ => self.minimum_calls,
        };
        Ok(Some(Window::new(Rule {
            buckets: u64::from(buckets),
            span,
            failure_rate_bp,
            slow_rate_bp,
            minimum_calls: u64::from(minimum_calls),
            slow_after_ms,
        })))
    }
}

/// How far ahead of a record (in epochs, modulo 2^16) a word of its slot
/// must be for the record to be late: one turn of the ring. Any other tag is
/// older, however far its 16 bits have wrapped.
const LATE_BY: u64 = RING as u64;

/// `current` with one more call (`one`) in epoch `tag`; `None` when the call
/// is not counted: the bucket is saturated, or already reused by the next
/// turn of the ring.
#[inline]
fn counted(current: u64, tag: u64, one: u64) -> Option<u64> {
    let current_tag = current >> TAG_SHIFT;
    if current_tag == tag {
        // Saturated: this call is not sampled.
        (current & COUNT_MAX != COUNT_MAX).then_some(current + one)
    } else if current_tag.wrapping_sub(tag) & TAG_MASK != LATE_BY || current & COUNT_MAX == 0 {
        // An older bucket, or a word never written (whose tag 0 says
        // nothing): start it afresh.
        Some((tag << TAG_SHIFT) + one)
    } else {
        None // late for a bucket already reused by a newer epoch
    }
}

/// What one bucket spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    /// Count-based: calls per bucket.
    Calls(u64),
    /// Time-based: the bucket width in milliseconds.
    Millis(Width),
}

/// A bucket width with its reciprocal: the bucket number of a time is a
/// multiply and at most two corrections, not a division on every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Width {
    ms: u64,
    reciprocal: u64,
}

impl Width {
    fn new(ms: u64) -> Width {
        Width {
            ms,
            reciprocal: u64::MAX / ms,
        }
    }

    /// `now / ms`, exactly, without a branch. With `r = (2^64 - 1) / ms`,
    /// `ms * r >= 2^64 - ms`, so the estimate `now * r / 2^64` misses
    /// `now / ms` by less than `now / 2^64 < 1`: never high, at most one low,
    /// and one compare corrects it.
    #[inline]
    fn bucket(self, now: u64) -> u64 {
        let q = ((u128::from(now) * u128::from(self.reciprocal)) >> 64) as u64;
        q + u64::from(now - q * self.ms >= self.ms)
    }
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    buckets: u64,
    span: Span,
    failure_rate_bp: u32,
    slow_rate_bp: u32,
    minimum_calls: u64,
    slow_after_ms: Option<u64>,
}

impl Rule {
    /// A time window's bucket number at `now` (0 for a count window).
    #[inline]
    fn bucket(&self, now: u64) -> u64 {
        match self.span {
            Span::Millis(width) => width.bucket(now),
            Span::Calls(_) => 0,
        }
    }
}

/// Sums over the window at one epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
    /// Calls in the current bucket alone.
    current: u64,
}

impl Tally {
    /// Failure rate in percent, or `None` below the minimum number of calls.
    fn rate(&self, count: u64, minimum: u64) -> Option<f32> {
        (self.calls >= minimum && self.calls > 0).then(|| (count as f64 * 100.0 / self.calls as f64) as f32)
    }
}

/// The striped, bucketed counters and the rule that reads them.
pub(crate) struct Window {
    /// Every stripe is a ring of [`RING`] slots; slot `epoch % RING` holds
    /// that epoch's counts, and the window reads the last `buckets` epochs.
    /// A fixed count, so that indexing an owned stripe needs no bounds check.
    stripes: Box<[CachePadded<[AtomicU64; RING]>; STRIPES]>,
    /// Count-based: the current epoch. Time-based: added to the clock's
    /// bucket number. Written only on a roll and on a transition.
    epoch: CachePadded<AtomicU64>,
    rule: Rule,
}

impl Window {
    fn new(rule: Rule) -> Window {
        Window {
            stripes: Box::new(std::array::from_fn(|_| {
                CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0)))
            })),
            epoch: CachePadded::new(AtomicU64::new(0)),
            rule,
        }
    }

    /// How long a call must take to count as slow, if slow calls are counted.
    #[inline]
    pub(crate) fn slow_after_ms(&self) -> Option<u64> {
        self.rule.slow_after_ms
    }

    /// The current epoch; `now_ms` is read only by a time-based window.
    #[inline]
    pub(crate) fn epoch(&self, now_ms: impl FnOnce() -> u64) -> u64 {
        match self.rule.span {
            Span::Calls(_) => self.epoch.load(Ordering::Acquire),
            // The clock first, and the width read after it, so that little
            // is kept across the clock's call.
            Span::Millis(_) => {
                let now = now_ms();
                self.epoch
                    .load(Ordering::Acquire)
                    .wrapping_add(self.rule.bucket(now))
            }
        }
    }

    /// Counts one call in `epoch`'s bucket of this thread's stripe.
    #[inline(always)]
    pub(crate) fn add(&self, epoch: u64, failed: bool, slow: bool) {
        let thread = thread_index();
        let slot = epoch as usize % RING;
        let tag = epoch & TAG_MASK;
        let one = 1 | (u64::from(failed) << FAILURE_SHIFT) | (u64::from(slow) << SLOW_SHIFT);
        if owns_stripe(thread) {
            // Only this thread writes this stripe: a load and a store, no
            // read-modify-write. Readers see the word before or after.
            let word = &self.stripes[thread][slot];
            if let Some(next) = counted(word.load(Ordering::Relaxed), tag, one) {
                word.store(next, Ordering::Release);
            }
            return;
        }
        let word = &self.stripes[OWNED][slot];
        let mut current = word.load(Ordering::Relaxed);
        while let Some(next) = counted(current, tag, one) {
            match word.compare_exchange_weak(current, next, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Sums every stripe's buckets that belong to the window at `epoch`.
    pub(crate) fn tally(&self, epoch: u64) -> Tally {
        let mut t = Tally::default();
        let tag = epoch & TAG_MASK;
        for stripe in self.stripes.iter() {
            for word in stripe.iter() {
                let w = word.load(Ordering::Acquire);
                let age = tag.wrapping_sub(w >> TAG_SHIFT) & TAG_MASK;
                if age >= self.rule.buckets {
                    continue;
                }
                let calls = w & COUNT_MAX;
                t.calls += calls;
                t.failures += (w >> FAILURE_SHIFT) & COUNT_MAX;
                t.slow += (w >> SLOW_SHIFT) & COUNT_MAX;
                if age == 0 {
                    t.current += calls;
                }
            }
        }
        t
    }

    /// Whether `t` meets the rule: enough calls, and the failure rate or the
    /// slow-call rate at or above its threshold.
    pub(crate) fn should_trip(&self, t: &Tally) -> bool {
        let r = &self.rule;
        let at_least = |count: u64, bp: u32| count * 10_000 >= u64::from(bp) * t.calls;
        t.calls >= r.minimum_calls
            && t.calls > 0
            && (at_least(t.failures, r.failure_rate_bp)
                || (r.slow_after_ms.is_some() && at_least(t.slow, r.slow_rate_bp)))
    }

    /// Count-based: starts the next bucket if the current one is full. One
    /// CAS, so of racing callers one rolls and the rest see it rolled.
    pub(crate) fn roll_if_full(&self, epoch: u64, t: &Tally) {
        if let Span::Calls(per_bucket) = self.rule.span {
            if t.current >= per_bucket {
                let _ = self
                    .epoch
                    .compare_exchange(epoch, epoch + 1, Ordering::AcqRel, Ordering::Acquire);
            }
        }
    }

    /// Empties the window: every word's epoch falls out of range at once.
    pub(crate) fn reset(&self) {
        self.epoch.fetch_add(self.rule.buckets, Ordering::AcqRel);
    }

    /// The failure and slow-call rates in percent (`None` below the minimum
    /// number of calls).
    pub(crate) fn rates(&self, epoch: u64) -> (Option<f32>, Option<f32>) {
        let t = self.tally(epoch);
        let min = self.rule.minimum_calls;
        (t.rate(t.failures, min), t.rate(t.slow, min))
    }
}

/// One bucket's counts, summed over every stripe.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl Counts {
    /// What `self` holds beyond `sent` (counts only grow within an epoch).
    pub(crate) fn beyond(self, sent: Counts) -> Counts {
        Counts {
            calls: self.calls.saturating_sub(sent.calls),
            failures: self.failures.saturating_sub(sent.failures),
            slow: self.slow.saturating_sub(sent.slow),
        }
    }

    pub(crate) fn plus(self, other: Counts) -> Counts {
        Counts {
            calls: self.calls + other.calls,
            failures: self.failures + other.failures,
            slow: self.slow + other.slow,
        }
    }
}

/// The rule as a fleet's script applies it to the summed window.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FleetRule {
    /// Count-based (calls per bucket) or time-based (bucket width in ms).
    pub(crate) count_based: bool,
    pub(crate) buckets: u64,
    /// Calls per bucket, or the bucket width in ms.
    pub(crate) span: u64,
    pub(crate) minimum_calls: u64,
    pub(crate) failure_rate_bp: u32,
    /// 0 when slow calls are not counted.
    pub(crate) slow_rate_bp: u32,
}

/// What holds a breaker's window, for a reader on another thread (a fleet's
/// flusher) that must not own the breaker.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) trait WindowSource: Send + Sync {
    fn window(&self) -> Option<&Window>;
}

/// Readers for a fleet: per-bucket counts and the rule, and one decision
/// step shared by every caller that counts a failure or slow call.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl Window {
    /// The counts of `epoch`'s bucket alone, over every stripe.
    pub(crate) fn bucket_counts(&self, epoch: u64) -> Counts {
        let slot = epoch as usize % RING;
        let tag = epoch & TAG_MASK;
        let mut c = Counts::default();
        for stripe in self.stripes.iter() {
            let w = stripe[slot].load(Ordering::Acquire);
            if w >> TAG_SHIFT != tag {
                continue;
            }
            c.calls += w & COUNT_MAX;
            c.failures += (w >> FAILURE_SHIFT) & COUNT_MAX;
            c.slow += (w >> SLOW_SHIFT) & COUNT_MAX;
        }
        c
    }

    /// Buckets the window reads.
    pub(crate) fn buckets(&self) -> u64 {
        self.rule.buckets
    }

    /// The rule as a fleet applies it.
    pub(crate) fn fleet_rule(&self) -> FleetRule {
        let r = &self.rule;
        let (count_based, span) = match r.span {
            Span::Calls(n) => (true, n),
            Span::Millis(width) => (false, width.ms),
        };
        FleetRule {
            count_based,
            buckets: r.buckets,
            span,
            minimum_calls: r.minimum_calls,
            failure_rate_bp: r.failure_rate_bp,
            slow_rate_bp: if r.slow_after_ms.is_some() {
                r.slow_rate_bp
            } else {
                0
            },
        }
    }

    /// After a failure or slow call was added at `epoch`: runs `trip` if the
    /// window now meets the rule, then rolls a full count bucket.
    pub(crate) fn check<T>(&self, epoch: u64, trip: impl FnOnce() -> Option<T>) -> Option<T> {
        let tally = self.tally(epoch);
        let tripped = match self.should_trip(&tally) {
            true => trip(),
            false => None,
        };
        self.roll_if_full(epoch, &tally);
        tripped
    }
}

#[cfg(all(test, not(breakerbox_loom)))]
mod tests {
    use super::*;

    fn window(kind: WindowKind, buckets: u32) -> Window {
        WindowConfig {
            kind,
            buckets,
            minimum_calls: 1,
            ..WindowConfig::default()
        }
        .build()
        .unwrap()
        .unwrap()
    }

    #[test]
    fn a_rolled_bucket_restarts_and_a_late_record_is_dropped() {
        let w = window(WindowKind::Count { size: 4 }, 2);
        w.add(0, true, false);
        w.add(0, false, false);
        assert_eq!(w.tally(0).calls, 2);
        assert_eq!(w.tally(2).calls, 0, "out of a two-bucket window");
        // Epoch 16 reuses epoch 0's slot: the old counts go, not added to.
        w.add(16, false, false);
        let t = w.tally(16);
        assert_eq!((t.calls, t.failures, t.current), (1, 0, 1));
        w.add(0, true, false);
        assert_eq!(w.tally(16).failures, 0, "late record dropped");
    }

    /// A fresh word (tag 0, no counts) takes any epoch: a time window's
    /// first epoch is the clock's bucket number, which may be more than
    /// 2^15 tags from 0 (a 100 ms bucket after 55 minutes of uptime).
    #[test]
    fn a_fresh_window_counts_at_any_epoch() {
        for epoch in [1, 32_767, 32_768, 40_000, 65_535, 107_363] {
            let w = window(
                WindowKind::Time {
                    duration: Duration::from_secs(1),
                },
                10,
            );
            w.add(epoch, true, false);
            let t = w.tally(epoch);
            assert_eq!((t.calls, t.failures), (1, 1), "epoch {epoch}");
            // The same slot written again after it sat unwritten for more
            // than 2^15 epochs: an older epoch's, restarted.
            let later = epoch + 16 * 2_500;
            w.add(later, false, false);
            let t = w.tally(later);
            assert_eq!((t.calls, t.failures), (1, 0), "epoch {later}");
        }
    }

    /// Tags are epochs modulo 2^16: across the wrap a newer record restarts
    /// the word and a record one turn late is dropped; a word never written,
    /// or written more than half the tag range ago, is restarted too. A word
    /// exactly 65,520 epochs behind looks one turn ahead (the documented price).
    #[test]
    fn the_epoch_tag_wraps_without_dropping_new_records() {
        let w = window(WindowKind::Count { size: 4 }, 2);
        let calls = |epoch| w.tally(epoch).current;
        w.add(65_530, false, false);
        w.add(65_546, true, false); // tag 10, the same slot: restarted
        assert_eq!((calls(65_546), w.tally(65_546).failures), (1, 1));
        w.add(65_530, false, false); // one turn late: dropped
        assert_eq!(calls(65_546), 1, "late record dropped");
        // A word never written (tag 0), at a tag in the upper half.
        w.add(65_533, false, false);
        assert_eq!(calls(65_533), 1, "a fresh word is restarted");
        // 40,000 epochs later, the same slot: older, not ahead.
        w.add(40_000 + 65_533, false, false);
        assert_eq!(calls(40_000 + 65_533), 1, "an idle word is restarted");
        w.add(1, false, false);
        w.add(1 + 65_520, false, false);
        assert_eq!(calls(1 + 65_520), 0, "65,520 behind reads as one turn ahead");
    }

    #[test]
    fn the_reciprocal_bucket_is_the_quotient() {
        for ms in [1, 3, 7, 1000, 6000, 86_400_000] {
            let w = Width::new(ms);
            for now in [0, 1, ms - 1, ms, ms + 1, 123_456_789, u64::MAX / 2, u64::MAX] {
                assert_eq!(w.bucket(now), now / ms, "{now} / {ms}");
            }
        }
    }

    /// The one correction is enough: `now / ms` on each side of bucket
    /// edges, for widths whose reciprocal falls furthest short (powers of
    /// two), odd and prime widths, and the largest times and widths.
    #[test]
    fn the_reciprocal_bucket_is_exact_at_every_edge() {
        let mut widths = vec![
            1,
            2,
            3,
            5,
            7,
            10,
            999,
            6_000,
            65_537,
            1 << 40,
            u64::MAX / 3,
            u64::MAX - 1,
            u64::MAX,
        ];
        for shift in [1, 4, 16, 31, 32, 33, 62, 63] {
            widths.extend([(1u64 << shift) - 1, 1 << shift, (1 << shift) + 1]);
        }
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for ms in widths {
            let w = Width::new(ms);
            let last = u64::MAX / ms;
            let mut quotients = vec![0, 1, 2, 65_535, 65_536, last / 2, last - 1, last];
            for _ in 0..64 {
                // xorshift: quotients spread over the whole range.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                quotients.push(x.checked_rem(last.wrapping_add(1)).unwrap_or(x));
            }
            for q in quotients.into_iter().filter(|&q| q <= last) {
                let edge = q * ms;
                let around = [
                    edge.checked_sub(1),
                    Some(edge),
                    edge.checked_add(1),
                    edge.checked_add(ms - 1),
                ];
                for now in around.into_iter().flatten() {
                    assert_eq!(w.bucket(now), now / ms, "{now} / {ms}");
                }
            }
        }
    }

    #[test]
    fn a_bucket_saturates_without_biasing_the_rate() {
        let w = window(WindowKind::Count { size: 4 }, 1);
        for _ in 0..COUNT_MAX + 10 {
            w.add(0, false, false);
        }
        w.add(0, true, false);
        let t = w.tally(0);
        assert_eq!((t.calls, t.failures), (COUNT_MAX, 0));
    }

    #[test]
    fn time_buckets_are_the_span_divided() {
        let w = window(
            WindowKind::Time {
                duration: Duration::from_secs(10),
            },
            10,
        );
        assert_eq!(w.rule.span, Span::Millis(Width::new(1000)));
        assert_eq!(w.epoch(|| 2_500), 2);
        w.reset();
        assert_eq!(w.epoch(|| 2_500), 12);
    }
}
