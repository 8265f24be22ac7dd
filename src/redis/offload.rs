//! Round trips for calls that must not wait on the network: async calls and
//! the tower layer. Their cold paths decide what they can on the polling
//! thread, hand the one script run they need to a small pool of worker
//! threads per endpoint, and return `Pending`; the worker wakes the task
//! when the reply is in, and the next poll applies it to the mirror as a
//! blocking call would have. The fleet's rules are the blocking path's own
//! ([`Fleet::begin_acquire`] and its siblings); only the waiting moves.
//!
//! A round trip nobody waits for any more (its future was dropped, or a
//! record was handed off on cancellation) is settled by the worker: its
//! view is left for the mirror's next call, a fault marks the store down
//! as a call that met it would, and a probe the fleet admitted for nobody
//! is recorded as ignored, so its slot comes back at once.

use super::fleet::{Fleet, Inner, Mirror, Run, Step};
use super::protocol::{Code, Op, ReadAt, Reply, Seed};
use super::{StorageError, StorageErrorKind};
use crate::breaker::backend::WindowedCall;
use crate::machine::events::Events;
use crate::machine::state::{Acquire, Limits, Outcome, Recorded, Ticket, Transition};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The most workers an endpoint runs at once: as many as the `redis` crate
/// transport has command connections, so none waits on another for one.
const MAX_WORKERS: usize = 3;
/// A worker with nothing to do for this long ends.
const IDLE: Duration = Duration::from_secs(1);

/// One round trip in flight for a call that polls for its reply. Dropped
/// before the reply was taken, the round trip is settled without it.
pub(crate) struct Pending {
    task: Arc<Task>,
}

/// A script run handed to the workers, and where its reply goes.
struct Task {
    inner: Arc<Inner>,
    workers: Arc<Workers>,
    run: Run,
    seed: Seed,
    /// When it was begun, against the mirror's own moves (its reply's).
    read: ReadAt,
    limits: Limits,
    /// The end of its command timeout, counted from the hand-off: time in
    /// the queue counts too. `None`: too far to represent.
    deadline: Option<Instant>,
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    reply: Option<Result<Reply, StorageError>>,
    waker: Option<Waker>,
    /// Nobody will take the reply: the worker settles it.
    detached: bool,
}

/// An endpoint's workers and their queue.
#[derive(Default)]
pub(crate) struct Workers {
    queue: Mutex<Queue>,
    ready: Condvar,
}

#[derive(Default)]
struct Queue {
    work: VecDeque<Work>,
    /// Workers waiting for work.
    idle: usize,
    /// Workers running.
    threads: usize,
}

enum Work {
    /// Run the task's script, then deliver its reply.
    Run(Arc<Task>),
    /// A reply that came in after its waiter left.
    Settle(Arc<Task>, Result<Reply, StorageError>),
}

impl Task {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The script run, within what is left of the command timeout; a
    /// transport that panics is a fault, so the reply always comes.
    fn run(&self) -> Result<Reply, StorageError> {
        let left = match self.deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => Duration::MAX,
        };
        if left.is_zero() {
            return Err(StorageError::timed_out());
        }
        let store = &self.inner.store;
        let run = &self.run;
        catch_unwind(AssertUnwindSafe(|| {
            store.run_within(run.op, &self.seed, &self.limits, run.window(), left)
        }))
        .unwrap_or_else(|_| Err(panicked()))
        .map(|reply| Reply {
            read: self.read,
            ..reply
        })
    }

    /// Hands the reply to its waiter and wakes it (outside the lock), or
    /// settles it if nobody waits.
    fn deliver(self: &Arc<Self>, reply: Result<Reply, StorageError>) {
        let mut slot = self.slot();
        if slot.detached {
            drop(slot);
            self.settle(reply);
            return;
        }
        slot.reply = Some(reply);
        let waker = slot.waker.take();
        drop(slot);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// A reply nobody applies to a mirror: the watcher's mailbox takes it.
    fn settle(&self, reply: Result<Reply, StorageError>) {
        match reply {
            Ok(reply) => {
                self.inner.post_view(&reply.view, reply.read);
                if matches!(self.run.op, Op::Acquire) && reply.code == Code::AdmitProbe {
                    // A probe admitted for a call that left: free its slot.
                    let ticket = self.inner.localize(&reply.view).probe_ticket(reply.slot);
                    let release = Task {
                        run: Op::Record(ticket, Outcome::Ignored, false).into(),
                        deadline: Instant::now().checked_add(self.inner.store.command_timeout()),
                        slot: Mutex::default(),
                        inner: Arc::clone(&self.inner),
                        workers: Arc::clone(&self.workers),
                        ..*self
                    };
                    release.settle(release.run());
                }
            }
            Err(error) => {
                self.inner.mark_down(Some(error));
                if self.run.windowed.is_some() {
                    self.inner.windowed_run_failed();
                }
            }
        }
    }
}

