//! One connection set per process and endpoint: every shared breaker of a
//! process that uses the same Redis shares its transport (a small pool of
//! command connections), one subscription connection with one channel per
//! namespace, and one watcher thread. The watcher listens for the fleet's
//! announcements, refreshes each mirror periodically in case one was lost,
//! and brings back breakers whose store failed, with backoff. It never
//! holds a lock across I/O; dropping a breaker only takes it off the list,
//! and the watcher ends by itself once the list is empty.

use super::fleet::Inner;
use super::protocol::RawView;
use super::protocol::ReadAt;
use super::transport::{Subscriber, Transport};
use super::StorageError;
use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

/// The longest the watcher blocks before it looks at its list again.
pub(crate) const TICK: Duration = Duration::from_millis(50);
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// What an endpoint's breakers share.
pub(crate) struct Hub {
    pub(crate) transport: Arc<dyn Transport>,
    /// Runs the round trips of calls that must not wait on the network.
    pub(crate) workers: Arc<super::offload::Workers>,
    /// The process that made it: a child made by `fork` has none of its
    /// parent's threads, so it makes hubs of its own.
    pid: u32,
    connect_timeout: Duration,
    state: Mutex<Members>,
    wake: Condvar,
}

struct Members {
    list: Vec<Arc<Inner>>,
    /// The list changed since the watcher last copied it.
    changed: bool,
    /// A watcher thread is running for this hub.
    running: bool,
}

/// The hubs of this process, by endpoint; a hub lives while a breaker uses it.
fn hubs() -> MutexGuard<'static, HashMap<String, Weak<Hub>>> {
    static HUBS: OnceLock<Mutex<HashMap<String, Weak<Hub>>>> = OnceLock::new();
    HUBS.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// The hub for `key`, made with `make` if this process has none.
    pub(crate) fn get(
        key: String,
        connect_timeout: Duration,
        make: impl FnOnce() -> Arc<dyn Transport>,
    ) -> Arc<Hub> {
        let pid = std::process::id();
        let mut hubs = hubs();
        if let Some(hub) = hubs.get(&key).and_then(Weak::upgrade) {
            if hub.pid == pid {
                return hub;
            }
        }
        hubs.retain(|_, hub| hub.upgrade().is_some_and(|hub| hub.pid == pid));
        let hub = Arc::new(Hub {
            transport: make(),
            workers: Arc::default(),
            pid,
            connect_timeout,
            state: Mutex::new(Members {
                list: Vec::new(),
                changed: false,
                running: false,
            }),
            wake: Condvar::new(),
        });
        hubs.insert(key, Arc::downgrade(&hub));
        hub
    }

    fn members(&self) -> MutexGuard<'_, Members> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a breaker; starts the watcher if none runs.
    pub(crate) fn join(self: &Arc<Hub>, member: Arc<Inner>) {
        let mut members = self.members();
        members.list.push(member);
        members.changed = true;
        if !members.running {
            match spawn(Arc::clone(self)) {
                Ok(()) => members.running = true,
                Err(e) => {
                    for m in &members.list {
                        m.post_error(StorageError::thread(&e));
                    }
                }
            }
        }
        self.wake.notify_all();
    }

    /// Takes a breaker off the list. Never waits on the watcher or the network.
    pub(crate) fn leave(&self, member: &Arc<Inner>) {
        let mut members = self.members();
        members.list.retain(|m| !Arc::ptr_eq(m, member));
        members.changed = true;
        self.wake.notify_all();
    }

    /// Wakes the watcher (a call saw the store fail).
    pub(crate) fn nudge(&self) {
        let _members = self.members();
        self.wake.notify_all();
    }

    /// Sleeps up to `timeout`, waking early when the list changes.
    fn sleep(&self, timeout: Duration) {
        let members = self.members();
        if members.changed || members.list.is_empty() {
            return;
        }
        let _ = self.wake.wait_timeout(members, timeout);
    }
}

fn spawn(hub: Arc<Hub>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("breakerbox-redis".into())
        .spawn(move || {
            // A panic is reported to every breaker and the watcher starts
            // over: no breaker is left without one.
            while let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(&hub))) {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                let error = StorageError::watcher_died(&what);
                let members = hub.members().list.clone();
                for m in members {
                    m.mark_down(Some(error.clone()));
                }
                hub.sleep(FIRST_BACKOFF);
            }
        })
        .map(drop)
}

/// The watcher's own bookkeeping of one breaker.
struct Schedule {
    next_sync: Instant,
    backoff: Duration,
    /// Whether the breaker was down when last looked at.
    was_down: bool,
    up_since: Instant,
}

