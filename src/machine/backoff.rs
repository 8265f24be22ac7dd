//! How long each open period lasts: the reset timeout, or a backoff that
//! grows with each consecutive re-open and starts over when the breaker closes.
//!
//! The duration of an open period is chosen by the thread whose transition
//! opened it, right after its CAS, and published together with the episode
//! it belongs to. Until it is published, the open breaker rejects: a probe
//! is never admitted before the policy's duration has passed.

use crate::sync::{AtomicU32, AtomicU64, Ordering};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

/// Randomness added to an exponential backoff, so that many breakers
/// opened together do not probe together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Exactly the computed duration.
    #[default]
    None,
    /// Uniform in `[0, d]` (AWS's "full jitter").
    Full,
    /// Uniform in `[d/2, d]` (AWS's "equal jitter").
    Equal,
}

type DurationFn = dyn Fn(u32, Option<f32>) -> Duration + Send + Sync;

/// The open-duration policy (see [`Builder::open_backoff`](crate::Builder::open_backoff)).
#[derive(Clone)]
pub struct Backoff(Kind);

#[derive(Clone)]
enum Kind {
    Exponential {
        multiplier: f64,
        cap: Duration,
        jitter: Jitter,
    },
    Custom(Arc<DurationFn>),
}

impl Backoff {
    /// Open period `n` (1 for the first since the breaker last closed) lasts
    /// `min(cap, reset_timeout × multiplierⁿ⁻¹)`, then jittered.
    pub fn exponential(multiplier: f64, cap: Duration) -> Backoff {
        Backoff(Kind::Exponential {
            multiplier,
            cap,
            jitter: Jitter::None,
        })
    }

    /// The same backoff with `jitter`; ignored by a custom function.
    pub fn jitter(self, jitter: Jitter) -> Backoff {
        match self.0 {
            Kind::Exponential { multiplier, cap, .. } => Backoff(Kind::Exponential {
                multiplier,
                cap,
                jitter,
            }),
            custom => Backoff(custom),
        }
    }

    /// `f(attempt, failure_rate)` chooses each open period: `attempt` counts
    /// the open periods since the breaker last closed (from 1), and
    /// `failure_rate` is the window's rate in percent when it tripped
    /// (`None` without a window, or below its minimum number of calls).
    /// A panic in `f` falls back to the reset timeout.
    pub fn custom(f: impl Fn(u32, Option<f32>) -> Duration + Send + Sync + 'static) -> Backoff {
        Backoff(Kind::Custom(Arc::new(f)))
    }

    /// An exponential backoff's multiplier, cap and jitter, which a fleet's
    /// script can apply; `None` for a custom function, which it cannot run.
    pub(crate) fn exponential_parts(&self) -> Option<(f64, Duration, Jitter)> {
        match self.0 {
            Kind::Exponential {
                multiplier,
                cap,
                jitter,
            } => Some((multiplier, cap, jitter)),
            Kind::Custom(_) => None,
        }
    }

