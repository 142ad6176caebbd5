//! The default executor: a pool of threads for blocking work (`to_thread`,
//! `run_in_executor`), started lazily, up to `min(32, cores + 4)` threads as
//! CPython's `ThreadPoolExecutor`; a thread that stays idle exits.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::{PanicError, RuntimeError};
use crate::event_loop::{EventLoop, LoopInner, running_inner};
use crate::shared::Shared;
use crate::sync::{Condvar, Mutex, lock};
use crate::time::TimeoutError;

type Job = Box<dyn FnOnce() + Send>;

/// Where blocking work runs: asyncio's `concurrent.futures.Executor`, for
/// [`EventLoop::run_in_executor_on`] and
/// [`EventLoop::set_default_executor`].
///
/// The loop hands [`execute`](Self::execute) a job that never panics (the
/// user's function is caught inside it) and that sends its result back to
/// the loop itself; the executor only has to run it, once, on some thread
/// other than the loop's (running it inline would block the loop).
///
/// ```
/// use std::sync::Arc;
///
/// /// Runs every job on a thread of its own.
/// struct ThreadPerJob;
///
/// impl asyncio::Executor for ThreadPerJob {
///     fn execute(&self, job: Box<dyn FnOnce() + Send>) -> Result<(), asyncio::RuntimeError> {
///         std::thread::Builder::new()
///             .spawn(job)
///             .map(drop)
///             .map_err(|_| asyncio::RuntimeError::ExecutorUnavailable)
///     }
/// }
///
/// let lp = asyncio::EventLoop::new();
/// let n = lp
///     .run_until_complete(async {
///         let lp = asyncio::get_running_loop().unwrap();
///         lp.run_in_executor_on(&ThreadPerJob, || 6 * 7).unwrap().await.unwrap()
///     })
///     .unwrap();
/// assert_eq!(n, 42);
/// ```
pub trait Executor: Send + Sync + 'static {
    /// Runs `job` on another thread, now or when one is free (asyncio's
    /// `Executor.submit`).
    ///
    /// # Errors
    /// [`RuntimeError::ExecutorUnavailable`] when the executor takes no more
    /// work (it was shut down, or cannot start a thread); `job` is dropped.
    fn execute(&self, job: Box<dyn FnOnce() + Send>) -> Result<(), RuntimeError>;

    /// Stops taking work (asyncio's `Executor.shutdown(wait)`); with `wait`,
    /// returns once the jobs taken have finished. The loop calls it with
    /// `wait` on a thread of its own (from
    /// [`EventLoop::shutdown_default_executor`]), and without from
    /// [`EventLoop::close`]. The default does nothing.
    fn shutdown(&self, wait: bool) {
        let _ = wait;
    }
}

/// How the default executor is sized.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolConfig {
    pub(crate) max_threads: usize,
    pub(crate) idle_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        // Asked once per process: `available_parallelism` reads the cgroup
        // files, tens of microseconds that every new loop paid before.
        static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let cores =
            *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        PoolConfig {
            max_threads: (cores + 4).min(32),
            idle_timeout: Duration::from_secs(10),
        }
    }
}

pub(crate) struct Pool {
    state: Mutex<PoolState>,
    /// Idle workers wait here for jobs.
    work: Condvar,
    /// `shutdown` waits here for the workers to exit.
    exited: Condvar,
    config: PoolConfig,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    shutdown: bool,
}

impl Pool {
    fn new(config: PoolConfig) -> Arc<Pool> {
        Arc::new(Pool {
            state: Mutex::new(PoolState::default()),
            work: Condvar::new(),
            exited: Condvar::new(),
            config,
        })
    }

