//! Timers: `sleep`, `call_later`/`call_at`, and asyncio 3.11's timeouts.
//!
//! A loop keeps its timers in a hierarchical timing wheel ([`wheel`]): arming,
//! cancelling and firing a timer cost O(1) amortised, whatever the number of
//! timers. Cancelling a timer, or dropping the future that armed it, frees its
//! slot at once, so a million timeouts set and cancelled leave nothing behind.
//! Deadlines are rounded up to the wheel's millisecond tick: a timer never
//! fires before its deadline, and at most about a millisecond after it.

mod wheel;

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::event_loop::{Call, LoopInner, running_inner};
use wheel::{TimerKey, Wheel};

/// The operation did not finish before its deadline (asyncio's `TimeoutError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("the operation timed out")]
pub struct TimeoutError;

/// What a timer does when it fires.
pub(crate) enum Action {
    Wake(Waker),
    Call(Rc<Call>),
}

/// A loop's timers. Loop thread only; never borrowed across user code.
#[derive(Default)]
pub(crate) struct Timers {
    /// Created with the first timer (no clock read for a loop without any).
    wheel: Option<Wheel<Action>>,
    /// The timers of one round of firing, handed out outside the borrow.
    fired: Vec<Action>,
}

impl Timers {
    fn insert(&mut self, when: Instant, action: Action) -> TimerKey {
        self.wheel
            .get_or_insert_with(|| Wheel::new(Instant::now()))
            .insert(when, action)
    }

    /// Removes the timer `key` if it is still pending; returns its action so
    /// the caller can drop it outside the borrow.
    fn remove(&mut self, key: TimerKey) -> Option<Action> {
        self.wheel.as_mut()?.remove(key)
    }

    fn get_mut(&mut self, key: TimerKey) -> Option<&mut Action> {
        self.wheel.as_mut()?.get_mut(key)
    }

    /// When the loop must next look at its timers.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.wheel.as_ref()?.next_deadline()
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.wheel.as_ref().map_or(0, Wheel::len)
    }

    /// Takes every timer (the loop is closing).
    pub(crate) fn take_all(&mut self) -> Vec<Action> {
        self.wheel.as_mut().map_or_else(Vec::new, Wheel::take_all)
    }
}

impl LoopInner {
    /// Runs the timers that are due: wakes their tasks, queues their
    /// callbacks, in (deadline, insertion) order. A timer armed meanwhile
    /// (by a waker) waits for the next round.
    #[inline]
    pub(crate) fn fire_timers(&self) {
        // Most iterations have no timer at all: skip the clock read.
        if self.timers.borrow().len() == 0 {
            return;
        }
        self.fire_due_timers();
    }

    fn fire_due_timers(&self) {
        let now = Instant::now();
        let mut fired = {
            let mut timers = self.timers.borrow_mut();
            let timers = &mut *timers;
            let Some(wheel) = timers.wheel.as_mut() else {
                return;
            };
            if !wheel.may_be_due(now) {
                return;
            }
            let mut fired = std::mem::take(&mut timers.fired);
            wheel.poll(now, &mut fired);
            fired
        };
        for action in fired.drain(..) {
            match action {
                Action::Wake(w) => self.wake_reporting(w),
                Action::Call(c) => self.push_call(c),
            }
        }
        let mut timers = self.timers.borrow_mut();
        if timers.fired.capacity() < fired.capacity() {
            timers.fired = fired;
        }
    }

    /// How long the loop may sleep before the next timer is due.
    pub(crate) fn timer_timeout(&self) -> Option<Duration> {
        let next = self.timers.borrow().next_deadline()?;
        Some(next.saturating_duration_since(Instant::now()))
    }
}

/// A timer armed by a future: its registration on one loop, named by the
/// loop's id so the future stays `Send`.
#[derive(Default)]
struct TimerSlot {
    armed: Option<(u64, TimerKey, Instant)>,
}

impl TimerSlot {
    /// Whether a timer at `when` was armed (on some loop) and not disarmed.
    fn armed_at(&self, when: Instant) -> bool {
        self.armed.is_some_and(|(_, _, at)| at == when)
    }

