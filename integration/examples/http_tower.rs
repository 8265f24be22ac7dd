//! A real HTTP client protected by the tower layer, against a local server
//! that starts failing and later recovers.
//!
//! ```sh
//! cargo run --example http_tower --features tower
//! ```

use axum::body::Bytes;
use axum::http::{Request, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use breakerbox::tower::{CircuitBreakerLayer, ServiceError};
use breakerbox::{CircuitBreaker, Outcome, State};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::{ServiceBuilder, ServiceExt};

/// The upstream: answers 200, or 503 while `failing` is set; counts hits.
#[derive(Clone, Default)]
struct Upstream {
    failing: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

async fn quote(axum::extract::State(up): axum::extract::State<Upstream>) -> (StatusCode, &'static str) {
    up.hits.fetch_add(1, Ordering::SeqCst);
    if up.failing.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
    } else {
        (StatusCode::OK, "the quote of the day")
    }
}

/// HTTP 5xx is the upstream's failure; anything else (4xx included) means
/// it answered.
fn classify(response: &Response<Incoming>) -> Outcome {
    if response.status().is_server_error() {
        Outcome::Failure
    } else {
        Outcome::Success
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // The server, on a free loopback port.
    let upstream = Upstream::default();
    let app = Router::new()
        .route("/quote", get(quote))
        .with_state(upstream.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/quote", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The client: hyper's pooled client, behind the breaker.
    let reset = Duration::from_millis(300);
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .name("quotes")
            .fail_max(3)
            .reset_timeout(reset)
            .on_state_change(|name, from, to| println!("   [{name}] {from} -> {to}"))
            .build()?,
    );
    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let client = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(Arc::clone(&breaker)).classify_response(classify))
        .service(http);

    let get = |url: String| {
        let request = Request::get(url).body(Empty::new()).expect("a valid request");
        // `oneshot` waits for readiness, then calls.
        let call = client.clone().oneshot(request);
        async move {
            match call.await {
                Ok(response) => {
                    let status = response.status();
                    let body = response.into_body().collect().await?.to_bytes();
                    Ok(format!("{status} {}", String::from_utf8_lossy(&body)))
                }
                Err(ServiceError::Rejected(r)) => Ok(format!("rejected locally ({r})")),
                Err(ServiceError::Inner(e)) => Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
            }
        }
    };

    println!("1. The upstream is healthy:");
    for _ in 0..2 {
        println!("   GET /quote -> {}", get(url.clone()).await?);
    }
    assert_eq!(breaker.state(), State::Closed);

    println!("2. The upstream starts answering 503:");
    upstream.failing.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        println!("   GET /quote -> {}", get(url.clone()).await?);
    }
    assert_eq!(
        breaker.state(),
        State::Open,
        "three 5xx in a row trip the breaker"
    );

    println!("3. While open, requests fail fast and never reach the upstream:");
    let hits = upstream.hits.load(Ordering::SeqCst);
    for _ in 0..3 {
        let answer = get(url.clone()).await?;
        assert!(answer.starts_with("rejected locally"), "{answer}");
        println!("   GET /quote -> {answer}");
    }
    assert_eq!(upstream.hits.load(Ordering::SeqCst), hits);

    println!("4. The upstream recovers; after the reset timeout one probe goes through:");
    upstream.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(reset + Duration::from_millis(50)).await;
    println!("   GET /quote -> {}", get(url.clone()).await?);
    assert_eq!(breaker.state(), State::Closed);
    println!("   GET /quote -> {}", get(url.clone()).await?);
    assert_eq!(upstream.hits.load(Ordering::SeqCst), hits + 2);

    println!("Done: the breaker is {}.", breaker.state());
    Ok(())
}