    fn submit(self: &Arc<Self>, job: Job) -> Result<(), RuntimeError> {
        let mut st = lock(&self.state);
        if st.shutdown {
            return Err(RuntimeError::ExecutorUnavailable);
        }
        st.queue.push_back(job);
        if st.idle > 0 {
            self.work.notify_one();
            return Ok(());
        }
        if st.threads < self.config.max_threads {
            st.threads += 1;
            let pool = Arc::clone(self);
            let spawned = crate::sync::ThreadBuilder::new()
                .name("asyncio-executor".into())
                .spawn(move || pool.worker());
            if spawned.is_err() {
                st.threads -= 1;
                if st.threads == 0 {
                    // Nobody would ever run it.
                    st.queue.pop_back();
                    return Err(RuntimeError::ExecutorUnavailable);
                }
            }
        }
        Ok(())
    }

    fn worker(self: Arc<Self>) {
        let mut st = lock(&self.state);
        loop {
            if let Some(job) = st.queue.pop_front() {
                drop(st);
                job();
                st = lock(&self.state);
                continue;
            }
            if st.shutdown {
                break;
            }
            st.idle += 1;
            let (guard, waited) = self
                .work
                .wait_timeout(st, self.config.idle_timeout)
                .unwrap_or_else(PoisonError::into_inner);
            st = guard;
            st.idle -= 1;
            if waited.timed_out() && st.queue.is_empty() {
                break;
            }
        }
        st.threads -= 1;
        self.exited.notify_all();
    }

    /// Refuses new jobs, lets the workers finish the queued ones, and waits
    /// up to `timeout` for them to exit; false if some were still running.
    fn shutdown(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut st = lock(&self.state);
        st.shutdown = true;
        self.work.notify_all();
        while st.threads > 0 {
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return false;
            }
            st = self
                .exited
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    pub(crate) fn shutdown_nowait(&self) {
        self.shutdown(Duration::ZERO);
    }

    /// Refuses new jobs from now on; the queued and running ones finish, and
    /// idle workers exit.
    fn refuse_new(&self) {
        lock(&self.state).shutdown = true;
        self.work.notify_all();
    }

    fn threads(&self) -> usize {
        lock(&self.state).threads
    }
}

struct Slot<T> {
    state: Mutex<SlotState<T>>,
    /// Keeps the loop from declaring itself stalled while the job runs.
    _shared: Arc<Shared>,
}

struct SlotState<T> {
    result: Option<Result<T, PanicError>>,
    waker: Option<Waker>,
}

/// The result of blocking work sent to the default executor, as a future
/// (from [`to_thread`] or [`EventLoop::run_in_executor`]).
///
/// Dropping it does not stop the work (a thread cannot be interrupted, as in
/// asyncio); the result is then dropped on the worker thread.
///
/// ```
/// let n = asyncio::run(async {
///     let job: asyncio::Blocking<usize> = asyncio::to_thread(|| "blocking".len());
///     job.await.unwrap()
/// })
/// .unwrap();
/// assert_eq!(n, 8);
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Blocking<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Future for Blocking<T> {
    type Output = Result<T, PanicError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = lock(&self.slot.state);
        if let Some(result) = st.result.take() {
            return Poll::Ready(result);
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for Blocking<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocking").finish_non_exhaustive()
    }
}

impl LoopInner {
    fn pool(&self) -> Result<Arc<Pool>, RuntimeError> {
        if self.closed.get() {
            return Err(RuntimeError::Closed);
        }
        let mut pool = self.pool.borrow_mut();
        Ok(Arc::clone(
            pool.get_or_insert_with(|| Pool::new(self.pool_config.get())),
        ))
    }

    /// Runs `f` on the default executor: the one set with
    /// `set_default_executor`, else the built-in pool.
    pub(crate) fn run_in_executor<F, T>(&self, f: F) -> Result<Blocking<T>, RuntimeError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.closed.get() {
            return Err(RuntimeError::Closed);
        }
        if self.executor_shut_down.get() {
            return Err(RuntimeError::ExecutorUnavailable);
        }
        let user = self.executor.borrow().clone();
        match user {
            Some(executor) => self.submit_job(|job| executor.execute(job), f),
            None => {
                let pool = self.pool()?;
                self.submit_job(|job| pool.submit(job), f)
            }
        }
    }

