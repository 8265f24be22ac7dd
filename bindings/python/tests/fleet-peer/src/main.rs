//! One Rust process of a fleet breaker, driven line by line on stdin by the
//! Python cross-language test (`bindings/python/tests/test_redis.py`).
//!
//! `fleet-peer URL NAMESPACE FAIL_MAX RESET_MS HALF_OPEN_MAX_CALLS REFRESH_MS COMMAND_MS`, then commands:
//! `acquire` (prints `probe`, `closed` or `rejected`, and holds the permit),
//! `release` (records the held permit as a success, prints `ok`),
//! `trip` (records failures until the fleet is open, prints the state),
//! `state` (prints the state), `quit`.

use breakerbox::redis::RedisState;
use breakerbox::{CircuitBreaker, Outcome, Ticket};
use std::io::{BufRead, Write};
use std::time::Duration;

fn arg(args: &[String], i: usize, what: &str) -> u64 {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("argument {i} ({what}) must be a number"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert!(
        args.len() == 8,
        "usage: fleet-peer URL NAMESPACE FAIL_MAX RESET_MS HALF_OPEN_MAX_CALLS REFRESH_MS COMMAND_MS"
    );
    let state = RedisState::connect(&args[1])
        .expect("a Redis URL")
        .namespace(args[2].clone())
        .refresh_interval(Duration::from_millis(arg(&args, 6, "REFRESH_MS")))
        .command_timeout(Duration::from_millis(arg(&args, 7, "COMMAND_MS")));
    let breaker = CircuitBreaker::builder()
        .name("fleet-peer")
        .fail_max(arg(&args, 3, "FAIL_MAX") as u32)
        .reset_timeout(Duration::from_millis(arg(&args, 4, "RESET_MS")))
        .half_open_max_calls(arg(&args, 5, "HALF_OPEN_MAX_CALLS") as u32)
        .shared(state)
        .build()
        .expect("a valid configuration");
    let mut held: Option<Ticket> = None;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let reply = match line.trim() {
            "acquire" => match breaker.acquire_ticket() {
                Ok(ticket) => {
                    let kind = if ticket.is_probe() { "probe" } else { "closed" };
                    held = Some(ticket);
                    kind.to_owned()
                }
                Err(_) => "rejected".to_owned(),
            },
            "release" => {
                if let Some(ticket) = held.take() {
                    let _ = breaker.record(ticket, Outcome::Success);
                }
                "ok".to_owned()
            }
            "trip" => {
                for _ in 0..breaker.fail_max() {
                    if let Ok(ticket) = breaker.acquire_ticket() {
                        let _ = breaker.record(ticket, Outcome::Failure);
                    }
                }
                breaker.state().to_string()
            }
            "state" => breaker.state().to_string(),
            "quit" => break,
            other => format!("unknown command {other:?}"),
        };
        writeln!(out, "{reply}").expect("stdout");
        out.flush().expect("stdout");
    }
}
