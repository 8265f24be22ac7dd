//! The LLM adapter against a fake provider that misbehaves on cue.

use breakerbox::clock::ManualClock;
use breakerbox::llm::{
    AsyncChatClient, BreakerChatClient, ChatClient, ChatOptions, ErrorKind, LlmError, Message, Provider,
    ProviderError, Reply,
};
use breakerbox::{Outcome, Registry, State};
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const RESET: Duration = Duration::from_secs(20);

/// What the fake provider does on its next call.
#[derive(Debug, Clone)]
enum Cue {
    Answer(&'static str),
    Fail(ErrorKind),
    /// Never answers (async only): the caller gives up.
    Hang,
    /// Answers once the test releases it (async only).
    WaitFor(Arc<tokio::sync::Semaphore>),
    Panic,
}

#[derive(Debug, Clone, PartialEq)]
struct FakeError(ErrorKind);

impl fmt::Display for FakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fake provider: {}", self.0)
    }
}

impl std::error::Error for FakeError {}

impl ProviderError for FakeError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

/// A provider that follows a script, then answers "ok"; counts the calls
/// that reached it.
#[derive(Clone, Default)]
struct Fake {
    script: Arc<Mutex<VecDeque<Cue>>>,
    calls: Arc<AtomicUsize>,
}

impl Fake {
    fn cue(&self, cues: impl IntoIterator<Item = Cue>) {
        self.script.lock().unwrap().extend(cues);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn next(&self) -> Cue {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Cue::Answer("ok"))
    }

    fn answer(messages: &[Message], text: &str) -> Reply {
        Reply {
            content: format!("{text} ({} messages)", messages.len()),
            model: Some("fake-1".into()),
        }
    }
}

impl Provider for Fake {
    type Error = FakeError;
    fn name(&self) -> &str {
        "fakeai"
    }
}

impl ChatClient for Fake {
    fn chat(&self, messages: &[Message], _opts: &ChatOptions) -> Result<Reply, FakeError> {
        match self.next() {
            Cue::Answer(text) => Ok(Fake::answer(messages, text)),
            Cue::Fail(kind) => Err(FakeError(kind)),
            Cue::Hang | Cue::WaitFor(_) => unreachable!("the sync client is never cued to wait"),
            Cue::Panic => panic!("fake provider client panicked"),
        }
    }
}

impl AsyncChatClient for Fake {
    async fn chat_async(&self, messages: &[Message], _opts: &ChatOptions) -> Result<Reply, FakeError> {
        let cue = self.next();
        tokio::task::yield_now().await;
        match cue {
            Cue::Answer(text) => Ok(Fake::answer(messages, text)),
            Cue::Fail(kind) => Err(FakeError(kind)),
            Cue::Hang => std::future::pending().await,
            Cue::WaitFor(release) => {
                let _permit = release.acquire().await.unwrap();
                Ok(Fake::answer(messages, "ok"))
            }
            Cue::Panic => panic!("fake provider client panicked"),
        }
    }
}

fn client(fake: &Fake, clock: &ManualClock, fail_max: u32) -> BreakerChatClient<Fake> {
    BreakerChatClient::with_config(fake.clone(), |b| {
        b.fail_max(fail_max).reset_timeout(RESET).clock(clock.clone())
    })
    .unwrap()
}

fn ask() -> Vec<Message> {
    vec![Message::system("be brief"), Message::user("hello")]
}

#[test]
fn rate_limits_trip_it_and_rejections_name_the_provider_without_calling_it() {
    let (fake, clock) = (Fake::default(), ManualClock::new());
    let llm = client(&fake, &clock, 3);
    assert_eq!(llm.breaker().name(), "fakeai");

    let reply = llm.chat(&ask(), &ChatOptions::default()).unwrap();
    assert_eq!(reply.content, "ok (2 messages)");

    fake.cue(vec![Cue::Fail(ErrorKind::from_status(429)); 3]);
    for _ in 0..3 {
        match llm.chat(&ask(), &ChatOptions::default()).unwrap_err() {
            LlmError::Call {
                provider,
                source,
                kind,
                retryable,
                outcome,
            } => {
                assert_eq!(&*provider, "fakeai");
                assert_eq!(kind, ErrorKind::RateLimited);
                assert!(retryable);
                assert_eq!(outcome, Outcome::Failure);
                assert_eq!(
                    source.downcast_ref::<FakeError>(),
                    Some(&FakeError(ErrorKind::RateLimited))
                );
            }
            other => panic!("expected a call error, got {other:?}"),
        }
    }
    assert_eq!(llm.breaker().state(), State::Open);
    assert_eq!(fake.calls(), 4);

    let err = llm.chat(&ask(), &ChatOptions::default()).unwrap_err();
    assert!(err.is_circuit_open());
    assert!(err.is_retryable());
    assert_eq!(err.provider(), "fakeai");
    assert_eq!(err.to_string(), "fakeai: circuit breaker is open, call not sent");
    assert_eq!(fake.calls(), 4, "the provider is not contacted while open");

    // After the reset timeout one probe reaches the provider; an answer closes.
    clock.advance(RESET);
    llm.chat(&ask(), &ChatOptions::default()).unwrap();
    assert_eq!(llm.breaker().state(), State::Closed);
    assert_eq!(fake.calls(), 5);
}

