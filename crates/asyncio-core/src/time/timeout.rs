//! asyncio 3.11's timeouts: [`timeout`], [`timeout_at`], [`wait_for`] and the
//! [`TimeoutHandle`] that reads and moves their deadline.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::{TimeoutError, TimerSlot};

pin_project_lite::pin_project! {
    /// The future of [`timeout`], [`timeout_at`] and [`wait_for`]: the inner
    /// future, or [`TimeoutError`] once the deadline passes.
    ///
    /// Its deadline can be read and moved while it runs, through a
    /// [`TimeoutHandle`] (asyncio's `Timeout` context manager:
    /// `when`, `reschedule`, `expired`).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// asyncio::run(async {
    ///     let t: asyncio::Timeout<_> = asyncio::timeout(Duration::from_secs(5), async { 1 });
    ///     assert_eq!(t.await, Ok(1));
    /// })
    /// .unwrap();
    /// ```
    #[must_use = "futures do nothing unless awaited"]
    pub struct Timeout<F> {
        #[pin]
        inner: Option<F>,
        // The deadline until a handle is taken; then the shared state's.
        deadline: Deadline,
        // Created by the first `handle()`: a timeout nobody observes
        // allocates nothing.
        shared: OnceLock<Arc<TimeoutState>>,
        timer: TimerSlot,
        // Polled before: the inner future has suspended at least once.
        polled: bool,
        // Expired while an enclosing timeout expired too: its inner future is
        // gone and it stays pending until the enclosing one drops it.
        cancelled_by_enclosing: bool,
    }

    impl<F> PinnedDrop for Timeout<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // The flags are for handles; without one nobody can see them.
            let Some(state) = this.shared.get() else {
                return;
            };
            // Dropped with its inner future still running, past its deadline:
            // an enclosing scope expiring at the same moment cancelled it (or
            // its owner did). asyncio marks such a timeout expired too.
            if this.inner.is_some()
                && state.deadline().at().is_some_and(|d| d <= Instant::now())
            {
                state.expired.store(true, Ordering::Release);
            }
            state.finished.store(true, Ordering::Release);
        }
    }
}

/// A timeout's deadline: relative until its clock starts, then absolute.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    /// `timeout(d)` whose clock has not started: `d` from when it does.
    After(Duration),
    /// `None`: no deadline.
    At(Option<Instant>),
}

impl Deadline {
    /// The absolute deadline (`None` also while the clock has not started).
    fn at(self) -> Option<Instant> {
        match self {
            Deadline::At(at) => at,
            Deadline::After(_) => None,
        }
    }

    /// Starts the clock of a relative deadline. Returns the deadline, and the
    /// time read if the clock was read.
    fn fix(&mut self) -> (Option<Instant>, Option<Instant>) {
        match *self {
            Deadline::At(at) => (at, None),
            Deadline::After(d) => {
                let now = Instant::now();
                let at = now.checked_add(d);
                *self = Deadline::At(at);
                (at, Some(now))
            }
        }
    }
}

struct TimeoutState {
    deadline: Mutex<Deadline>,
    expired: AtomicBool,
    /// The `Timeout` returned its outcome or was dropped.
    finished: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl TimeoutState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Deadline> {
        self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deadline(&self) -> Deadline {
        *self.lock()
    }
}

/// [`TimeoutHandle::reschedule`] on a timeout that already expired or
/// finished (asyncio's `RuntimeError`).
///
/// ```
/// use std::time::Duration;
///
/// asyncio::run(async {
///     let t = asyncio::timeout(Duration::from_secs(5), async {});
///     let handle = t.handle();
///     t.await.unwrap();
///     assert_eq!(handle.reschedule(None), Err(asyncio::TimeoutFinished));
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the timeout already expired or finished: there is no deadline left to reschedule")]
pub struct TimeoutFinished;

/// Reads and moves the deadline of a [`Timeout`] (asyncio's `Timeout` object);
/// cheap to clone, `Send + Sync`, usable from inside the guarded future.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let r = asyncio::run(async {
///     let t = asyncio::timeout(Duration::from_secs(3600), std::future::pending::<()>());
///     // Move the deadline earlier, as asyncio's `cm.reschedule(when)`.
///     t.handle()
///         .reschedule(Some(Instant::now() + Duration::from_millis(1)))
///         .unwrap();
///     t.await
/// })
/// .unwrap();
/// assert!(r.is_err());
/// ```
#[derive(Clone)]
pub struct TimeoutHandle {
    state: Arc<TimeoutState>,
}

impl TimeoutHandle {
    /// The deadline (`None`: no deadline), as `Timeout.when()`. For a
    /// [`timeout`] whose clock has not started yet (see there), asking starts
    /// it.
    pub fn when(&self) -> Option<Instant> {
        self.state.lock().fix().0
    }

