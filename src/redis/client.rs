//! The transport through the `redis` crate: a small pool of blocking
//! connections for the script, and one subscription connection per watcher,
//! each opened to one address or to the master Redis Sentinel names.

use super::sentinel::Sentinels;
use super::transport::{Script, Subscriber, Transport};
use super::StorageError;
use redis::{cmd, Client, Cmd, Connection, ErrorKind, Msg, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The most command connections open at once, for every breaker of the
/// process on this endpoint; a call that finds them all busy waits for one,
/// within its command timeout. With the watcher's subscription connection
/// that is at most four per endpoint.
const MAX_CONNECTIONS: usize = 3;

/// One Redis endpoint reached through the `redis` crate.
pub(crate) struct RedisTransport {
    target: Target,
    endpoint: String,
    connect_timeout: Duration,
    pool: Mutex<Pool>,
    freed: Condvar,
}

struct Pool {
    idle: Vec<Connection>,
    /// Connections open, idle or in use.
    open: usize,
}

/// What a transport's connections are opened to.
pub(crate) enum Target {
    /// One address.
    Fixed(Client),
    /// The master the sentinels name, asked afresh for each connection.
    Sentinel(Arc<Sentinels>),
}

impl RedisTransport {
    pub(crate) fn new(client: Client, endpoint: String, connect_timeout: Duration) -> RedisTransport {
        RedisTransport::to(Target::Fixed(client), endpoint, connect_timeout)
    }

    pub(crate) fn to(target: Target, endpoint: String, connect_timeout: Duration) -> RedisTransport {
        RedisTransport {
            target,
            endpoint,
            connect_timeout,
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection, a new one if fewer than the most are open, or
    /// the next one freed before `deadline`.
    fn take(&self, deadline: Option<Instant>) -> Result<Connection, StorageError> {
        let mut pool = self.pool();
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(conn);
            }
            if pool.open < MAX_CONNECTIONS {
                pool.open += 1;
                drop(pool);
                let conn = remaining(deadline).and_then(|left| self.connect(left));
                if conn.is_err() {
                    self.give_back(None);
                }
                return conn;
            }
            let left = remaining(deadline)?;
            pool = self
                .freed
                .wait_timeout(pool, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Returns a connection to the pool; `None`: it was lost.
    fn give_back(&self, conn: Option<Connection>) {
        let mut pool = self.pool();
        match conn {
            Some(conn) => pool.idle.push(conn),
            None => pool.open = pool.open.saturating_sub(1),
        }
        drop(pool);
        self.freed.notify_one();
    }

    fn connect(&self, timeout: Duration) -> Result<Connection, StorageError> {
        let timeout = at_least_1ms(timeout.min(self.connect_timeout));
        match &self.target {
            Target::Fixed(client) => Ok(client.get_connection_with_timeout(timeout)?),
            Target::Sentinel(sentinels) => sentinels.connect(timeout),
        }
    }
}

impl Transport for RedisTransport {
    fn eval(
        &self,
        script: &Script,
        key: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<Vec<i64>, StorageError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut conn = self.take(deadline)?;
        let mut invocation = cmd("EVALSHA");
        invocation.arg(script.sha1()).arg(1).arg(key).arg(args);
        let values = eval(&mut conn, script, &invocation, deadline);
        // After an error the connection may be mid-reply or dead: close it.
        self.give_back(values.is_ok().then_some(conn));
        values
    }

    fn subscriber(&self, timeout: Duration) -> Result<Box<dyn Subscriber>, StorageError> {
        let conn = self.connect(timeout)?;
        Ok(Box::new(RedisSubscriber {
            conn,
            waiting: VecDeque::new(),
        }))
    }

    fn reset(&self) {
        let mut pool = self.pool();
        pool.open = pool.open.saturating_sub(pool.idle.len());
        pool.idle.clear();
    }

    fn endpoint(&self) -> String {
        self.endpoint.clone()
    }
}

fn eval(
    conn: &mut Connection,
    script: &Script,
    invocation: &Cmd,
    deadline: Option<Instant>,
) -> Result<Vec<i64>, StorageError> {
    set_timeouts(conn, deadline)?;
    match invocation.query::<Vec<i64>>(conn) {
        Err(e) if e.kind() == ErrorKind::NoScriptError => {
            // Not run: the server lost its script cache (restart, SCRIPT
            // FLUSH). Load it and run it once.
            set_timeouts(conn, deadline)?;
            cmd("SCRIPT")
                .arg("LOAD")
                .arg(script.source())
                .query::<String>(conn)?;
            set_timeouts(conn, deadline)?;
            Ok(invocation.query(conn)?)
        }
        result => Ok(result?),
    }
}

pub(crate) fn at_least_1ms(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

/// What is left until `deadline` (`None`: a timeout too long to represent).
pub(crate) fn remaining(deadline: Option<Instant>) -> Result<Duration, StorageError> {
    let Some(deadline) = deadline else {
        return Ok(Duration::MAX);
    };
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(StorageError::timed_out()),
    }
}

pub(crate) fn set_timeouts(conn: &Connection, deadline: Option<Instant>) -> Result<(), StorageError> {
    let left = at_least_1ms(remaining(deadline)?);
    conn.set_read_timeout(Some(left))?;
    conn.set_write_timeout(Some(left))?;
    Ok(())
}

/// A subscription connection driven by hand: the `redis` crate's `PubSub`
/// borrows its connection, and a watcher must own it.
struct RedisSubscriber {
    conn: Connection,
    /// Messages that arrived while a (un)subscription was being confirmed.
    waiting: VecDeque<(String, String)>,
}

impl RedisSubscriber {
    /// Sends `command` and reads until its confirmation, keeping messages.
    fn confirm(&mut self, command: &str, channel: &str, timeout: Duration) -> Result<(), StorageError> {
        let deadline = Instant::now().checked_add(timeout);
        set_timeouts(&self.conn, deadline)?;
        self.conn
            .send_packed_command(&cmd(command).arg(channel).get_packed_command())?;
        let expected = command.to_ascii_lowercase();
        loop {
            set_timeouts(&self.conn, deadline)?;
            let value = self.conn.recv_response()?;
            if is_confirmation(&value, &expected, channel) {
                return Ok(());
            }
            if let Some(message) = message(value) {
                self.waiting.push_back(message);
            }
        }
    }
}

fn is_confirmation(value: &Value, kind: &str, channel: &str) -> bool {
    let items = match value {
        Value::Array(items) => items.as_slice(),
        Value::Push { data, .. } => data.as_slice(),
        _ => return false,
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    matches!(items, [k, c, ..] if text(k).as_deref() == Some(kind) && text(c).as_deref() == Some(channel))
}

fn message(value: Value) -> Option<(String, String)> {
    let msg = Msg::from_owned_value(value)?;
    let payload: String = msg.get_payload().ok()?;
    Some((msg.get_channel_name().to_owned(), payload))
}

impl Subscriber for RedisSubscriber {
    fn subscribe(&mut self, channel: &str, timeout: Duration) -> Result<(), StorageError> {
        self.confirm("SUBSCRIBE", channel, timeout)
    }

    fn unsubscribe(&mut self, channel: &str, timeout: Duration) -> Result<(), StorageError> {
        self.confirm("UNSUBSCRIBE", channel, timeout)
    }

    fn next_message(&mut self, wait: Duration) -> Result<Option<(String, String)>, StorageError> {
        if let Some(message) = self.waiting.pop_front() {
            return Ok(Some(message));
        }
        // Read through the crate's `PubSub`: a plain `recv_response` that
        // times out makes the connection skip the next reply. The `PubSub`
        // is forgotten, not dropped, because its drop unsubscribes from
        // everything; it owns nothing then (its queue of replies read
        // ahead is only filled by its own subscribe calls, never used here).
        let mut pubsub = self.conn.as_pubsub();
        let received = pubsub
            .set_read_timeout(Some(at_least_1ms(wait)))
            .and_then(|()| pubsub.get_message());
        std::mem::forget(pubsub);
        match received {
            Ok(msg) => {
                let payload: Option<String> = msg.get_payload().ok();
                Ok(payload.map(|p| (msg.get_channel_name().to_owned(), p)))
            }
            Err(e) if e.is_timeout() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// `url` with any password replaced by `***`, for messages.
pub(crate) fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None if scheme.starts_with("redis") => "***".to_owned(),
                None => userinfo.to_owned(),
            };
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::mask_password;

    #[test]
    fn passwords_are_masked_and_nothing_else_is() {
        assert_eq!(
            mask_password("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            mask_password("redis://app:s3cr:et@db.local:6379/0"),
            "redis://app:***@db.local:6379/0"
        );
        assert_eq!(mask_password("rediss://:hunter2@h/"), "rediss://:***@h/");
        assert_eq!(mask_password("redis://hunter2@h/"), "redis://***@h/");
        assert_eq!(mask_password("not a url"), "not a url");
    }
}
