//! A circuit breaker for LLM providers (feature `llm`).
//!
//! LLM APIs fail in recognisable ways: rate limiting (HTTP 429), overload
//! and server errors (5xx), timeouts, dropped connections. [`BreakerChatClient`]
//! wraps any [`ChatClient`] (and any [`AsyncChatClient`]) with a breaker named
//! after the provider, and normalises every error into an [`LlmError`] that
//! names the provider:
//!
//! * [`LlmError::CircuitOpen`]: the breaker rejected the call; the provider
//!   was not contacted. Try another provider or serve a fallback.
//! * [`LlmError::Call`]: the provider was called and failed; `retryable`
//!   says whether the failure is transient (429, 5xx, timeout, connection).
//!
//! The default classifier ([`default_outcome`]) counts rate limiting, 5xx,
//! timeouts and connection errors as failures, and excludes other 4xx
//! request errors (a malformed prompt says nothing about the provider's
//! health: it counts as a success). The breaker's own `exclude`/`ignore`
//! predicates, when they match the provider's error type, take precedence.
//!
//! The provider name is the breaker's name, so it is the `breaker` label of
//! every [`metrics`](crate::metrics) series and the `breaker` field of every
//! [`tracing`](crate::tracing) event, when those features are on.
//!
//! ```
//! use breakerbox::llm::{BreakerChatClient, ChatClient, ChatOptions, ErrorKind, Message, Provider,
//!     ProviderError, Reply, LlmError};
//!
//! #[derive(Debug)]
//! struct Overloaded;
//! impl std::fmt::Display for Overloaded {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("503") }
//! }
//! impl std::error::Error for Overloaded {}
//! impl ProviderError for Overloaded {
//!     fn kind(&self) -> ErrorKind { ErrorKind::Status(503) }
//! }
//!
//! struct Down;
//! impl Provider for Down {
//!     type Error = Overloaded;
//!     fn name(&self) -> &str { "acme" }
//! }
//! impl ChatClient for Down {
//!     fn chat(&self, _: &[Message], _: &ChatOptions) -> Result<Reply, Overloaded> { Err(Overloaded) }
//! }
//!
//! let client = BreakerChatClient::with_config(Down, |b| b.fail_max(1)).unwrap();
//! let ask = [Message::user("hello")];
//! let first = client.chat(&ask, &ChatOptions::default()).unwrap_err();
//! assert!(matches!(first, LlmError::Call { retryable: true, .. }));
//! let second = client.chat(&ask, &ChatOptions::default()).unwrap_err();
//! assert!(matches!(second, LlmError::CircuitOpen { ref provider, .. } if &**provider == "acme"));
//! ```

use crate::breaker::builder::Builder;
use crate::breaker::error::Rejected;
use crate::breaker::CircuitBreaker;
use crate::integrations::future::TicketGuard;
use crate::machine::config_error::ConfigError;
use crate::machine::state::{Outcome, State};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Who wrote a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Instructions framing the conversation.
    System,
    /// The user's turn.
    User,
    /// The model's turn.
    Assistant,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// What it says.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Message {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Options of one chat request; a provider ignores what it does not support.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatOptions {
    /// The model to ask (provider default when `None`).
    pub model: Option<String>,
    /// The most tokens to generate.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// How long the provider may take before the call counts as timed out.
    pub timeout: Option<Duration>,
}

/// A provider's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// The generated text.
    pub content: String,
    /// The model that answered, if the provider says.
    pub model: Option<String>,
}

impl Reply {
    /// A reply with this text.
    pub fn new(content: impl Into<String>) -> Self {
        Reply {
            content: content.into(),
            model: None,
        }
    }
}

/// What kind of failure a provider error is; decides how it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The provider is rate limiting (HTTP 429, or a provider's own signal).
    RateLimited,
    /// The provider answered with this HTTP status (4xx or 5xx).
    Status(u16),
    /// No answer in time.
    Timeout,
    /// The connection could not be made or broke.
    Connection,
    /// The provider is known to be unavailable (e.g. an inner breaker is open).
    Unavailable,
    /// Anything else (a response that could not be parsed, ...).
    Other,
}

impl ErrorKind {
    /// The kind of an HTTP error status: 429 is [`ErrorKind::RateLimited`].
    pub fn from_status(status: u16) -> Self {
        match status {
            429 => ErrorKind::RateLimited,
            s => ErrorKind::Status(s),
        }
    }

