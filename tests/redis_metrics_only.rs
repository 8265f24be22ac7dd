//! `Mode::MetricsOnly` on a shared breaker: the process's failures count at
//! the fleet and its listeners hear the fleet's transitions, but it rejects
//! nothing; what it admits while the fleet would reject counts nowhere and
//! costs no round trip. (URL in BREAKERBOX_REDIS_URL.)
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::RedisState;
use breakerbox::{CircuitBreaker, Error, Mode, State};
use redis_support::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counts the rejections a listener is told of (would-be, in MetricsOnly).
struct Rejections(Arc<AtomicUsize>);

impl breakerbox::Listener for Rejections {
    fn rejected(&self, _b: &CircuitBreaker, _state: State) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The tests count the server's script runs: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_metrics_only_process_watches_the_fleet_decide_and_rejects_nothing() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let ns = unique_namespace("metrics-only");
    let shared = || RedisState::connect(&url()).unwrap().namespace(&ns);
    let seen = Arc::new(Seen::default());
    let rejections = Arc::new(AtomicUsize::new(0));
    let watching = CircuitBreaker::builder()
        .fail_max(2)
        .reset_timeout(Duration::from_secs(3600))
        .mode(Mode::MetricsOnly)
        .listener(Recorder(Arc::clone(&seen)))
        .listener(Rejections(Arc::clone(&rejections)))
        .shared(shared())
        .build()
        .unwrap();
    let enforcing = CircuitBreaker::builder()
        .fail_max(2)
        .reset_timeout(Duration::from_secs(3600))
        .shared(shared())
        .build()
        .unwrap();

    // Its failures count at the fleet: the second trips it, for everyone.
    assert!(watching.call(|| Err::<(), _>("down")).is_err());
    let out = watching.call(|| Err::<(), _>("down"));
    assert!(matches!(out, Err(Error::Failed { tripped: true, .. })), "{out:?}");
    assert_eq!(watching.state(), State::Open);
    assert_eq!(seen.transitions(), [(State::Closed, State::Open)]);
    assert!(
        within(Duration::from_secs(5), || !admits(&enforcing)).is_some(),
        "the enforcing process rejects once it learns of the trip"
    );

    // It admits every call meanwhile, tells its listeners of each would-be
    // rejection, and sends none of them to the fleet.
    let runs = script_runs(&url(), false);
    for n in 0..20 {
        let out = watching.call(|| if n % 2 == 0 { Err("down") } else { Ok(n) });
        match n % 2 {
            0 => assert!(
                matches!(out, Err(Error::Failed { tripped: false, .. })),
                "{out:?}"
            ),
            _ => assert_eq!(out.unwrap(), n),
        }
    }
    assert_eq!(
        script_runs(&url(), false),
        runs,
        "no round trip for a call the fleet would reject"
    );
    assert_eq!(rejections.load(Ordering::SeqCst), 20);
    assert_eq!(watching.state(), State::Open);
    assert_eq!(
        seen.transitions(),
        [(State::Closed, State::Open)],
        "no transition of its own"
    );
    let stored = stored_state(&mut client(&url()), &ns);
    assert_eq!(stored["s"], "1", "the fleet is still open");
    assert!(!admits(&enforcing));

    // The fleet's close reaches it as a transition too.
    assert!(enforcing.close().is_some());
    assert!(
        within(Duration::from_secs(5), || watching.state() == State::Closed).is_some(),
        "the close reached the watching process"
    );
    assert!(watching.call(|| Ok::<_, &str>(())).is_ok());
    assert_eq!(
        seen.transitions(),
        [(State::Closed, State::Open), (State::Open, State::Closed)]
    );
}

/// A shadow ticket of an open episode counts nowhere even if the fleet
/// closes in that episode's generation (as it may once a mirror was forced
/// open by its fault policy while a probe elsewhere closed the fleet): a
/// windowed record of it sends nothing.
#[test]
fn a_shadow_ticket_counts_nowhere_even_once_the_mirror_shows_its_episode_closed() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let ns = unique_namespace("metrics-only-window");
    let b = CircuitBreaker::builder()
        .count_window(10)
        .minimum_calls(1)
        .reset_timeout(Duration::from_secs(3600))
        .mode(Mode::MetricsOnly)
        .shared(
            RedisState::connect(&url())
                .unwrap()
                .namespace(&ns)
                .refresh_interval(Duration::from_millis(20)),
        )
        .build()
        .unwrap();
    assert!(b.open().is_some());
    let shadow = b.acquire_ticket().expect("a shadow mode admits while open");

    // The fleet's hash, closed in the same generation, with a newer version.
    let key = format!("breakerbox:{{{ns}}}:state");
    let mut conn = client(&url());
    let version: u64 = redis::cmd("HGET").arg(&key).arg("v").query(&mut conn).unwrap();
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("s")
        .arg(0)
        .arg("v")
        .arg(version + 1)
        .query(&mut conn)
        .unwrap();
    assert!(
        within(Duration::from_secs(5), || {
            let _ = b
                .acquire_ticket()
                .map(|t| b.record(t, breakerbox::Outcome::Ignored));
            b.state() == State::Closed
        })
        .is_some(),
        "the mirror took the fleet's close"
    );

    assert_eq!(
        b.record(shadow, breakerbox::Outcome::Failure),
        Ok(breakerbox::Recorded::Stale)
    );
    let stored = stored_state(&mut client(&url()), &ns);
    assert!(
        !stored.keys().any(|k| k.starts_with('w')),
        "nothing reached the fleet's window: {stored:?}"
    );
}
