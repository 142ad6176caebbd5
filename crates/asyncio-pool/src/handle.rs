//! What a worker (or any thread) holds to reach the pool's loops: their
//! `LoopHandle`s, and `spawn`/`spawn_on` to hand a `Send` future to a loop.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use asyncio_core::{CancelledError, LoopHandle, PanicError, TaskError};

use crate::error::HandoffError;

/// One loop of the pool, as other threads see it.
pub(crate) struct Slot {
    pub(crate) handle: LoopHandle,
    /// Jobs handed to this loop with `spawn`/`spawn_on`...
    handed: Padded<AtomicUsize>,
    /// ...and how many of them are over. Two counters on their own cache
    /// lines, so that the threads handing jobs over and the loop finishing
    /// them do not write to one line for every job.
    finished: Padded<AtomicUsize>,
    /// The waker of the worker's main task, to deliver a cancellation.
    main: Mutex<Option<Waker>>,
}

/// A value alone on its cache line (two lines: the adjacent-line prefetcher
/// pairs them).
#[repr(align(128))]
struct Padded<T>(T);

impl std::ops::Deref for Padded<AtomicUsize> {
    type Target = AtomicUsize;

    fn deref(&self) -> &AtomicUsize {
        &self.0
    }
}

impl Slot {
    fn load(&self) -> usize {
        let finished = self.finished.load(Ordering::Relaxed);
        self.handed.load(Ordering::Relaxed).saturating_sub(finished)
    }

    fn job_over(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) struct Shared {
    pub(crate) slots: Vec<Slot>,
    next: AtomicUsize,
    cancelled: AtomicBool,
    /// Every worker reported: the loops may close.
    ended: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only plain values live under these locks; a panic cannot leave them
    // half-updated.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(handles: Vec<LoopHandle>) -> Self {
        Shared {
            slots: handles
                .into_iter()
                .map(|handle| Slot {
                    handle,
                    handed: Padded(AtomicUsize::new(0)),
                    finished: Padded(AtomicUsize::new(0)),
                    main: Mutex::new(None),
                })
                .collect(),
            next: AtomicUsize::new(0),
            cancelled: AtomicBool::new(false),
            ended: AtomicBool::new(false),
        }
    }

