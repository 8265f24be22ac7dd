//! The tower layer in a real `tower::ServiceBuilder` stack.

use axum::http::{Response, StatusCode};
use breakerbox::clock::ManualClock;
use breakerbox::tower::{CircuitBreakerLayer, ServiceError};
use breakerbox::{CircuitBreaker, Outcome, State};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::util::BoxCloneService;
use tower::{service_fn, BoxError, Service, ServiceBuilder, ServiceExt};

const RESET: Duration = Duration::from_secs(10);

fn breaker(clock: &ManualClock) -> Arc<CircuitBreaker> {
    Arc::new(
        CircuitBreaker::builder()
            .name("upstream")
            .fail_max(3)
            .reset_timeout(RESET)
            .clock(clock.clone())
            .build()
            .unwrap(),
    )
}

fn http_classifier(r: &Response<String>) -> Outcome {
    if r.status().is_server_error() {
        Outcome::Failure
    } else {
        Outcome::Success
    }
}

/// An upstream that answers each request with the status the test scripted
/// for it, and counts the requests that reached it.
#[derive(Clone, Default)]
struct Upstream {
    statuses: Arc<Mutex<Vec<u16>>>,
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    fn script(&self, statuses: &[u16]) {
        let mut s = self.statuses.lock().unwrap();
        s.clear();
        s.extend(statuses.iter().rev());
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn service(&self) -> BoxCloneService<String, Response<String>, Infallible> {
        let up = self.clone();
        service_fn(move |path: String| {
            let up = up.clone();
            async move {
                up.hits.fetch_add(1, Ordering::SeqCst);
                let status = up.statuses.lock().unwrap().pop().unwrap_or(200);
                let mut response = Response::new(format!("{path}: {status}"));
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                Ok::<_, Infallible>(response)
            }
        })
        .boxed_clone()
    }
}

#[tokio::test]
async fn server_errors_trip_client_errors_do_not_and_rejections_never_reach_the_service() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    let up = Upstream::default();
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(Arc::clone(&b)).classify_response(http_classifier))
        .service(up.service());

    // 4xx answers are the caller's fault: they count as successes.
    up.script(&[500, 404, 500, 500, 400]);
    for expected in [500, 404, 500, 500, 400] {
        let r = svc.ready().await.unwrap().call("/a".to_owned()).await.unwrap();
        assert_eq!(r.status().as_u16(), expected);
    }
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.fail_counter(), 0, "the 400 reset the count");

    up.script(&[503, 502, 500]);
    for _ in 0..3 {
        svc.ready().await.unwrap().call("/a".to_owned()).await.unwrap();
    }
    assert_eq!(b.state(), State::Open, "three consecutive 5xx trip fail_max 3");
    assert_eq!(up.hits(), 8);

    let err = svc
        .ready()
        .await
        .unwrap()
        .call("/a".to_owned())
        .await
        .unwrap_err();
    match err {
        ServiceError::Rejected(r) => assert_eq!(r.state, State::Open),
        ServiceError::Inner(e) => match e {},
    }
    assert_eq!(up.hits(), 8, "a rejected request never reaches the inner service");

    // After the reset timeout one probe goes through; a 200 closes.
    clock.advance(RESET);
    let r = svc.ready().await.unwrap().call("/a".to_owned()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(up.hits(), 9);
}

#[tokio::test]
async fn poll_ready_reserves_no_probe() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    b.open();
    clock.advance(RESET);
    let up = Upstream::default();
    let layer = CircuitBreakerLayer::new(Arc::clone(&b)).classify_response(http_classifier);
    let stack = ServiceBuilder::new().layer(layer).service(up.service());

    // Many clones made ready: none of them holds the single probe slot.
    let mut ready: Vec<_> = Vec::new();
    for _ in 0..4 {
        let mut s = stack.clone();
        s.ready().await.unwrap();
        ready.push(s);
    }
    assert_eq!(
        b.state(),
        State::Open,
        "readiness alone does not even half-open it"
    );
    assert_eq!(b.probes_in_flight(), 0);

    // The first call takes the probe; the others are rejected while it runs.
    let probe = ready[0].call("/probe".to_owned());
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.probes_in_flight(), 1);
    for s in &mut ready[1..] {
        assert!(s.call("/other".to_owned()).await.unwrap_err().is_rejected());
    }
    assert_eq!(probe.await.unwrap().status(), StatusCode::OK);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(up.hits(), 1);
}

