//! TLS: `rediss://` through the redis crate's rustls support (the
//! `redis-tls` feature), against a private redis-server listening on
//! `--tls-port` only, with a throwaway CA and certificate that
//! `scripts/test-redis-deploy.sh` makes (BREAKERBOX_TLS_DIR) and trusts for
//! this run (SSL_CERT_FILE, which rustls-native-certs reads), or that the
//! caller gives through `RedisState::connect_tls`.
#![cfg(feature = "redis-tls")]

mod redis_support;

use breakerbox::redis::{RedisState, StorageErrorKind, TlsCertificates};
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
    tls_server_with(cert, "no")
}

/// As [`tls_server`], `auth_clients` (`yes`, `no`) telling whether the
/// server requires a client certificate signed by the test CA.
fn tls_server_with(cert: &str, auth_clients: &str) -> PrivateServer {
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
        auth_clients,
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

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(tls_dir().join(name)).unwrap()
}

fn shared_with(server: &PrivateServer, ns: &str, certificates: &TlsCertificates) -> RedisState {
    let url = format!("rediss://:{PASSWORD}@127.0.0.1:{}/", server.port);
    RedisState::connect_tls(&url, certificates)
        .unwrap()
        .namespace(ns)
        .command_timeout(TLS_TIMEOUT)
        .connect_timeout(TLS_TIMEOUT)
}

/// The storage errors `seen` so far.
fn errors_of(seen: &Seen) -> Vec<String> {
    seen.storage_errors.lock().unwrap().clone()
}

#[test]
fn given_roots_verify_the_server_in_place_of_the_system_ones() {
    // The rogue certificate is trusted by nobody but these roots.
    let rogue = tls_server("rogue");
    let ns = unique_namespace("tls-roots");
    let roots = TlsCertificates::new().root_certificates(pem("rogue.crt"));
    let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let (a, b) = (
        fleet_breaker(shared_with(&rogue, &ns, &roots), &seen_a),
        fleet_breaker(shared_with(&rogue, &ns, &roots), &seen_b),
    );
    assert_fleet_guarantees(&a, &b);
    assert!(errors_of(&seen_a).is_empty() && errors_of(&seen_b).is_empty());

    // The system's roots (the test CA) are no longer consulted.
    let server = tls_server("server");
    let seen = Arc::new(Seen::default());
    let c = fleet_breaker(
        shared_with(&server, &unique_namespace("tls-roots-only"), &roots),
        &seen,
    );
    let _ = c.try_acquire().unwrap().failure();
    let errors = errors_of(&seen);
    assert!(
        errors.iter().any(|e| e.to_lowercase().contains("certificate")),
        "the server's certificate was refused: {errors:?}"
    );
}

#[test]
fn a_client_certificate_is_presented_when_the_server_requires_one() {
    let server = tls_server_with("server", "yes");
    let roots = TlsCertificates::new().root_certificates(pem("ca.crt"));
    let with_cert = roots
        .clone()
        .client_certificate(pem("client.crt"), pem("client.key"));

    let seen = Arc::new(Seen::default());
    let anonymous = fleet_breaker(shared_with(&server, &unique_namespace("tls-anon"), &roots), &seen);
    let _ = anonymous.try_acquire().unwrap().failure();
    assert!(
        seen.storage_error_count() > 0,
        "refused without a client certificate"
    );

    let ns = unique_namespace("tls-client");
    let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let (a, b) = (
        fleet_breaker(shared_with(&server, &ns, &with_cert), &seen_a),
        fleet_breaker(shared_with(&server, &ns, &with_cert), &seen_b),
    );
    assert_fleet_guarantees(&a, &b);
    assert!(
        errors_of(&seen_a).is_empty() && errors_of(&seen_b).is_empty(),
        "{:?}",
        errors_of(&seen_a)
    );
}

#[test]
fn bad_certificates_and_plain_urls_are_refused_up_front() {
    let kind = |url: &str, c: &TlsCertificates| RedisState::connect_tls(url, c).unwrap_err().kind();
    let roots = TlsCertificates::new().root_certificates(pem("ca.crt"));
    assert_eq!(kind("redis://127.0.0.1:1/", &roots), StorageErrorKind::InvalidUrl);
    let not_pem = TlsCertificates::new().root_certificates(b"not a certificate".to_vec());
    assert_eq!(
        kind("rediss://127.0.0.1:1/", &not_pem),
        StorageErrorKind::InvalidUrl
    );
    let no_key = roots.client_certificate(pem("client.crt"), pem("client.crt"));
    assert_eq!(
        kind("rediss://127.0.0.1:1/", &no_key),
        StorageErrorKind::InvalidUrl
    );
    assert!(!format!("{no_key:?}").contains("BEGIN"), "Debug shows no PEM");
}
