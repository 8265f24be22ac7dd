//! A breaker's name where a reader meets it: rejections, listener lines,
//! the registry; and how an unnamed breaker reads.

use breakerbox::registry::InsertError;
use breakerbox::{CircuitBreaker, ConfigError, Error, Registry, State};
use std::sync::{Arc, Mutex};

#[test]
fn a_rejection_names_its_breaker() {
    let b = CircuitBreaker::builder().name("orders-db").build().unwrap();
    b.open();
    let rejected = b.try_acquire().unwrap_err();
    assert_eq!(rejected.breaker(), "orders-db");
    assert_eq!(rejected.state, State::Open);
    assert_eq!(
        rejected.to_string(),
        "circuit breaker 'orders-db' is open: call rejected"
    );
    match b.call(|| Ok::<_, std::io::Error>(())) {
        Err(Error::Rejected(r)) => assert_eq!(r, rejected),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn two_breakers_with_one_name_reject_alike_and_others_differ() {
    let a = CircuitBreaker::builder().name("search").build().unwrap();
    let b = CircuitBreaker::builder()
        .name(String::from("search"))
        .build()
        .unwrap();
    let c = CircuitBreaker::builder().name("payments").build().unwrap();
    for breaker in [&a, &b, &c] {
        breaker.open();
    }
    let (ra, rb, rc) = (
        a.try_acquire().unwrap_err(),
        b.try_acquire().unwrap_err(),
        c.try_acquire().unwrap_err(),
    );
    assert_eq!(ra, rb);
    assert_ne!(ra, rc);
    assert_eq!(
        rc.to_string(),
        "circuit breaker 'payments' is open: call rejected"
    );
}

#[test]
fn an_unnamed_breaker_reads_as_unnamed() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let b = CircuitBreaker::builder()
        .fail_max(1)
        .on_state_change(move |name, from, to| sink.lock().unwrap().push(format!("{name}: {from} -> {to}")))
        .build()
        .unwrap();
    assert_eq!(b.name(), "", "the name itself stays empty");
    assert_eq!(b.display_name(), "<unnamed>");
    let _ = b.call(|| Err::<(), _>(std::io::Error::other("refused")));
    assert_eq!(*lines.lock().unwrap(), ["<unnamed>: closed -> open"]);
    let rejected = b.try_acquire().unwrap_err();
    assert_eq!(rejected.breaker(), "");
    assert_eq!(
        rejected.to_string(),
        "circuit breaker <unnamed> is open: call rejected"
    );
    assert!(format!("{b:?}").contains("<unnamed>"), "{b:?}");
}

#[test]
fn a_named_breaker_passes_its_name_to_state_change_closures() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let b = CircuitBreaker::builder()
        .name("payments")
        .on_state_change(move |name, _, to| sink.lock().unwrap().push((name.to_owned(), to)))
        .build()
        .unwrap();
    b.open();
    assert_eq!(*seen.lock().unwrap(), [("payments".to_owned(), State::Open)]);
    assert_eq!(b.display_name(), "payments");
}

#[test]
fn the_registry_refuses_an_empty_name() {
    let registry = Registry::default();
    assert_eq!(registry.get_or_create("").unwrap_err(), ConfigError::Unnamed);
    assert_eq!(
        registry.get_or_create("").unwrap_err().to_string(),
        "a registered breaker needs a name: got \"\""
    );
    let unnamed = CircuitBreaker::builder().build().unwrap();
    assert_eq!(registry.insert(unnamed).unwrap_err(), InsertError::Unnamed);
    assert!(registry.is_empty(), "nothing was registered");
    let named = CircuitBreaker::builder().name("db").build().unwrap();
    registry.insert(named).unwrap();
    let twin = CircuitBreaker::builder().name("db").build().unwrap();
    assert_eq!(
        registry.insert(twin).unwrap_err(),
        InsertError::AlreadyRegistered { name: "db".into() }
    );
}