    /// Wraps `f` in a job that hands its result (or panic) to a [`Blocking`],
    /// and gives the job to `submit`.
    pub(crate) fn submit_job<F, T>(
        &self,
        submit: impl FnOnce(Job) -> Result<(), RuntimeError>,
        f: F,
    ) -> Result<Blocking<T>, RuntimeError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState {
                result: None,
                waker: None,
            }),
            _shared: Arc::clone(&self.shared),
        });
        let job_slot = Arc::clone(&slot);
        submit(Box::new(move || {
            let result = crate::gate::call(crate::gate::Site::Callback, f).map_err(PanicError::new);
            let waker = {
                let mut st = lock(&job_slot.state);
                st.result = Some(result);
                st.waker.take()
            };
            // On a worker thread, with no loop to report to: a waker that
            // panics loses only its own wake-up, never the worker.
            if let Some(w) = waker
                && let Some(payload) = crate::gate::wake(w)
            {
                crate::gate::discard_payload(payload);
            }
        }))?;
        Ok(Blocking { slot })
    }

    /// `close()`'s part: the default executor takes no more work; running
    /// jobs finish in the background (asyncio's `shutdown(wait=False)`).
    pub(crate) fn shutdown_executors_nowait(&self) {
        let pool = self.pool.borrow().clone();
        if let Some(pool) = pool {
            pool.shutdown_nowait();
        }
        let user = self.executor.borrow_mut().take();
        if let Some(executor) = user {
            if let Err(payload) =
                crate::gate::call(crate::gate::Site::Callback, || executor.shutdown(false))
            {
                self.report_panic("the default executor's shutdown panicked", None, payload);
            }
            // Its `Drop` is user code too.
            self.drop_reporting(executor);
        }
    }
}

