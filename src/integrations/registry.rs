//! A registry of named breakers, one per integration point.
//!
//! A service keeps one breaker per dependency ("db", "payments", "search").
//! [`Registry::get_or_create`] makes each on first use from one shared
//! configuration, and [`Registry::statuses`] lists them all for a health
//! endpoint.
//!
//! The registry is not on the hot path: look a breaker up once, keep the
//! `Arc`, and call through it. The lookup takes a read lock; creating a
//! breaker takes a write lock, but the configuration closure and the build
//! run outside any lock.
//!
//! ```
//! use breakerbox::{Registry, State};
//!
//! let registry = Registry::new(|b| b.fail_max(3));
//! let db = registry.get_or_create("db").unwrap();
//! assert_eq!(db.fail_max(), 3);
//! assert!(std::sync::Arc::ptr_eq(&db, &registry.get_or_create("db").unwrap()));
//!
//! db.open();
//! let health: Vec<_> = registry.statuses().into_iter().map(|s| (s.name, s.state)).collect();
//! assert_eq!(health, vec![("db".to_string(), State::Open)]);
//! ```

use crate::breaker::builder::Builder;
use crate::breaker::CircuitBreaker;
use crate::machine::config_error::ConfigError;
use crate::machine::state::State;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

type Configure = Box<dyn Fn(Builder) -> Builder + Send + Sync>;

/// Named breakers created on demand from one shared configuration.
///
/// ```
/// use breakerbox::{ConfigError, Registry};
/// use std::time::Duration;
///
/// let registry = Registry::new(|b| b.fail_max(3).reset_timeout(Duration::from_secs(30)));
/// let payments = registry.get_or_create("payments")?; // keep the Arc; call through it
/// let _ = payments.call(|| Err::<(), _>("timeout"));
/// for status in registry.statuses() {
///     println!("{}: {} ({} failures)", status.name, status.state, status.fail_counter);
/// }
/// assert_eq!(registry.get_or_create("").unwrap_err(), ConfigError::Unnamed);
/// # Ok::<(), ConfigError>(())
/// ```
pub struct Registry {
    configure: Configure,
    breakers: RwLock<BTreeMap<String, Arc<CircuitBreaker>>>,
}

/// One breaker's status, as [`Registry::statuses`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerStatus {
    /// The breaker's name.
    pub name: String,
    /// Its state at the time of the listing.
    pub state: State,
    /// Consecutive failures counted in the closed state.
    pub fail_counter: u32,
    /// Probe successes counted in the half-open state.
    pub success_counter: u32,
    /// Half-open probes admitted and not yet recorded.
    pub probes_in_flight: u32,
}

/// Why [`Registry::insert`] refused a breaker. Nothing was registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertError {
    /// A breaker is already registered under that name.
    AlreadyRegistered {
        /// The name in use.
        name: String,
    },
    /// The breaker has no name; a registry keeps named breakers only.
    Unnamed,
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InsertError::AlreadyRegistered { name } => {
                write!(f, "a circuit breaker named {name:?} is already registered")
            }
            InsertError::Unnamed => f.write_str("a registered breaker needs a name: got \"\""),
        }
    }
}

impl std::error::Error for InsertError {}

impl Default for Registry {
    /// A registry whose breakers use the builder's defaults.
    fn default() -> Self {
        Registry::new(|b| b)
    }
}

impl Registry {
    /// A registry that builds each new breaker with `configure` applied to a
    /// default [`Builder`]. The registry then sets the name, so the name
    /// asked for is always the breaker's name.
    ///
    /// `configure` runs once per breaker created, outside any lock; it may
    /// attach fresh listeners each time.
    pub fn new(configure: impl Fn(Builder) -> Builder + Send + Sync + 'static) -> Self {
        Registry {
            configure: Box::new(configure),
            breakers: RwLock::new(BTreeMap::new()),
        }
    }

    /// The breaker named `name`, created from the shared configuration if
    /// there is none yet. Every caller gets the same breaker, even when two
    /// race to create it. Fails if the configuration is invalid, or with
    /// [`ConfigError::Unnamed`] for an empty name: a registry lists its
    /// breakers by name, and "" names nothing.
    pub fn get_or_create(&self, name: &str) -> Result<Arc<CircuitBreaker>, ConfigError> {
        if name.is_empty() {
            return Err(ConfigError::Unnamed);
        }
        if let Some(breaker) = self.get(name) {
            return Ok(breaker);
        }
        let built = Arc::new((self.configure)(CircuitBreaker::builder()).name(name).build()?);
        let mut breakers = self.breakers.write().unwrap_or_else(PoisonError::into_inner);
        // A racing caller may have inserted one meanwhile: theirs wins.
        Ok(Arc::clone(breakers.entry(name.to_owned()).or_insert(built)))
    }

    /// The breaker named `name`, if registered.
    pub fn get(&self, name: &str) -> Option<Arc<CircuitBreaker>> {
        self.read().get(name).cloned()
    }

    /// Registers a breaker built elsewhere (with its own configuration),
    /// under its own name, which must not be empty.
    pub fn insert(&self, breaker: CircuitBreaker) -> Result<Arc<CircuitBreaker>, InsertError> {
        let name = breaker.name().to_owned();
        if name.is_empty() {
            return Err(InsertError::Unnamed);
        }
        let mut breakers = self.breakers.write().unwrap_or_else(PoisonError::into_inner);
        if breakers.contains_key(&name) {
            return Err(InsertError::AlreadyRegistered { name });
        }
        let breaker = Arc::new(breaker);
        breakers.insert(name, Arc::clone(&breaker));
        Ok(breaker)
    }

    /// Forgets the breaker named `name` and returns it. Holders of its `Arc`
    /// keep using it; the next `get_or_create` makes a fresh one.
    pub fn remove(&self, name: &str) -> Option<Arc<CircuitBreaker>> {
        self.breakers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Every registered breaker with its name, sorted by name.
    pub fn breakers(&self) -> Vec<Arc<CircuitBreaker>> {
        self.read().values().cloned().collect()
    }

    /// Every breaker's status, sorted by name: what a health endpoint shows.
    pub fn statuses(&self) -> Vec<BreakerStatus> {
        self.breakers()
            .iter()
            .map(|b| BreakerStatus {
                name: b.name().to_owned(),
                state: b.state(),
                fail_counter: b.fail_counter(),
                success_counter: b.success_counter(),
                probes_in_flight: b.probes_in_flight(),
            })
            .collect()
    }

    /// Whether every registered breaker is closed.
    pub fn all_closed(&self) -> bool {
        self.read().values().all(|b| b.state() == State::Closed)
    }

    /// How many breakers are registered.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no breaker is registered.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<CircuitBreaker>>> {
        // The map is never left half-updated, so a poisoned lock is still sound.
        self.breakers.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("breakers", &self.names())
            .finish()
    }
}
