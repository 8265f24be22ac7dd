//! The watcher thread: listens for the fleet's announcements, refreshes the
//! mirror periodically in case one was lost, and reconnects with backoff
//! after a fault. It stops when its breaker is dropped.

use super::fleet::Inner;
use super::store::announcement;
use super::StorageError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest the watcher blocks before it looks at its stop flag.
pub(crate) const TICK: Duration = Duration::from_millis(50);
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

enum End {
    /// The breaker was dropped.
    Stopped,
    /// A call saw the store fail: start over at once.
    Reconnect,
    /// The watcher saw the store fail.
    Failed(StorageError),
}

pub(crate) fn run(inner: Arc<Inner>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match session(&inner, &mut backoff) {
            End::Stopped => return,
            End::Reconnect => {}
            End::Failed(error) => {
                inner.mark_down(Some(error));
                inner.sleep(backoff);
                backoff = (backoff * 2).min(inner.max_backoff.max(FIRST_BACKOFF));
            }
        }
        if inner.stopped() {
            return;
        }
    }
}

/// One connection's life: subscribe, sync, then listen and refresh until a
/// fault or the stop flag.
fn session(inner: &Inner, backoff: &mut Duration) -> End {
    if inner.stopped() {
        return End::Stopped;
    }
    let timeout = inner.store.connect_timeout();
    let mut conn = None;
    if inner.announce {
        match inner.store.connect(timeout) {
            Ok(c) => conn = Some(c),
            Err(e) => return End::Failed(e),
        }
    }
    let mut pubsub = match conn.as_mut() {
        Some(c) => {
            if let Err(e) = c.set_write_timeout(Some(timeout)) {
                return End::Failed(e.into());
            }
            let mut pubsub = c.as_pubsub();
            let subscribed = pubsub
                .set_read_timeout(Some(timeout))
                .and_then(|()| pubsub.subscribe(inner.store.channel()));
            if let Err(e) = subscribed {
                return End::Failed(e.into());
            }
            Some(pubsub)
        }
        None => None,
    };
    // Subscribed first, then read: no change between the two is missed.
    match inner.sync() {
        Ok(view) => {
            inner.post_view(&view);
            inner.mark_up();
            *backoff = FIRST_BACKOFF;
        }
        Err(e) => return End::Failed(e),
    }
    let mut next_refresh = Instant::now() + inner.refresh_interval;
    loop {
        if inner.stopped() {
            return End::Stopped;
        }
        if inner.is_down() {
            return End::Reconnect;
        }
        let now = Instant::now();
        if now >= next_refresh {
            // Scheduled from the start of each refresh: a change is read by
            // one that starts at most `refresh_interval` after it, and posted
            // within the command timeout after that.
            next_refresh = now + inner.refresh_interval;
            match inner.sync() {
                Ok(view) => inner.post_view(&view),
                Err(e) => return End::Failed(e),
            }
            continue;
        }
        let wait = (next_refresh - now).clamp(Duration::from_millis(1), TICK);
        match pubsub.as_mut() {
            Some(pubsub) => {
                if let Err(e) = pubsub.set_read_timeout(Some(wait)) {
                    return End::Failed(e.into());
                }
                match pubsub.get_message() {
                    Ok(msg) => {
                        if let Some(view) = announcement(&msg) {
                            inner.post_view(&view);
                        }
                    }
                    Err(e) if e.is_timeout() => {}
                    Err(e) => return End::Failed(e.into()),
                }
            }
            None => inner.sleep(wait),
        }
    }
}