impl EventLoop {
    /// Runs `f` on the loop's default executor, a pool of threads, and returns
    /// a future of its result (asyncio's `loop.run_in_executor(None, f)`). The
    /// work starts at once; a panic in `f` comes back as [`PanicError`].
    ///
    /// # Errors
    /// [`RuntimeError::Closed`] on a closed loop;
    /// [`RuntimeError::ExecutorUnavailable`] after
    /// [`shutdown_default_executor`](Self::shutdown_default_executor).
    pub fn run_in_executor<F, T>(&self, f: F) -> Result<Blocking<T>, RuntimeError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.inner.run_in_executor(f)
    }

    /// Sizes the default executor: at most `max_threads` threads (at least 1),
    /// each exiting after `idle_timeout` without work. Applies to an executor
    /// started afterwards (the default: `min(32, cores + 4)` threads, 10 s).
    pub fn configure_default_executor(&self, max_threads: usize, idle_timeout: Duration) {
        self.inner.pool_config.set(PoolConfig {
            max_threads: max_threads.max(1),
            idle_timeout,
        });
    }

    /// How many threads the default executor has right now.
    pub fn default_executor_threads(&self) -> usize {
        self.inner.pool.borrow().as_ref().map_or(0, |p| p.threads())
    }

    /// Runs `f` on `executor` and returns a future of its result (asyncio's
    /// `loop.run_in_executor(executor, f)`); the work starts at once. A panic
    /// in `f` comes back as [`PanicError`].
    ///
    /// # Errors
    /// [`RuntimeError::Closed`] on a closed loop; whatever
    /// [`Executor::execute`] returns when it refuses the job.
    pub fn run_in_executor_on<E, F, T>(
        &self,
        executor: &E,
        f: F,
    ) -> Result<Blocking<T>, RuntimeError>
    where
        E: Executor + ?Sized,
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.inner.closed.get() {
            return Err(RuntimeError::Closed);
        }
        self.inner.submit_job(|job| executor.execute(job), f)
    }

    /// Makes `executor` the loop's default executor, which
    /// [`run_in_executor`](Self::run_in_executor) and [`to_thread`] use
    /// (asyncio's `loop.set_default_executor`). The built-in pool, if it
    /// was started, finishes what it has and its threads exit.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// struct Counting(AtomicUsize);
    /// impl asyncio::Executor for Counting {
    ///     fn execute(&self, job: Box<dyn FnOnce() + Send>) -> Result<(), asyncio::RuntimeError> {
    ///         self.0.fetch_add(1, Ordering::SeqCst);
    ///         std::thread::spawn(job);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let counting = Arc::new(Counting(AtomicUsize::new(0)));
    /// let lp = asyncio::EventLoop::new();
    /// lp.set_default_executor(counting.clone());
    /// let n = lp
    ///     .run_until_complete(async { asyncio::to_thread(|| 2 + 2).await })
    ///     .unwrap()
    ///     .unwrap();
    /// assert_eq!((n, counting.0.load(Ordering::SeqCst)), (4, 1));
    /// ```
    pub fn set_default_executor(&self, executor: Arc<dyn Executor>) {
        if self.inner.closed.get() {
            self.inner.drop_reporting(executor);
            return;
        }
        let pool = self.inner.pool.borrow_mut().take();
        if let Some(pool) = pool {
            pool.shutdown_nowait();
        }
        let old = self.inner.executor.borrow_mut().replace(executor);
        // Dropped outside the borrow: its `Drop` is user code.
        self.inner.drop_reporting(old);
    }

    /// Shuts the default executor down without blocking the loop (asyncio's
    /// `await loop.shutdown_default_executor(timeout)`): new work is refused
    /// at once ([`RuntimeError::ExecutorUnavailable`]); a thread of its own
    /// waits for the queued and running jobs to finish ([`Executor::shutdown`]
    /// with `wait` for an executor set with
    /// [`set_default_executor`](Self::set_default_executor)), and the future
    /// completes when they have, or with [`TimeoutError`] once `timeout`
    /// passed (the jobs go on in the background; asyncio warns instead). The
    /// loop runs other tasks meanwhile.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let lp = asyncio::EventLoop::new();
    /// lp.run_until_complete(async {
    ///     let lp = asyncio::get_running_loop().unwrap();
    ///     let job = asyncio::to_thread(|| std::thread::sleep(Duration::from_millis(20)));
    ///     lp.shutdown_default_executor(Duration::from_secs(10)).await.unwrap();
    ///     assert!(job.await.is_ok(), "the running job finished first");
    ///     assert!(lp.run_in_executor(|| ()).is_err(), "no new work");
    /// })
    /// .unwrap();
    /// ```
    pub fn shutdown_default_executor(&self, timeout: Duration) -> ExecutorShutdown {
        let Some(waiter) = self.start_executor_shutdown() else {
            return ExecutorShutdown { inner: None };
        };
        let waited = self.inner.submit_job(
            |job| {
                crate::sync::ThreadBuilder::new()
                    .name("asyncio-executor-shutdown".into())
                    .spawn(job)
                    .map(drop)
                    .map_err(|_| RuntimeError::ExecutorUnavailable)
            },
            waiter,
        );
        match waited {
            Ok(blocking) => ExecutorShutdown {
                inner: Some(crate::time::timeout(timeout, blocking)),
            },
            // No thread to wait on: the jobs finish in the background.
            Err(_) => ExecutorShutdown { inner: None },
        }
    }

    /// [`shutdown_default_executor`](Self::shutdown_default_executor) that
    /// blocks the calling thread until the jobs finished or `timeout` passed,
    /// for code outside the loop (`Runner::close` calls it with asyncio's
    /// 300 seconds).
    ///
    /// # Errors
    /// [`TimeoutError`] if jobs were still running at the deadline (they go on
    /// in the background).
    pub fn shutdown_default_executor_blocking(
        &self,
        timeout: Duration,
    ) -> Result<(), TimeoutError> {
        let Some(waiter) = self.start_executor_shutdown() else {
            return Ok(());
        };
        let pool = self.inner.pool.borrow().clone();
        match pool {
            // The built-in pool can wait with a deadline.
            Some(pool) if self.inner.executor.borrow().is_none() => {
                drop(waiter);
                if pool.shutdown(timeout) {
                    Ok(())
                } else {
                    Err(TimeoutError)
                }
            }
            // A user executor's `shutdown(true)` has none: wait on a thread.
            _ => {
                let (tx, rx) = std::sync::mpsc::channel();
                let spawned = crate::sync::ThreadBuilder::new()
                    .name("asyncio-executor-shutdown".into())
                    .spawn(move || {
                        // A panic of the user's shutdown only ends the wait.
                        if let Err(payload) = crate::gate::call(crate::gate::Site::Callback, waiter)
                        {
                            crate::gate::discard_payload(payload);
                        }
                        let _ = tx.send(());
                    });
                if spawned.is_err() {
                    return Err(TimeoutError);
                }
                rx.recv_timeout(timeout).map_err(|_| TimeoutError)
            }
        }
    }

    /// Marks the default executor shut down (new work is refused) and
    /// returns what waits for its jobs, or `None` if nothing was started.
    fn start_executor_shutdown(&self) -> Option<Box<dyn FnOnce() + Send>> {
        self.inner.executor_shut_down.set(true);
        let user = self.inner.executor.borrow().clone();
        if let Some(executor) = user {
            return Some(Box::new(move || executor.shutdown(true)));
        }
        let pool = self.inner.pool.borrow().clone()?;
        pool.refuse_new();
        Some(Box::new(move || {
            pool.shutdown(Duration::MAX);
        }))
    }
}

