//! Breaker metrics served to Prometheus at `/metrics`.
//!
//! ```sh
//! cargo run -p breakerbox-integration --example metrics_prometheus                  # 127.0.0.1:9000, until Ctrl-C
//! cargo run -p breakerbox-integration --example metrics_prometheus -- 127.0.0.1:9100
//! cargo run -p breakerbox-integration --example metrics_prometheus -- --once        # the test run
//! ```
//!
//! It serves until interrupted, keeping a flaky dependency busy, so
//! `curl http://127.0.0.1:9000/metrics` shows the series move. With `--once`
//! (on a free loopback port unless one is given) it makes one round of
//! calls, scrapes itself once, checks the series and exits.

use breakerbox::metrics::MetricsListener;
use breakerbox::Registry;
use metrics_exporter_prometheus::PrometheusBuilder;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let once = args.iter().any(|a| a == "--once");
    if let Some(unknown) = args.iter().find(|a| a.starts_with("--") && *a != "--once") {
        return Err(format!("unknown option {unknown}: the options are [ADDR] [--once]").into());
    }
    let addr: SocketAddr = match args.iter().find(|a| !a.starts_with("--")) {
        Some(addr) => addr
            .parse()
            .map_err(|e| format!("ADDR {addr:?} is not host:port: {e}"))?,
        // A free loopback port, so test runs never collide.
        None if once => TcpListener::bind("127.0.0.1:0")?.local_addr()?,
        None => SocketAddr::from(([127, 0, 0, 1], 9000)),
    };

    PrometheusBuilder::new().with_http_listener(addr).install()?;
    MetricsListener::describe();

    // One breaker per dependency, each with its own metrics listener.
    let registry = Registry::new(|b| {
        b.fail_max(3)
            .reset_timeout(Duration::from_millis(200))
            .listener(MetricsListener::new().label("service", "checkout"))
    });
    let payments = registry.get_or_create("payments")?;
    let inventory = registry.get_or_create("inventory")?;

    let round = || {
        for i in 0..10 {
            // Payments mostly times out (and trips); inventory is healthy.
            let _ = payments.call(|| if i % 5 == 4 { Ok(()) } else { Err("timeout") });
            let _ = inventory.call(|| Ok::<_, &str>(()));
        }
    };
    round();
    if !once {
        println!("serving http://{addr}/metrics until interrupted (Ctrl-C)");
        loop {
            std::thread::sleep(Duration::from_millis(100));
            round();
        }
    }

    // --once: one scrape, checked.
    for status in registry.statuses() {
        println!("{}: {}", status.name, status.state);
    }
    let body = scrape(addr)?;
    println!("GET http://{addr}/metrics:");
    for line in body.lines().filter(|l| l.contains("breakerbox_")) {
        println!("  {line}");
    }
    for expected in [
        r#"breakerbox_successes_total{breaker="inventory",service="checkout"} 10"#,
        r#"breakerbox_failures_total{breaker="payments",service="checkout"} 3"#,
        r#"breakerbox_rejections_total{breaker="payments",service="checkout"} 7"#,
        r#"breakerbox_state{breaker="payments",service="checkout"} 1"#,
    ] {
        if !body.lines().any(|l| l == expected) {
            return Err(format!("{expected:?} missing from the scrape:\n{body}").into());
        }
    }
    Ok(())
}

/// A plain HTTP GET over loopback; retries while the exporter starts.
fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut last_error = None;
    for _ in 0..100 {
        let attempt = TcpStream::connect(addr).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        });
        match attempt {
            Ok(body) => return Ok(body),
            Err(e) => last_error = Some(e),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(last_error.expect("at least one attempt"))
}