    /// Makes sure a timer at `when` will wake `waker`; `true` if one is
    /// pending. `false` instead if this slot's timer at `when` on this loop
    /// has already fired: the deadline has passed, no clock needed.
    fn arm(&mut self, when: Instant, waker: &Waker) -> bool {
        let lp = running_inner().unwrap_or_else(|e| {
            panic!("asyncio timers need a running asyncio-rs loop to be polled in: {e}")
        });
        if let Some((loop_id, key, at)) = self.armed
            && at == when
            && loop_id == lp.id
        {
            let mut timers = lp.timers.borrow_mut();
            return match timers.get_mut(key) {
                Some(action) => {
                    match action {
                        Action::Wake(w) if w.will_wake(waker) => {}
                        action => *action = Action::Wake(waker.clone()),
                    }
                    true
                }
                None => {
                    self.armed = None;
                    false
                }
            };
        }
        self.disarm_on(&lp);
        let key = lp
            .timers
            .borrow_mut()
            .insert(when, Action::Wake(waker.clone()));
        self.armed = Some((lp.id, key, when));
        true
    }

    fn disarm_on(&mut self, lp: &LoopInner) {
        if let Some((loop_id, key, _)) = self.armed.take()
            && loop_id == lp.id
        {
            let action = lp.timers.borrow_mut().remove(key);
            drop(action);
        }
    }

    /// Frees the registration, if any. Off its loop's thread (a `Send` future
    /// dropped elsewhere) the timer stays until it fires, then goes.
    fn disarm(&mut self) {
        if self.armed.is_none() {
            return;
        }
        match running_inner() {
            Ok(lp) => self.disarm_on(&lp),
            Err(_) => self.armed = None,
        }
    }
}

impl Drop for TimerSlot {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// Adds `d` to now; `None` (never) if the result does not fit in an `Instant`.
fn deadline_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// The future of [`sleep`] and [`sleep_until`].
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    /// `None`: a deadline past what `Instant` can hold; the sleep never ends.
    deadline: Option<Instant>,
    /// `sleep(Duration::ZERO)`: a yield, known without reading the clock.
    zero: bool,
    yielded: bool,
    timer: TimerSlot,
}

impl Sleep {
    /// When the sleep ends (`None` if never).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let Some(d) = this.deadline else {
            return Poll::Pending;
        };
        // Armed before: the wheel knows whether the deadline passed (a timer
        // never fires early), without a clock read.
        if this.timer.armed_at(d) {
            return if this.timer.arm(d, cx.waker()) {
                Poll::Pending
            } else {
                Poll::Ready(())
            };
        }
        if this.yielded {
            return Poll::Ready(());
        }
        // A deadline already past (sleep(0), or a sleep first polled late)
        // does not go through the wheel at all: asyncio's sleep(0), one turn.
        if this.zero || d <= Instant::now() {
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.timer.arm(d, cx.waker());
        Poll::Pending
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// Waits for `duration` (asyncio's `sleep`), letting other tasks run.
///
/// `sleep(Duration::ZERO)` gives the other tasks one turn, as `asyncio.sleep(0)`.
/// A duration too long for `Instant` (say `Duration::MAX`) sleeps forever: the
/// task waits until it is cancelled.
///
/// The deadline counts from this call, as tokio's. The loop's timers tick in
/// milliseconds: a sleep ends no earlier than its deadline and at most about
/// a millisecond after it.
///
/// # Panics
/// If polled outside a running asyncio-rs loop.
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        deadline: deadline_after(duration),
        zero: duration.is_zero(),
        yielded: false,
        timer: TimerSlot::default(),
    }
}

/// Waits until `deadline`; a deadline already past gives the others one turn.
///
/// # Panics
/// If polled outside a running asyncio-rs loop.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline: Some(deadline),
        zero: false,
        yielded: false,
        timer: TimerSlot::default(),
    }
}

/// A callback scheduled with [`EventLoop::call_later`](crate::EventLoop::call_later)
/// or `call_at` (asyncio's `TimerHandle`).
pub struct TimerHandle {
    call: Rc<Call>,
    when: Option<Instant>,
    lp: Weak<LoopInner>,
    key: Option<TimerKey>,
}

impl TimerHandle {
    /// Cancels the callback if it has not run; its timer slot is freed at once.
    pub fn cancel(&self) {
        self.call.cancel();
        if let (Some(key), Some(lp)) = (self.key, self.lp.upgrade()) {
            let action = lp.timers.borrow_mut().remove(key);
            drop(action);
        }
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn cancelled(&self) -> bool {
        self.call.is_cancelled()
    }

    /// When the callback is due (`None`: a delay too long for `Instant`, never).
    pub fn when(&self) -> Option<Instant> {
        self.when
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("when", &self.when)
            .field("cancelled", &self.cancelled())
            .finish()
    }
}

impl crate::EventLoop {
    /// Runs `f` on the loop after `delay` (asyncio's `loop.call_later`). A
    /// delay too long for `Instant` never fires. A panic in `f` goes to the
    /// exception handler.
    ///
    /// # Panics
    /// On a closed loop, which could never run `f` (asyncio raises
    /// `RuntimeError`); [`try_call_later`](Self::try_call_later) returns the
    /// error instead.
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> TimerHandle {
        self.try_call_later(delay, f)
            .unwrap_or_else(|e| crate::event_loop::closed_loop("EventLoop::call_later", e))
    }