fn panicked() -> StorageError {
    StorageError::new(StorageErrorKind::Unreachable, &"the transport panicked")
}

impl Work {
    fn task(&self) -> &Arc<Task> {
        match self {
            Work::Run(task) | Work::Settle(task, _) => task,
        }
    }

    fn execute(self) {
        match self {
            Work::Run(task) => {
                let reply = task.run();
                task.deliver(reply);
            }
            Work::Settle(task, reply) => task.settle(reply),
        }
    }
}

impl Workers {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `work`, starting a worker if every running one is busy.
    fn submit(self: &Arc<Self>, work: Work) {
        let mut queue = self.queue();
        queue.work.push_back(work);
        if queue.work.len() > queue.idle && queue.threads < MAX_WORKERS {
            let workers = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("breakerbox-io".into())
                .spawn(move || workers.work());
            match spawned {
                Ok(_) => queue.threads += 1,
                Err(e) if queue.threads == 0 => {
                    // No worker will ever run this queue: fail it now, so
                    // that every waiter is woken.
                    let stranded: Vec<Work> = queue.work.drain(..).collect();
                    drop(queue);
                    for work in stranded {
                        let task = Arc::clone(work.task());
                        task.deliver(Err(StorageError::thread(&e)));
                    }
                    return;
                }
                Err(_) => {}
            }
        }
        drop(queue);
        self.ready.notify_one();
    }

    /// A worker's life: runs what is queued, ends once idle for [`IDLE`].
    fn work(&self) {
        let mut queue = self.queue();
        loop {
            if let Some(work) = queue.work.pop_front() {
                drop(queue);
                // A waker that panics must not take the worker down.
                let _ = catch_unwind(AssertUnwindSafe(|| work.execute()));
                queue = self.queue();
                continue;
            }
            queue.idle += 1;
            let (guard, waited) = self
                .ready
                .wait_timeout(queue, IDLE)
                .unwrap_or_else(PoisonError::into_inner);
            queue = guard;
            queue.idle -= 1;
            if waited.timed_out() && queue.work.is_empty() {
                queue.threads -= 1;
                return;
            }
        }
    }
}

impl Pending {
    /// The reply, once in; until then the task is woken when it comes.
    fn poll(&self, cx: &mut Context<'_>) -> Poll<Result<Reply, StorageError>> {
        let mut slot = self.task.slot();
        if let Some(reply) = slot.reply.take() {
            return Poll::Ready(reply);
        }
        match &slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Whether this round trip is a reconcile (after a record).
    pub(crate) fn is_reconcile(&self) -> bool {
        matches!(self.task.run.op, Op::Reconcile)
    }

    /// Whether this round trip is a windowed record.
    pub(crate) fn is_windowed(&self) -> bool {
        self.task.run.windowed.is_some()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut slot = self.task.slot();
        slot.detached = true;
        slot.waker = None;
        let reply = slot.reply.take();
        drop(slot);
        if let Some(reply) = reply {
            let workers = Arc::clone(&self.task.workers);
            workers.submit(Work::Settle(Arc::clone(&self.task), reply));
        }
    }
}

/// The cold paths of async calls: the blocking path's steps, with the
/// round trip between them handed to the workers.
impl Fleet {
    /// Hands `run` to the endpoint's workers, seeded from the mirror now.
    fn submit(&self, m: Mirror<'_>, run: Run, limits: &Limits) -> Pending {
        let task = Arc::new(Task {
            inner: Arc::clone(&self.inner),
            workers: Arc::clone(&self.hub.workers),
            run,
            seed: self.inner.seed(m.cell.load()),
            read: self.inner.read_point().1,
            limits: *limits,
            deadline: Instant::now().checked_add(self.inner.store.command_timeout()),
            slot: Mutex::default(),
        });
        self.hub.workers.submit(Work::Run(Arc::clone(&task)));
        Pending { task }
    }

    /// Begins a cold path, or goes on with the round trip in `io`.
    #[allow(clippy::too_many_arguments)]
    fn poll_step<T>(
        &self,
        m: Mirror<'_>,
        limits: &Limits,
        io: &mut Option<Pending>,
        cx: &mut Context<'_>,
        ev: &mut Events,
        begin: impl FnOnce(&mut Events) -> Step<T>,
        answer: impl FnOnce(Result<Reply, StorageError>, &mut Events) -> T,
    ) -> Poll<T> {
        if io.is_none() {
            match begin(ev) {
                Step::Done(done) => return Poll::Ready(done),
                Step::Ask(run) => *io = Some(self.submit(m, run, limits)),
            }
        }
        let (_, reply) = ready!(poll_reply(io, cx));
        Poll::Ready(answer(reply, ev))
    }

