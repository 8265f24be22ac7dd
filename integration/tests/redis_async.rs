//! A shared breaker on a `current_thread` tokio runtime never blocks the
//! executor: while an async call (or a tower request) waits on a slow Redis
//! round trip, another task on the same thread keeps running. Redis is the
//! one `scripts/test-redis.sh` starts (`BREAKERBOX_REDIS_URL`), reached
//! through the suites' fault-injecting proxy, which makes each round trip
//! slow.
#![cfg(feature = "redis")]

#[path = "../../tests/redis_support/proxy.rs"]
#[allow(dead_code)]
mod proxy;

use breakerbox::redis::{FaultPolicy, RedisState};
use breakerbox::tower::CircuitBreakerLayer;
use breakerbox::{CircuitBreaker, Error, Outcome, State};
use proxy::{Fault, Proxy};
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tower::{service_fn, Layer, Service, ServiceExt};

/// 100 ms each way: every round trip takes at least 200 ms.
const LATENCY: Duration = Duration::from_millis(100);
const ROUND_TRIP: Duration = Duration::from_millis(200);
const RESET: Duration = Duration::from_millis(300);

fn upstream() -> SocketAddr {
    let url = std::env::var("BREAKERBOX_REDIS_URL").unwrap_or_else(|_| {
        panic!("BREAKERBOX_REDIS_URL is not set: run these tests with scripts/test-redis.sh")
    });
    let authority = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    authority
        .to_socket_addrs()
        .unwrap()
        .next()
        .expect("the test Redis's address")
}

