//! One breaker for a fleet of processes, its state shared through Redis
//! (the `redis` feature).
//!
//! ```no_run
//! use breakerbox::redis::{FaultPolicy, RedisState};
//! use breakerbox::CircuitBreaker;
//! use std::time::Duration;
//!
//! let breaker = CircuitBreaker::builder()
//!     .name("db")
//!     .fail_max(5)
//!     .reset_timeout(Duration::from_secs(30))
//!     .shared(
//!         RedisState::connect("redis://127.0.0.1:6379/")?
//!             .namespace("checkout-db")
//!             .policy(FaultPolicy::Local),
//!     )
//!     .build()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every breaker built with the same namespace on the same Redis is one
//! logical breaker. Its state lives in one hash, `breakerbox:{ns}:state`
//! (the `{ns}` hash tag keeps a namespace on one Redis Cluster slot), and
//! every change is one Lua script run with `EVALSHA` (re-loaded on
//! `NOSCRIPT`): a compare-and-swap on that hash, timed by the server's own
//! clock (`TIME`, in milliseconds), so skew between hosts does not matter.
//!
//! # Consistency model
//!
//! **Exact**, because each is decided inside one script run:
//! * one winner per transition: exactly one call fleet-wide gets
//!   [`Recorded::Transitioned`](crate::Recorded) (or the admitting permit)
//!   for each trip, half-open, close and re-open;
//! * at most `half_open_max_calls` probes in flight fleet-wide; a probe's
//!   lease (the breaker's `probe_lease`) is measured on the server's clock,
//!   so a process that died mid-probe frees its slot when the lease ends;
//! * each probe holds its own slot at the fleet, by the state word's rules,
//!   so a probe ticket recorded twice is stale there and frees no other
//!   process's slot (for the first 16 probes of an episode, as in memory);
//! * the failures every process reports count toward one `fail_max`: the
//!   fleet trips exactly once, at exactly the `fail_max`-th failure;
//! * the fleet's generation is mirrored into each ticket, so a ticket from an
//!   ended episode is stale fleet-wide, whichever process recorded it.
//!
//! **Bounded-stale**, because the healthy path makes no round trip: each
//! process keeps a local mirror of the fleet's state (the lock-free word).
//! * A closed-state success while the mirror shows no failures, a
//!   rejection while the mirror is open before its reset timeout, and one
//!   while it is half-open with every slot taken and no lease run out,
//!   touch no network. Failures, the first success after failures, every
//!   half-open admission and every transition go to Redis.
//! * A process learns of another's change by a pub/sub announcement (one
//!   round trip of latency, typically well under a millisecond), and, should
//!   an announcement be lost, by a periodic refresh. So a process whose
//!   mirror is closed sees the fleet's trip at its first call after at most
//!   `refresh_interval + command_timeout` (defaults 1 s + 100 ms). Until
//!   then it may admit closed-state calls: its successes then change
//!   nothing, its failures reach Redis and are found stale.
//! * With a rate window (`count_window`, `time_window`, slow calls) the
//!   fleet decides on the sum of every process's window: a failure or slow
//!   call carries its process's counts not sent yet in the run it makes,
//!   and the watcher flushes the rest at most once per bucket. The sum
//!   holds every failure as it is answered and each process's successes up
//!   to a bucket (plus 50 ms) late, so the fleet's rate may read high by
//!   them, never low. `Mode::MetricsOnly` watches the fleet's decisions
//!   (its failures count at the fleet; it rejects nothing, and what it
//!   admits while the fleet would reject goes nowhere). An exponential
//!   open backoff is the fleet's: its script counts the re-opens since the
//!   last close and chooses each period, which every mirror waits out;
//!   `Backoff::custom` and `Mode::Disabled` are refused.
//! * "Consecutive" failures are consecutive as Redis sees them: a success
//!   resets the fleet's count only once the succeeding process's mirror
//!   shows failures, which every failure announces.
//! * The limits (`fail_max`, timeouts, ...) are the calling process's own;
//!   give every breaker of a namespace the same configuration.
//!
//! # Faults
//!
//! No call waits on Redis longer than the command timeout (default 100 ms;
//! this includes opening a connection, bounded by the connect timeout too).
//! The first call that meets a fault reports it through
//! [`Listener::storage_error`](crate::Listener::storage_error); from then on
//! calls decide without the network by the [`FaultPolicy`], while the
//! watcher thread reconnects with exponential backoff (up to
//! `max_backoff`). Once Redis answers again the mirror takes the fleet's
//! state, whatever was decided locally meanwhile. If Redis came back empty
//! (restarted without persistence), the first process to reach it seeds the
//! hash from its mirror, so an open fleet stays open. A command that timed
//! out is never retried: the script may have run, and an outcome counted
//! twice is worse than one lost.
//!
//! Probe tickets a mirror issued on its own while the store was away never
//! count at the fleet. [`CircuitBreaker::storage_health`](crate::CircuitBreaker::storage_health)
//! tells whether the store is reachable.
//!
//! # One connection set per process
//!
//! Every shared breaker of a process on the same endpoint shares at most
//! three command connections, one subscription connection (one channel per
//! namespace) and one watcher thread, which ends after the last breaker is
//! dropped. A drop never waits on the watcher or the network.
//!
//! # Transports
//!
//! The protocol (the script, its arguments, its reply, the announcements)
//! is carried by a [`Transport`]: the `redis` crate's by default, or any
//! other through [`RedisState::with_transport`].
//!
//! # Sentinel
//!
//! [`RedisState::connect_sentinel`] reaches the master that Redis Sentinel
//! names, asking the sentinels itself over bounded connections, and follows
//! a failover to the new master.

