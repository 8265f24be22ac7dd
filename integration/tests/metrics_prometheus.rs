//! A real Prometheus scrape over loopback. The exporter installs the global
//! recorder, which a process can do once: this binary holds this one test.

use breakerbox::clock::ManualClock;
use breakerbox::metrics::MetricsListener;
use breakerbox::{CircuitBreaker, State};
use metrics_exporter_prometheus::PrometheusBuilder;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET /metrics with a plain socket; retries while the listener starts.
fn scrape(addr: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        })();
        match attempt {
            Ok(response) if response.starts_with("HTTP/1.1 200") => return response,
            other if Instant::now() > deadline => panic!("no metrics at {addr}: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The value of the sample `series` (name and labels exactly as exposed).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
}

#[test]
fn prometheus_scrape_shows_every_series_of_every_breaker() {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .expect("install the Prometheus exporter");
    MetricsListener::describe();

    let clock = ManualClock::new();
    let payments = CircuitBreaker::builder()
        .name("payments")
        .fail_max(3)
        .reset_timeout(Duration::from_secs(10))
        .clock(clock.clone())
        .listener(MetricsListener::new())
        .build()
        .unwrap();
    let search = CircuitBreaker::builder()
        .name("search")
        .listener(MetricsListener::new())
        .build()
        .unwrap();

    for _ in 0..4 {
        payments.call(|| Ok::<_, &str>(())).unwrap();
    }
    for _ in 0..3 {
        let _ = payments.call(|| Err::<(), _>("503"));
    }
    assert_eq!(payments.state(), State::Open);
    for _ in 0..5 {
        assert!(payments.call(|| Ok::<_, &str>(())).is_err());
    }
    payments.try_acquire().expect_err("still open");
    search.call(|| Ok::<_, &str>(())).unwrap();
    let permit = search.try_acquire().unwrap();
    let _ = permit.ignore();

    let body = scrape(addr);
    let p = |series: &str| sample(&body, series);
    assert_eq!(
        p(r#"breakerbox_successes_total{breaker="payments"}"#),
        Some(4.0),
        "{body}"
    );
    assert_eq!(
        p(r#"breakerbox_failures_total{breaker="payments"}"#),
        Some(3.0),
        "{body}"
    );
    assert_eq!(
        p(r#"breakerbox_rejections_total{breaker="payments"}"#),
        Some(6.0),
        "{body}"
    );
    assert_eq!(
        p(r#"breakerbox_transitions_total{breaker="payments",from="closed",to="open"}"#),
        Some(1.0),
        "{body}"
    );
    assert_eq!(p(r#"breakerbox_state{breaker="payments"}"#), Some(1.0), "{body}");
    assert_eq!(
        p(r#"breakerbox_successes_total{breaker="search"}"#),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        p(r#"breakerbox_ignored_total{breaker="search"}"#),
        Some(1.0),
        "{body}"
    );
    assert_eq!(p(r#"breakerbox_state{breaker="search"}"#), Some(0.0), "{body}");
    assert!(
        body.contains("# HELP breakerbox_state"),
        "descriptions are exported: {body}"
    );

    // The probe after the reset timeout closes it; the next scrape sees it.
    clock.advance(Duration::from_secs(10));
    payments.call(|| Ok::<_, &str>(())).unwrap();
    let body = scrape(addr);
    let p = |series: &str| sample(&body, series);
    assert_eq!(p(r#"breakerbox_state{breaker="payments"}"#), Some(0.0), "{body}");
    assert_eq!(
        p(r#"breakerbox_transitions_total{breaker="payments",from="half-open",to="closed"}"#),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        p(r#"breakerbox_successes_total{breaker="payments"}"#),
        Some(5.0),
        "{body}"
    );
}
