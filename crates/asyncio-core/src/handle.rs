//! `LoopHandle`: what other threads hold to hand work to a loop
//! (`call_soon_threadsafe`, `run_coroutine_threadsafe`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::{CancelledError, RuntimeError, TaskError};
use crate::event_loop::{EventLoop, try_create_task};
use crate::shared::{Injected, Shared};
use crate::sync::{Condvar, Mutex, lock};
use crate::task::Task;
use crate::time::TimeoutError;

/// A handle to a loop that any thread may hold (`Send + Sync + Clone`), from
/// [`EventLoop::handle`].
///
/// While a handle exists the loop does not report itself stalled: a handle
/// could still send it work.
///
/// ```
/// let lp = asyncio::EventLoop::new();
/// let handle = lp.handle();
/// // Another thread hands the loop a coroutine (it runs once the loop does).
/// let submitted = std::thread::spawn(move || {
///     handle.run_coroutine_threadsafe(async { 6 * 7 }).unwrap()
/// });
/// let fut = submitted.join().unwrap();
/// lp.run_until_complete(async {
///     for _ in 0..3 {
///         asyncio::yield_now().await;
///     }
/// })
/// .unwrap();
/// assert_eq!(fut.wait(), Ok(42));
/// ```
#[derive(Clone)]
pub struct LoopHandle {
    shared: Arc<Shared>,
}

impl EventLoop {
    /// A handle other threads can use to send work to this loop.
    pub fn handle(&self) -> LoopHandle {
        LoopHandle {
            shared: Arc::clone(&self.inner.shared),
        }
    }
}

impl LoopHandle {
    /// Schedules `f` to run on the loop's thread, on its next iteration
    /// (asyncio's `call_soon_threadsafe`); wakes the loop if it sleeps. A panic
    /// in `f` goes to the loop's exception handler; the loop carries on.
    ///
    /// # Errors
    /// [`RuntimeError::Closed`] if the loop is closed (`f` is dropped). A call
    /// racing with `close` may be dropped without running.
    pub fn call_soon_threadsafe(
        &self,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<(), RuntimeError> {
        if self.shared.inject(Injected::Call(Box::new(f))) {
            Ok(())
        } else {
            Err(RuntimeError::Closed)
        }
    }

    /// Asks the loop to stop (asyncio's `loop.call_soon_threadsafe(loop.stop)`):
    /// the request reaches the loop as a callback, so a running
    /// [`run_forever`](EventLoop::run_forever) returns after the turn that
    /// runs it, and a loop that is not running stops after the first turn of
    /// its next run (see [`EventLoop::stop`]). Wakes the loop if it sleeps.
    ///
    /// ```
    /// let lp = asyncio::EventLoop::new();
    /// let handle = lp.handle();
    /// let stopper = std::thread::spawn(move || handle.stop().unwrap());
    /// lp.run_forever().unwrap(); // returns once the other thread's stop arrives
    /// stopper.join().unwrap();
    /// ```
    ///
    /// # Errors
    /// [`RuntimeError::Closed`] if the loop is closed.
    pub fn stop(&self) -> Result<(), RuntimeError> {
        self.call_soon_threadsafe(|| {
            // Injected calls run only on their own loop, while it runs.
            if let Ok(lp) = crate::event_loop::running_inner() {
                lp.stopping.set(true);
            }
        })
    }

    /// Whether the loop is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Runs `fut` as a task on the loop and returns a [`ConcurrentFuture`] of
    /// its outcome (asyncio's `run_coroutine_threadsafe`): a plain thread can
    /// [`wait`](ConcurrentFuture::wait) for it, another loop can await it.
    ///
    /// # Errors
    /// [`RuntimeError::Closed`] if the loop is closed.
    pub fn run_coroutine_threadsafe<F>(
        &self,
        fut: F,
    ) -> Result<ConcurrentFuture<F::Output>, RuntimeError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let inner = Arc::new(CfInner {
            state: Mutex::new(CfState {
                result: None,
                taken: false,
                waiter: None,
                relay: None,
                cancel: false,
            }),
            done: Condvar::new(),
            shared: Arc::clone(&self.shared),
        });
        let launch = Launch {
            inner: Arc::clone(&inner),
            fut: Some(fut),
        };
        self.call_soon_threadsafe(move || {
            let mut launch = launch;
            let fut = launch.fut.take().expect("launched once");
            let relay_inner = Arc::clone(&launch.inner);
            let started = try_create_task(fut).and_then(|task| {
                try_create_task(Relay {
                    task,
                    inner: relay_inner,
                    done: false,
                })
            });
            if started.is_err() {
                launch
                    .inner
                    .complete(Err(TaskError::Cancelled(CancelledError::new())));
            }
        })?;
        Ok(ConcurrentFuture { inner })
    }
}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopHandle")
            .field("closed", &self.is_closed())
            .finish()
    }
}

struct CfInner<T> {
    state: Mutex<CfState<T>>,
    done: Condvar,
    shared: Arc<Shared>,
}

struct CfState<T> {
    result: Option<Result<T, TaskError>>,
    taken: bool,
    /// The task awaiting the `ConcurrentFuture` (possibly on another loop).
    waiter: Option<Waker>,
    /// The relay task on the target loop, woken to deliver a cancel.
    relay: Option<Waker>,
    cancel: bool,
}

impl<T> CfInner<T> {
    fn complete(&self, result: Result<T, TaskError>) {
        let waiter = {
            let mut st = lock(&self.state);
            if st.result.is_some() || st.taken {
                return;
            }
            st.result = Some(result);
            st.relay = None;
            st.waiter.take()
        };
        self.done.notify_all();
        if let Some(w) = waiter {
            crate::gate::wake_or_resume(w);
        }
    }
}