    /// Cancels every worker's main task (idempotent).
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.wake_mains();
    }

    /// The pool's run is over: every loop stops serving hand-offs and closes.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
        self.wake_mains();
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst) || self.is_cancelled()
    }

    fn wake_mains(&self) {
        for slot in &self.slots {
            let waker = lock(&slot.main).take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Remembers the main task's waker (checked after storing, so a cancel
    /// or the end is never missed).
    pub(crate) fn park_main(&self, worker: usize, waker: &Waker) {
        {
            let mut slot = lock(&self.slots[worker].main);
            match &*slot {
                Some(w) if w.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
    }
}

/// A handle to the whole pool (`Send + Sync + Clone`): the loops'
/// [`LoopHandle`]s, and hand-off of `Send` futures between them. Every
/// worker gets one through its [`Worker`]; it stays valid after the pool
/// ended (hand-offs then fail with [`HandoffError`]).
#[derive(Clone)]
pub struct PoolHandle {
    pub(crate) shared: Arc<Shared>,
}

impl PoolHandle {
    /// How many loops (workers) the pool has.
    pub fn len(&self) -> usize {
        self.shared.slots.len()
    }

    /// Always `false`: a pool has at least one loop.
    pub fn is_empty(&self) -> bool {
        self.shared.slots.is_empty()
    }

    fn slot(&self, worker: usize) -> &Slot {
        let n = self.len();
        self.shared.slots.get(worker).unwrap_or_else(|| {
            panic!("worker index {worker} is out of range: the pool has {n} workers (0..{n})")
        })
    }

    /// The [`LoopHandle`] of worker `worker`'s loop: `call_soon_threadsafe`
    /// and `run_coroutine_threadsafe` on it run work there.
    ///
    /// # Panics
    /// If `worker` is not below [`len`](Self::len).
    pub fn handle(&self, worker: usize) -> &LoopHandle {
        &self.slot(worker).handle
    }

    /// The next loop's handle in round-robin order, with its index.
    pub fn next_handle(&self) -> (usize, &LoopHandle) {
        let i = self.shared.next.fetch_add(1, Ordering::Relaxed) % self.len();
        (i, &self.shared.slots[i].handle)
    }

    /// How many jobs handed to worker `worker` with [`spawn`](Self::spawn) or
    /// [`spawn_on`](Self::spawn_on) have not finished yet: the load that
    /// `spawn` balances.
    ///
    /// # Panics
    /// If `worker` is not below [`len`](Self::len).
    pub fn load(&self, worker: usize) -> usize {
        self.slot(worker).load()
    }

    /// Cancels every worker's main task, as cancelling a `TaskGroup` from
    /// outside: each loop drops its main future at its next suspension point,
    /// and [`LoopPool::run`](crate::LoopPool::run) returns
    /// [`PoolError::Cancelled`](crate::PoolError::Cancelled) (or the
    /// workers' failures, if some failed first).
    pub fn cancel(&self) {
        self.shared.cancel();
    }

    /// Runs `fut` as a task on worker `worker`'s loop and returns a
    /// [`PoolTask`] of its outcome (awaitable from any loop, `Send`).
    /// Dropping the `PoolTask` detaches the job, it does not cancel it.
    ///
    /// # Errors
    /// [`HandoffError`], with the future given back, if that loop is closed
    /// (the pool's run is over). A loop that closes after taking the job
    /// cancels it: the `PoolTask` then ends with [`TaskError::Cancelled`].
    ///
    /// # Panics
    /// If `worker` is not below [`len`](Self::len).
    pub fn spawn_on<F>(&self, worker: usize, fut: F) -> Result<PoolTask<F::Output>, HandoffError<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let slot = self.slot(worker);
        if slot.handle.is_closed() {
            return Err(HandoffError { worker, job: fut });
        }
        let cell = Arc::new(Cell {
            state: Mutex::new(CellState {
                result: None,
                taken: false,
                waiter: None,
                detached: false,
                returned: None,
            }),
        });
        slot.handed.fetch_add(1, Ordering::Relaxed);
        let launch = Launch {
            job: Some((fut, Arc::clone(&cell), Arc::clone(&self.shared))),
            worker,
        };
        let sent = slot.handle.call_soon_threadsafe(move || launch.start());
        if sent.is_err() {
            // The loop closed just now and dropped the call on this thread:
            // `Launch`'s destructor put the future back into the cell.
            let job = lock(&cell.state)
                .returned
                .take()
                .and_then(|b| b.downcast::<F>().ok())
                .expect("a refused launch returns its future");
            return Err(HandoffError { worker, job: *job });
        }
        Ok(PoolTask { cell })
    }

    /// Hands `fut` to the least-loaded loop: of two loops picked in turn, the
    /// one with fewer unfinished hand-offs (the "power of two choices"),
    /// then as [`spawn_on`](Self::spawn_on).
    ///
    /// # Errors
    /// As `spawn_on`, for the loop picked.
    pub fn spawn<F>(&self, fut: F) -> Result<PoolTask<F::Output>, HandoffError<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_on(self.least_loaded(), fut)
    }

    /// Two candidates a fixed stride apart, advancing in turn, so every pair
    /// gets compared over time without a random-number generator.
    fn least_loaded(&self) -> usize {
        let n = self.len();
        if n == 1 {
            return 0;
        }
        let turn = self.shared.next.fetch_add(1, Ordering::Relaxed);
        let a = turn % n;
        let b = (a + 1 + (turn / n) % (n - 1)) % n;
        if self.shared.slots[b].load() < self.shared.slots[a].load() {
            b
        } else {
            a
        }
    }
}

impl fmt::Debug for PoolHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolHandle")
            .field("workers", &self.len())
            .field("cancelled", &self.shared.is_cancelled())
            .finish()
    }
}

/// What the factory of [`LoopPool::run`](crate::LoopPool::run) is given on
/// each worker's thread: the worker's index and a handle to the whole pool.
#[derive(Clone, Debug)]
pub struct Worker {
    pub(crate) index: usize,
    pub(crate) pool: PoolHandle,
}

impl Worker {
    /// This worker's index, in `0..workers`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The pool: the other loops' handles, and hand-off.
    pub fn pool(&self) -> &PoolHandle {
        &self.pool
    }

    /// How many workers the pool has.
    pub fn workers(&self) -> usize {
        self.pool.len()
    }
}

struct Cell<T> {
    state: Mutex<CellState<T>>,
}

struct CellState<T> {
    result: Option<Result<T, TaskError>>,
    /// The `PoolTask` returned the outcome.
    taken: bool,
    waiter: Option<Waker>,
    /// The `PoolTask` was dropped: nobody will see the outcome.
    detached: bool,
    /// A future its loop refused, for `spawn_on` to give back.
    returned: Option<Box<dyn Any + Send>>,
}

