//! What an `exclude`/`ignore` predicate on an error type matches: the error
//! itself, the same error inside a `Box<dyn Error>`, and any error along the
//! `source()` chain of a boxed (or, with the `anyhow` feature, an
//! `anyhow::Error`) error.

use breakerbox::{CircuitBreaker, Error, Outcome};
use std::error::Error as StdError;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbError {
    NotFound,
    Cancelled,
    Timeout,
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "db: {self:?}")
    }
}

impl StdError for DbError {}

/// A service's own error with a `DbError` as its source.
#[derive(Debug)]
struct ServiceError(DbError);

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("loading the order failed")
    }
}

impl StdError for ServiceError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

type BoxError = Box<dyn StdError + Send + Sync>;

fn breaker() -> CircuitBreaker {
    CircuitBreaker::builder()
        .fail_max(2)
        .exclude(|e: &DbError| *e == DbError::NotFound)
        .ignore(|e: &DbError| *e == DbError::Cancelled)
        .build()
        .unwrap()
}

#[test]
fn the_error_itself() {
    let b = breaker();
    assert_eq!(b.classify(&DbError::NotFound), Outcome::Success);
    assert_eq!(b.classify(&DbError::Cancelled), Outcome::Ignored);
    assert_eq!(b.classify(&DbError::Timeout), Outcome::Failure);
}

#[test]
fn inside_a_box_dyn_error_send_sync() {
    let b = breaker();
    let boxed = |e: DbError| -> BoxError { Box::new(e) };
    assert_eq!(b.classify(&boxed(DbError::NotFound)), Outcome::Success);
    assert_eq!(b.classify(&boxed(DbError::Cancelled)), Outcome::Ignored);
    assert_eq!(b.classify(&boxed(DbError::Timeout)), Outcome::Failure);

    // Through `call`, as a service returning boxed errors sees it.
    let _ = b.call(|| Err::<(), _>(boxed(DbError::Timeout)));
    for _ in 0..3 {
        let e = b.call(|| Err::<(), _>(boxed(DbError::NotFound))).unwrap_err();
        assert!(matches!(
            e,
            Error::Failed {
                outcome: Outcome::Success,
                ..
            }
        ));
    }
    assert_eq!(b.fail_counter(), 0, "the excluded boxed errors reset the count");
}

#[test]
fn inside_a_box_dyn_error_and_a_box_dyn_error_send() {
    let b = breaker();
    let plain: Box<dyn StdError> = Box::new(DbError::NotFound);
    assert_eq!(b.classify(&plain), Outcome::Success);
    let send: Box<dyn StdError + Send> = Box::new(DbError::Cancelled);
    assert_eq!(b.classify(&send), Outcome::Ignored);
}

#[test]
fn along_the_source_chain_of_a_boxed_error() {
    let b = breaker();
    let wrapped: BoxError = Box::new(ServiceError(DbError::NotFound));
    assert_eq!(b.classify(&wrapped), Outcome::Success);
    let wrapped: BoxError = Box::new(ServiceError(DbError::Cancelled));
    assert_eq!(b.classify(&wrapped), Outcome::Ignored);
    let wrapped: BoxError = Box::new(ServiceError(DbError::Timeout));
    assert_eq!(b.classify(&wrapped), Outcome::Failure);
}

#[test]
fn a_concrete_wrapper_is_not_looked_through() {
    // The breaker sees a `ServiceError`, not a `dyn Error`: its chain is
    // out of reach unless it is boxed (or given a predicate of its own).
    let b = breaker();
    assert_eq!(b.classify(&ServiceError(DbError::NotFound)), Outcome::Failure);
    let b = CircuitBreaker::builder()
        .exclude(|e: &ServiceError| e.0 == DbError::NotFound)
        .build()
        .unwrap();
    assert_eq!(b.classify(&ServiceError(DbError::NotFound)), Outcome::Success);
}

#[test]
fn other_errors_are_failures() {
    let b = breaker();
    let text: BoxError = "connection refused".into();
    assert_eq!(b.classify(&text), Outcome::Failure);
    assert_eq!(b.classify(&"not found"), Outcome::Failure);
}

/// An error whose chain never ends: classifying it must still return.
#[derive(Debug)]
struct Cycle;

static CYCLE: Cycle = Cycle;

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cycle")
    }
}

impl StdError for Cycle {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&CYCLE)
    }
}

#[test]
fn a_cyclic_source_chain_ends_the_search() {
    let b = breaker();
    let cyclic: BoxError = Box::new(Cycle);
    assert_eq!(b.classify(&cyclic), Outcome::Failure);
}

#[test]
fn exact_predicates_take_any_type_and_match_only_it() {
    let b = CircuitBreaker::builder()
        .exclude_exact(|e: &&str| *e == "not found")
        .ignore_exact(|e: &String| e == "cancelled")
        .build()
        .unwrap();
    assert_eq!(b.classify(&"not found"), Outcome::Success);
    assert_eq!(b.classify(&"cancelled".to_string()), Outcome::Ignored);
    assert_eq!(b.classify(&"timeout"), Outcome::Failure);
    let boxed: BoxError = "not found".into();
    assert_eq!(
        b.classify(&boxed),
        Outcome::Failure,
        "a boxed &str is no longer a &str"
    );
}

#[cfg(feature = "anyhow")]
mod anyhow_errors {
    use super::*;

    #[test]
    fn an_anyhow_error_and_its_context_chain() {
        let b = breaker();
        assert_eq!(
            b.classify(&anyhow::Error::new(DbError::NotFound)),
            Outcome::Success
        );
        let with_context = anyhow::Error::new(DbError::Cancelled).context("loading order 7");
        assert_eq!(b.classify(&with_context), Outcome::Ignored);
        let chained = anyhow::Error::new(ServiceError(DbError::NotFound)).context("checkout");
        assert_eq!(b.classify(&chained), Outcome::Success);
        assert_eq!(
            b.classify(&anyhow::anyhow!("connection refused")),
            Outcome::Failure
        );
        let timeout = b.call(|| Err::<(), _>(anyhow::Error::new(DbError::Timeout)));
        assert!(timeout.unwrap_err().is_failure());
    }
}
