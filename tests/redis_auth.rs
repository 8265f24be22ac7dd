//! Auth: a Redis with a password, and an ACL user holding only the commands
//! the fleet protocol needs (the line the README documents). Each test runs
//! a private redis-server (BREAKERBOX_REDIS_SERVER).
#![cfg(feature = "redis")]

mod redis_support;

use breakerbox::redis::{RedisState, DEFAULT_COMMAND_TIMEOUT};
use redis_support::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMIN_PASSWORD: &str = "admin-secret";
const USER: &str = "breakerbox";
const USER_PASSWORD: &str = "fleet-secret";

/// The ACL rules of the fleet's user, after `ACL SETUSER breakerbox >PASSWORD`:
/// its keys and channels only, and only the commands it sends (`EVALSHA`,
/// `SCRIPT LOAD` after a `NOSCRIPT`, `SUBSCRIBE`/`UNSUBSCRIBE`) or its script
/// calls (`TIME`, `HMGET`, `HSET`, `PUBLISH`). The README shows this line.
const ACL_RULES: &str = "on resetkeys ~breakerbox:* resetchannels &breakerbox:* -@all +evalsha +script|load +time +hmget +hset +publish +subscribe +unsubscribe";

fn admin(server: &PrivateServer) -> redis::Connection {
    client(&format!("redis://:{ADMIN_PASSWORD}@127.0.0.1:{}/", server.port))
}

fn password_server() -> PrivateServer {
    PrivateServer::start_with(&["--requirepass", ADMIN_PASSWORD])
}

fn fleet(url: &str, ns: &str, seen: &Arc<Seen>) -> breakerbox::CircuitBreaker {
    fleet_breaker(RedisState::connect(url).unwrap().namespace(ns), seen)
}

#[test]
fn a_password_protected_redis_keeps_the_fleet_guarantees() {
    let server = password_server();
    let url = format!("redis://:{ADMIN_PASSWORD}@127.0.0.1:{}/", server.port);
    let ns = unique_namespace("auth-password");
    let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let (a, b) = (fleet(&url, &ns, &seen_a), fleet(&url, &ns, &seen_b));
    assert_fleet_guarantees(&a, &b);
    assert_eq!(seen_a.storage_error_count() + seen_b.storage_error_count(), 0);
}

#[test]
fn an_acl_user_with_only_the_protocols_commands_keeps_the_fleet_guarantees() {
    let server = password_server();
    let mut admin = admin(&server);
    let _: String = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(USER)
        .arg(format!(">{USER_PASSWORD}"))
        .arg(ACL_RULES.split(' ').collect::<Vec<_>>())
        .query(&mut admin)
        .expect("ACL SETUSER");
    let url = format!("redis://{USER}:{USER_PASSWORD}@127.0.0.1:{}/", server.port);
    let ns = unique_namespace("auth-acl");
    let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let (a, b) = (fleet(&url, &ns, &seen_a), fleet(&url, &ns, &seen_b));
    // A server that lost its script cache: the user's SCRIPT LOAD is needed.
    let _: String = redis::cmd("SCRIPT").arg("FLUSH").query(&mut admin).unwrap();
    assert_fleet_guarantees(&a, &b);
    assert_eq!(
        seen_a.storage_error_count() + seen_b.storage_error_count(),
        0,
        "every command the fleet sent was allowed: {:?} {:?}",
        seen_a.storage_errors.lock().unwrap(),
        seen_b.storage_errors.lock().unwrap()
    );

    // And nothing beyond: other commands, keys and channels are refused.
    let mut user = client(&url);
    let denied = |c: &mut redis::Cmd, user: &mut redis::Connection| {
        let e = c.query::<redis::Value>(user).expect_err("refused");
        assert!(e.to_string().contains("NOPERM"), "{e}");
    };
    denied(
        redis::cmd("GET").arg(format!("breakerbox:{{{ns}}}:state")),
        &mut user,
    );
    denied(
        redis::cmd("DEL").arg(format!("breakerbox:{{{ns}}}:state")),
        &mut user,
    );
    denied(redis::cmd("HGETALL").arg("other:key"), &mut user);
    denied(redis::cmd("PUBLISH").arg("other-channel").arg("x"), &mut user);
    denied(&mut redis::cmd("FLUSHALL"), &mut user);
    denied(redis::cmd("CONFIG").arg("GET").arg("*"), &mut user);
    denied(redis::cmd("EVAL").arg("return 1").arg(0), &mut user);
}

#[test]
fn the_readme_documents_the_acl_line_the_test_uses() {
    let readme = include_str!("../README.md");
    assert!(
        readme.contains(&format!("ACL SETUSER breakerbox >PASSWORD {ACL_RULES}")),
        "README.md must show the ACL line this suite tests"
    );
}

#[test]
fn a_wrong_password_is_a_reported_fault_never_a_hang() {
    let server = password_server();
    let url = format!("redis://:wrong@127.0.0.1:{}/", server.port);
    let seen = Arc::new(Seen::default());
    let start = Instant::now();
    let b = fleet(&url, &unique_namespace("auth-wrong"), &seen);
    assert!(
        start.elapsed() < DEFAULT_COMMAND_TIMEOUT + Duration::from_millis(400),
        "building took {:?}",
        start.elapsed()
    );
    // The default policy decides locally: calls flow, failures count, it trips.
    for _ in 0..FAIL_MAX {
        let start = Instant::now();
        let _ = b.try_acquire().unwrap().failure();
        assert!(start.elapsed() < DEFAULT_COMMAND_TIMEOUT + Duration::from_millis(250));
    }
    assert_eq!(b.state(), breakerbox::State::Open);
    assert!(seen.storage_error_count() >= 1, "the refused AUTH was reported");
    assert!(
        seen.storage_errors
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("WRONGPASS") || e.contains("auth")),
        "{:?}",
        seen.storage_errors.lock().unwrap()
    );
}
