//! The Rust breaker behind a Python one, and what it takes to build it again
//! in a forked child.

use crate::args;
use crate::events::Bridge;
use crate::policy::{Options, Timer};
use breakerbox::clock::{Clock, ManualClock};
use breakerbox::redis::{FaultPolicy, RedisState, SentinelMaster, TlsCertificates};
use breakerbox::{CircuitBreaker, ConfigError, Mode, State};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A test clock: time moves only when told to (`advance`). Pass it as
/// `clock=` to a breaker; clones of one clock share its timeline.
#[pyclass(frozen, module = "breakerbox._breakerbox", name = "ManualClock")]
#[derive(Clone)]
pub(crate) struct PyManualClock(pub(crate) ManualClock);

#[pymethods]
impl PyManualClock {
    #[new]
    fn new() -> Self {
        PyManualClock(ManualClock::new())
    }

    /// Moves time forward by `seconds` (kept in whole milliseconds).
    fn advance(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        self.0.advance(args::seconds("seconds", seconds, false)?);
        Ok(())
    }

    /// Seconds since the clock's origin.
    #[getter]
    fn now(&self) -> f64 {
        self.0.now_ms() as f64 / 1000.0
    }

    /// How many times breakers have read this clock.
    #[getter]
    fn reads(&self) -> u64 {
        self.0.reads()
    }

    fn __repr__(&self) -> String {
        format!("ManualClock(now={})", self.now())
    }
}

/// Where a shared breaker's state lives, as `CircuitRedisStorage` gives it.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) state: RedisState,
}

/// Where the core connects: one URL, a cluster's seed nodes, or the
/// sentinels that name the master (and the master's credentials).
pub(crate) enum Endpoint {
    Url(String),
    Cluster(Vec<String>),
    Sentinel {
        sentinels: Vec<String>,
        master: String,
        username: String,
        password: String,
        db: u32,
    },
}

/// A TLS client's certificates, as `CircuitRedisStorage` read them: the
/// roots (PEM; `None`, the system's) and the client certificate and key.
pub(crate) type Tls = (Option<Vec<u8>>, Option<(Vec<u8>, Vec<u8>)>);

impl Shared {
    pub(crate) fn new(
        endpoint: Endpoint,
        tls: Option<Tls>,
        namespace: Option<String>,
        policy: &str,
        command_timeout: Duration,
        refresh_interval: Duration,
    ) -> PyResult<Shared> {
        let policy = match policy {
            "local" => FaultPolicy::Local,
            "fail_open" => FaultPolicy::FailOpen,
            "fail_closed" => FaultPolicy::FailClosed,
            other => {
                return Err(PyValueError::new_err(format!(
                    "policy must be 'local', 'fail_open' or 'fail_closed', got {other:?}"
                )))
            }
        };
        let tls = tls.map(|(roots, client)| {
            let mut certificates = TlsCertificates::new();
            if let Some(roots) = roots {
                certificates = certificates.root_certificates(roots);
            }
            if let Some((certificate, key)) = client {
                certificates = certificates.client_certificate(certificate, key);
            }
            certificates
        });
        let state = match (&endpoint, &tls) {
            (Endpoint::Url(url), None) => RedisState::connect(url),
            (Endpoint::Url(url), Some(tls)) => RedisState::connect_tls(url, tls),
            (Endpoint::Cluster(nodes), tls) => {
                let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
                match tls {
                    None => RedisState::connect_cluster(&nodes),
                    Some(tls) => RedisState::connect_cluster_tls(&nodes, tls),
                }
            }
            (
                Endpoint::Sentinel {
                    sentinels,
                    master,
                    username,
                    password,
                    db,
                },
                None,
            ) => {
                let sentinels: Vec<&str> = sentinels.iter().map(String::as_str).collect();
                let mut credentials = SentinelMaster::new().db(*db);
                if !username.is_empty() {
                    credentials = credentials.username(username.as_str());
                }
                if !password.is_empty() {
                    credentials = credentials.password(password.as_str());
                }
                RedisState::connect_sentinel_with(&sentinels, master, credentials)
            }
            (Endpoint::Sentinel { .. }, Some(_)) => {
                return Err(PyTypeError::new_err(
                    "redis_object: TLS through Sentinel is not supported",
                ))
            }
        };
        let mut state = state
            .map_err(|e| PyValueError::new_err(format!("redis_object: {e}")))?
            .policy(policy)
            .command_timeout(command_timeout)
            .refresh_interval(refresh_interval);
        if let Some(ns) = namespace {
            state = state.namespace(ns);
        }
        Ok(Shared { state })
    }
}

/// Everything a breaker is built from.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) name: String,
    pub(crate) fail_max: u32,
    pub(crate) reset_timeout: Duration,
    pub(crate) success_threshold: u32,
    pub(crate) half_open_max_calls: u32,
    pub(crate) probe_lease: Option<Duration>,
    pub(crate) half_open_rule: breakerbox::HalfOpenRule,
    pub(crate) clock: Option<ManualClock>,
    pub(crate) shared: Option<Shared>,
    /// Windows, slow calls, mode and backoff; none by default.
    pub(crate) options: Options,
}