/// The not-yet-started side: if the loop drops it unrun (it closed), the
/// concurrent future completes as cancelled instead of waiting forever.
struct Launch<F: Future> {
    inner: Arc<CfInner<F::Output>>,
    fut: Option<F>,
}

impl<F: Future> Drop for Launch<F> {
    fn drop(&mut self) {
        if self.fut.is_some() {
            self.inner
                .complete(Err(TaskError::Cancelled(CancelledError::new())));
        }
    }
}

/// Runs on the target loop: waits for the task and hands its outcome over.
struct Relay<T> {
    task: Task<T>,
    inner: Arc<CfInner<T>>,
    done: bool,
}

impl<T> Future for Relay<T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut st = lock(&self.inner.state);
            if st.cancel {
                st.cancel = false;
                drop(st);
                self.task.cancel();
            } else {
                st.relay = Some(cx.waker().clone());
            }
        }
        match Pin::new(&mut self.task).poll(cx) {
            Poll::Ready(result) => {
                self.done = true;
                self.inner.complete(result);
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for Relay<T> {
    fn drop(&mut self) {
        if !self.done {
            self.inner
                .complete(Err(TaskError::Cancelled(CancelledError::new())));
        }
    }
}

/// The outcome of [`LoopHandle::run_coroutine_threadsafe`], usable from any
/// thread (asyncio's `concurrent.futures.Future`): block on it with
/// [`wait`](Self::wait) / [`wait_timeout`](Self::wait_timeout), or `.await` it
/// on another loop.
///
/// ```
/// let lp = asyncio::EventLoop::new();
/// let fut: asyncio::ConcurrentFuture<u8> =
///     lp.handle().run_coroutine_threadsafe(async { 1 }).unwrap();
/// lp.run_until_complete(async {
///     for _ in 0..3 {
///         asyncio::yield_now().await;
///     }
/// })
/// .unwrap();
/// assert!(fut.done());
/// assert_eq!(fut.wait(), Ok(1));
/// ```
pub struct ConcurrentFuture<T> {
    inner: Arc<CfInner<T>>,
}

impl<T> ConcurrentFuture<T> {
    /// Blocking on the loop's own thread would wait for ever: the loop only
    /// runs on that thread, and it is blocked here (running or not).
    fn check_not_on_own_loop(&self) {
        if crate::sync::current_thread().id() == self.inner.shared.thread
            && !self.inner.shared.is_closed()
        {
            panic!(
                "ConcurrentFuture::wait on the thread of the loop that runs it would never return: \
                 await it from a task instead, or run the loop (run_until_complete) on it"
            );
        }
    }

    fn take(st: &mut CfState<T>) -> Option<Result<T, TaskError>> {
        let r = st.result.take();
        if r.is_some() {
            st.taken = true;
        }
        r
    }

    /// Blocks until the outcome is there (taking it) or `deadline` passes
    /// (`None`: no deadline).
    fn wait_until(&self, deadline: Option<Instant>) -> Option<Result<T, TaskError>> {
        let mut st = lock(&self.inner.state);
        loop {
            assert!(
                !st.taken,
                "the ConcurrentFuture's outcome was already taken"
            );
            if let Some(r) = Self::take(&mut st) {
                return Some(r);
            }
            // Only when it would block: an outcome already there is returned.
            self.check_not_on_own_loop();
            st = match deadline {
                None => self
                    .inner
                    .done
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.inner
                        .done
                        .wait_timeout(st, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// Blocks this thread until the task finishes; its output, or why it has
    /// none (cancelled, panicked, or its loop closed first).
    ///
    /// # Panics
    /// On the loop's own thread while the outcome is not there and the loop is
    /// open, running or not (it would wait for ever: nothing else runs the
    /// loop), or if the outcome was already taken by `wait_timeout` or an
    /// `await`.
    pub fn wait(self) -> Result<T, TaskError> {
        self.wait_until(None)
            .expect("without a deadline the wait ends only with the outcome")
    }

    /// Like [`wait`](Self::wait), giving up after `timeout` (the task goes on).
    ///
    /// # Errors
    /// [`TimeoutError`] if the task did not finish in time; the outcome can
    /// still be waited for later.
    ///
    /// # Panics
    /// As `wait`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Result<T, TaskError>, TimeoutError> {
        // A timeout too long for `Instant` is no deadline at all.
        self.wait_until(Instant::now().checked_add(timeout))
            .ok_or(TimeoutError)
    }

    /// Whether the task finished (or its loop closed before it could).
    pub fn done(&self) -> bool {
        let st = lock(&self.inner.state);
        st.result.is_some() || st.taken
    }

    /// Asks the loop to cancel the task (asyncio's `Future.cancel()` on the
    /// concurrent future); the outcome becomes `Cancelled` unless it finished
    /// first.
    pub fn cancel(&self) {
        let relay = {
            let mut st = lock(&self.inner.state);
            if st.result.is_some() || st.taken {
                return;
            }
            st.cancel = true;
            st.relay.take()
        };
        if let Some(w) = relay {
            crate::gate::wake_or_resume(w);
        }
    }
}

impl<T> Future for ConcurrentFuture<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = lock(&self.inner.state);
        assert!(
            !st.taken,
            "the ConcurrentFuture's outcome was already taken"
        );
        if let Some(r) = Self::take(&mut st) {
            return Poll::Ready(r);
        }
        match &st.waiter {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waiter = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for ConcurrentFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrentFuture")
            .field("done", &self.done())
            .finish()
    }
}