mod client;
#[cfg(feature = "redis-cluster")]
mod cluster;
mod fleet;
mod offload;
mod protocol;
mod sentinel;
mod store;
#[cfg(feature = "redis-tls")]
mod tls;
pub mod transport;
mod watcher;

pub use crate::machine::events::StorageErrorKind;
pub(crate) use fleet::{Fleet, Mirror, DEGRADED_TAG};
pub(crate) use offload::Pending;
pub use sentinel::SentinelMaster;
#[cfg(feature = "redis-tls")]
pub use tls::TlsCertificates;
pub use transport::{Script, Subscriber, Transport};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Default limit on one call's whole exchange with Redis.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(100);
/// Default limit on opening a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Default period of the fallback refresh of the mirror.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// Default longest wait between two reconnection attempts.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The shortest any of [`RedisState`]'s durations may be: shorter values
/// (zero included) are raised to it.
pub const MIN_DURATION: Duration = Duration::from_millis(1);
/// The longest any of [`RedisState`]'s durations may be: longer values (up
/// to `Duration::MAX`) are lowered to it.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// What a breaker decides while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FaultPolicy {
    /// Go on as a per-process breaker on the local mirror: count, trip,
    /// probe locally. The default.
    #[default]
    Local,
    /// Admit every call; outcomes are not counted (recorded as stale).
    FailOpen,
    /// Reject every call.
    FailClosed,
}

/// Where a breaker's state is shared: a Redis URL, a namespace and the
/// fault-handling settings. Hand it to
/// [`Builder::shared`](crate::Builder::shared).
#[derive(Clone)]
pub struct RedisState {
    endpoint: Endpoint,
    namespace: Option<String>,
    policy: FaultPolicy,
    command_timeout: Duration,
    connect_timeout: Duration,
    refresh_interval: Duration,
    max_backoff: Duration,
    notifications: bool,
    pub(crate) require_reachable: bool,
}

impl fmt::Debug for RedisState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisState")
            .field("namespace", &self.namespace)
            .field("policy", &self.policy)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("refresh_interval", &self.refresh_interval)
            .field("max_backoff", &self.max_backoff)
            .field("notifications", &self.notifications)
            .field("require_reachable", &self.require_reachable)
            .finish_non_exhaustive()
    }
}

/// Where the protocol goes: a URL for the `redis` crate, or a transport
/// the caller brought.
#[derive(Clone)]
// With `redis-tls` the client carries TLS parameters; one per RedisState,
// so its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Endpoint {
    Url {
        client: ::redis::Client,
        url: String,
        masked: String,
    },
    Custom(Arc<dyn Transport>),
    /// The master Redis Sentinel names.
    Sentinel(Arc<sentinel::Sentinels>),
}

/// Every duration option into [`MIN_DURATION`]..=[`MAX_DURATION`].
fn clamp(d: Duration) -> Duration {
    d.clamp(MIN_DURATION, MAX_DURATION)
}

impl RedisState {
    /// Parses `url` (`redis://host:port/db`, `unix:///path`). Nothing is
    /// contacted yet: the breaker connects when it is built, within the
    /// timeouts, and a Redis that is down then is a fault, not an error.
    pub fn connect(url: &str) -> Result<RedisState, StorageError> {
        let masked = client::mask_password(url);
        let client = ::redis::Client::open(url).map_err(|_| {
            StorageError::new(
                StorageErrorKind::InvalidUrl,
                &format_args!("{masked:?} is not a Redis URL (expected redis://[user:password@]host[:port][/db] or unix:///path)"),
            )
        })?;
        Ok(RedisState::from_endpoint(Endpoint::Url {
            client,
            url: url.to_owned(),
            masked,
        }))
    }

    /// Carries the fleet protocol through `transport` instead of the `redis`
    /// crate (a host's own client, say). Timeouts and the rest are set as
    /// for [`RedisState::connect`], and handed to the transport per call.
    pub fn with_transport(transport: Arc<dyn Transport>) -> RedisState {
        RedisState::from_endpoint(Endpoint::Custom(transport))
    }

    fn through_sentinels(sentinels: Arc<sentinel::Sentinels>) -> RedisState {
        RedisState::from_endpoint(Endpoint::Sentinel(sentinels))
    }