    /// Whether the failure is transient, so the same request may succeed
    /// later: rate limiting, 5xx, timeouts, connection errors, unavailability.
    pub fn is_retryable(self) -> bool {
        match self {
            ErrorKind::RateLimited | ErrorKind::Timeout | ErrorKind::Connection | ErrorKind::Unavailable => {
                true
            }
            ErrorKind::Status(s) => (500..=599).contains(&s),
            ErrorKind::Other => false,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::RateLimited => f.write_str("rate limited"),
            ErrorKind::Status(s) => write!(f, "HTTP status {s}"),
            ErrorKind::Timeout => f.write_str("timed out"),
            ErrorKind::Connection => f.write_str("connection error"),
            ErrorKind::Unavailable => f.write_str("unavailable"),
            ErrorKind::Other => f.write_str("error"),
        }
    }
}

/// The default classifier: rate limiting, 5xx, timeouts, connection errors
/// (and anything unrecognised) are failures; other 4xx request errors are
/// excluded — the provider answered — and count as successes.
pub fn default_outcome(kind: ErrorKind) -> Outcome {
    match kind {
        ErrorKind::Status(s) if (400..=499).contains(&s) && s != 429 => Outcome::Success,
        _ => Outcome::Failure,
    }
}

/// An error a provider client returns, able to say what kind it is.
pub trait ProviderError: std::error::Error + Send + Sync + 'static {
    /// What kind of failure this is.
    fn kind(&self) -> ErrorKind;
}

/// A named LLM provider; the base of [`ChatClient`] and [`AsyncChatClient`].
pub trait Provider {
    /// The client's error.
    type Error: ProviderError;
    /// The provider's name ("openai", "anthropic", "local-llama", ...).
    fn name(&self) -> &str;
}

/// A blocking chat client.
pub trait ChatClient: Provider {
    /// Sends the conversation and waits for the reply.
    fn chat(&self, messages: &[Message], opts: &ChatOptions) -> Result<Reply, Self::Error>;
}

/// An async chat client, the twin of [`ChatClient`].
pub trait AsyncChatClient: Provider {
    /// Sends the conversation; the future resolves to the reply.
    fn chat_async(
        &self,
        messages: &[Message],
        opts: &ChatOptions,
    ) -> impl Future<Output = Result<Reply, Self::Error>> + Send;
}

/// Every error of a [`BreakerChatClient`], naming the provider.
#[derive(Debug)]
pub enum LlmError {
    /// The breaker rejected the call; the provider was not contacted.
    CircuitOpen {
        /// The provider.
        provider: Arc<str>,
        /// The state that rejected: open, or half-open with every probe taken.
        state: State,
    },
    /// The provider was called and failed.
    Call {
        /// The provider.
        provider: Arc<str>,
        /// The provider client's own error.
        source: Box<dyn std::error::Error + Send + Sync>,
        /// What kind of failure it was.
        kind: ErrorKind,
        /// Whether the failure is transient ([`ErrorKind::is_retryable`]).
        retryable: bool,
        /// How the breaker counted the call: [`Outcome::Failure`], or
        /// [`Outcome::Success`] for a request error that says nothing of
        /// the provider's health (a 400), or [`Outcome::Ignored`].
        outcome: Outcome,
    },
}

impl LlmError {
    /// The provider this error comes from.
    pub fn provider(&self) -> &str {
        match self {
            LlmError::CircuitOpen { provider, .. } | LlmError::Call { provider, .. } => provider,
        }
    }

    /// Whether trying again later (or elsewhere) may succeed. A rejection is
    /// retryable: the breaker will let a probe through after its timeout.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::CircuitOpen { .. } => true,
            LlmError::Call { retryable, .. } => *retryable,
        }
    }

    /// Whether the breaker rejected the call.
    pub fn is_circuit_open(&self) -> bool {
        matches!(self, LlmError::CircuitOpen { .. })
    }
}

impl fmt::Display for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LlmError::CircuitOpen { provider, state } => {
                write!(f, "{provider}: circuit breaker is {state}, call not sent")
            }
            LlmError::Call { provider, source, .. } => write!(f, "{provider}: {source}"),
        }
    }
}

impl std::error::Error for LlmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LlmError::CircuitOpen { .. } => None,
            LlmError::Call { source, .. } => Some(source.as_ref()),
        }
    }
}

impl ProviderError for LlmError {
    fn kind(&self) -> ErrorKind {
        match self {
            LlmError::CircuitOpen { .. } => ErrorKind::Unavailable,
            LlmError::Call { kind, .. } => *kind,
        }
    }
}

type ClassifyKind = Arc<dyn Fn(ErrorKind) -> Outcome + Send + Sync>;

