//! The registry: one breaker per name, from a shared configuration.

use breakerbox::registry::{BreakerStatus, InsertError};
use breakerbox::{CircuitBreaker, ConfigError, Registry, State};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock, Weak};
use std::time::Duration;

#[test]
fn creates_each_name_once_from_the_shared_config() {
    let built = Arc::new(AtomicUsize::new(0));
    let registry = Registry::new({
        let built = Arc::clone(&built);
        move |b| {
            built.fetch_add(1, Ordering::SeqCst);
            // The registry names the breaker; a name set here is overridden.
            b.name("ignored")
                .fail_max(2)
                .reset_timeout(Duration::from_secs(7))
        }
    });
    assert!(registry.is_empty());

    let db = registry.get_or_create("db").unwrap();
    let again = registry.get_or_create("db").unwrap();
    assert!(Arc::ptr_eq(&db, &again));
    assert_eq!(db.name(), "db");
    assert_eq!(db.fail_max(), 2);
    assert_eq!(db.reset_timeout(), Duration::from_secs(7));
    assert_eq!(built.load(Ordering::SeqCst), 1);

    let payments = registry.get_or_create("payments").unwrap();
    assert!(!Arc::ptr_eq(&db, &payments));
    assert_eq!(registry.names(), ["db", "payments"]);
    assert_eq!(registry.len(), 2);
    assert!(registry.get("search").is_none());
    assert!(Arc::ptr_eq(&registry.get("payments").unwrap(), &payments));
}

#[test]
fn statuses_list_every_breaker_for_a_health_endpoint() {
    let registry = Registry::new(|b| b.fail_max(1).half_open_max_calls(2));
    let search = registry.get_or_create("search").unwrap();
    let users = registry.get_or_create("users").unwrap();
    let _cache = registry.get_or_create("cache").unwrap();
    assert!(registry.all_closed());

    let _ = search.call(|| Err::<(), _>("timeout"));
    users.half_open();
    let probe = users.try_acquire().unwrap();

    assert!(!registry.all_closed());
    let status = |name: &str, state, probes_in_flight| BreakerStatus {
        name: name.to_owned(),
        state,
        fail_counter: 0,
        success_counter: 0,
        probes_in_flight,
    };
    assert_eq!(
        registry.statuses(),
        vec![
            status("cache", State::Closed, 0),
            status("search", State::Open, 0),
            status("users", State::HalfOpen, 1),
        ]
    );
    let _ = probe.success();
}

#[test]
fn an_invalid_shared_config_is_an_error_not_a_panic() {
    let registry = Registry::new(|b| b.fail_max(0));
    assert_eq!(
        registry.get_or_create("db").unwrap_err(),
        ConfigError::Zero { field: "fail_max" }
    );
    assert!(registry.is_empty());
}

#[test]
fn insert_and_remove() {
    let registry = Registry::default();
    let custom = CircuitBreaker::builder()
        .name("legacy")
        .fail_max(9)
        .build()
        .unwrap();
    let legacy = registry.insert(custom).unwrap();
    assert!(Arc::ptr_eq(&registry.get_or_create("legacy").unwrap(), &legacy));
    assert_eq!(legacy.fail_max(), 9);

    let twin = CircuitBreaker::builder().name("legacy").build().unwrap();
    assert_eq!(
        registry.insert(twin).unwrap_err(),
        InsertError::AlreadyRegistered {
            name: "legacy".to_owned()
        }
    );

    let removed = registry.remove("legacy").unwrap();
    assert!(Arc::ptr_eq(&removed, &legacy));
    let fresh = registry.get_or_create("legacy").unwrap();
    assert!(!Arc::ptr_eq(&fresh, &legacy));
    assert_eq!(fresh.fail_max(), breakerbox::DEFAULT_FAIL_MAX);
}

#[test]
fn racing_threads_all_get_the_same_breaker() {
    const THREADS: usize = 8;
    let registry = Arc::new(Registry::new(|b| b.fail_max(3)));
    for round in 0..20 {
        let name = format!("dep-{round}");
        let start = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (registry, start, name) = (Arc::clone(&registry), Arc::clone(&start), name.clone());
                std::thread::spawn(move || {
                    start.wait();
                    registry.get_or_create(&name).unwrap()
                })
            })
            .collect();
        let got: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(got.iter().all(|b| Arc::ptr_eq(b, &got[0])), "round {round}");
        assert!(Arc::ptr_eq(&registry.get(&name).unwrap(), &got[0]));
    }
    assert_eq!(registry.len(), 20);
}

#[test]
fn the_config_closure_may_use_the_registry_itself() {
    // No lock is held while the configuration runs, so a configuration that
    // looks breakers up (or creates one) in the same registry cannot deadlock.
    let this: Arc<OnceLock<Weak<Registry>>> = Arc::default();
    let nested = Arc::new(AtomicBool::new(false));
    let registry = Arc::new(Registry::new({
        let (this, nested) = (Arc::clone(&this), Arc::clone(&nested));
        move |b| {
            let registry = this.get().and_then(Weak::upgrade).expect("registry is set");
            let _ = registry.names();
            if !nested.swap(true, Ordering::SeqCst) {
                registry.get_or_create("created-by-config").unwrap();
            }
            b
        }
    }));
    this.set(Arc::downgrade(&registry)).unwrap();
    registry.get_or_create("x").unwrap();
    assert_eq!(registry.names(), ["created-by-config", "x"]);
}

#[test]
fn window_defaults_apply_to_every_breaker_made() {
    use breakerbox::{Mode, Outcome};
    let registry = Registry::new(|b| {
        b.count_window(10)
            .minimum_calls(4)
            .failure_rate_threshold(50.0)
            .mode(Mode::MetricsOnly)
    });
    for name in ["db", "payments"] {
        let breaker = registry.get_or_create(name).unwrap();
        assert_eq!(breaker.mode(), Mode::MetricsOnly);
        let record = |outcome| {
            let ticket = breaker.acquire_ticket().expect("metrics-only admits every call");
            breaker.record(ticket, outcome).unwrap();
        };
        for outcome in [Outcome::Success, Outcome::Failure, Outcome::Success] {
            record(outcome);
        }
        assert_eq!(
            breaker.failure_rate(),
            None,
            "{name}: below the minimum of 4 calls"
        );
        assert_eq!(breaker.window_calls(), Some(3), "{name}");
        // 2 of 4 failed: the rate reached the threshold over the minimum.
        record(Outcome::Failure);
        assert_eq!(
            breaker.state(),
            State::Open,
            "{name}: the would-be state is reported"
        );
        assert_eq!(
            breaker.window_calls(),
            Some(0),
            "{name}: the trip cleared the window"
        );
        assert!(
            breaker.try_acquire().is_ok(),
            "{name}: metrics-only never rejects"
        );
    }
}