    fn from_endpoint(endpoint: Endpoint) -> RedisState {
        RedisState {
            endpoint,
            namespace: None,
            policy: FaultPolicy::default(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            max_backoff: DEFAULT_MAX_BACKOFF,
            notifications: true,
            require_reachable: false,
        }
    }

    /// The connection set this state's breaker shares with every other
    /// breaker of the process on the same endpoint.
    pub(crate) fn hub(&self) -> Arc<watcher::Hub> {
        match &self.endpoint {
            Endpoint::Url { client, url, masked } => {
                let key = format!("{url}\n{:?}", self.connect_timeout);
                watcher::Hub::get(key, self.connect_timeout, || {
                    Arc::new(client::RedisTransport::new(
                        client.clone(),
                        masked.clone(),
                        self.connect_timeout,
                    ))
                })
            }
            Endpoint::Custom(transport) => {
                let key = format!("custom {:p}\n{:?}", Arc::as_ptr(transport), self.connect_timeout);
                watcher::Hub::get(key, self.connect_timeout, || Arc::clone(transport))
            }
            Endpoint::Sentinel(sentinels) => {
                let key = format!("{}\n{:?}", sentinels.key, self.connect_timeout);
                watcher::Hub::get(key, self.connect_timeout, || {
                    Arc::new(sentinels.transport(self.connect_timeout))
                })
            }
        }
    }

    /// The logical breaker's name on this Redis (default: the breaker's
    /// name, or `default` when it has none). Breakers of one namespace are
    /// one breaker; different namespaces never interfere.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// What to decide while Redis is unreachable (default [`FaultPolicy::Local`]).
    pub fn policy(mut self, policy: FaultPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The longest one call waits on Redis, connecting included (default
    /// 100 ms; 1 ms to 1 h, values outside raised or lowered to the nearest).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = clamp(timeout);
        self
    }

    /// The longest opening a connection may take (default 250 ms; 1 ms to
    /// 1 h, values outside raised or lowered to the nearest; a call's
    /// connection is also held to its command timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = clamp(timeout);
        self
    }

    /// How often the mirror is refreshed from Redis in case an announcement
    /// was lost (default 1 s; 1 ms to 1 h, values outside raised or lowered
    /// to the nearest). Bounds the staleness: see the [module
    /// documentation](self).
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = clamp(interval);
        self
    }

    /// The longest wait between reconnection attempts (default 1 s; 1 ms to
    /// 1 h, values outside raised or lowered to the nearest; the first wait
    /// is 10 ms, doubling up to this).
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = clamp(backoff);
        self
    }

    /// Makes [`Builder::build`](crate::Builder::build) fail with
    /// [`ConfigError::Unreachable`](crate::ConfigError::Unreachable) when
    /// the first sync with Redis fails, instead of starting degraded (the
    /// default: a Redis that is down is a fault, reported, not an error).
    pub fn require_reachable(mut self) -> Self {
        self.require_reachable = true;
        self
    }

    /// Whether changes are announced and listened for by pub/sub (default
    /// on). Off, processes learn of each other's changes only by the
    /// periodic refresh.
    pub fn notifications(mut self, on: bool) -> Self {
        self.notifications = on;
        self
    }
}

/// A fault of the shared state's store. Reported to listeners; never fatal.
#[derive(Debug, Clone)]
pub struct StorageError {
    kind: StorageErrorKind,
    message: String,
}

impl StorageError {
    /// A fault of `kind`, described by `cause` (for a [`Transport`] to report).
    pub fn new(kind: StorageErrorKind, cause: &dyn fmt::Display) -> StorageError {
        StorageError {
            kind,
            message: cause.to_string(),
        }
    }

    pub(crate) fn timed_out() -> StorageError {
        StorageError::new(StorageErrorKind::Timeout, &"no answer within the command timeout")
    }

    pub(crate) fn protocol(reply: &[i64]) -> StorageError {
        StorageError::new(
            StorageErrorKind::Protocol,
            &format_args!("unexpected script reply {reply:?}"),
        )
    }

    pub(crate) fn thread(error: &std::io::Error) -> StorageError {
        StorageError::new(StorageErrorKind::Thread, error)
    }

    pub(crate) fn watcher_died(what: &str) -> StorageError {
        StorageError::new(
            StorageErrorKind::Thread,
            &format_args!("the watcher thread panicked ({what}) and was restarted"),
        )
    }

    /// What kind of fault this is.
    pub fn kind(&self) -> StorageErrorKind {
        self.kind
    }

    /// Whether Redis did not answer in time.
    pub fn is_timeout(&self) -> bool {
        self.kind == StorageErrorKind::Timeout
    }
}

impl From<::redis::RedisError> for StorageError {
    fn from(e: ::redis::RedisError) -> StorageError {
        let kind = if e.is_timeout() {
            StorageErrorKind::Timeout
        } else if e.is_io_error() {
            StorageErrorKind::Unreachable
        } else {
            StorageErrorKind::Server
        };
        StorageError::new(kind, &e)
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            StorageErrorKind::InvalidUrl => "invalid Redis URL",
            StorageErrorKind::Timeout => "Redis timed out",
            StorageErrorKind::Unreachable => "Redis unreachable",
            StorageErrorKind::Server => "Redis error",
            StorageErrorKind::Protocol => "Redis protocol error",
            StorageErrorKind::Thread => "watcher thread",
        };
        write!(f, "{what}: {}", self.message)
    }
}

impl std::error::Error for StorageError {}