#[test]
fn the_default_classifier() {
    let (fake, clock) = (Fake::default(), ManualClock::new());
    let llm = client(&fake, &clock, 2);
    let chat = || llm.chat(&ask(), &ChatOptions::default());

    // Each failure kind counts; the second in a row trips fail_max 2.
    for kind in [
        ErrorKind::Status(500),
        ErrorKind::Status(503),
        ErrorKind::Timeout,
        ErrorKind::Connection,
        ErrorKind::RateLimited,
        ErrorKind::Other,
    ] {
        llm.breaker().close();
        fake.cue([Cue::Fail(kind), Cue::Fail(kind)]);
        let first = chat().unwrap_err();
        assert_eq!(first.is_retryable(), kind != ErrorKind::Other, "{kind}");
        assert_eq!(llm.breaker().fail_counter(), 1, "{kind} is a failure");
        chat().unwrap_err();
        assert_eq!(llm.breaker().state(), State::Open, "{kind}");
    }

    // 4xx request errors are the caller's: excluded, they count as successes.
    llm.breaker().close();
    fake.cue([
        Cue::Fail(ErrorKind::Status(503)),
        Cue::Fail(ErrorKind::Status(400)),
        Cue::Fail(ErrorKind::Status(503)),
        Cue::Fail(ErrorKind::Status(404)),
        Cue::Fail(ErrorKind::Status(422)),
    ]);
    for _ in 0..5 {
        let err = chat().unwrap_err();
        if let LlmError::Call {
            kind: ErrorKind::Status(s),
            retryable,
            outcome,
            ..
        } = err
        {
            assert_eq!(retryable, s >= 500, "{s}");
            let counted = if s >= 500 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            assert_eq!(outcome, counted, "{s}");
        } else {
            panic!("expected a call error, got {err:?}");
        }
    }
    assert_eq!(
        llm.breaker().state(),
        State::Closed,
        "400/404/422 broke every streak"
    );
    assert_eq!(llm.breaker().fail_counter(), 0);
}

#[test]
fn a_custom_classifier_and_the_breakers_own_predicates() {
    let (fake, clock) = (Fake::default(), ManualClock::new());
    // Count 401 (a revoked key) as a failure too.
    let llm = client(&fake, &clock, 1).classify_with(|kind| match kind {
        ErrorKind::Status(401) => Outcome::Failure,
        other => breakerbox::llm::default_outcome(other),
    });
    fake.cue([Cue::Fail(ErrorKind::Status(401))]);
    llm.chat(&ask(), &ChatOptions::default()).unwrap_err();
    assert_eq!(llm.breaker().state(), State::Open);

    // The breaker's ignore predicate on the provider's error type wins.
    let llm = BreakerChatClient::with_config(fake.clone(), |b| {
        b.fail_max(1)
            .clock(clock.clone())
            .ignore(|e: &FakeError| e.0 == ErrorKind::Timeout)
    })
    .unwrap();
    fake.cue(vec![Cue::Fail(ErrorKind::Timeout); 3]);
    for _ in 0..3 {
        assert!(llm
            .chat(&ask(), &ChatOptions::default())
            .unwrap_err()
            .is_retryable());
    }
    assert_eq!(llm.breaker().state(), State::Closed);
}

#[test]
fn a_panicking_client_counts_as_a_failure() {
    let (fake, clock) = (Fake::default(), ManualClock::new());
    let llm = client(&fake, &clock, 1);
    fake.cue([Cue::Panic]);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = llm.chat(&ask(), &ChatOptions::default());
    }));
    assert!(caught.is_err());
    assert_eq!(llm.breaker().state(), State::Open);
}

#[test]
fn a_breaker_from_a_registry_keeps_the_provider_in_errors() {
    let registry = Registry::new(|b| b.fail_max(1));
    let fake = Fake::default();
    let llm = BreakerChatClient::with_breaker(fake.clone(), registry.get_or_create("llm-primary").unwrap());
    fake.cue([Cue::Fail(ErrorKind::Status(502))]);
    let err = llm.chat(&ask(), &ChatOptions::default()).unwrap_err();
    assert_eq!(err.provider(), "fakeai");
    assert_eq!(err.to_string(), "fakeai: fake provider: HTTP status 502");
    let err = llm.chat(&ask(), &ChatOptions::default()).unwrap_err();
    assert!(err.is_circuit_open());
    assert_eq!(registry.get("llm-primary").unwrap().state(), State::Open);
}