#[derive(Debug)]
enum UpstreamError {
    Timeout,
    BadRequest,
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for UpstreamError {}

#[tokio::test]
async fn inner_errors_use_the_breakers_predicates_and_stay_distinguishable() {
    let clock = ManualClock::new();
    let b = Arc::new(
        CircuitBreaker::builder()
            .name("grpc")
            .fail_max(2)
            .clock(clock.clone())
            .exclude(|e: &UpstreamError| matches!(e, UpstreamError::BadRequest))
            .build()
            .unwrap(),
    );
    let outcomes = Arc::new(Mutex::new(vec![
        Err(UpstreamError::Timeout),
        Err(UpstreamError::BadRequest),
        Err(UpstreamError::Timeout),
        Err(UpstreamError::Timeout),
    ]));
    let inner = service_fn(move |_: ()| {
        let next = outcomes.lock().unwrap().remove(0);
        async move { next.map(|()| "ok") }
    });
    // Boxed errors, as most tower stacks have them: still told apart by downcast.
    let mut svc = ServiceBuilder::new()
        .map_err(BoxError::from)
        .layer(CircuitBreakerLayer::new(Arc::clone(&b)))
        .service(inner);

    let mut inner_errors = Vec::new();
    for _ in 0..4 {
        let e = svc.ready().await.unwrap().call(()).await.unwrap_err();
        let e = e.downcast::<ServiceError<UpstreamError>>().unwrap();
        inner_errors.push(e.into_inner().unwrap().to_string());
    }
    assert_eq!(inner_errors, ["Timeout", "BadRequest", "Timeout", "Timeout"]);
    assert_eq!(
        b.state(),
        State::Open,
        "the excluded BadRequest broke the streak, then two timeouts"
    );

    let e = svc.ready().await.unwrap().call(()).await.unwrap_err();
    let e = e.downcast::<ServiceError<UpstreamError>>().unwrap();
    assert!(e.is_rejected());
    assert_eq!(e.to_string(), "circuit breaker 'grpc' is open: call rejected");
}

#[tokio::test]
async fn a_dropped_response_future_is_ignored_by_default_and_configurable() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    let hang = service_fn(|_: ()| std::future::pending::<Result<(), Infallible>>());

    // Half-open: a request abandoned by a timeout frees the probe slot.
    b.open();
    clock.advance(RESET);
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(Arc::clone(&b)))
        .service(hang);
    let call = svc.ready().await.unwrap().call(());
    assert_eq!(b.probes_in_flight(), 1);
    assert!(tokio::time::timeout(Duration::from_millis(5), call)
        .await
        .is_err());
    assert_eq!(b.probes_in_flight(), 0);
    assert_eq!(b.state(), State::HalfOpen);

    // Counted as a failure when asked: the abandoned probe re-opens it.
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(Arc::clone(&b)).on_cancel(Outcome::Failure))
        .service(hang);
    let call = svc.ready().await.unwrap().call(());
    assert!(tokio::time::timeout(Duration::from_millis(5), call)
        .await
        .is_err());
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_breaker_serves_concurrent_requests() {
    static BREAKER: std::sync::OnceLock<CircuitBreaker> = std::sync::OnceLock::new();
    let b: &'static CircuitBreaker =
        BREAKER.get_or_init(|| CircuitBreaker::builder().name("static").build().unwrap());
    let up = Upstream::default();
    let svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(b).classify_response(http_classifier))
        .service(up.service());

    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { svc.oneshot("/x".to_owned()).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    assert_eq!(up.hits(), 32);
    assert_eq!(b.state(), State::Closed);
}

/// The layer times each call itself (from `call` to its response) when the
/// breaker has slow calls configured.
#[tokio::test]
async fn the_layer_times_calls_for_the_slow_call_rate() {
    let clock = ManualClock::new();
    let b = Arc::new(
        CircuitBreaker::builder()
            .count_window(10)
            .minimum_calls(2)
            .slow_call_duration(Duration::from_millis(100))
            .slow_call_rate_threshold(100.0)
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let slow = {
        let clock = clock.clone();
        service_fn(move |_: ()| {
            let clock = clock.clone();
            async move {
                clock.advance(Duration::from_millis(150));
                Ok::<_, Infallible>(())
            }
        })
    };
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(Arc::clone(&b)))
        .service(slow);
    svc.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(b.state(), State::Closed, "one slow call: below the minimum");
    svc.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(b.state(), State::Open, "two slow calls of two trip it");
}