/// The future of [`EventLoop::shutdown_default_executor`]: `Ok` once the
/// default executor's jobs have finished, [`TimeoutError`] at the deadline.
///
/// # Panics
/// When awaited, if a user executor's [`Executor::shutdown`] panicked (the
/// panic goes on in the awaiting task).
#[must_use = "futures do nothing unless awaited"]
pub struct ExecutorShutdown {
    inner: Option<crate::time::Timeout<Blocking<()>>>,
}

impl Future for ExecutorShutdown {
    type Output = Result<(), TimeoutError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        match Pin::new(inner).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(out) => {
                self.inner = None;
                Poll::Ready(match out {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(panic)) => std::panic::resume_unwind(panic.into_panic()),
                    Err(e) => Err(e),
                })
            }
        }
    }
}

impl fmt::Debug for ExecutorShutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorShutdown")
            .field("done", &self.inner.is_none())
            .finish()
    }
}

/// Runs blocking `f` on the running loop's default executor and waits for it
/// without blocking the loop (asyncio's `to_thread`). A panic in `f` comes
/// back as [`PanicError`]. Context variables are not carried to the thread.
///
/// # Panics
/// Outside a running loop, or once the loop's default executor was shut down;
/// use [`EventLoop::run_in_executor`] to get those as errors.
///
/// ```
/// let (sum, loop_thread, worker) = asyncio::run(async {
///     let here = std::thread::current().id();
///     let (sum, there) = asyncio::to_thread(|| ((1..=10u32).sum::<u32>(), std::thread::current().id()))
///         .await
///         .unwrap();
///     (sum, here, there)
/// })
/// .unwrap();
/// assert_eq!(sum, 55);
/// assert_ne!(loop_thread, worker, "the blocking work ran on another thread");
/// ```
pub fn to_thread<F, T>(f: F) -> Blocking<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    running_inner()
        .and_then(|lp| lp.run_in_executor(f))
        .unwrap_or_else(|e| panic!("asyncio::to_thread: {e}"))
}