    /// Moves the deadline (`None` removes it), as `Timeout.reschedule()`. A
    /// deadline already past expires the timeout at its next poll.
    ///
    /// # Errors
    /// [`TimeoutFinished`] once the timeout expired or its future finished (or
    /// was dropped): there is no deadline left to move (asyncio raises
    /// `RuntimeError`).
    pub fn reschedule(&self, deadline: Option<Instant>) -> Result<(), TimeoutFinished> {
        if self.state.finished.load(Ordering::Acquire) || self.expired() {
            return Err(TimeoutFinished);
        }
        *self.state.lock() = Deadline::At(deadline);
        let waker = self
            .state
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(w) = waker {
            crate::gate::wake_or_resume(w);
        }
        Ok(())
    }

    /// Whether the deadline passed and the inner future was dropped, as
    /// `Timeout.expired()`.
    pub fn expired(&self) -> bool {
        self.state.expired.load(Ordering::Acquire)
    }
}

impl fmt::Debug for TimeoutHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutHandle")
            .field("deadline", &self.state.deadline())
            .field("expired", &self.expired())
            .finish()
    }
}

impl<F> Timeout<F> {
    fn new(inner: F, deadline: Deadline) -> Self {
        Timeout {
            inner: Some(inner),
            deadline,
            shared: OnceLock::new(),
            timer: TimerSlot::default(),
            polled: false,
            cancelled_by_enclosing: false,
        }
    }

    /// A handle to read or move the deadline, also from inside the inner
    /// future. Take it before the timeout is first polled: a handle taken
    /// between two polls of a timeout polled by hand moves the deadline at
    /// the next poll, not at once.
    pub fn handle(&self) -> TimeoutHandle {
        let state = self.shared.get_or_init(|| {
            Arc::new(TimeoutState {
                deadline: Mutex::new(self.deadline),
                expired: AtomicBool::new(false),
                finished: AtomicBool::new(false),
                waker: Mutex::new(None),
            })
        });
        TimeoutHandle {
            state: Arc::clone(state),
        }
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, TimeoutError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.inner.is_none() {
            if *this.cancelled_by_enclosing {
                // The enclosing timeout is past its deadline and drops this
                // one at its next poll (its timer, at worst a tick away,
                // wakes the task for it).
                return Poll::Pending;
            }
            panic!("a Timeout was polled after it completed");
        }
        // Only `handle()`, which needs `&self`, creates it: not during a poll.
        let shared = this.shared.get();
        let deadline_now = |own: &Deadline| shared.map_or(*own, |s| s.deadline());
        // Once the inner future has suspended, a deadline that passed while it
        // waited cancels it, as asyncio's timer cancels the waiting task
        // before it could run again; and it is the outermost expired scope
        // that sees it first, so of nested timeouts with one deadline only
        // the outermost returns `TimeoutError` (the inner ones are dropped,
        // and report `expired()` too). On the first poll the inner future
        // goes first: a result ready at once wins even past the deadline
        // (asyncio's `timeout(0)` around a future that does not suspend).
        let before = deadline_now(this.deadline).at();
        let expired = *this.polled
            && before.is_some_and(|d| {
                if this.timer.armed_at(d) {
                    // The wheel knows (a timer never fires early): no clock.
                    !this.timer.arm(d, cx.waker())
                } else {
                    d <= Instant::now()
                }
            });
        if !expired {
            let inner = this
                .inner
                .as_mut()
                .as_pin_mut()
                .expect("checked above: the inner future is there");
            // Timeouts nested inside see this deadline while it polls them.
            let _enclosing = before.map(Enclosing::enter);
            if let Poll::Ready(out) = inner.poll(cx) {
                this.inner.set(None);
                this.timer.disarm();
                if let Some(state) = shared {
                    state.finished.store(true, Ordering::Release);
                }
                return Poll::Ready(Ok(out));
            }
        }
        let was_polled = std::mem::replace(this.polled, true);
        // The clock of `timeout(d)` starts at its first suspension (unless
        // `when()` started it): a future that finishes at once never reads it.
        let (deadline, read) = match shared {
            Some(state) => state.lock().fix(),
            None => this.deadline.fix(),
        };
        let past = expired
            || deadline.is_some_and(|d| match read {
                Some(now) => d <= now,
                // Checked before the inner poll and unchanged by it.
                None if was_polled && before == Some(d) => false,
                None => d <= Instant::now(),
            });
        if let Some(state) = shared {
            store_waker(&state.waker, cx.waker());
        }
        match deadline {
            Some(d) if past && Enclosing::expired_at(d) => {
                // An enclosing timeout expired too (at this deadline or
                // before): it is the one that raises, as asyncio's outermost
                // scope. This one is cancelled with what it guards: dropped,
                // expired, and pending until the enclosing one, past its own
                // deadline, drops it in this same poll.
                this.inner.set(None);
                *this.cancelled_by_enclosing = true;
                this.timer.disarm();
                if let Some(state) = shared {
                    state.expired.store(true, Ordering::Release);
                    state.finished.store(true, Ordering::Release);
                }
                Poll::Pending
            }
            Some(_) if past => {
                // Cancel the inner future: it is dropped here, before we return.
                this.inner.set(None);
                this.timer.disarm();
                if let Some(state) = shared {
                    state.expired.store(true, Ordering::Release);
                    state.finished.store(true, Ordering::Release);
                }
                Poll::Ready(Err(TimeoutError))
            }
            Some(d) => {
                if !this.timer.armed_at(d) {
                    this.timer.arm(d, cx.waker());
                }
                Poll::Pending
            }
            None => {
                this.timer.disarm();
                Poll::Pending
            }
        }
    }
}

