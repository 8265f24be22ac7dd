//! The transport to a Redis Cluster (the `redis-cluster` feature), through
//! the `redis` crate's cluster client.
//!
//! A namespace's keys share one hash tag, so each script run goes to the one
//! master that owns the namespace's slot. The crate's own retries are off:
//! it would retry a command whose reply was lost (a timeout, a reset
//! connection), and a script run twice counts an outcome twice. Redirects
//! are followed here instead, once per call, because a `MOVED` or `ASK`
//! reply means the script did not run: `MOVED` (the slot has moved) renews
//! the slot map and runs the script on the new owner; `ASK` (the slot is
//! being migrated and the key has left) runs it once on the importing node
//! after `ASKING`. Announcements use plain `SUBSCRIBE` on any node: a
//! cluster carries `PUBLISH` to every node.

use super::client::RedisTransport;
use super::transport::{Script, Subscriber, Transport};
use super::{RedisState, StorageError, StorageErrorKind};
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{cmd, Cmd, ErrorKind, RedisError, Value};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

impl RedisState {
    /// Shares the breaker's state through a Redis Cluster reached at any of
    /// `nodes` (`redis://host:port/` each; the slot map is learnt from the
    /// first that answers). Nothing is contacted yet, as for
    /// [`RedisState::connect`].
    pub fn connect_cluster(nodes: &[&str]) -> Result<RedisState, StorageError> {
        cluster(nodes, None)
    }

    /// As [`RedisState::connect_cluster`] for `rediss://` nodes, verifying
    /// every node with `certificates` as [`RedisState::connect_tls`] does
    /// (the `redis-tls` feature too).
    #[cfg(feature = "redis-tls")]
    pub fn connect_cluster_tls(
        nodes: &[&str],
        certificates: &super::TlsCertificates,
    ) -> Result<RedisState, StorageError> {
        cluster(nodes, Some(certificates))
    }
}

#[cfg(feature = "redis-tls")]
type Certificates<'a> = Option<&'a super::TlsCertificates>;
#[cfg(not(feature = "redis-tls"))]
type Certificates<'a> = Option<&'a std::convert::Infallible>;

fn cluster(nodes: &[&str], certificates: Certificates<'_>) -> Result<RedisState, StorageError> {
    if nodes.is_empty() {
        return Err(StorageError::new(
            StorageErrorKind::InvalidUrl,
            &"connect_cluster: nodes is empty (give at least one redis://host:port/)",
        ));
    }
    let mut urls = Vec::with_capacity(nodes.len());
    let mut subscribers = Vec::with_capacity(nodes.len());
    for &node in nodes {
        let masked = super::client::mask_password(node);
        let client = match certificates {
            #[cfg(feature = "redis-tls")]
            Some(certificates) => certificates.client(node, &masked)?,
            #[cfg(not(feature = "redis-tls"))]
            Some(never) => match *never {},
            None => redis::Client::open(node).map_err(|_| {
                StorageError::new(
                    StorageErrorKind::InvalidUrl,
                    &format_args!(
                        "{masked:?} is not a Redis URL (expected redis://[user:password@]host[:port]/)"
                    ),
                )
            })?,
        };
        urls.push(node.to_owned());
        subscribers.push(RedisTransport::new(client, masked, Duration::MAX));
    }
    Ok(RedisState::with_transport(Arc::new(ClusterTransport {
        urls,
        #[cfg(feature = "redis-tls")]
        certificates: certificates.map(super::TlsCertificates::to_redis).transpose()?,
        subscribers,
        conn: Mutex::new(None),
    })))
}

/// One Redis Cluster: a cluster connection for the script, and a node to
/// subscribe on.
struct ClusterTransport {
    urls: Vec<String>,
    /// The roots and client certificate of every node's TLS connection.
    #[cfg(feature = "redis-tls")]
    certificates: Option<redis::TlsCertificates>,
    /// One per node, for subscriptions only.
    subscribers: Vec<RedisTransport>,
    conn: Mutex<Option<ClusterConnection>>,
}

impl ClusterTransport {
    /// A cluster connection with a fresh slot map, within `deadline`.
    fn open(&self, deadline: Instant) -> Result<ClusterConnection, StorageError> {
        let left = remaining(deadline)?;
        let builder = ClusterClient::builder(self.urls.clone())
            .retries(0)
            .connection_timeout(left)
            .response_timeout(left);
        #[cfg(feature = "redis-tls")]
        let builder = match &self.certificates {
            Some(certificates) => builder.certs(certificates.clone()),
            None => builder,
        };
        let client = builder.build()?;
        Ok(client.get_connection()?)
    }
}

