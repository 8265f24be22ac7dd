//! The fleet protocol through a transport implemented outside the crate: a
//! host's own client. Here it is the `redis` crate again, driven by hand and
//! counting what it carries (URL in BREAKERBOX_REDIS_URL).
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::{RedisState, Script, StorageError, StorageErrorKind, Subscriber, Transport};
use breakerbox::{CircuitBreaker, State};
use redis_support::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct HostClient {
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
    evals: AtomicU64,
}

fn fault(e: redis::RedisError) -> StorageError {
    StorageError::new(StorageErrorKind::Unreachable, &e)
}

impl Transport for HostClient {
    fn eval(
        &self,
        script: &Script,
        key: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<Vec<i64>, StorageError> {
        self.evals.fetch_add(1, Ordering::Relaxed);
        let mut guard = self.conn.lock().unwrap();
        if guard.is_none() {
            *guard = Some(self.client.get_connection_with_timeout(timeout).map_err(fault)?);
        }
        let conn = guard.as_mut().unwrap();
        conn.set_read_timeout(Some(timeout)).map_err(fault)?;
        // EVAL with the source: this host does not cache scripts.
        let _ = script.sha1();
        redis::cmd("EVAL")
            .arg(script.source())
            .arg(1)
            .arg(key)
            .arg(args)
            .query(conn)
            .map_err(|e| {
                *guard = None;
                fault(e)
            })
    }

    fn subscriber(&self, _timeout: Duration) -> Result<Box<dyn Subscriber>, StorageError> {
        Err(StorageError::new(
            StorageErrorKind::Unreachable,
            &"this host has no pub/sub",
        ))
    }

    fn endpoint(&self) -> String {
        "host-client".into()
    }
}

#[test]
fn a_transport_from_outside_the_crate_carries_the_fleet() {
    let host = Arc::new(HostClient {
        client: redis::Client::open(url()).unwrap(),
        conn: Mutex::new(None),
        evals: AtomicU64::new(0),
    });
    let ns = unique_namespace("host");
    let make = |transport: Arc<dyn Transport>| {
        CircuitBreaker::builder()
            .fail_max(2)
            .shared(
                RedisState::with_transport(transport)
                    .namespace(&ns)
                    .notifications(false),
            )
            .build()
            .unwrap()
    };
    let a = make(host.clone());
    // The other process of the fleet uses the `redis` crate's transport.
    let b = CircuitBreaker::builder()
        .fail_max(2)
        .shared(RedisState::connect(&url()).unwrap().namespace(&ns))
        .build()
        .unwrap();
    let before = host.evals.load(Ordering::Relaxed);
    assert!(!a.try_acquire().unwrap().failure().tripped());
    assert!(
        b.try_acquire().unwrap().failure().tripped(),
        "both failures count at the fleet"
    );
    assert!(
        host.evals.load(Ordering::Relaxed) > before,
        "the failure went through the host's client"
    );
    let mut conn = client(&url());
    assert_eq!(
        stored_state(&mut conn, &ns).get("s").map(String::as_str),
        Some("1")
    );
    assert_eq!(b.state(), State::Open);
}
