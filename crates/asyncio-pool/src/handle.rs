//! What a worker (or any thread) holds to reach the pool's loops: their
//! `LoopHandle`s, and `spawn`/`spawn_on` to hand a `Send` future to a loop.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crossbeam_queue::SegQueue;

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
    /// Jobs handed to this loop, waiting for a [`Drain`] to start them.
    jobs: SegQueue<Arc<dyn Start>>,
    /// A drain is scheduled on the loop (or running): hand-offs only queue.
    scheduled: Padded<AtomicBool>,
}

/// A value alone on its cache line (two lines: the adjacent-line prefetcher
/// pairs them).
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
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
    /// The cancellation came from `stop`: the run ends with `Ok`.
    stopped: AtomicBool,
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
                    jobs: SegQueue::new(),
                    scheduled: Padded(AtomicBool::new(false)),
                })
                .collect(),
            next: AtomicUsize::new(0),
            cancelled: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            ended: AtomicBool::new(false),
        }
    }

    /// Cancels every worker's main task (idempotent).
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.wake_mains();
    }

    /// Cancels every worker's main task and marks the run as stopped, not
    /// failed (idempotent).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.cancel();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
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

    /// Stops the pool cleanly, as `loop.stop()` ends `run_forever`: every
    /// worker's main task is cancelled (dropped at its next suspension
    /// point, its destructors run) and [`LoopPool::run`](crate::LoopPool::run)
    /// returns `Ok` with the values of the workers that had finished before,
    /// in worker order (for the usual `()` workers, `Ok` is all there is).
    /// Failures that came first are still reported. Callable from any
    /// thread, a worker, or a signal handler's loop.
    ///
    /// ```
    /// let pool = asyncio_pool::LoopPool::new().workers(2);
    /// let out = pool.run(|w| async move {
    ///     if w.index() == 0 {
    ///         // Say, on a shutdown request: end every worker, the pool succeeds.
    ///         w.pool().stop();
    ///     }
    ///     std::future::pending::<()>().await;
    /// });
    /// assert!(out.is_ok());
    /// ```
    pub fn stop(&self) {
        self.shared.stop();
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
        // One allocation per job: the future and its outcome share a cell.
        let job = Arc::new(Job {
            state: Mutex::new(JobState {
                fut: Some(fut),
                result: None,
                taken: false,
                waiter: None,
                detached: false,
            }),
        });
        slot.handed.fetch_add(1, Ordering::Relaxed);
        if !self
            .shared
            .enqueue(worker, Arc::clone(&job) as Arc<dyn Start>)
        {
            // The loop closed just now: every queued job was cancelled, ours
            // with its future left in place, unless the loop started it.
            if let Some(fut) = lock(&job.state).fut.take() {
                return Err(HandoffError { worker, job: fut });
            }
        }
        Ok(PoolTask { cell: job })
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

/// A handed-off job and its outcome, in one allocation shared by the
/// [`PoolTask`], the slot's queue and the task that runs it.
struct Job<F: Future> {
    state: Mutex<JobState<F>>,
}

struct JobState<F: Future> {
    /// The future until its loop starts it (or, for a job the loop refused,
    /// until `spawn_on` gives it back or the cell is dropped).
    fut: Option<F>,
    result: Option<Result<F::Output, TaskError>>,
    /// The `PoolTask` returned the outcome.
    taken: bool,
    waiter: Option<Waker>,
    /// The `PoolTask` was dropped: nobody will see the outcome.
    detached: bool,
}

impl<F: Future> Job<F> {
    /// Stores the outcome; returns whether someone will look at it.
    fn complete(&self, result: Result<F::Output, TaskError>) -> bool {
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

/// A queued job as its loop sees it, whatever its future's type.
trait Start: Send + Sync {
    /// On the target loop: runs the job's future as a task.
    fn start(self: Arc<Self>, shared: &Arc<Shared>, worker: usize);
    /// The loop closed before starting the job: it ends as cancelled. The
    /// future stays in the cell, for `spawn_on` to give back if the job was
    /// its own.
    fn cancel(self: Arc<Self>, shared: &Shared, worker: usize);
}

impl<F> Start for Job<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn start(self: Arc<Self>, shared: &Arc<Shared>, worker: usize) {
        let fut = lock(&self.state).fut.take().expect("a job starts once");
        let deliver = Deliver {
            fut,
            guard: Guard {
                cell: self,
                shared: Arc::clone(shared),
                worker,
                done: false,
            },
        };
        // A loop that is closing refuses the task; dropping it completes the
        // `PoolTask` as cancelled. The task is detached: the cell has its
        // outcome.
        drop(asyncio_core::try_create_task(deliver));
    }

    fn cancel(self: Arc<Self>, shared: &Shared, worker: usize) {
        shared.slots[worker].job_over();
        self.complete(Err(TaskError::Cancelled(CancelledError::new())));
    }
}

impl Shared {
    /// Queues `job` for `worker`'s loop, and makes sure a drain of the queue
    /// is scheduled there (one `call_soon_threadsafe` per batch, not per
    /// job). Returns `false` if the loop refused the drain (it is closed):
    /// the queued jobs were then cancelled.
    fn enqueue(self: &Arc<Self>, worker: usize, job: Arc<dyn Start>) -> bool {
        let slot = &self.slots[worker];
        slot.jobs.push(job);
        // Pairs with the fence in `Drain::run`/`cancel_queued`: either the
        // drainer sees this job, or this sees that no drain is scheduled.
        fence(Ordering::SeqCst);
        if slot.scheduled.load(Ordering::Relaxed) || slot.scheduled.swap(true, Ordering::AcqRel) {
            return true;
        }
        let drain = Drain {
            shared: Arc::clone(self),
            worker,
            ran: false,
        };
        // A refused drain is dropped here, and cancels the queue.
        slot.handle
            .call_soon_threadsafe(move || drain.run())
            .is_ok()
    }

    /// Cancels every queued job of `worker` (its loop is closed).
    fn cancel_queued(&self, worker: usize) {
        let slot = &self.slots[worker];
        loop {
            while let Some(job) = slot.jobs.pop() {
                job.cancel(self, worker);
            }
            slot.scheduled.store(false, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if slot.jobs.is_empty() || slot.scheduled.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }
}

/// How many jobs one drain starts before it lets the loop run other work
/// (it then schedules itself again).
const DRAIN_BATCH: usize = 1024;

/// Starts the jobs queued for a loop (a `call_soon_threadsafe` callback).
/// Dropped unrun (the loop closed), it cancels them.
struct Drain {
    shared: Arc<Shared>,
    worker: usize,
    ran: bool,
}

impl Drain {
    fn run(mut self) {
        self.ran = true;
        let slot = &self.shared.slots[self.worker];
        let mut budget = DRAIN_BATCH;
        loop {
            while let Some(job) = slot.jobs.pop() {
                job.start(&self.shared, self.worker);
                budget -= 1;
                if budget == 0 {
                    // Still scheduled: hand the rest to a new drain.
                    let next = Drain {
                        shared: Arc::clone(&self.shared),
                        worker: self.worker,
                        ran: false,
                    };
                    // Refused (the loop is closing), it cancels the rest as
                    // it is dropped.
                    let _ = slot.handle.call_soon_threadsafe(move || next.run());
                    return;
                }
            }
            slot.scheduled.store(false, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if slot.jobs.is_empty() || slot.scheduled.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        if !self.ran {
            self.shared.cancel_queued(self.worker);
        }
    }
}

pin_project_lite::pin_project! {
    /// The job as a task on its loop: its outcome goes to the cell.
    struct Deliver<F: Future> {
        #[pin]
        fut: F,
        guard: Guard<F>,
    }
}

/// Completes the cell as cancelled if the task is dropped before its future
/// finished, and gives the loop's load back.
struct Guard<F: Future> {
    cell: Arc<Job<F>>,
    shared: Arc<Shared>,
    worker: usize,
    done: bool,
}

impl<F: Future> Drop for Guard<F> {
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

/// What a [`PoolTask`] needs of its job's cell, whatever the future's type.
trait Outcome<T>: Send + Sync {
    fn poll_outcome(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>>;
    fn done(&self) -> bool;
    fn detach(&self);
}

impl<F> Outcome<F::Output> for Job<F>
where
    F: Future + Send,
    F::Output: Send,
{
    fn poll_outcome(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, TaskError>> {
        let mut st = lock(&self.state);
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

    fn done(&self) -> bool {
        let st = lock(&self.state);
        st.result.is_some() || st.taken
    }

    fn detach(&self) {
        lock(&self.state).detached = true;
    }
}

/// The outcome of a job handed to a loop with
/// [`PoolHandle::spawn_on`]/[`spawn`](PoolHandle::spawn): a `Send` future of
/// `Result<T, TaskError>` that any loop (or thread) can await. Dropping it
/// detaches the job.
pub struct PoolTask<T> {
    cell: Arc<dyn Outcome<T>>,
}

impl<T> PoolTask<T> {
    /// Whether the job finished (or was cancelled).
    pub fn done(&self) -> bool {
        self.cell.done()
    }

    /// Blocks this thread until the job's outcome is there and returns it:
    /// how a plain thread (one running no loop) waits for a `PoolTask`, as
    /// `concurrent.futures.Future.result()` waits.
    ///
    /// # Panics
    /// On a thread running an event loop, where blocking would stop every
    /// task of that loop: `.await` the `PoolTask` there instead.
    ///
    /// ```
    /// let values = asyncio_pool::LoopPool::new()
    ///     .workers(1)
    ///     .run(|w| async move {
    ///         let task = w.pool().spawn_on(0, async { 6 * 7 }).unwrap();
    ///         // A plain thread (here one of the executor's) waits for the job
    ///         // while the loop runs it.
    ///         asyncio_core::to_thread(move || task.wait()).await.unwrap()
    ///     })
    ///     .unwrap();
    /// assert_eq!(values, [42]);
    /// ```
    pub fn wait(self) -> Result<T, TaskError> {
        assert!(
            asyncio_core::get_running_loop().is_err(),
            "PoolTask::wait would block the event loop running on this thread: \
             `.await` the PoolTask instead"
        );
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
            fn wake_by_ref(self: &Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(out) = self.cell.poll_outcome(&mut cx) {
                return out;
            }
            // A wake between the poll and the park leaves the token set:
            // `park` then returns at once.
            std::thread::park();
        }
    }
}

impl<T> Future for PoolTask<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.cell.poll_outcome(cx)
    }
}

impl<T> Drop for PoolTask<T> {
    fn drop(&mut self) {
        self.cell.detach();
    }
}

impl<T> fmt::Debug for PoolTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolTask")
            .field("done", &self.done())
            .finish()
    }
}
