//! The metrics listener's rate gauges against the `metrics` debugging
//! recorder, installed locally (per thread), on the manual clock.

use breakerbox::clock::ManualClock;
use breakerbox::metrics::{MetricsListener, FAILURE_RATE, SLOW_CALL_RATE};
use breakerbox::{CircuitBreaker, Outcome};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::time::Duration;

/// The gauges `names` of the breaker named `breaker` (`None`: no such
/// series), from one snapshot. The debugging recorder zeroes a gauge when a
/// snapshot reads it, so a gauge that reads 0.0 was not set since the last.
fn gauges<const N: usize>(snapshotter: &Snapshotter, names: [&str; N], breaker: &str) -> [Option<f64>; N] {
    let snapshot = snapshotter.snapshot().into_vec();
    names.map(|name| {
        snapshot
            .iter()
            .find(|(key, ..)| {
                key.key().name() == name
                    && key
                        .key()
                        .labels()
                        .any(|l| l.key() == "breaker" && l.value() == breaker)
            })
            .map(|(.., value)| match value {
                DebugValue::Gauge(g) => g.into_inner(),
                other => panic!("{name} is not a gauge: {other:?}"),
            })
    })
}

fn nan(value: Option<f64>) -> bool {
    value.is_some_and(f64::is_nan)
}

#[test]
fn rate_gauges_follow_failures_and_transitions_not_successes() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let clock = ManualClock::new();

    metrics::with_local_recorder(&recorder, || {
        let b = CircuitBreaker::builder()
            .name("orders")
            .clock(clock.clone())
            .reset_timeout(Duration::from_secs(5))
            .count_window(10)
            .minimum_calls(4)
            .failure_rate_threshold(60.0)
            .slow_call_duration(Duration::from_millis(100))
            .slow_call_rate_threshold(100.0)
            .listener(MetricsListener::new())
            .build()
            .unwrap();
        let record = |outcome, ms| {
            let p = b.try_acquire().expect("closed");
            let _ = p.record_timed(outcome, Duration::from_millis(ms));
        };
        let rates = || {
            let [failure, slow] = gauges(&snapshotter, [FAILURE_RATE, SLOW_CALL_RATE], "orders");
            (failure, slow)
        };

        record(Outcome::Success, 5);
        let (failure, slow) = rates();
        assert!(
            nan(failure) && nan(slow),
            "below minimum_calls: unknown, {failure:?} {slow:?}"
        );
        record(Outcome::Success, 500); // slow
        record(Outcome::Failure, 5);
        let (failure, slow) = rates();
        assert!(
            nan(failure) && nan(slow),
            "3 calls, below 4: {failure:?} {slow:?}"
        );
        record(Outcome::Failure, 5);
        assert_eq!(rates(), (Some(50.0), Some(25.0)), "2 of 4 failed, 1 of 4 slow");

        // Successes, slow or not, do not set the gauges.
        record(Outcome::Success, 500);
        record(Outcome::Success, 5);
        assert_eq!(rates(), (Some(0.0), Some(0.0)), "not set since the last snapshot");
        assert_eq!(
            b.failure_rate(),
            Some(100.0 / 3.0),
            "the window itself has moved on"
        );
        record(Outcome::Failure, 5);
        let (failure, slow) = rates();
        let near = |value: Option<f64>, percent: f64| value.is_some_and(|v| (v - percent).abs() < 1e-3);
        assert!(near(failure, 300.0 / 7.0), "3 of 7 failed: {failure:?}");
        assert!(near(slow, 200.0 / 7.0), "2 of 7 slow: {slow:?}");

        // The trip empties the window: unknown again.
        for _ in 0..3 {
            record(Outcome::Failure, 5);
        }
        assert!(b.try_acquire().is_err(), "6 of 10 failed: tripped");
        let (failure, slow) = rates();
        assert!(nan(failure) && nan(slow), "{failure:?} {slow:?}");
    });
}

#[test]
fn a_breaker_without_a_window_has_no_rate_gauges() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let plain = CircuitBreaker::builder()
            .name("plain")
            .fail_max(1)
            .listener(MetricsListener::new())
            .build()
            .unwrap();
        let no_slow = CircuitBreaker::builder()
            .name("no-slow")
            .count_window(4)
            .minimum_calls(1)
            .failure_rate_threshold(100.0)
            .listener(MetricsListener::new())
            .build()
            .unwrap();
        let _ = plain.try_acquire().unwrap().failure();
        let _ = no_slow.try_acquire().unwrap().success();
        let _ = no_slow.try_acquire().unwrap().failure();
        // "no-slow" first: a snapshot zeroes every gauge it reads.
        let [failure, slow] = gauges(&snapshotter, [FAILURE_RATE, SLOW_CALL_RATE], "no-slow");
        assert_eq!((failure, slow), (Some(50.0), None));
        let [failure, slow] = gauges(&snapshotter, [FAILURE_RATE, SLOW_CALL_RATE], "plain");
        assert_eq!((failure, slow), (None, None));
    });
}
