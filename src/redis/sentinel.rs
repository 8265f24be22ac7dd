//! The fleet through Redis Sentinel: the master the sentinels name, found
//! by asking them over plain connections of its own, each one bounded.
//!
//! The `redis` crate's Sentinel client is not used: it asks the sentinels
//! with no connect or read timeout. Here each new connection (a command
//! connection of the pool, or the subscription connection) asks the
//! sentinels in turn, `SENTINEL GET-MASTER-ADDR-BY-NAME`, until one names
//! a master that answers `ROLE` as a master; the rest goes as it does for
//! one address. After a fault (a timeout, a lost connection, `READONLY`
//! once the master was demoted) the pool forgets its connections, so the
//! next one asks the sentinels again.

use super::client::{at_least_1ms, mask_password, remaining, set_timeouts, RedisTransport, Target};
use super::{RedisState, StorageError, StorageErrorKind};
use redis::{cmd, Client, ConnectionAddr, ConnectionInfo, RedisConnectionInfo, Value};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to log in to the master the sentinels name: its user, password and
/// database (the sentinels' own credentials go in their URLs). Mirrors the
/// `redis` crate's `SentinelNodeConnectionInfo`, without TLS.
///
/// ```
/// use breakerbox::redis::{RedisState, SentinelMaster};
///
/// let state = RedisState::connect_sentinel_with(
///     &["redis://10.0.0.1:26379/", "redis://10.0.0.2:26379/"],
///     "mymaster",
///     SentinelMaster::new().username("breakerbox").password("s3cret").db(2),
/// )?;
/// # Ok::<(), breakerbox::redis::StorageError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct SentinelMaster {
    username: Option<String>,
    password: Option<String>,
    db: u32,
}

impl fmt::Debug for SentinelMaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelMaster")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db", &self.db)
            .finish()
    }
}

impl SentinelMaster {
    /// No user, no password, database 0.
    pub fn new() -> SentinelMaster {
        SentinelMaster::default()
    }

    /// The ACL user to log in as (default: none, the `default` user).
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The password (`requirepass`, or the user's).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// The database the fleet's keys live in (default 0).
    pub fn db(mut self, db: u32) -> Self {
        self.db = db;
        self
    }
}

impl RedisState {
    /// Shares the breaker's state through the master that Redis Sentinel
    /// names `master_name`, asking the `sentinels`
    /// (`redis://[user:password@]host:port/` each) in turn. Nothing is
    /// contacted yet, as for [`RedisState::connect`]; the master logs in
    /// with no password on database 0 (see
    /// [`RedisState::connect_sentinel_with`]).
    ///
    /// Each connection asks the sentinels afresh, each one bounded by the
    /// connect and command timeouts (a sentinel that does not answer gets
    /// its share of them, so the next one is still asked), and checks that
    /// the master it is given answers `ROLE` as a master. After a failover
    /// the breaker meets a fault, decides by its [`FaultPolicy`](super::FaultPolicy)
    /// and reconnects to the new master.
    ///
    /// ```no_run
    /// use breakerbox::redis::RedisState;
    /// use breakerbox::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .shared(
    ///         RedisState::connect_sentinel(
    ///             &["redis://10.0.0.1:26379/", "redis://10.0.0.2:26379/", "redis://10.0.0.3:26379/"],
    ///             "mymaster",
    ///         )?
    ///         .namespace("checkout-db"),
    ///     )
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// An error of kind [`StorageErrorKind::InvalidUrl`] when `sentinels` is
    /// empty, `master_name` is empty, or a sentinel is not a Redis URL.
    pub fn connect_sentinel(sentinels: &[&str], master_name: &str) -> Result<RedisState, StorageError> {
        RedisState::connect_sentinel_with(sentinels, master_name, SentinelMaster::new())
    }