impl Transport for ClusterTransport {
    fn eval(
        &self,
        script: &Script,
        key: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<Vec<i64>, StorageError> {
        let deadline = Instant::now() + timeout;
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut conn = match guard.take() {
            Some(conn) => conn,
            None => self.open(deadline)?,
        };
        let mut invocation = cmd("EVALSHA");
        invocation.arg(script.sha1()).arg(1).arg(key).arg(args);
        let owner = SingleNodeRoutingInfo::SpecificNode(Route::new(slot(key.as_bytes()), SlotAddr::Master));
        let result = match run(&mut conn, script, &invocation, owner, false, deadline) {
            Err(e) if e.kind() == ErrorKind::Moved || never_sent(&e) => {
                // The slot has a new owner (or its old one is gone), and the
                // script did not run: renew the slot map and run it, once.
                conn = self.open(deadline)?;
                let owner =
                    SingleNodeRoutingInfo::SpecificNode(Route::new(slot(key.as_bytes()), SlotAddr::Master));
                run(&mut conn, script, &invocation, owner, false, deadline)
            }
            Err(e) if e.kind() == ErrorKind::Ask => {
                match e.redirect_node().and_then(|(a, _)| by_address(a)) {
                    Some(importing) => run(&mut conn, script, &invocation, importing, true, deadline),
                    None => Err(e),
                }
            }
            result => result,
        };
        match result {
            Ok(values) => {
                *guard = Some(conn);
                Ok(values)
            }
            // Dropped with its connections: after a fault they may be dead,
            // and the next call learns the slot map afresh.
            Err(e) => Err(e.into()),
        }
    }

    fn subscriber(&self, timeout: Duration) -> Result<Box<dyn Subscriber>, StorageError> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        for node in &self.subscribers {
            match node.subscriber(remaining(deadline)?) {
                Ok(subscriber) => return Ok(subscriber),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(StorageError::timed_out))
    }

    fn reset(&self) {
        *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn endpoint(&self) -> String {
        let nodes: Vec<String> = self.subscribers.iter().map(|n| n.endpoint()).collect();
        format!("cluster {}", nodes.join(","))
    }
}

/// Runs the script on `node` (after `ASKING` if `asking`); on `NOSCRIPT`
/// loads it there and runs it once more.
fn run(
    conn: &mut ClusterConnection,
    script: &Script,
    invocation: &Cmd,
    node: SingleNodeRoutingInfo,
    asking: bool,
    deadline: Instant,
) -> Result<Vec<i64>, RedisError> {
    let send = |conn: &mut ClusterConnection, c: &Cmd| -> Result<Value, RedisError> {
        let left = remaining(deadline).map_err(|_| timed_out())?;
        conn.set_read_timeout(Some(left))?;
        conn.set_write_timeout(Some(left))?;
        conn.route_command(c, RoutingInfo::SingleNode(node.clone()))
    };
    let attempt = |conn: &mut ClusterConnection| -> Result<Vec<i64>, RedisError> {
        if asking {
            send(conn, &cmd("ASKING"))?;
        }
        redis::from_redis_value(&send(conn, invocation)?.extract_error()?)
    };
    match attempt(conn) {
        Err(e) if e.kind() == ErrorKind::NoScriptError => {
            // Not run: this node lacks the script (a new master, a restart).
            send(conn, cmd("SCRIPT").arg("LOAD").arg(script.source()))?.extract_error()?;
            attempt(conn)
        }
        result => result,
    }
}

/// Whether the command never reached a server: the owner the slot map
/// names refused the connection (a dead master, before the map knows).
fn never_sent(e: &RedisError) -> bool {
    e.kind() == ErrorKind::ClusterConnectionNotFound || e.is_connection_refusal()
}

fn by_address(addr: &str) -> Option<SingleNodeRoutingInfo> {
    let (host, port) = addr.rsplit_once(':')?;
    Some(SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port: port.parse().ok()?,
    })
}

fn remaining(deadline: Instant) -> Result<Duration, StorageError> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if left >= Duration::from_millis(1) => Ok(left),
        _ => Err(StorageError::timed_out()),
    }
}

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer within the command timeout",
    ))
}

/// The cluster slot of `key`: CRC16 (XMODEM) of its hash tag, modulo 16384,
/// as Redis computes it.
fn slot(key: &[u8]) -> u16 {
    let tagged = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    let mut crc: u16 = 0;
    for &byte in tagged {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

#[cfg(test)]
mod tests {
    use super::slot;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(
            slot(b"breakerbox:{checkout}:state"),
            slot(b"breakerbox:{checkout}:events")
        );
        assert_ne!(
            slot(b"foo{}{bar}"),
            slot(b"bar"),
            "an empty tag hashes the whole key"
        );
        // CRC16-XMODEM check value of "123456789": 0x31c3 (below 16384).
        assert_eq!(slot(b"123456789"), 0x31c3);
    }
}