#[tokio::test]
async fn async_twin_classifies_alike_and_cancellation_is_ignored() {
    let (fake, clock) = (Fake::default(), ManualClock::new());
    let llm = client(&fake, &clock, 2);
    let opts = ChatOptions {
        model: Some("fake-1".into()),
        timeout: Some(Duration::from_millis(5)),
        ..ChatOptions::default()
    };

    let reply = llm.chat_async(&ask(), &opts).await.unwrap();
    assert_eq!(reply.model.as_deref(), Some("fake-1"));

    // A caller that gives up (its own timeout) does not count against the provider.
    fake.cue([Cue::Hang, Cue::Hang, Cue::Hang]);
    for _ in 0..3 {
        let gave_up = tokio::time::timeout(Duration::from_millis(5), llm.chat_async(&ask(), &opts)).await;
        assert!(gave_up.is_err());
    }
    assert_eq!(llm.breaker().state(), State::Closed);
    assert_eq!(llm.breaker().fail_counter(), 0);

    fake.cue([Cue::Fail(ErrorKind::Status(529)), Cue::Fail(ErrorKind::Timeout)]);
    for _ in 0..2 {
        let err = llm.chat_async(&ask(), &opts).await.unwrap_err();
        assert!(matches!(err, LlmError::Call { retryable: true, .. }));
    }
    assert_eq!(llm.breaker().state(), State::Open);
    let calls = fake.calls();
    let err = llm.chat_async(&ask(), &opts).await.unwrap_err();
    assert!(matches!(
        err,
        LlmError::CircuitOpen {
            state: State::Open,
            ..
        }
    ));
    assert_eq!(fake.calls(), calls);

    // A cancelled probe frees its slot at once.
    clock.advance(RESET);
    fake.cue([Cue::Hang]);
    let gave_up = tokio::time::timeout(Duration::from_millis(5), llm.chat_async(&ask(), &opts)).await;
    assert!(gave_up.is_err());
    assert_eq!(llm.breaker().state(), State::HalfOpen);
    assert_eq!(llm.breaker().probes_in_flight(), 0);
    llm.chat_async(&ask(), &opts).await.unwrap();
    assert_eq!(llm.breaker().state(), State::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_async_requests_send_one_probe_to_a_recovering_provider() {
    const TASKS: usize = 12;
    let (fake, clock) = (Fake::default(), ManualClock::new());
    let llm = Arc::new(client(&fake, &clock, 1));
    llm.breaker().open();
    clock.advance(RESET);
    let before = fake.calls();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    fake.cue([Cue::WaitFor(Arc::clone(&release))]);

    let start = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (llm, start) = (Arc::clone(&llm), Arc::clone(&start));
        tasks.spawn(async move {
            start.wait().await;
            llm.chat_async(&ask(), &ChatOptions::default()).await
        });
    }
    // All but the probe are rejected while it is held at the provider.
    for _ in 0..TASKS - 1 {
        let joined = tokio::time::timeout(Duration::from_secs(10), tasks.join_next())
            .await
            .expect("more than one request reached the provider");
        let err = joined.unwrap().unwrap().unwrap_err();
        assert!(
            matches!(
                err,
                LlmError::CircuitOpen {
                    state: State::HalfOpen,
                    ..
                }
            ),
            "{err}"
        );
    }
    assert_eq!(fake.calls() - before, 1, "exactly one probe reached the provider");
    release.add_permits(1);
    tasks.join_next().await.unwrap().unwrap().unwrap();
    assert_eq!(llm.breaker().state(), State::Closed);
}

#[test]
fn metrics_carry_the_provider_name() {
    use breakerbox::metrics::{MetricsListener, FAILURES, REJECTIONS};
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let fake = Fake::default();
        let llm =
            BreakerChatClient::with_config(fake.clone(), |b| b.fail_max(1).listener(MetricsListener::new()))
                .unwrap();
        fake.cue([Cue::Fail(ErrorKind::Status(500))]);
        llm.chat(&ask(), &ChatOptions::default()).unwrap_err();
        llm.chat(&ask(), &ChatOptions::default()).unwrap_err();
    });
    let values: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let provider = key
                .key()
                .labels()
                .find(|l| l.key() == "breaker")?
                .value()
                .to_owned();
            match value {
                DebugValue::Counter(n) => Some((key.key().name().to_owned(), provider, n)),
                _ => None,
            }
        })
        .collect();
    assert!(
        values.contains(&(FAILURES.to_owned(), "fakeai".to_owned(), 1)),
        "{values:?}"
    );
    assert!(
        values.contains(&(REJECTIONS.to_owned(), "fakeai".to_owned(), 1)),
        "{values:?}"
    );
}
