//! Timers: `sleep`, `call_later`/`call_at`, and asyncio 3.11's timeouts.
//!
//! A loop keeps its timers in a slab (the registration) plus a binary heap of
//! `(deadline, sequence, slab key)`. Cancelling a timer, or dropping the future
//! that armed it, frees its slab slot at once; the heap entry goes stale and is
//! skipped when it surfaces, and the heap is rebuilt whenever stale entries
//! outnumber live ones, so a million timeouts set and cancelled leave nothing
//! behind.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::event_loop::{Call, LoopInner, running_inner};

/// The operation did not finish before its deadline (asyncio's `TimeoutError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("the operation timed out")]
pub struct TimeoutError;

pub(crate) enum Action {
    Wake(Waker),
    Call(Rc<Call>),
}

pub(crate) struct Entry {
    seq: u64,
    action: Action,
}

/// A loop's timers. Loop thread only; never borrowed across user code.
#[derive(Default)]
pub(crate) struct Timers {
    slab: Slab<Entry>,
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    next_seq: u64,
}

impl Timers {
    fn insert(&mut self, when: Instant, action: Action) -> (usize, u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = self.slab.insert(Entry { seq, action });
        self.heap.push(Reverse((when, seq, key)));
        (key, seq)
    }

    /// Removes the timer `(key, seq)` if it is still pending; returns its action
    /// so the caller can drop it outside the borrow.
    fn remove(&mut self, key: usize, seq: u64) -> Option<Action> {
        match self.slab.get(key) {
            Some(e) if e.seq == seq => {}
            _ => return None,
        }
        let entry = self.slab.remove(key);
        // Stale heap entries are skipped when they surface; rebuild once they
        // outnumber the live ones, so the heap stays proportional to the slab.
        if self.heap.len() > 64 && self.heap.len() > 2 * self.slab.len() {
            let slab = &self.slab;
            self.heap
                .retain(|Reverse((_, s, k))| slab.get(*k).is_some_and(|e| e.seq == *s));
        }
        Some(entry.action)
    }

    /// Drops stale entries at the top; the earliest live deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((when, seq, key))) = self.heap.peek() {
            if self.slab.get(key).is_some_and(|e| e.seq == seq) {
                return Some(when);
            }
            self.heap.pop();
        }
        None
    }

    /// Takes one timer due at `now`, if any.
    fn pop_due(&mut self, now: Instant) -> Option<Action> {
        let when = self.next_deadline()?;
        if when > now {
            return None;
        }
        let Reverse((_, _, key)) = self.heap.pop().expect("next_deadline saw it");
        Some(self.slab.remove(key).action)
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// Takes every timer (the loop is closing).
    pub(crate) fn take_all(&mut self) -> Vec<Entry> {
        self.heap.clear();
        self.slab.drain().collect()
    }
}

impl LoopInner {
    /// Runs the timers that are due: wakes their tasks, queues their callbacks.
    pub(crate) fn fire_timers(&self) {
        // Most iterations have no timer at all: skip the clock read.
        if self.timers.borrow().heap.is_empty() {
            return;
        }
        let now = Instant::now();
        loop {
            let action = self.timers.borrow_mut().pop_due(now);
            match action {
                None => break,
                Some(Action::Wake(w)) => self.wake_reporting(w),
                Some(Action::Call(c)) => self.push_call(c),
            }
        }
    }

    /// How long the loop may sleep before the next timer is due.
    pub(crate) fn timer_timeout(&self) -> Option<Duration> {
        let next = self.timers.borrow_mut().next_deadline()?;
        Some(next.saturating_duration_since(Instant::now()))
    }
}

/// A timer armed by a future: its registration on one loop, named by the
/// loop's id so the future stays `Send`.
#[derive(Default)]
struct TimerSlot {
    armed: Option<(u64, usize, u64, Instant)>,
}

impl TimerSlot {
    /// Makes sure a timer at `when` will wake `waker`.
    fn arm(&mut self, when: Instant, waker: &Waker) {
        let lp = running_inner().unwrap_or_else(|e| {
            panic!("asyncio timers need a running asyncio-rs loop to be polled in: {e}")
        });
        if let Some((loop_id, key, seq, at)) = self.armed
            && at == when
            && loop_id == lp.id
        {
            let mut timers = lp.timers.borrow_mut();
            if let Some(entry) = timers.slab.get_mut(key)
                && entry.seq == seq
            {
                match &mut entry.action {
                    Action::Wake(w) if w.will_wake(waker) => {}
                    action => *action = Action::Wake(waker.clone()),
                }
                return;
            }
        }
        self.disarm_on(&lp);
        let (key, seq) = lp
            .timers
            .borrow_mut()
            .insert(when, Action::Wake(waker.clone()));
        self.armed = Some((lp.id, key, seq, when));
    }