    pub(crate) fn check(&self) -> Result<(), crate::ConfigError> {
        match self.0 {
            Kind::Exponential { multiplier, .. } if !(multiplier >= 1.0 && multiplier.is_finite()) => {
                Err(crate::ConfigError::Invalid {
                    field: "open_backoff multiplier",
                    expected: "a finite number of at least 1",
                })
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Exponential {
                multiplier,
                cap,
                jitter,
            } => f
                .debug_struct("Exponential")
                .field("multiplier", multiplier)
                .field("cap", cap)
                .field("jitter", jitter)
                .finish(),
            Kind::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// `base_ms × multiplier^(attempt − 1)`, at most `cap_ms`. Multiplied step
/// by step, each step rounded exactly: `powi` may come out an ulp short, and
/// 100 × 2 then waited 199 ms (seen under miri). At most 2^16 steps, and
/// only while below the cap.
fn grown_ms(base_ms: u64, multiplier: f64, cap_ms: u64, attempt: u32) -> u64 {
    let cap = cap_ms as f64;
    let mut grown = base_ms as f64;
    if multiplier > 1.0 && base_ms > 0 {
        for _ in 1..attempt.min(1 << 16) {
            if grown >= cap {
                break;
            }
            grown *= multiplier;
        }
    }
    if grown >= cap {
        cap_ms
    } else {
        grown as u64
    }
}

/// A backoff in use: the attempt count and the jitter's random state.
pub(crate) struct OpenBackoff {
    policy: Backoff,
    attempt: AtomicU32,
    rng: AtomicU64,
}

impl OpenBackoff {
    pub(crate) fn new(policy: Backoff, seed: u64) -> OpenBackoff {
        OpenBackoff {
            policy,
            attempt: AtomicU32::new(0),
            rng: AtomicU64::new(seed | 1),
        }
    }

    /// The duration of the open period just begun, in milliseconds.
    pub(crate) fn next_ms(&self, base_ms: u64, failure_rate: Option<f32>) -> u64 {
        let attempt = self.attempt.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        match &self.policy.0 {
            Kind::Exponential {
                multiplier,
                cap,
                jitter,
            } => {
                let cap_ms = crate::machine::clock::duration_to_ms(*cap).max(base_ms);
                let d = grown_ms(base_ms, *multiplier, cap_ms, attempt);
                match jitter {
                    Jitter::None => d,
                    Jitter::Full => self.uniform(d + 1),
                    Jitter::Equal => d / 2 + self.uniform(d - d / 2 + 1),
                }
            }
            Kind::Custom(f) => catch_unwind(AssertUnwindSafe(|| f(attempt, failure_rate)))
                .map(crate::machine::clock::duration_to_ms)
                .unwrap_or(base_ms),
        }
    }

    /// The breaker closed: the next open period is the first again.
    pub(crate) fn reset(&self) {
        self.attempt.store(0, Ordering::Release);
    }

    /// Uniform in `[0, n)` (xorshift; jitter needs spread, not secrecy).
    fn uniform(&self, n: u64) -> u64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        x % n.max(1)
    }
}

/// The published duration of the current open period: the episode it
/// belongs to and its length, in one word (0: no backoff, use the reset timeout).
pub(crate) struct OpenFor(AtomicU64);

const ON: u64 = 1 << 63;
const PUBLISHED: u64 = 1 << 62;
const EPISODE_BITS: u32 = 20;
const EPISODE_MASK: u64 = (1 << EPISODE_BITS) - 1;
const MS_MASK: u64 = (1 << (62 - EPISODE_BITS)) - 1;

impl OpenFor {
    pub(crate) fn new(backoff: bool) -> OpenFor {
        OpenFor(AtomicU64::new(if backoff { ON } else { 0 }))
    }

    pub(crate) fn publish(&self, episode: u32, ms: u64) {
        self.0.store(Self::word(episode, ms), Ordering::Release);
    }

    fn word(episode: u32, ms: u64) -> u64 {
        ON | PUBLISHED | (ms.min(MS_MASK) << EPISODE_BITS) | (u64::from(episode) & EPISODE_MASK)
    }

    /// Whether a backoff publishes the open periods (else they are the reset
    /// timeout).
    #[cfg(feature = "redis")]
    pub(crate) fn is_on(&self) -> bool {
        self.0.load(Ordering::Acquire) != 0
    }

    /// Publishes `ms` for `episode` unless a length is already published for
    /// it (a fleet's, published before the mirror moved to the episode).
    pub(crate) fn publish_if_unknown(&self, episode: u32, ms: u64) {
        let _ = self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
            let known = word & PUBLISHED != 0 && word & EPISODE_MASK == u64::from(episode) & EPISODE_MASK;
            (word != 0 && !known).then(|| Self::word(episode, ms))
        });
    }

    /// How long the open period of `episode` lasts: `reset_ms` without a
    /// backoff, `None` while its duration is not yet published.
    #[inline]
    pub(crate) fn get(&self, episode: u32, reset_ms: impl FnOnce() -> u64) -> Option<u64> {
        let word = self.0.load(Ordering::Acquire);
        if word == 0 {
            return Some(reset_ms());
        }
        (word & PUBLISHED != 0 && word & EPISODE_MASK == u64::from(episode) & EPISODE_MASK)
            .then_some((word >> EPISODE_BITS) & MS_MASK)
    }
}

#[cfg(all(test, not(breakerbox_loom)))]
mod tests {
    use super::*;

    #[test]
    fn exponential_grows_to_its_cap_and_restarts_on_reset() {
        let b = OpenBackoff::new(Backoff::exponential(2.0, Duration::from_millis(350)), 7);
        let got: Vec<u64> = (0..4).map(|_| b.next_ms(100, None)).collect();
        assert_eq!(got, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_ms(100, None), 100);
    }

    #[test]
    fn jitter_stays_in_its_range() {
        let full = OpenBackoff::new(Backoff::exponential(1.0, Duration::ZERO).jitter(Jitter::Full), 3);
        let equal = OpenBackoff::new(Backoff::exponential(1.0, Duration::ZERO).jitter(Jitter::Equal), 3);
        for _ in 0..1000 {
            assert!(full.next_ms(100, None) <= 100);
            assert!((50..=100).contains(&equal.next_ms(100, None)));
        }
    }

    #[test]
    fn an_unpublished_period_is_unknown() {
        let o = OpenFor::new(true);
        assert_eq!(o.get(3, || 5), None);
        o.publish(3, 40);
        assert_eq!(o.get(3, || 5), Some(40));
        assert_eq!(o.get(4, || 5), None);
        assert_eq!(OpenFor::new(false).get(9, || 5), Some(5));
    }

    #[test]
    fn a_known_period_is_not_overwritten_by_a_fallback() {
        let o = OpenFor::new(true);
        o.publish(3, 40);
        o.publish_if_unknown(3, 5);
        assert_eq!(o.get(3, || 5), Some(40), "the fleet's period stays");
        o.publish_if_unknown(4, 5);
        assert_eq!(o.get(4, || 9), Some(5), "an unknown one gets the fallback");
        let off = OpenFor::new(false);
        off.publish_if_unknown(4, 7);
        assert_eq!(off.get(4, || 9), Some(9), "no backoff: nothing published");
    }
}