pub(crate) fn config_error(e: ConfigError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A build refused: a shared breaker refusing a per-process option says so
/// by the argument users gave, `state_storage`, naming the options given.
pub(crate) fn build_error(e: ConfigError, given: &[&str]) -> PyErr {
    match e {
        ConfigError::Invalid { field: "shared", .. } => PyValueError::new_err(format!(
            "state_storage: a breaker on CircuitRedisStorage takes count_window or time_window \
             (decided on the fleet's summed window), an ExponentialBackoff as open_backoff \
             (the fleet's open periods), half_open_rule='failure_rate' (the fleet's probes) \
             and mode='metrics_only' (the fleet's decisions, watched) but not a callable \
             open_backoff or mode='disabled', which are per-process rules; given: {}",
            given.join(", ")
        )),
        e => config_error(e),
    }
}

/// A core breaker and the configuration it was built from.
pub(crate) struct Core {
    pub(crate) breaker: CircuitBreaker,
    config: Config,
    lease_set: AtomicBool,
    /// Only with slow calls configured: what a call's duration is read from.
    timer: Option<Timer>,
    /// The reset timeout in force, for a failing custom backoff to fall back to.
    base_ms: Arc<AtomicU64>,
}

impl Core {
    /// Builds the breaker; a shared one makes its first round trip here, so
    /// call this with the GIL released.
    pub(crate) fn build(config: Config, initial: State) -> Result<Core, ConfigError> {
        let mut b = CircuitBreaker::builder()
            .name(config.name.clone())
            .fail_max(config.fail_max)
            .reset_timeout(config.reset_timeout)
            .success_threshold(config.success_threshold)
            .half_open_max_calls(config.half_open_max_calls)
            .half_open_rule(config.half_open_rule)
            .listener(Bridge);
        if let Some(lease) = config.probe_lease {
            b = b.probe_lease(lease);
        }
        if let Some(clock) = &config.clock {
            b = b.clock(clock.clone());
        }
        if let Some(shared) = &config.shared {
            b = b.shared(shared.state.clone());
        }
        let base_ms = Arc::new(AtomicU64::new(millis(config.reset_timeout)));
        let b = config.options.apply(b, &base_ms);
        let breaker = b.build()?;
        // A shared breaker starts where its fleet is; a local one where asked.
        if config.shared.is_none() {
            match initial {
                State::Closed => None,
                State::Open => breaker.open(),
                State::HalfOpen => breaker.half_open(),
            };
        }
        let timer = config
            .options
            .times_calls()
            .then(|| Timer::new(config.clock.as_ref()));
        Ok(Core {
            breaker,
            config,
            lease_set: AtomicBool::new(false),
            timer,
            base_ms,
        })
    }

    /// When a call starts: `None` (no clock read) unless slow calls are configured.
    #[inline]
    pub(crate) fn started_ms(&self) -> Option<u64> {
        self.timer.as_ref().map(Timer::now_ms)
    }

    /// How long the call started at `started_ms` took.
    pub(crate) fn elapsed(&self, started_ms: u64) -> Duration {
        let now = self.timer.as_ref().map_or(started_ms, Timer::now_ms);
        Duration::from_millis(now.saturating_sub(started_ms))
    }

    /// Whether calls are timed (slow calls configured).
    pub(crate) fn times_calls(&self) -> bool {
        self.timer.is_some()
    }

    /// Whether outcomes are reported to listeners: not when disabled.
    pub(crate) fn reports_outcomes(&self) -> bool {
        self.breaker.mode() != Mode::Disabled
    }

    /// Remembers the reset timeout set at run time.
    pub(crate) fn note_reset_timeout(&self, d: Duration) {
        self.base_ms.store(millis(d), Ordering::Release);
    }

    pub(crate) fn is_shared(&self) -> bool {
        self.config.shared.is_some()
    }

    /// The same breaker, built anew with the limits in force now: for a
    /// forked child, which must not use its parent's watcher thread or
    /// connections. It starts from the fleet's state.
    pub(crate) fn rebuild(&self) -> Result<Core, ConfigError> {
        let b = &self.breaker;
        let mut config = self.config.clone();
        config.fail_max = b.fail_max();
        config.reset_timeout = b.reset_timeout();
        config.success_threshold = b.success_threshold();
        config.half_open_max_calls = b.half_open_max_calls();
        if config.probe_lease.is_some() || self.lease_set.load(Ordering::Acquire) {
            config.probe_lease = Some(b.probe_lease());
        }
        Core::build(config, State::Closed)
    }

    /// Remembers a lease set at run time, so a rebuild keeps it.
    pub(crate) fn note_probe_lease(&self) {
        self.lease_set.store(true, Ordering::Release);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