    /// [`call_later`](Self::call_later), failing with
    /// [`RuntimeError::Closed`] on a closed loop.
    pub fn try_call_later(
        &self,
        delay: Duration,
        f: impl FnOnce() + 'static,
    ) -> Result<TimerHandle, crate::RuntimeError> {
        self.inner.call_at_boxed(deadline_after(delay), Box::new(f))
    }

    /// How many timers are pending (sleeps, timeouts, `call_later`); for
    /// monitoring. Cancelled or finished timers do not count.
    pub fn scheduled_timers(&self) -> usize {
        self.inner.timers.borrow().len()
    }

    /// Runs `f` on the loop at `when` (asyncio's `loop.call_at`); a time
    /// already past runs it on the next iteration.
    ///
    /// # Panics
    /// On a closed loop, as [`call_later`](Self::call_later).
    pub fn call_at(&self, when: Instant, f: impl FnOnce() + 'static) -> TimerHandle {
        self.try_call_at(when, f)
            .unwrap_or_else(|e| crate::event_loop::closed_loop("EventLoop::call_at", e))
    }

    /// [`call_at`](Self::call_at), failing with [`RuntimeError::Closed`] on a
    /// closed loop.
    pub fn try_call_at(
        &self,
        when: Instant,
        f: impl FnOnce() + 'static,
    ) -> Result<TimerHandle, crate::RuntimeError> {
        self.inner.call_at_boxed(Some(when), Box::new(f))
    }
}

impl LoopInner {
    pub(crate) fn call_at_boxed(
        self: &Rc<Self>,
        when: Option<Instant>,
        f: Box<dyn FnOnce()>,
    ) -> Result<TimerHandle, crate::RuntimeError> {
        if self.closed.get() {
            // Dropped here, not kept by a loop that will never run it.
            self.drop_reporting(f);
            return Err(crate::RuntimeError::Closed);
        }
        let call = Call::new(f);
        let key = when.map(|when| {
            self.timers
                .borrow_mut()
                .insert(when, Action::Call(Rc::clone(&call)))
        });
        Ok(TimerHandle {
            call,
            when,
            lp: Rc::downgrade(self),
            key,
        })
    }
}

pin_project_lite::pin_project! {
    /// The future of [`timeout`], [`timeout_at`] and [`wait_for`]: the inner
    /// future, or [`TimeoutError`] once the deadline passes.
    ///
    /// Its deadline can be read and moved while it runs, through a
    /// [`TimeoutHandle`] (asyncio's `Timeout` context manager:
    /// `when`, `reschedule`, `expired`).
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the timeout already expired or finished: there is no deadline left to reschedule")]
pub struct TimeoutFinished;

/// Reads and moves the deadline of a [`Timeout`] (asyncio's `Timeout` object);
/// cheap to clone, `Send + Sync`, usable from inside the guarded future.
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
            w.wake();
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
pub fn timeout<F: IntoFuture>(duration: Duration, fut: F) -> Timeout<F::IntoFuture> {
    Timeout::new(fut.into_future(), Deadline::After(duration))
}

/// Runs `fut` until `deadline` (asyncio's `timeout_at`); see [`timeout`].
///
/// # Panics
/// If polled outside a running asyncio-rs loop.
pub fn timeout_at<F: IntoFuture>(deadline: Instant, fut: F) -> Timeout<F::IntoFuture> {
    Timeout::new(fut.into_future(), Deadline::At(Some(deadline)))
}

/// asyncio's `wait_for(fut, timeout)`: on expiry the inner future is cancelled
/// (dropped) and gone before [`TimeoutError`] is returned. The same future as
/// [`timeout`], with asyncio's argument order.
///
/// # Panics
/// If polled outside a running asyncio-rs loop.
pub fn wait_for<F: IntoFuture>(fut: F, duration: Duration) -> Timeout<F::IntoFuture> {
    timeout(duration, fut)
}
