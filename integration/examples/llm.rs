//! An LLM provider behind a breaker, with a fallback provider.
//!
//! The primary provider starts rate limiting; its breaker trips, requests go
//! straight to the fallback without waiting on the primary, and after the
//! reset timeout one probe finds the primary healthy again. No network: the
//! providers are simulated.
//!
//! ```sh
//! cargo run --example llm --features llm
//! ```

use breakerbox::llm::{
    AsyncChatClient, BreakerChatClient, ChatClient, ChatOptions, ErrorKind, LlmError, Message, Provider,
    ProviderError, Reply,
};
use breakerbox::{Outcome, State};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A provider's HTTP error, as a real client would report it.
#[derive(Debug)]
struct HttpError {
    status: u16,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)
    }
}

impl std::error::Error for HttpError {}

impl ProviderError for HttpError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::from_status(self.status)
    }
}

/// A simulated provider: answers, or returns 429 while `rate_limited`.
struct Simulated {
    name: &'static str,
    rate_limited: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Simulated {
    fn new(name: &'static str) -> Self {
        Simulated {
            name,
            rate_limited: Arc::default(),
            calls: Arc::default(),
        }
    }

    fn answer(&self, messages: &[Message]) -> Result<Reply, HttpError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if messages.iter().any(|m| m.content.is_empty()) {
            return Err(HttpError { status: 400 });
        }
        if self.rate_limited.load(Ordering::SeqCst) {
            return Err(HttpError { status: 429 });
        }
        let question = messages.last().map_or("", |m| m.content.as_str());
        Ok(Reply {
            content: format!("{} says: an answer to {question:?}", self.name),
            model: Some(format!("{}-large", self.name)),
        })
    }
}

impl Provider for Simulated {
    type Error = HttpError;
    fn name(&self) -> &str {
        self.name
    }
}

impl ChatClient for Simulated {
    fn chat(&self, messages: &[Message], _opts: &ChatOptions) -> Result<Reply, HttpError> {
        self.answer(messages)
    }
}

impl AsyncChatClient for Simulated {
    async fn chat_async(&self, messages: &[Message], _opts: &ChatOptions) -> Result<Reply, HttpError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.answer(messages)
    }
}

/// Asks the primary, falls back to the secondary when the primary fails
/// transiently or its breaker is open.
fn ask<P: ChatClient<Error = LlmError>, S: ChatClient<Error = LlmError>>(
    primary: &P,
    secondary: &S,
    question: &str,
) -> Result<Reply, LlmError> {
    let messages = [Message::system("Answer briefly."), Message::user(question)];
    let opts = ChatOptions {
        max_tokens: Some(100),
        ..ChatOptions::default()
    };
    match primary.chat(&messages, &opts) {
        Err(e) if e.is_retryable() => {
            println!("   primary: {e}  -> falling back");
            secondary.chat(&messages, &opts)
        }
        other => other,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), LlmError> {
    let primary_sim = Simulated::new("primary-llm");
    let (rate_limited, primary_calls) = (
        Arc::clone(&primary_sim.rate_limited),
        Arc::clone(&primary_sim.calls),
    );
    let reset = Duration::from_millis(200);
    let primary = BreakerChatClient::with_config(primary_sim, |b| {
        b.fail_max(2)
            .reset_timeout(reset)
            .on_state_change(|name, from, to| println!("   [{name}] breaker {from} -> {to}"))
    })
    .expect("a valid configuration");
    let secondary = BreakerChatClient::new(Simulated::new("backup-llm"));

    println!("1. The primary answers:");
    println!(
        "   {}",
        ask(&primary, &secondary, "what is a circuit breaker?")?.content
    );

    println!("2. A malformed request is the caller's fault (400): the provider answered, so it counts as a success:");
    let err = primary
        .chat(&[Message::user("")], &ChatOptions::default())
        .expect_err("an empty message is refused");
    let LlmError::Call {
        outcome, retryable, ..
    } = &err
    else {
        panic!("the provider was called: {err}");
    };
    println!("   {err} (retryable: {retryable}, counted as: {outcome:?})");
    assert_eq!((*outcome, *retryable), (Outcome::Success, false));
    assert_eq!(primary.breaker().fail_counter(), 0);

    println!("3. The primary starts rate limiting (429):");
    rate_limited.store(true, Ordering::SeqCst);
    for question in ["why 429?", "and now?"] {
        println!("   {}", ask(&primary, &secondary, question)?.content);
    }
    assert_eq!(primary.breaker().state(), State::Open);

    println!("4. While its breaker is open, the primary is not even asked:");
    let calls = primary_calls.load(Ordering::SeqCst);
    for question in ["still there?", "one more"] {
        println!("   {}", ask(&primary, &secondary, question)?.content);
    }
    assert_eq!(primary_calls.load(Ordering::SeqCst), calls);

    println!("5. The primary recovers; after the reset timeout a probe closes its breaker (async call):");
    rate_limited.store(false, Ordering::SeqCst);
    tokio::time::sleep(reset + Duration::from_millis(20)).await;
    let reply = primary
        .chat_async(&[Message::user("are you back?")], &ChatOptions::default())
        .await?;
    println!("   {}", reply.content);
    assert_eq!(primary.breaker().state(), State::Closed);
    Ok(())
}