/// Runs until the list is empty.
fn run(hub: &Hub) {
    let mut subscriber: Option<Box<dyn Subscriber>> = None;
    let mut subscribed: HashSet<String> = HashSet::new();
    let mut schedules: HashMap<usize, Schedule> = HashMap::new();
    let mut known: Vec<Arc<Inner>> = Vec::new();
    let mut backoff = FIRST_BACKOFF;
    loop {
        {
            let mut members = hub.members();
            if members.list.is_empty() {
                members.running = false;
                drop(members);
                hub.transport.reset();
                return;
            }
            // A restarted watcher starts from the whole list.
            if members.changed || known.is_empty() {
                known = members.list.clone();
                members.changed = false;
            }
        }
        let max_backoff = known
            .iter()
            .map(|m| m.max_backoff)
            .min()
            .unwrap_or(FIRST_BACKOFF)
            .max(FIRST_BACKOFF);
        // The subscription connection and its channels.
        let wanted: HashSet<&str> = known
            .iter()
            .filter(|m| m.announce)
            .map(|m| m.store.channel())
            .collect();
        if let Err(e) = subscribe(hub, &mut subscriber, &mut subscribed, &wanted) {
            subscriber = None;
            subscribed.clear();
            for m in known.iter().filter(|m| m.announce) {
                m.mark_down(Some(e.clone()));
            }
            hub.sleep(backoff);
            backoff = (backoff * 2).min(max_backoff);
            continue;
        }
        backoff = FIRST_BACKOFF;
        let now = Instant::now();
        schedules.retain(|id, _| known.iter().any(|m| id_of(m) == *id));
        for m in &known {
            let s = schedules.entry(id_of(m)).or_insert(Schedule {
                // Subscribed first, then read: no change between is missed.
                next_sync: now,
                backoff: FIRST_BACKOFF,
                was_down: false,
                up_since: now,
            });
            sync_due(m, s, now, max_backoff);
            m.flush_due();
        }
        let next = schedules.values().map(|s| s.next_sync).min();
        let wait = next
            .map_or(TICK, |at| at.saturating_duration_since(Instant::now()))
            .clamp(Duration::from_millis(1), TICK);
        match subscriber.as_mut() {
            Some(sub) => match sub.next_message(wait) {
                Ok(Some((channel, payload))) => {
                    if let Some(view) = RawView::parse_announcement(&payload) {
                        for m in known.iter().filter(|m| m.store.channel() == channel) {
                            // It may have waited in the socket: when it
                            // was read is unknown.
                            m.post_view(&view, ReadAt::Unknown);
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    subscriber = None;
                    subscribed.clear();
                    for m in known.iter().filter(|m| m.announce) {
                        m.mark_down(Some(e.clone()));
                    }
                }
            },
            None => hub.sleep(wait),
        }
    }
}

fn id_of(m: &Arc<Inner>) -> usize {
    Arc::as_ptr(m) as usize
}

/// Brings the subscription in line with `wanted`.
fn subscribe(
    hub: &Hub,
    subscriber: &mut Option<Box<dyn Subscriber>>,
    subscribed: &mut HashSet<String>,
    wanted: &HashSet<&str>,
) -> Result<(), StorageError> {
    if wanted.is_empty() && subscriber.is_none() {
        return Ok(());
    }
    if subscriber.is_none() {
        *subscriber = Some(hub.transport.subscriber(hub.connect_timeout)?);
        subscribed.clear();
    }
    let sub = subscriber.as_mut().expect("just connected");
    for channel in wanted {
        if !subscribed.contains(*channel) {
            sub.subscribe(channel, hub.connect_timeout)?;
            subscribed.insert((*channel).to_owned());
        }
    }
    let gone: Vec<String> = subscribed
        .iter()
        .filter(|c| !wanted.contains(c.as_str()))
        .cloned()
        .collect();
    for channel in gone {
        sub.unsubscribe(&channel, hub.connect_timeout)?;
        subscribed.remove(&channel);
    }
    Ok(())
}

/// Syncs one breaker when its refresh (or its recovery) is due.
///
/// A breaker that a call marked down is brought back only after its backoff,
/// which doubles with each fall and is reset once it stayed up a whole
/// refresh interval: a server that answers reads but refuses writes
/// (READONLY, OOM, MOVED) meets a few calls, not a storm of them.
fn sync_due(m: &Inner, s: &mut Schedule, now: Instant, max_backoff: Duration) {
    let down = m.is_down();
    if down && !s.was_down {
        s.next_sync = now + s.backoff;
        s.backoff = (s.backoff * 2).min(max_backoff);
        s.was_down = true;
    }
    if now < s.next_sync {
        return;
    }
    match m.sync() {
        Ok((view, read)) => {
            m.post_view(&view, read);
            if s.was_down {
                m.mark_up();
                s.was_down = false;
                s.up_since = now;
            } else if now.saturating_duration_since(s.up_since) >= m.refresh_interval {
                s.backoff = FIRST_BACKOFF;
            }
            s.next_sync = now.checked_add(m.refresh_interval).unwrap_or(now + TICK);
        }
        Err(e) => {
            m.mark_down(Some(e));
            s.was_down = true;
            s.next_sync = now + s.backoff;
            s.backoff = (s.backoff * 2).min(max_backoff);
        }
    }
}