/// Any chat client behind a circuit breaker; see the [module docs](self).
pub struct BreakerChatClient<C> {
    inner: C,
    breaker: Arc<CircuitBreaker>,
    provider: Arc<str>,
    classify: ClassifyKind,
}

impl<C: Provider> BreakerChatClient<C> {
    /// Wraps `client` with a breaker of default settings, named after the
    /// provider.
    pub fn new(client: C) -> Self {
        Self::with_config(client, |b| b).expect("the default configuration is valid")
    }

    /// Wraps `client` with a breaker built by `configure`; the breaker is
    /// then named after the provider.
    pub fn with_config(client: C, configure: impl FnOnce(Builder) -> Builder) -> Result<Self, ConfigError> {
        let name = client.name().to_owned();
        let breaker = configure(CircuitBreaker::builder()).name(name).build()?;
        Ok(Self::with_breaker(client, Arc::new(breaker)))
    }

    /// Wraps `client` with an existing breaker (from a
    /// [`Registry`](crate::Registry), say). Errors name the provider; the
    /// breaker keeps its own name.
    pub fn with_breaker(client: C, breaker: Arc<CircuitBreaker>) -> Self {
        let provider: Arc<str> = client.name().into();
        BreakerChatClient {
            inner: client,
            breaker,
            provider,
            classify: Arc::new(default_outcome),
        }
    }

    /// Replaces the default classifier ([`default_outcome`]).
    pub fn classify_with(mut self, classify: impl Fn(ErrorKind) -> Outcome + Send + Sync + 'static) -> Self {
        self.classify = Arc::new(classify);
        self
    }
}

impl<C> BreakerChatClient<C> {
    /// The breaker.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    /// The wrapped client.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The provider's name.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    fn rejected(&self, rejected: Rejected) -> LlmError {
        LlmError::CircuitOpen {
            provider: Arc::clone(&self.provider),
            state: rejected.state,
        }
    }

    /// How `error` counts: the breaker's own predicates first, then the kind.
    fn outcome<E: ProviderError>(&self, error: &E) -> Outcome {
        match self.breaker.classify(error) {
            Outcome::Failure => (self.classify)(error.kind()),
            decided => decided,
        }
    }

    /// Records the call that ended in `error` and names the provider.
    fn call_error<E: ProviderError>(&self, error: E, record: impl FnOnce(Outcome)) -> LlmError {
        let outcome = self.outcome(&error);
        record(outcome);
        self.provider_error(error, outcome)
    }

    /// `error`, counted as `outcome`, naming the provider.
    fn provider_error<E: ProviderError>(&self, error: E, outcome: Outcome) -> LlmError {
        let kind = error.kind();
        LlmError::Call {
            provider: Arc::clone(&self.provider),
            source: Box::new(error),
            kind,
            retryable: kind.is_retryable(),
            outcome,
        }
    }
}

impl<C: Provider> Provider for BreakerChatClient<C> {
    type Error = LlmError;

    fn name(&self) -> &str {
        &self.provider
    }
}

impl<C: ChatClient> ChatClient for BreakerChatClient<C> {
    /// Calls the provider if the breaker admits it. A panic in the client
    /// counts as a failure.
    fn chat(&self, messages: &[Message], opts: &ChatOptions) -> Result<Reply, LlmError> {
        let permit = self.breaker.try_acquire().map_err(|r| self.rejected(r))?;
        match self.inner.chat(messages, opts) {
            Ok(reply) => {
                let _ = permit.success();
                Ok(reply)
            }
            Err(error) => Err(self.call_error(error, |outcome| {
                let _ = permit.record(outcome);
            })),
        }
    }
}

impl<C> AsyncChatClient for BreakerChatClient<C>
where
    C: AsyncChatClient + Sync,
{
    /// Calls the provider if the breaker admits it. Dropped before the reply
    /// (cancelled), the call counts as ignored; a panic counts as a failure.
    async fn chat_async(&self, messages: &[Message], opts: &ChatOptions) -> Result<Reply, LlmError> {
        let mut guard = TicketGuard::admit(&*self.breaker, Outcome::Ignored)
            .await
            .map_err(|r| self.rejected(r))?;
        match self.inner.chat_async(messages, opts).await {
            Ok(reply) => {
                let _ = guard.finish(Outcome::Success).await;
                Ok(reply)
            }
            Err(error) => {
                let outcome = self.outcome(&error);
                let _ = guard.finish(outcome).await;
                Err(self.provider_error(error, outcome))
            }
        }
    }
}

impl<C> fmt::Debug for BreakerChatClient<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerChatClient")
            .field("provider", &self.provider)
            .field("breaker", &self.breaker)
            .finish()
    }
}
