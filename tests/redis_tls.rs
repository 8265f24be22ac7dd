//! TLS: `rediss://` through the redis crate's rustls support (the
//! `redis-tls` feature), against a private redis-server listening on
//! `--tls-port` only, with a throwaway CA and certificate that
//! `scripts/test-redis-deploy.sh` makes (BREAKERBOX_TLS_DIR) and trusts for
//! this run (SSL_CERT_FILE, which rustls-native-certs reads).
#![cfg(feature = "redis-tls")]

mod redis_support;

use breakerbox::redis::RedisState;
use redis_support::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PASSWORD: &str = "tls-secret";

fn tls_dir() -> PathBuf {
    let dir = std::env::var_os("BREAKERBOX_TLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("BREAKERBOX_TLS_DIR is not set: run scripts/test-redis-deploy.sh"));
    let trusted = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    assert_eq!(
        trusted.as_deref(),
        Some(dir.join("ca.crt").as_path()),
        "SSL_CERT_FILE must name the test CA"
    );
    dir
}

/// A TLS-only server presenting `cert` (`server` is signed by the test CA,
/// `rogue` by nobody the client trusts).
fn tls_server(cert: &str) -> PrivateServer {
    let dir = tls_dir();
    let file = |name: String| dir.join(name).to_string_lossy().into_owned();
    let (crt, key, ca) = (
        file(format!("{cert}.crt")),
        file(format!("{cert}.key")),
        file("ca.crt".into()),
    );
    PrivateServer::start_with(&[
        "--port",
        "0",
        "--tls-port",
        "{port}",
        "--tls-cert-file",
        &crt,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
        "--requirepass",
        PASSWORD,
    ])
}

/// A new connection costs a TLS handshake: about 60 ms in a debug build on
/// the 2-core test machine (loading the roots included), so the default
/// 100 ms command timeout would leave no room for the command itself.
const TLS_TIMEOUT: Duration = Duration::from_secs(1);

fn shared(server: &PrivateServer, ns: &str) -> RedisState {
    RedisState::connect(&format!("rediss://:{PASSWORD}@127.0.0.1:{}/", server.port))
        .unwrap()
        .namespace(ns)
        .command_timeout(TLS_TIMEOUT)
        .connect_timeout(TLS_TIMEOUT)
}

#[test]
fn rediss_keeps_the_fleet_guarantees() {
    let server = tls_server("server");
    let ns = unique_namespace("tls");
    let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let (a, b) = (
        fleet_breaker(shared(&server, &ns), &seen_a),
        fleet_breaker(shared(&server, &ns), &seen_b),
    );
    assert_fleet_guarantees(&a, &b);
    assert_eq!(
        seen_a.storage_error_count() + seen_b.storage_error_count(),
        0,
        "{:?}",
        seen_a.storage_errors.lock().unwrap()
    );
}

#[test]
fn an_untrusted_certificate_is_a_reported_fault_never_a_hang() {
    let server = tls_server("rogue");
    let seen = Arc::new(Seen::default());
    let start = Instant::now();
    let b = fleet_breaker(shared(&server, &unique_namespace("tls-rogue")), &seen);
    assert!(start.elapsed() < TLS_TIMEOUT + Duration::from_millis(400));
    for _ in 0..FAIL_MAX {
        let start = Instant::now();
        let _ = b.try_acquire().unwrap().failure();
        assert!(start.elapsed() < TLS_TIMEOUT + Duration::from_millis(250));
    }
    assert_eq!(
        b.state(),
        breakerbox::State::Open,
        "decided locally (the default policy)"
    );
    let errors = seen.storage_errors.lock().unwrap();
    assert!(
        errors.iter().any(|e| e.to_lowercase().contains("certificate")),
        "the rejected certificate was reported: {errors:?}"
    );
}
