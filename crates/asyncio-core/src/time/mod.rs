//! Timers: `sleep`, `call_later`/`call_at`, and asyncio 3.11's timeouts ([`timeout`]).
//!
//! A loop keeps its timers in a hierarchical timing wheel ([`wheel`]): arming,
//! cancelling and firing a timer cost O(1) amortised, whatever the number of
//! timers. Cancelling a timer, or dropping the future that armed it, frees its
//! slot at once, so a million timeouts set and cancelled leave nothing behind.
//! Deadlines are rounded up to the wheel's millisecond tick: a timer never
//! fires before its deadline, and at most about a millisecond after it.

mod timeout;
mod wheel;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::event_loop::{Call, LoopInner, running_inner};
use wheel::{TimerKey, Wheel};

pub use timeout::{Timeout, TimeoutFinished, TimeoutHandle, timeout, timeout_at, wait_for};

/// The operation did not finish before its deadline (asyncio's `TimeoutError`).
///
/// ```
/// let r = asyncio::run(asyncio::wait_for(
///     std::future::pending::<()>(),
///     std::time::Duration::from_millis(1),
/// ))
/// .unwrap();
/// assert_eq!(r, Err(asyncio::TimeoutError));
/// ```
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
            let (pending, replaced) = match timers.get_mut(key) {
                Some(action) => match action {
                    Action::Wake(w) if w.will_wake(waker) => (true, None),
                    action => (
                        true,
                        Some(std::mem::replace(action, Action::Wake(waker.clone()))),
                    ),
                },
                None => {
                    self.armed = None;
                    (false, None)
                }
            };
            // The replaced waker is user code: dropped outside the borrow.
            drop(timers);
            lp.drop_reporting(replaced);
            return pending;
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
            lp.drop_reporting(action);
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
///
/// ```
/// asyncio::run(async {
///     let nap: asyncio::Sleep = asyncio::sleep(std::time::Duration::from_millis(1));
///     nap.await;
/// })
/// .unwrap();
/// ```
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
            // gate-exempt: the waker of whoever polls us, from inside their poll.
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
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let waited = asyncio::run(async {
///     let t0 = Instant::now();
///     asyncio::sleep(Duration::from_millis(10)).await;
///     t0.elapsed()
/// })
/// .unwrap();
/// assert!(waited >= Duration::from_millis(10));
/// ```
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
///
/// ```
/// use std::time::{Duration, Instant};
///
/// asyncio::run(async {
///     let deadline = Instant::now() + Duration::from_millis(5);
///     asyncio::sleep_until(deadline).await;
///     assert!(Instant::now() >= deadline);
/// })
/// .unwrap();
/// ```
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
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
///
/// let fired = Rc::new(Cell::new(0));
/// let f = fired.clone();
/// asyncio::run(async move {
///     let lp = asyncio::get_running_loop().unwrap();
///     let f2 = f.clone();
///     let _kept = lp.call_later(Duration::from_millis(1), move || f2.set(f2.get() + 1));
///     let cancelled = lp.call_later(Duration::from_millis(1), move || f.set(f.get() + 10));
///     cancelled.cancel();
///     asyncio::sleep(Duration::from_millis(5)).await;
/// })
/// .unwrap();
/// assert_eq!(fired.get(), 1);
/// ```
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
            lp.drop_reporting(action);
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

    /// The context the callback runs in, as asyncio's `Handle.get_context()`
    /// (see [`CallHandle::get_context`](crate::CallHandle::get_context)).
    pub fn get_context(&self) -> crate::Context {
        crate::CallHandle::from_call(Rc::clone(&self.call)).get_context()
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
    /// [`RuntimeError::Closed`](crate::RuntimeError::Closed) on a closed loop.
    pub fn try_call_later(
        &self,
        delay: Duration,
        f: impl FnOnce() + 'static,
    ) -> Result<TimerHandle, crate::RuntimeError> {
        self.inner.call_at_in(
            deadline_after(delay),
            Box::new(f),
            crate::contextvars::copy_for_task(),
        )
    }

    /// [`call_later`](Self::call_later) with the context `f` runs in
    /// (asyncio's `context=`); without it a callback runs in a copy of the
    /// context current when it was scheduled.
    ///
    /// # Panics
    /// On a closed loop, as `call_later`.
    pub fn call_later_with_context(
        &self,
        delay: Duration,
        f: impl FnOnce() + 'static,
        context: crate::Context,
    ) -> TimerHandle {
        crate::contextvars::mark_in_use();
        self.inner
            .call_at_in(deadline_after(delay), Box::new(f), Some(context))
            .unwrap_or_else(|e| {
                crate::event_loop::closed_loop("EventLoop::call_later_with_context", e)
            })
    }

    /// [`call_at`](Self::call_at) with the context `f` runs in (asyncio's
    /// `context=`).
    ///
    /// # Panics
    /// On a closed loop, as `call_at`.
    pub fn call_at_with_context(
        &self,
        when: Instant,
        f: impl FnOnce() + 'static,
        context: crate::Context,
    ) -> TimerHandle {
        crate::contextvars::mark_in_use();
        self.inner
            .call_at_in(Some(when), Box::new(f), Some(context))
            .unwrap_or_else(|e| {
                crate::event_loop::closed_loop("EventLoop::call_at_with_context", e)
            })
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

    /// [`call_at`](Self::call_at), failing with [`RuntimeError::Closed`](crate::RuntimeError::Closed) on a
    /// closed loop.
    pub fn try_call_at(
        &self,
        when: Instant,
        f: impl FnOnce() + 'static,
    ) -> Result<TimerHandle, crate::RuntimeError> {
        self.inner
            .call_at_in(Some(when), Box::new(f), crate::contextvars::copy_for_task())
    }
}

impl LoopInner {
    pub(crate) fn call_at_in(
        self: &Rc<Self>,
        when: Option<Instant>,
        f: Box<dyn FnOnce()>,
        context: Option<crate::Context>,
    ) -> Result<TimerHandle, crate::RuntimeError> {
        if self.closed.get() {
            // Dropped here, not kept by a loop that will never run it (and
            // without recursion: see `dispose_refused`).
            crate::gate::dispose_refused(f);
            self.drop_reporting(context);
            return Err(crate::RuntimeError::Closed);
        }
        let call = Call::with_context(f, context);
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