    /// [`RedisState::connect_sentinel`], logging in to the master as
    /// `master` says.
    pub fn connect_sentinel_with(
        sentinels: &[&str],
        master_name: &str,
        master: SentinelMaster,
    ) -> Result<RedisState, StorageError> {
        let invalid = |what: &dyn fmt::Display| StorageError::new(StorageErrorKind::InvalidUrl, what);
        if sentinels.is_empty() {
            return Err(invalid(
                &"connect_sentinel: sentinels is empty (give at least one redis://host:port/)",
            ));
        }
        if master_name.is_empty() {
            return Err(invalid(&"connect_sentinel: master_name is empty"));
        }
        let mut clients = Vec::with_capacity(sentinels.len());
        for &url in sentinels {
            let masked = mask_password(url);
            let client = Client::open(url).map_err(|_| {
                invalid(&format_args!(
                    "connect_sentinel: sentinel {masked:?} is not a Redis URL (expected redis://[user:password@]host:port/)"
                ))
            })?;
            clients.push((client, masked));
        }
        let key = format!(
            "sentinel {sentinels:?} {master_name:?} {master:?} {:?}",
            master.password
        );
        let endpoint = format!(
            "sentinel master {master_name:?} at {}",
            clients
                .iter()
                .map(|(_, masked)| masked.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
        Ok(RedisState::through_sentinels(Arc::new(Sentinels {
            sentinels: clients,
            master_name: master_name.to_owned(),
            master: RedisConnectionInfo {
                db: i64::from(master.db),
                username: master.username,
                password: master.password,
                ..RedisConnectionInfo::default()
            },
            first: AtomicUsize::new(0),
            key,
            endpoint,
        })))
    }
}

/// The sentinels of one master, and how to log in to it.
pub(crate) struct Sentinels {
    /// Each sentinel's client and its URL, password masked.
    sentinels: Vec<(Client, String)>,
    master_name: String,
    master: RedisConnectionInfo,
    /// The sentinel that answered last, asked first next time.
    first: AtomicUsize,
    /// What tells two such endpoints apart (passwords included).
    pub(crate) key: String,
    endpoint: String,
}

impl Sentinels {
    /// The transport whose connections go to the master they name.
    pub(crate) fn transport(self: &Arc<Self>, connect_timeout: Duration) -> RedisTransport {
        RedisTransport::to(
            Target::Sentinel(Arc::clone(self)),
            self.endpoint.clone(),
            connect_timeout,
        )
    }

    /// A connection to the master, found within `timeout`.
    pub(crate) fn connect(&self, timeout: Duration) -> Result<redis::Connection, StorageError> {
        let deadline = Instant::now().checked_add(timeout);
        let n = self.sentinels.len();
        let first = self.first.load(Ordering::Relaxed) % n;
        let mut last = None;
        for i in 0..n {
            let index = (first + i) % n;
            let left = match remaining(deadline) {
                Ok(left) => left,
                Err(timed_out) => return Err(self.failed(last.unwrap_or(timed_out))),
            };
            // A sentinel that does not answer takes only its share, so the
            // ones after it are still asked in time.
            let share = left / u32::try_from(n - i).unwrap_or(u32::MAX);
            let found = self
                .ask(index, share)
                .and_then(|(host, port)| self.master_at(index, host, port, deadline));
            match found {
                Ok(conn) => {
                    self.first.store(index, Ordering::Relaxed);
                    return Ok(conn);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(self.failed(last.unwrap_or_else(StorageError::timed_out)))
    }

    fn failed(&self, last: StorageError) -> StorageError {
        StorageError::new(
            last.kind(),
            &format_args!(
                "no master {:?} found through the sentinels (last: {last})",
                self.master_name
            ),
        )
    }

    /// The master's address as sentinel `index` knows it, within `timeout`.
    fn ask(&self, index: usize, timeout: Duration) -> Result<(String, u16), StorageError> {
        let (client, masked) = &self.sentinels[index];
        let deadline = Instant::now().checked_add(timeout);
        let mut conn = client.get_connection_with_timeout(at_least_1ms(timeout))?;
        set_timeouts(&conn, deadline)?;
        let addr: Option<(String, u16)> = cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.master_name)
            .query(&mut conn)?;
        addr.ok_or_else(|| {
            StorageError::new(
                StorageErrorKind::Server,
                &format_args!("sentinel {masked} knows no master {:?}", self.master_name),
            )
        })
    }

    /// A connection to `host:port` if it is a master, within `deadline`.
    fn master_at(
        &self,
        index: usize,
        host: String,
        port: u16,
        deadline: Option<Instant>,
    ) -> Result<redis::Connection, StorageError> {
        let named = format!("{host}:{port}");
        let client = Client::open(ConnectionInfo {
            addr: ConnectionAddr::Tcp(host, port),
            redis: self.master.clone(),
        })?;
        let mut conn = client.get_connection_with_timeout(at_least_1ms(remaining(deadline)?))?;
        set_timeouts(&conn, deadline)?;
        let role: Value = cmd("ROLE").query(&mut conn)?;
        if is_master(&role) {
            return Ok(conn);
        }
        // A sentinel not yet told of a failover names the old master.
        Err(StorageError::new(
            StorageErrorKind::Server,
            &format_args!(
                "{named}, named master {:?} by sentinel {}, is not a master",
                self.master_name, self.sentinels[index].1
            ),
        ))
    }
}

/// Whether a `ROLE` reply is a master's (`["master", offset, replicas]`).
fn is_master(role: &Value) -> bool {
    let Value::Array(items) = role else {
        return false;
    };
    match items.first() {
        Some(Value::BulkString(b)) => b.as_slice() == b"master",
        Some(Value::SimpleString(s)) => s == "master",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_refused_naming_it() {
        let error = |r: Result<RedisState, StorageError>| r.unwrap_err();
        let e = error(RedisState::connect_sentinel(&[], "m"));
        assert_eq!(e.kind(), StorageErrorKind::InvalidUrl);
        assert!(e.to_string().contains("sentinels is empty"), "{e}");
        let e = error(RedisState::connect_sentinel(&["redis://127.0.0.1:26379/"], ""));
        assert_eq!(e.kind(), StorageErrorKind::InvalidUrl);
        assert!(e.to_string().contains("master_name is empty"), "{e}");
        let e = error(RedisState::connect_sentinel(
            &["redis://127.0.0.1:26379/", "nope://:hunter2@x/"],
            "m",
        ));
        assert_eq!(e.kind(), StorageErrorKind::InvalidUrl);
        assert!(e.to_string().contains("nope://:***@x/"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(RedisState::connect_sentinel(&["redis://127.0.0.1:26379/"], "m").is_ok());
    }

    #[test]
    fn only_a_masters_role_is_a_master() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert!(is_master(&Value::Array(vec![
            bulk("master"),
            Value::Int(0),
            Value::Array(vec![])
        ])));
        assert!(!is_master(&Value::Array(vec![bulk("slave"), bulk("127.0.0.1")])));
        assert!(!is_master(&Value::Array(vec![])));
        assert!(!is_master(&Value::Nil));
    }

    #[test]
    fn the_master_password_is_never_shown() {
        let shown = format!("{:?}", SentinelMaster::new().password("hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
