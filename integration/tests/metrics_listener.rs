//! The metrics listener against the `metrics` debugging recorder, installed
//! locally (per thread), so this binary never touches the global recorder.

use breakerbox::clock::ManualClock;
use breakerbox::metrics::{
    state_value, MetricsListener, FAILURES, IGNORED, REJECTIONS, STATE, SUCCESSES, TRANSITIONS,
};
use breakerbox::{CircuitBreaker, Registry, State};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

type Series = BTreeMap<(String, Vec<(String, String)>), f64>;

fn series(snapshotter: &Snapshotter) -> Series {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let mut labels: Vec<_> = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let value = match value {
                DebugValue::Counter(c) => c as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(_) => panic!("no histograms expected"),
            };
            ((key.key().name().to_owned(), labels), value)
        })
        .collect()
}

fn get(series: &Series, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut labels: Vec<_> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    series.get(&(name.to_owned(), labels)).copied()
}

#[derive(Debug)]
struct Down;

#[test]
fn counts_every_event_per_breaker_with_a_state_gauge() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::new();

    metrics::with_local_recorder(&recorder, || {
        let db = CircuitBreaker::builder()
            .name("db")
            .fail_max(2)
            .reset_timeout(Duration::from_secs(5))
            .clock(clock.clone())
            .ignore_exact(|e: &&str| *e == "cancelled")
            .listener(MetricsListener::new())
            .build()
            .unwrap();
        let cache = CircuitBreaker::builder()
            .name("cache")
            .listener(MetricsListener::new().label("team", "storage"))
            .build()
            .unwrap();

        db.call(|| Ok::<_, &str>(())).unwrap();
        db.call(|| Ok::<_, &str>(())).unwrap();
        let _ = db.call(|| Err::<(), _>("cancelled"));
        let _ = db.call(|| Err::<(), _>("refused"));
        let _ = db.call(|| Err::<(), _>("refused")); // trips
        for _ in 0..3 {
            assert!(db.call(|| Ok::<_, &str>(())).unwrap_err().is_rejected());
        }
        // Half-open, then closed by a probe.
        clock.advance(Duration::from_secs(5));
        db.call(|| Ok::<_, &str>(())).unwrap();

        // The other breaker has its own series, with its extra label.
        cache.call(|| Ok::<_, &str>(())).unwrap();
        cache.open();

        // One snapshot: the debugging recorder drains values as it reads them.
        let s = series(&snapshotter);
        let db_l = [("breaker", "db")];
        assert_eq!(get(&s, SUCCESSES, &db_l), Some(3.0));
        assert_eq!(get(&s, IGNORED, &db_l), Some(1.0));
        assert_eq!(get(&s, FAILURES, &db_l), Some(2.0));
        assert_eq!(get(&s, REJECTIONS, &db_l), Some(3.0));
        assert_eq!(get(&s, STATE, &db_l), Some(state_value(State::Closed)));
        for (from, to) in [("closed", "open"), ("open", "half-open"), ("half-open", "closed")] {
            let labels = [("breaker", "db"), ("from", from), ("to", to)];
            assert_eq!(get(&s, TRANSITIONS, &labels), Some(1.0), "{from} -> {to}");
        }
        let cache_l = [("breaker", "cache"), ("team", "storage")];
        assert_eq!(get(&s, SUCCESSES, &cache_l), Some(1.0));
        assert_eq!(get(&s, STATE, &cache_l), Some(state_value(State::Open)));
        assert_eq!(get(&s, SUCCESSES, &[("breaker", "cache")]), None);
    });
}

#[test]
fn one_listener_shared_by_two_breakers_labels_each_by_its_name() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let shared: Arc<dyn breakerbox::Listener> = Arc::new(MetricsListener::new());
        let a = CircuitBreaker::builder()
            .name("a")
            .shared_listener(Arc::clone(&shared))
            .build()
            .unwrap();
        let b = CircuitBreaker::builder()
            .name("b")
            .shared_listener(shared)
            .build()
            .unwrap();
        a.call(|| Ok::<_, Down>(())).unwrap();
        for _ in 0..2 {
            b.call(|| Ok::<_, Down>(())).unwrap();
        }
        let _ = b.call(|| Err::<(), _>(Down));
        let s = series(&snapshotter);
        assert_eq!(get(&s, SUCCESSES, &[("breaker", "a")]), Some(1.0));
        assert_eq!(get(&s, SUCCESSES, &[("breaker", "b")]), Some(2.0));
        assert_eq!(get(&s, FAILURES, &[("breaker", "b")]), Some(1.0));
        // Every series of a breaker exists from its first event, at zero.
        assert_eq!(get(&s, FAILURES, &[("breaker", "a")]), Some(0.0));
    });
}

#[test]
fn a_registry_gives_each_breaker_its_own_listener() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let registry = Registry::new(|b| b.fail_max(1).listener(MetricsListener::new()));
        let _ = registry
            .get_or_create("search")
            .unwrap()
            .call(|| Err::<(), _>(Down));
        registry
            .get_or_create("users")
            .unwrap()
            .call(|| Ok::<_, Down>(()))
            .unwrap();
        let s = series(&snapshotter);
        assert_eq!(get(&s, FAILURES, &[("breaker", "search")]), Some(1.0));
        assert_eq!(
            get(&s, STATE, &[("breaker", "search")]),
            Some(state_value(State::Open))
        );
        assert_eq!(get(&s, SUCCESSES, &[("breaker", "users")]), Some(1.0));
        assert_eq!(
            get(&s, STATE, &[("breaker", "users")]),
            Some(state_value(State::Closed))
        );
    });
}