fn namespace(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// A shared breaker behind `proxy` that trips at its first failure; the
/// proxy passes while it is built, so its first sync is quick.
fn breaker(proxy: &Proxy, prefix: &str, command_timeout: Duration) -> Arc<CircuitBreaker> {
    let breaker = CircuitBreaker::builder()
        .fail_max(1)
        .reset_timeout(RESET)
        .shared(
            RedisState::connect(&proxy.url())
                .unwrap()
                .namespace(namespace(prefix))
                .policy(FaultPolicy::Local)
                .command_timeout(command_timeout)
                .connect_timeout(command_timeout)
                .require_reachable(),
        )
        .build()
        .unwrap();
    Arc::new(breaker)
}

/// A task that counts its turns on the executor, one per millisecond.
fn ticker() -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let ticks = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&ticks);
    let handle = tokio::spawn(async move {
        loop {
            counted.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    (ticks, handle)
}

/// Awaits `fut` and returns its output with the ticker's turns meanwhile
/// and the time it took.
async fn ticking<F: Future>(ticks: &AtomicU64, fut: F) -> (F::Output, u64, Duration) {
    let (before, start) = (ticks.load(Ordering::Relaxed), Instant::now());
    let output = fut.await;
    let took = start.elapsed();
    (output, ticks.load(Ordering::Relaxed) - before, took)
}

/// The other task ran while the call waited on Redis: on a blocked thread
/// it cannot run at all.
fn assert_kept_ticking(what: &str, turns: u64, took: Duration) {
    eprintln!("{what}: {took:?}, {turns} turns of the other task meanwhile");
    assert!(
        took >= ROUND_TRIP,
        "{what} took {took:?}: it did not go to Redis through the slow link"
    );
    assert!(
        turns >= 5,
        "{what}: the other task ran {turns} times in {took:?}: the executor's thread was blocked"
    );
}

/// Waits (on the server's clock, which times the fleet) until the reset
/// timeout of an open breaker has surely passed.
async fn past_reset_timeout() {
    tokio::time::sleep(RESET + Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_async_call_waiting_on_a_slow_round_trip_lets_another_task_run() {
    let proxy = Proxy::start(upstream(), 7);
    let b = breaker(&proxy, "async-slow", Duration::from_secs(5));
    let (ticks, ticker) = ticker();
    proxy.set(Fault::Latency(LATENCY));

    // A failure goes to Redis; its output waits for the fleet's answer, so
    // `tripped` says what the fleet did.
    let (out, turns, took) = ticking(
        &ticks,
        b.call_async(|| async { Err::<(), _>(std::io::Error::other("down")) }),
    )
    .await;
    assert!(matches!(out, Err(Error::Failed { tripped: true, .. })), "{out:?}");
    assert_kept_ticking("a failure's record", turns, took);
    assert_eq!(b.state(), State::Open);

    // Past the reset timeout the next call is the fleet's probe: its
    // admission (open to half-open) and its outcome each take a round trip.
    past_reset_timeout().await;
    let (out, turns, took) = ticking(
        &ticks,
        b.call_async_owned(|| async { Ok::<_, std::io::Error>(7) }),
    )
    .await;
    assert_eq!(out.unwrap(), 7);
    assert_kept_ticking("a probe's admission and outcome", turns, took);
    assert!(took >= 2 * ROUND_TRIP, "two round trips: {took:?}");
    assert_eq!(b.state(), State::Closed, "the probe closed the fleet");
    ticker.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn a_round_trip_that_never_comes_ends_at_the_command_timeout_and_wakes_the_call() {
    let proxy = Proxy::start(upstream(), 8);
    let timeout = Duration::from_millis(300);
    let b = breaker(&proxy, "async-cut", timeout);
    let (ticks, ticker) = ticker();
    // Nothing crosses: the reply never comes. The call is woken when the
    // command timeout ends the exchange, and decides by its policy (Local:
    // the failure counts on the mirror and trips it).
    // A view read before the cut that comes late (an announcement waiting
    // in the socket) is older than the trip: it leaves the mirror open.
    proxy.set(Fault::CutOff);
    let call = b.call_async(|| async { Err::<(), _>(std::io::Error::other("down")) });
    let (out, turns, took) = ticking(&ticks, tokio::time::timeout(Duration::from_secs(5), call)).await;
    let out = out.expect("the call was woken and resolved");
    assert!(matches!(out, Err(Error::Failed { tripped: true, .. })), "{out:?}");
    assert!(took >= timeout && took < Duration::from_secs(2), "{took:?}");
    assert!(turns >= 5, "the other task ran {turns} times in {took:?}");
    assert_eq!(b.state(), State::Open);
    assert!(!b.storage_health().unwrap().reachable);
    ticker.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn a_probe_dropped_while_it_runs_frees_its_slot_without_waiting_on_redis() {
    let proxy = Proxy::start(upstream(), 9);
    let b = breaker(&proxy, "async-drop", Duration::from_secs(5));
    let _ = b.call(|| Err::<(), _>("down"));
    assert_eq!(b.state(), State::Open);
    past_reset_timeout().await;
    proxy.set(Fault::Latency(LATENCY));
    let (ticks, ticker) = ticker();

    // Admitted (a round trip), then cancelled while the protected future runs.
    let mut call = Box::pin(b.call_async_owned(std::future::pending::<Result<(), std::io::Error>>));
    let admitted = tokio::time::timeout(Duration::from_secs(5), async {
        while !call.is_admitted() {
            tokio::select! {
                biased;
                _ = call.as_mut() => unreachable!("never finishes"),
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    })
    .await;
    assert!(admitted.is_ok(), "the probe was admitted");
    assert_eq!(b.probes_in_flight(), 1);
    // The cancellation's record (ignored) is handed off, not waited for.
    let start = Instant::now();
    drop(call);
    let dropped_in = start.elapsed();
    assert!(
        dropped_in < ROUND_TRIP,
        "the drop waited on Redis: {dropped_in:?}"
    );
    let before = ticks.load(Ordering::Relaxed);
    // The slot is free fleet-wide: the next call is admitted as a probe.
    let mut freed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if b.probes_in_flight() == 0 {
            freed = true;
            break;
        }
    }
    assert!(freed, "the cancelled probe's slot came back");
    assert!(ticks.load(Ordering::Relaxed) > before);
    let out = b.call_async(|| async { Ok::<_, std::io::Error>(()) }).await;
    assert!(out.is_ok(), "{out:?}");
    assert_eq!(b.state(), State::Closed);
    ticker.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn the_tower_layer_waiting_on_a_slow_round_trip_lets_another_task_run() {
    let proxy = Proxy::start(upstream(), 10);
    let b = breaker(&proxy, "tower-slow", Duration::from_secs(5));
    let (ticks, ticker) = ticker();
    let failing = Arc::new(AtomicU64::new(1));
    let inner = {
        let failing = Arc::clone(&failing);
        service_fn(move |n: u32| {
            let fail = failing.load(Ordering::SeqCst) == 1;
            async move {
                match fail {
                    true => Err(std::io::Error::other("down")),
                    false => Ok(n * 2),
                }
            }
        })
    };
    let mut svc = CircuitBreakerLayer::new(Arc::clone(&b))
        .on_cancel(Outcome::Ignored)
        .layer(inner);
    proxy.set(Fault::Latency(LATENCY));

    // The failure's record goes to Redis while the other task runs.
    let (out, turns, took) = ticking(&ticks, svc.ready().await.unwrap().call(1)).await;
    assert!(out.unwrap_err().into_inner().is_some());
    assert_kept_ticking("a tower failure's record", turns, took);
    assert_eq!(b.state(), State::Open);

    // The probe's admission is asked for when the service is polled ready;
    // it too waits on Redis without blocking the thread.
    past_reset_timeout().await;
    failing.store(0, Ordering::SeqCst);
    let (ready, turns, took) = ticking(&ticks, svc.ready()).await;
    assert!(ready.is_ok());
    assert_kept_ticking("a tower probe's admission", turns, took);
    let (out, turns, took) = ticking(&ticks, svc.call(21)).await;
    assert_eq!(out.unwrap(), 42);
    assert_kept_ticking("a tower probe's outcome", turns, took);
    assert_eq!(b.state(), State::Closed);
    ticker.abort();
}

/// Two processes' breakers on one namespace (one behind the slow link,
/// one direct: two URLs are two connection sets).
fn fleet_pair(proxy: &Proxy, prefix: &str) -> (Arc<CircuitBreaker>, Arc<CircuitBreaker>) {
    let ns = namespace(prefix);
    let direct = format!("redis://{}/", upstream());
    let build = |url: &str| {
        let b = CircuitBreaker::builder()
            .fail_max(3)
            .half_open_max_calls(2)
            .reset_timeout(RESET)
            .shared(
                RedisState::connect(url)
                    .unwrap()
                    .namespace(&ns)
                    .command_timeout(Duration::from_secs(5))
                    .require_reachable(),
            )
            .build()
            .unwrap();
        Arc::new(b)
    };
    (build(&proxy.url()), build(&direct))
}

#[tokio::test(flavor = "current_thread")]
async fn async_calls_racing_on_one_thread_keep_the_fleet_exact() {
    let proxy = Proxy::start(upstream(), 11);
    let (a, b) = fleet_pair(&proxy, "async-race");
    proxy.set(Fault::Latency(Duration::from_millis(20)));
    const TASKS: usize = 8;

    // Failures from both processes at once: the fleet trips exactly once.
    let mut failing = tokio::task::JoinSet::new();
    for i in 0..2 * TASKS {
        let breaker = Arc::clone(if i % 2 == 0 { &a } else { &b });
        failing.spawn(breaker.call_async_owned(|| async { Err::<(), _>(std::io::Error::other("down")) }));
    }
    let mut trips = 0;
    while let Some(out) = failing.join_next().await {
        match out.unwrap() {
            Err(Error::Failed { tripped, .. }) => trips += usize::from(tripped),
            other => assert!(matches!(other, Err(Error::Rejected(_))), "{other:?}"),
        }
    }
    assert_eq!(trips, 1, "one trip, reported once");

    // Past the reset timeout: exactly two probes fleet-wide.
    past_reset_timeout().await;
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (admitted, rejected) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut probes = tokio::task::JoinSet::new();
    for i in 0..2 * TASKS {
        let breaker = Arc::clone(if i % 2 == 0 { &a } else { &b });
        let (release, admitted, rejected) =
            (Arc::clone(&release), Arc::clone(&admitted), Arc::clone(&rejected));
        probes.spawn(async move {
            let call = breaker.call_async_owned(move || async move {
                admitted.fetch_add(1, Ordering::SeqCst);
                let _permit = release.acquire().await.unwrap();
                Ok::<_, std::io::Error>(())
            });
            let out = call.await;
            if matches!(out, Err(Error::Rejected(_))) {
                rejected.fetch_add(1, Ordering::SeqCst);
            }
            out
        });
    }
    let decided = tokio::time::timeout(Duration::from_secs(10), async {
        while admitted.load(Ordering::SeqCst) + rejected.load(Ordering::SeqCst) < 2 * TASKS as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(decided.is_ok(), "every call was decided");
    assert_eq!(
        admitted.load(Ordering::SeqCst),
        2,
        "exactly half_open_max_calls probes fleet-wide"
    );
    release.add_permits(2 * TASKS);
    while let Some(out) = probes.join_next().await {
        let _ = out.unwrap();
    }
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while a.state() != State::Closed || b.state() != State::Closed {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the probes closed the fleet: {:?} {:?}",
        a.state(),
        b.state()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_cancelled_while_its_record_is_in_flight_counts_once() {
    let proxy = Proxy::start(upstream(), 12);
    let (a, b) = fleet_pair(&proxy, "async-cancel-record");
    proxy.set(Fault::Latency(LATENCY));
    // The failure's record is on its way when the timeout drops the call;
    // counting the cancellation as a failure too would count two.
    let call = a
        .call_async(|| async { Err::<(), _>(std::io::Error::other("down")) })
        .on_cancel(Outcome::Failure);
    let cut_short = tokio::time::timeout(ROUND_TRIP / 4, call).await;
    assert!(cut_short.is_err(), "dropped while its record waited on Redis");
    let counted = tokio::time::timeout(Duration::from_secs(5), async {
        while b.fail_counter() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(counted.is_ok(), "the failure reached the fleet");
    // Past another round trip: anything else sent has arrived.
    tokio::time::sleep(2 * ROUND_TRIP).await;
    assert_eq!((a.fail_counter(), b.fail_counter()), (1, 1), "counted once");
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_dropped_while_its_admission_waits_frees_the_probe_the_fleet_gave_it() {
    let proxy = Proxy::start(upstream(), 13);
    let ns = namespace("async-drop-admission");
    let direct = format!("redis://{}/", upstream());
    // One probe slot, and a lease far longer than the test: only a release
    // frees the slot.
    let build = |url: &str| {
        CircuitBreaker::builder()
            .fail_max(1)
            .half_open_max_calls(1)
            .reset_timeout(RESET)
            .probe_lease(Duration::from_secs(600))
            .shared(
                RedisState::connect(url)
                    .unwrap()
                    .namespace(&ns)
                    .command_timeout(Duration::from_secs(5))
                    .require_reachable(),
            )
            .build()
            .map(Arc::new)
            .unwrap()
    };
    let (a, b) = (build(&proxy.url()), build(&direct));
    assert!(b.call(|| Err::<(), _>("down")).unwrap_err().tripped());
    past_reset_timeout().await;
    proxy.set(Fault::Latency(LATENCY));

    // Polled (its admission goes to the fleet, which gives it the probe),
    // then dropped before the reply is in.
    let mut call = Box::pin(a.call_async_owned(|| async { Ok::<_, std::io::Error>(()) }));
    let cut_short = tokio::time::timeout(ROUND_TRIP / 4, &mut call).await;
    assert!(cut_short.is_err(), "dropped while its admission waited on Redis");
    drop(call);

    // The fleet half-opened for the dropped call (announced to b), then
    // the slot comes back: the other process gets the probe.
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        while b.state() != State::HalfOpen {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        loop {
            if let Ok(permit) = b.try_acquire() {
                return permit.is_probe() && permit.success() == breakerbox::Recorded::Transitioned(CLOSE);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(
        got,
        Ok(true),
        "the probe the fleet gave the dropped call was freed"
    );
}

const CLOSE: breakerbox::Transition = breakerbox::Transition {
    from: State::HalfOpen,
    to: State::Closed,
};

#[tokio::test(flavor = "current_thread")]
async fn a_tower_service_dropped_with_its_admission_gives_the_probe_back() {
    let proxy = Proxy::start(upstream(), 14);
    let b = breaker(&proxy, "tower-drop", Duration::from_secs(5));
    let _ = b.call(|| Err::<(), _>("down"));
    past_reset_timeout().await;
    proxy.set(Fault::Latency(LATENCY));
    let inner = service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) });
    let mut svc = CircuitBreakerLayer::new(Arc::clone(&b)).layer(inner);
    // Ready: the probe is this service's, for its next call.
    assert!(svc.ready().await.is_ok());
    assert_eq!(b.probes_in_flight(), 1, "admitted when polled ready");
    let start = Instant::now();
    drop(svc);
    assert!(start.elapsed() < ROUND_TRIP, "the drop waited on Redis");
    let freed = tokio::time::timeout(Duration::from_secs(5), async {
        while b.probes_in_flight() != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(freed.is_ok(), "the unused admission was recorded as ignored");
    assert_eq!(
        b.state(),
        State::HalfOpen,
        "ignored: the probe neither closed nor re-opened"
    );
}

/// A shared breaker behind `proxy` with a rate window that trips once half
/// of at least two calls failed: a trip needs the window's counts (a
/// success's too) at the fleet.
fn windowed(
    proxy: &Proxy,
    prefix: &str,
    window: fn(breakerbox::Builder) -> breakerbox::Builder,
) -> Arc<CircuitBreaker> {
    let builder = CircuitBreaker::builder()
        .reset_timeout(RESET)
        .window_buckets(1)
        .minimum_calls(2)
        .failure_rate_threshold(50.0);
    let breaker = window(builder)
        .shared(
            RedisState::connect(&proxy.url())
                .unwrap()
                .namespace(namespace(prefix))
                .policy(FaultPolicy::Local)
                .command_timeout(Duration::from_secs(5))
                .require_reachable(),
        )
        .build()
        .unwrap();
    Arc::new(breaker)
}

type Window = (&'static str, fn(breakerbox::Builder) -> breakerbox::Builder);

const WINDOWS: [Window; 2] = [
    ("count window", |b| b.count_window(10)),
    ("time window", |b| b.time_window(Duration::from_secs(60))),
];

#[tokio::test(flavor = "current_thread")]
async fn a_windowed_failure_waiting_on_a_slow_round_trip_lets_another_task_run() {
    for (seed, (what, window)) in (15..).zip(WINDOWS) {
        let proxy = Proxy::start(upstream(), seed);
        let b = windowed(&proxy, "async-window", window);
        let (ticks, ticker) = ticker();
        proxy.set(Fault::Latency(LATENCY));

        // A success counts in the window without a round trip; the failure
        // carries the window's counts to the fleet, which decides on them
        // (one failure alone is below the minimum of two calls).
        let (out, _, took) = ticking(&ticks, b.call_async(|| async { Ok::<_, std::io::Error>(()) })).await;
        assert!(out.is_ok() && took < ROUND_TRIP, "{what}: {out:?} in {took:?}");
        let (out, turns, took) = ticking(
            &ticks,
            b.call_async(|| async { Err::<(), _>(std::io::Error::other("down")) }),
        )
        .await;
        assert!(
            matches!(out, Err(Error::Failed { tripped: true, .. })),
            "{what}: {out:?}"
        );
        assert_kept_ticking(&format!("a {what}'s failure"), turns, took);
        assert_eq!(b.state(), State::Open, "{what}");
        ticker.abort();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_windowed_tower_failure_waiting_on_a_slow_round_trip_lets_another_task_run() {
    let proxy = Proxy::start(upstream(), 17);
    let b = windowed(&proxy, "tower-window", WINDOWS[0].1);
    let (ticks, ticker) = ticker();
    let inner = service_fn(|n: u32| async move {
        match n {
            0 => Err(std::io::Error::other("down")),
            n => Ok(n),
        }
    });
    let mut svc = CircuitBreakerLayer::new(Arc::clone(&b)).layer(inner);
    proxy.set(Fault::Latency(LATENCY));

    let (out, _, took) = ticking(&ticks, svc.ready().await.unwrap().call(1)).await;
    assert!(out.is_ok() && took < ROUND_TRIP, "{out:?} in {took:?}");
    let (out, turns, took) = ticking(&ticks, svc.ready().await.unwrap().call(0)).await;
    assert!(out.unwrap_err().into_inner().is_some());
    assert_kept_ticking("a windowed tower failure's record", turns, took);
    assert_eq!(b.state(), State::Open);
    ticker.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn a_windowed_call_cancelled_as_a_failure_hands_its_record_off() {
    for (seed, (what, window)) in (18..).zip(WINDOWS) {
        let proxy = Proxy::start(upstream(), seed);
        let b = windowed(&proxy, "async-window-cancel", window);
        let out = b.call_async(|| async { Ok::<_, std::io::Error>(()) }).await;
        assert!(out.is_ok(), "{what}: {out:?}");
        proxy.set(Fault::Latency(LATENCY));
        let (ticks, ticker) = ticker();

        // Admitted without a round trip (closed), then dropped: its failure
        // is handed off, with the window's counts, not waited for.
        let mut call = Box::pin(
            b.call_async(std::future::pending::<Result<(), std::io::Error>>)
                .on_cancel(Outcome::Failure),
        );
        let polled = tokio::time::timeout(Duration::from_millis(1), &mut call).await;
        assert!(polled.is_err() && call.is_admitted(), "{what}: admitted, running");
        let start = Instant::now();
        drop(call);
        let dropped_in = start.elapsed();
        assert!(
            dropped_in < ROUND_TRIP,
            "{what}: the drop waited on Redis: {dropped_in:?}"
        );
        let before = ticks.load(Ordering::Relaxed);
        let tripped = tokio::time::timeout(Duration::from_secs(5), async {
            while b.state() != State::Open {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            tripped.is_ok(),
            "{what}: the handed-off failure and the success before it tripped the fleet"
        );
        assert!(ticks.load(Ordering::Relaxed) > before, "{what}");
        ticker.abort();
    }
}
