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

    pub(crate) fn run_in_executor<F, T>(&self, f: F) -> Result<Blocking<T>, RuntimeError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool()?;
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState {
                result: None,
                waker: None,
            }),
            _shared: Arc::clone(&self.shared),
        });
        let job_slot = Arc::clone(&slot);
        pool.submit(Box::new(move || {
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

    /// Shuts the default executor down (asyncio's
    /// `shutdown_default_executor`): new work is refused, queued and running
    /// jobs finish, and this waits up to `timeout` for its threads to exit.
    /// `Runner::close` calls it with asyncio's 300 seconds.
    ///
    /// # Errors
    /// [`TimeoutError`] if jobs were still running at the deadline (they go on
    /// in the background).
    pub fn shutdown_default_executor(&self, timeout: Duration) -> Result<(), TimeoutError> {
        let pool = self.inner.pool.borrow().clone();
        match pool {
            None => {
                // Nothing started; make later submissions fail as asyncio's do.
                let pool = Pool::new(self.inner.pool_config.get());
                pool.shutdown(Duration::ZERO);
                *self.inner.pool.borrow_mut() = Some(pool);
                Ok(())
            }
            Some(pool) => {
                if pool.shutdown(timeout) {
                    Ok(())
                } else {
                    Err(TimeoutError)
                }
            }
        }
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