    /// [`Fleet::acquire`] without waiting on the network.
    pub(crate) fn poll_acquire(
        &self,
        m: Mirror<'_>,
        limits: &Limits,
        io: &mut Option<Pending>,
        cx: &mut Context<'_>,
        ev: &mut Events,
    ) -> Poll<Acquire> {
        self.poll_step(
            m,
            limits,
            io,
            cx,
            ev,
            |ev| self.begin_acquire(m, limits, ev),
            |reply, ev| self.answer_acquire(m, limits, reply, ev),
        )
    }

    /// [`Fleet::record`] without waiting on the network.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn poll_record(
        &self,
        m: Mirror<'_>,
        ticket: Ticket,
        outcome: Outcome,
        slow: bool,
        limits: &Limits,
        io: &mut Option<Pending>,
        cx: &mut Context<'_>,
        ev: &mut Events,
    ) -> Poll<Recorded> {
        self.poll_step(
            m,
            limits,
            io,
            cx,
            ev,
            |ev| self.begin_record(m, ticket, outcome, slow, limits, ev),
            |reply, ev| self.answer_record(m, ticket, outcome, slow, limits, reply, ev),
        )
    }

    /// [`Fleet::reconcile`] without waiting on the network.
    pub(crate) fn poll_reconcile(
        &self,
        m: Mirror<'_>,
        limits: &Limits,
        io: &mut Option<Pending>,
        cx: &mut Context<'_>,
        ev: &mut Events,
    ) -> Poll<Option<Transition>> {
        self.poll_step(
            m,
            limits,
            io,
            cx,
            ev,
            |ev| self.begin_reconcile(m, limits, ev),
            |reply, ev| self.answer_reconcile(m, limits, reply, ev),
        )
    }

    /// Records without waiting for the fleet's answer: what the mirror
    /// decides alone, or `None` when the record was handed to the workers
    /// (its answer reaches the mirror as the fleet's next view).
    pub(crate) fn record_detached(
        &self,
        m: Mirror<'_>,
        ticket: Ticket,
        outcome: Outcome,
        limits: &Limits,
        ev: &mut Events,
    ) -> Option<Recorded> {
        match self.begin_record(m, ticket, outcome, false, limits, ev) {
            Step::Done(recorded) => Some(recorded),
            Step::Ask(run) => {
                drop(self.submit(m, run, limits));
                None
            }
        }
    }

    /// Begins [`Fleet::record_windowed`] without waiting on the network:
    /// what the local window decides alone, or `None` once its run (with
    /// the counts it carries) is handed to the workers, in `io`, to be
    /// polled with [`Fleet::poll_windowed`].
    pub(crate) fn send_windowed(
        &self,
        m: Mirror<'_>,
        call: WindowedCall,
        limits: &Limits,
        io: &mut Option<Pending>,
        ev: &mut Events,
    ) -> Option<Recorded> {
        match self.begin_windowed(m, call, ev) {
            Step::Done(recorded) => Some(recorded),
            Step::Ask(run) => {
                *io = Some(self.submit(m, run, limits));
                None
            }
        }
    }

    /// The windowed record [`Fleet::send_windowed`] left in `io`, once the
    /// fleet answered it.
    pub(crate) fn poll_windowed(
        &self,
        m: Mirror<'_>,
        ticket: Ticket,
        io: &mut Option<Pending>,
        cx: &mut Context<'_>,
        ev: &mut Events,
    ) -> Poll<Recorded> {
        let (run, reply) = ready!(poll_reply(io, cx));
        Poll::Ready(self.answer_windowed(m, ticket, run, reply, ev))
    }

    /// [`Fleet::record_windowed`] without waiting for the fleet's answer:
    /// what the local window decides alone, or `None` when the run was
    /// handed to the workers (its answer reaches the mirror as the fleet's
    /// next view).
    pub(crate) fn record_windowed_detached(
        &self,
        m: Mirror<'_>,
        call: WindowedCall,
        limits: &Limits,
        ev: &mut Events,
    ) -> Option<Recorded> {
        let mut io = None;
        // Dropped unanswered: the worker settles the reply.
        self.send_windowed(m, call, limits, &mut io, ev)
    }
}

/// The reply to the round trip in `io`, with the run it answers, once in.
fn poll_reply(io: &mut Option<Pending>, cx: &mut Context<'_>) -> Poll<(Run, Result<Reply, StorageError>)> {
    let pending = io.as_ref().expect("a round trip in flight");
    let reply = ready!(pending.poll(cx));
    let run = pending.task.run;
    *io = None;
    Poll::Ready((run, reply))
}