thread_local! {
    /// The earliest deadline of the timeouts polling the current one (their
    /// inner futures contain it), while they poll.
    static ENCLOSING: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// A timeout polling its inner future, as seen by timeouts nested in it;
/// restores the outer value when dropped (also on unwind).
struct Enclosing(Option<Instant>);

impl Enclosing {
    fn enter(deadline: Instant) -> Enclosing {
        let prev = ENCLOSING.with(|e| e.get());
        let earliest = prev.map_or(deadline, |p| p.min(deadline));
        ENCLOSING.with(|e| e.set(Some(earliest)));
        Enclosing(prev)
    }

    /// Whether a timeout enclosing the current one has a deadline no later
    /// than `d`, which has passed: that one expires in this poll too.
    fn expired_at(d: Instant) -> bool {
        ENCLOSING.with(|e| e.get()).is_some_and(|e| e <= d)
    }
}

impl Drop for Enclosing {
    fn drop(&mut self) {
        ENCLOSING.with(|e| e.set(self.0));
    }
}

fn store_waker(slot: &Mutex<Option<Waker>>, waker: &Waker) {
    let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
    match &*slot {
        Some(w) if w.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.shared.get();
        f.debug_struct("Timeout")
            .field("deadline", &shared.map_or(self.deadline, |s| s.deadline()))
            .field(
                "expired",
                &shared.is_some_and(|s| s.expired.load(Ordering::Acquire)),
            )
            .finish_non_exhaustive()
    }
}

/// Runs `fut` for at most `duration` (asyncio 3.11's `async with timeout(d)`).
///
/// Resolves to the output, or to [`TimeoutError`] after dropping `fut` (which
/// is how a Rust future is cancelled). A `fut` that is ready when first polled
/// wins even with `Duration::ZERO`. A duration too long for `Instant` means no
/// deadline. Around a [`Task`](crate::Task), expiry cancels the task (a task
/// handle dropped while awaited cancels its task, as asyncio's `wait_for`
/// does); wrap it in `shield` to let it run on.
///
/// The `duration` counts from the moment `fut` first suspends (or
/// [`TimeoutHandle::when`] is first asked), not from this call: a future
/// that finishes in its first poll never reads the clock. asyncio starts the
/// clock on entering `async with timeout(d)`, just before that first step;
/// [`timeout_at`] is exact.
///
/// # Panics
/// If polled outside a running asyncio-rs loop.
///
/// ```
/// use std::time::Duration;
///
/// asyncio::run(async {
///     let fast = asyncio::timeout(Duration::from_secs(5), async { "in time" }).await;
///     assert_eq!(fast, Ok("in time"));
///     let slow = asyncio::timeout(Duration::from_millis(5), asyncio::sleep(Duration::from_secs(60))).await;
///     assert_eq!(slow, Err(asyncio::TimeoutError));
/// })
/// .unwrap();
/// ```
pub fn timeout<F: IntoFuture>(duration: Duration, fut: F) -> Timeout<F::IntoFuture> {
    Timeout::new(fut.into_future(), Deadline::After(duration))
}

/// Runs `fut` until `deadline` (asyncio's `timeout_at`); see [`timeout`].
///
/// # Panics
/// If polled outside a running asyncio-rs loop.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// asyncio::run(async {
///     let deadline = Instant::now() + Duration::from_millis(5);
///     let r = asyncio::timeout_at(deadline, std::future::pending::<()>()).await;
///     assert!(r.is_err());
/// })
/// .unwrap();
/// ```
pub fn timeout_at<F: IntoFuture>(deadline: Instant, fut: F) -> Timeout<F::IntoFuture> {
    Timeout::new(fut.into_future(), Deadline::At(Some(deadline)))
}

/// asyncio's `wait_for(fut, timeout)`: on expiry the inner future is cancelled
/// (dropped) and gone before [`TimeoutError`] is returned. The same future as
/// [`timeout`], with asyncio's argument order.
///
/// # Panics
/// If polled outside a running asyncio-rs loop.
///
/// ```
/// use std::time::Duration;
///
/// asyncio::run(async {
///     let task = asyncio::create_task(asyncio::sleep(Duration::from_secs(60)));
///     let probe = task.to_ref();
///     let r = asyncio::wait_for(task, Duration::from_millis(5)).await;
///     assert_eq!(r, Err(asyncio::TimeoutError));
///     asyncio::yield_now().await;
///     assert!(probe.cancelled(), "the timed-out task was cancelled");
/// })
/// .unwrap();
/// ```
pub fn wait_for<F: IntoFuture>(fut: F, duration: Duration) -> Timeout<F::IntoFuture> {
    timeout(duration, fut)
}