    fn disarm_on(&mut self, lp: &LoopInner) {
        if let Some((loop_id, key, seq, _)) = self.armed.take()
            && loop_id == lp.id
        {
            let action = lp.timers.borrow_mut().remove(key, seq);
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
        match this.deadline {
            // asyncio's sleep(0): give the others one turn.
            Some(d) if d <= Instant::now() => {
                if this.yielded || this.timer.armed.is_some() {
                    this.timer.disarm();
                    return Poll::Ready(());
                }
                this.yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(d) => {
                this.timer.arm(d, cx.waker());
                Poll::Pending
            }
            None => Poll::Pending,
        }
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
/// # Panics
/// If polled outside a running asyncio-rs loop.
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        deadline: deadline_after(duration),
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
    key: Option<(usize, u64)>,
}

impl TimerHandle {
    /// Cancels the callback if it has not run; its timer slot is freed at once.
    pub fn cancel(&self) {
        self.call.cancel();
        if let (Some((key, seq)), Some(lp)) = (self.key, self.lp.upgrade()) {
            let action = lp.timers.borrow_mut().remove(key, seq);
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
    /// [`RuntimeError::Closed`](crate::RuntimeError::Closed) on a closed loop.
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

    /// [`call_at`](Self::call_at), failing with [`RuntimeError::Closed`](crate::RuntimeError::Closed) on a
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
        state: Arc<TimeoutState>,
        timer: TimerSlot,
        // Polled before: the inner future has suspended at least once.
        polled: bool,
    }

    impl<F> PinnedDrop for Timeout<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Dropped with its inner future still running, past its deadline:
            // an enclosing scope expiring at the same moment cancelled it (or
            // its owner did). asyncio marks such a timeout expired too.
            if this.inner.is_some()
                && this.state.deadline().is_some_and(|d| d <= Instant::now())
            {
                this.state.expired.store(true, Ordering::Release);
            }
            this.state.finished.store(true, Ordering::Release);
        }
    }
}

struct TimeoutState {
    deadline: Mutex<Option<Instant>>,
    expired: AtomicBool,
    /// The `Timeout` returned its outcome or was dropped.
    finished: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl TimeoutState {
    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
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
    /// The deadline (`None`: no deadline), as `Timeout.when()`.
    pub fn when(&self) -> Option<Instant> {
        self.state.deadline()
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
        *self
            .state
            .deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = deadline;
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
            .field("when", &self.when())
            .field("expired", &self.expired())
            .finish()
    }
}

impl<F> Timeout<F> {
    fn new(inner: F, deadline: Option<Instant>) -> Self {
        Timeout {
            inner: Some(inner),
            state: Arc::new(TimeoutState {
                deadline: Mutex::new(deadline),
                expired: AtomicBool::new(false),
                finished: AtomicBool::new(false),
                waker: Mutex::new(None),
            }),
            timer: TimerSlot::default(),
            polled: false,
        }
    }

    /// A handle to read or move the deadline, also from inside the inner future.
    pub fn handle(&self) -> TimeoutHandle {
        TimeoutHandle {
            state: Arc::clone(&self.state),
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
        let deadline = this.state.deadline();
        let past = deadline.is_some_and(|d| d <= Instant::now());
        // Once the inner future has suspended, a deadline that passed while it
        // waited cancels it, as asyncio's timer cancels the waiting task
        // before it could run again; and it is the outermost expired scope
        // that sees it first, so of nested timeouts with one deadline only
        // the outermost returns `TimeoutError` (the inner ones are dropped,
        // and report `expired()` too). On the first poll the inner future
        // goes first: a result ready at once wins even past the deadline
        // (asyncio's `timeout(0)` around a future that does not suspend).
        if !(past && *this.polled) {
            let inner = this
                .inner
                .as_mut()
                .as_pin_mut()
                .expect("checked above: the inner future is there");
            if let Poll::Ready(out) = inner.poll(cx) {
                this.inner.set(None);
                this.timer.disarm();
                this.state.finished.store(true, Ordering::Release);
                return Poll::Ready(Ok(out));
            }
        }
        *this.polled = true;
        match deadline {
            Some(_) if past => {
                // Cancel the inner future: it is dropped here, before we return.
                this.inner.set(None);
                this.timer.disarm();
                this.state.expired.store(true, Ordering::Release);
                this.state.finished.store(true, Ordering::Release);
                Poll::Ready(Err(TimeoutError))
            }
            Some(d) => {
                this.timer.arm(d, cx.waker());
                store_waker(&this.state.waker, cx.waker());
                Poll::Pending
            }
            None => {
                this.timer.disarm();
                store_waker(&this.state.waker, cx.waker());
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
        f.debug_struct("Timeout")
            .field("when", &self.state.deadline())
            .field("expired", &self.state.expired.load(Ordering::Acquire))
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
/// # Panics
/// If polled outside a running asyncio-rs loop.
pub fn timeout<F: IntoFuture>(duration: Duration, fut: F) -> Timeout<F::IntoFuture> {
    Timeout::new(fut.into_future(), deadline_after(duration))
}

/// Runs `fut` until `deadline` (asyncio's `timeout_at`); see [`timeout`].
///
/// # Panics
/// If polled outside a running asyncio-rs loop.
pub fn timeout_at<F: IntoFuture>(deadline: Instant, fut: F) -> Timeout<F::IntoFuture> {
    Timeout::new(fut.into_future(), Some(deadline))
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
