//! The watcher thread: listens for the fleet's announcements, refreshes the
//! mirror periodically in case one was lost, and reconnects with backoff
//! after a fault. It stops when its breaker is dropped.

use super::fleet::Inner;
use super::protocol::RawView;
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
    let mut subscriber = None;
    if inner.announce {
        let subscribed = inner
            .store
            .subscriber()
            .and_then(|mut sub| sub.subscribe(inner.store.channel(), timeout).map(|()| sub));
        match subscribed {
            Ok(sub) => subscriber = Some(sub),
            Err(e) => return End::Failed(e),
        }
    }
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
        match subscriber.as_mut() {
            Some(sub) => match sub.next_message(wait) {
                Ok(Some((_, payload))) => {
                    if let Some(view) = RawView::parse_announcement(&payload) {
                        inner.post_view(&view);
                    }
                }
                Ok(None) => {}
                Err(e) => return End::Failed(e),
            },
            None => inner.sleep(wait),
        }
    }
}