impl<T> Cell<T> {
    /// Stores the outcome; returns whether someone will look at it.
    fn complete(&self, result: Result<T, TaskError>) -> bool {
        let (waiter, seen) = {
            let mut st = lock(&self.state);
            if st.result.is_some() {
                return true;
            }
            st.result = Some(result);
            (st.waiter.take(), !st.detached)
        };
        if let Some(w) = waiter {
            w.wake();
        }
        seen
    }
}

/// The job on its way to the target loop (inside a `call_soon_threadsafe`
/// callback). Dropped unrun (the loop closed), it gives the future back.
struct Launch<F: Future + Send + 'static> {
    /// Moved whole into the task when it starts, so that no reference count
    /// is touched twice per job.
    job: Option<Job<F>>,
    worker: usize,
}

/// A launch's parts: the future, its outcome's cell, the pool.
type Job<F> = (F, Arc<Cell<<F as Future>::Output>>, Arc<Shared>);

impl<F> Launch<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// On the target loop: run the future as a task.
    fn start(mut self) {
        let (fut, cell, shared) = self.job.take().expect("a launch starts once");
        let deliver = Deliver {
            fut,
            guard: Guard {
                cell,
                shared,
                worker: self.worker,
                done: false,
            },
        };
        // A loop that is closing refuses the task; dropping it completes the
        // `PoolTask` as cancelled. The task is detached: the cell has its
        // outcome.
        drop(asyncio_core::try_create_task(deliver));
    }
}

impl<F: Future + Send + 'static> Drop for Launch<F> {
    fn drop(&mut self) {
        if let Some((fut, cell, shared)) = self.job.take() {
            shared.slots[self.worker].job_over();
            lock(&cell.state).returned = Some(Box::new(fut));
            cell.complete(Err(TaskError::Cancelled(CancelledError::new())));
        }
    }
}

pin_project_lite::pin_project! {
    /// The job as a task on its loop: its outcome goes to the cell.
    struct Deliver<F: Future> {
        #[pin]
        fut: F,
        guard: Guard<F::Output>,
    }
}

/// Completes the cell as cancelled if the task is dropped before its future
/// finished, and gives the loop's load back.
struct Guard<T> {
    cell: Arc<Cell<T>>,
    shared: Arc<Shared>,
    worker: usize,
    done: bool,
}

impl<T> Drop for Guard<T> {
    fn drop(&mut self) {
        self.shared.slots[self.worker].job_over();
        if !self.done {
            self.cell
                .complete(Err(TaskError::Cancelled(CancelledError::new())));
        }
    }
}

impl<F: Future> Future for Deliver<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let polled = catch_unwind(AssertUnwindSafe(|| this.fut.poll(cx)));
        let result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(v)) => Ok(v),
            Err(payload) => Err(payload),
        };
        this.guard.done = true;
        match result {
            Ok(v) => {
                this.guard.cell.complete(Ok(v));
            }
            Err(payload) => {
                let panic = PanicError::new(payload);
                let message = panic.message().to_owned();
                if !this.guard.cell.complete(Err(TaskError::Panicked(panic))) {
                    // Nobody holds the PoolTask: let the loop report the
                    // panic as an unobserved task failure.
                    resume_unwind(Box::new(message));
                }
            }
        }
        Poll::Ready(())
    }
}

/// The outcome of a job handed to a loop with
/// [`PoolHandle::spawn_on`]/[`spawn`](PoolHandle::spawn): a `Send` future of
/// `Result<T, TaskError>` that any loop (or thread) can await. Dropping it
/// detaches the job.
pub struct PoolTask<T> {
    cell: Arc<Cell<T>>,
}

impl<T> PoolTask<T> {
    /// Whether the job finished (or was cancelled).
    pub fn done(&self) -> bool {
        let st = lock(&self.cell.state);
        st.result.is_some() || st.taken
    }
}

impl<T> Future for PoolTask<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = lock(&self.cell.state);
        assert!(
            !st.taken,
            "a PoolTask was polled after it returned its outcome"
        );
        match st.result.take() {
            Some(r) => {
                st.taken = true;
                Poll::Ready(r)
            }
            None => {
                match &st.waiter {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => st.waiter = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for PoolTask<T> {
    fn drop(&mut self) {
        lock(&self.cell.state).detached = true;
    }
}

impl<T> fmt::Debug for PoolTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolTask")
            .field("done", &self.done())
            .finish()
    }
}
