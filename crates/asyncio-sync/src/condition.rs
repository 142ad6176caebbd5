//! `Condition`: asyncio's condition variable over a [`Lock`].

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::lock::{Acquire, Lock, LockGuard};
use crate::waiters::{WaitList, WakeBatch};

/// asyncio's `Condition`: tasks wait, with a [`Lock`] released, until another
/// task notifies them.
///
/// The lock is reached through the condition ([`lock`](Condition::lock)) and
/// may protect a value, as [`Lock`] does. [`wait`](Condition::wait) takes the
/// guard, releases the lock, waits to be notified and takes the lock again
/// before it returns the guard, so "waiting without holding the lock"
/// (asyncio's `RuntimeError`) cannot be written.
///
/// Waiters are notified in the order they started waiting. A waiting future
/// that is dropped after it was notified passes the notification on to the
/// next waiter, so `notify(1)` is never lost.
///
/// ```
/// use std::rc::Rc;
///
/// let seen = asyncio::run(async {
///     let cond = Rc::new(asyncio::Condition::with_value(Vec::new()));
///     let c = cond.clone();
///     let consumer = asyncio::create_task(async move {
///         let guard = c.lock().await;
///         let guard = c.wait_for(guard, |items| !items.is_empty()).await;
///         guard.clone()
///     });
///     asyncio::yield_now().await;
///     cond.lock().await.push("item");
///     cond.notify_all();
///     consumer.await.unwrap()
/// })
/// .unwrap();
/// assert_eq!(seen, ["item"]);
/// ```
pub struct Condition<T = ()> {
    lock: Rc<Lock<T>>,
    waiters: RefCell<WaitList<()>>,
}

impl Condition<()> {
    /// Creates a condition with its own new lock (asyncio's `Condition()`).
    ///
    /// ```
    /// let cond = asyncio::Condition::new();
    /// assert!(!cond.locked());
    /// ```
    pub fn new() -> Self {
        Self::with_lock(Rc::new(Lock::new()))
    }
}

impl Default for Condition<()> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Condition<T> {
    /// Creates a condition with its own new lock protecting `value`.
    ///
    /// ```
    /// let cond = asyncio::Condition::with_value(0u8);
    /// assert_eq!(*cond.try_lock().unwrap(), 0);
    /// ```
    pub fn with_value(value: T) -> Self {
        Self::with_lock(Rc::new(Lock::with_value(value)))
    }

    /// Creates a condition over an existing lock, which several conditions
    /// may share (asyncio's `Condition(lock)`).
    ///
    /// ```
    /// use std::rc::Rc;
    /// use asyncio::{Condition, Lock};
    ///
    /// let lock = Rc::new(Lock::new());
    /// let (a, b) = (Condition::with_lock(lock.clone()), Condition::with_lock(lock.clone()));
    /// let _held = a.try_lock().unwrap();
    /// assert!(b.locked());
    /// ```
    pub fn with_lock(lock: Rc<Lock<T>>) -> Self {
        Self {
            lock,
            waiters: RefCell::new(WaitList::new()),
        }
    }

    /// The underlying lock.
    ///
    /// ```
    /// let cond = asyncio::Condition::new();
    /// assert!(!cond.get_lock().locked());
    /// ```
    pub fn get_lock(&self) -> &Rc<Lock<T>> {
        &self.lock
    }

    /// Takes the underlying lock (asyncio's `acquire()`, `async with cond:`).
    ///
    /// ```
    /// let cond = asyncio::Condition::new();
    /// let guard = asyncio::run(cond.lock()).unwrap();
    /// assert!(cond.locked());
    /// ```
    pub fn lock(&self) -> impl Future<Output = LockGuard<'_, T>> + '_ {
        self.lock.lock()
    }

    /// Takes the underlying lock if it is free; see [`Lock::try_lock`].
    ///
    /// ```
    /// let cond = asyncio::Condition::new();
    /// assert!(cond.try_lock().is_some());
    /// ```
    pub fn try_lock(&self) -> Option<LockGuard<'_, T>> {
        self.lock.try_lock()
    }

    /// Whether the underlying lock is held (asyncio's `locked()`).
    ///
    /// ```
    /// let cond = asyncio::Condition::new();
    /// let _g = cond.try_lock();
    /// assert!(cond.locked());
    /// ```
    pub fn locked(&self) -> bool {
        self.lock.locked()
    }

    /// Releases the lock held by `guard`, waits until notified, takes the
    /// lock again and returns the new guard (asyncio's `wait()`).
    ///
    /// Dropping the future while it waits leaves the line; dropping it after
    /// it was notified passes the notification to the next waiter. Either way
    /// the lock is not held afterwards (asyncio would take it again before
    /// raising `CancelledError`).
    ///
    /// # Panics
    ///
    /// If `guard` holds a different lock than this condition's.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use asyncio::Condition;
    ///
    /// let woken = asyncio::run(async {
    ///     let cond = Rc::new(Condition::new());
    ///     let c = cond.clone();
    ///     let waiter = asyncio::create_task(async move {
    ///         let guard = c.lock().await;
    ///         let _guard = c.wait(guard).await;
    ///         true
    ///     });
    ///     asyncio::yield_now().await; // the waiter now waits
    ///     cond.notify_all();
    ///     waiter.await.unwrap()
    /// })
    /// .unwrap();
    /// assert!(woken);
    /// ```
    pub fn wait<'g>(
        &'g self,
        guard: LockGuard<'g, T>,
    ) -> impl Future<Output = LockGuard<'g, T>> + 'g {
        assert!(
            guard.lock().same_lock(&self.lock),
            "Condition::wait needs a guard of the condition's own lock"
        );
        CondWait {
            cond: self,
            phase: Phase::Start(Some(guard)),
        }
    }

    /// Waits until `predicate` holds, checking it (with the lock held) first
    /// and after every notification (asyncio's `wait_for()`); returns the
    /// guard with the lock held and the predicate true.
    ///
    /// ```
    /// let cond = asyncio::Condition::with_value(3);
    /// let guard = asyncio::run(async {
    ///     let guard = cond.lock().await;
    ///     cond.wait_for(guard, |v| *v == 3).await
    /// }).unwrap();
    /// assert_eq!(*guard, 3);
    /// ```
    pub async fn wait_for<'g>(
        &'g self,
        mut guard: LockGuard<'g, T>,
        mut predicate: impl FnMut(&T) -> bool,
    ) -> LockGuard<'g, T> {
        while !predicate(&guard) {
            guard = self.wait(guard).await;
        }
        guard
    }

    /// Wakes up to `n` waiting tasks, longest-waiting first (asyncio's
    /// `notify(n)`). Unlike asyncio, the lock need not be held.
    ///
    /// ```
    /// let cond = asyncio::Condition::new();
    /// cond.notify(1); // nobody waits: nothing happens
    /// ```
    pub fn notify(&self, n: usize) {
        let mut batch = WakeBatch::default();
        {
            let mut waiters = self.waiters.borrow_mut();
            for _ in 0..n {
                if waiters.is_empty() {
                    break;
                }
                batch.push(waiters.wake_front());
            }
        }
        batch.wake();
    }

    /// Wakes every waiting task (asyncio's `notify_all()`).
    ///
    /// ```
    /// let cond = asyncio::Condition::new();
    /// cond.notify_all();
    /// ```
    pub fn notify_all(&self) {
        let n = self.waiters.borrow().len();
        self.notify(n);
    }
}

impl<T> fmt::Debug for Condition<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("locked", &self.lock.locked())
            .field("waiters", &self.waiters.borrow().len())
            .finish()
    }
}

enum Phase<'g, T> {
    /// Not polled yet: still holds the caller's guard.
    Start(Option<LockGuard<'g, T>>),
    /// In the condition's line, lock released.
    Waiting(usize),
    /// Notified; taking the lock again.
    Relocking(Acquire<'g, T>),
    Done,
}

struct CondWait<'g, T> {
    cond: &'g Condition<T>,
    phase: Phase<'g, T>,
}

impl<'g, T> Future for CondWait<'g, T> {
    type Output = LockGuard<'g, T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let cond = self.cond;
        loop {
            match &mut self.phase {
                Phase::Start(guard) => {
                    // Join the line before releasing the lock, so a notify
                    // sent by the next holder cannot be missed.
                    let key = cond.waiters.borrow_mut().push_back(cx.waker(), ());
                    let guard = guard.take().expect("a CondWait starts with its guard");
                    self.phase = Phase::Waiting(key);
                    drop(guard);
                    return Poll::Pending;
                }
                Phase::Waiting(key) => {
                    let key = *key;
                    let mut waiters = cond.waiters.borrow_mut();
                    if waiters.is_linked(key) {
                        waiters.set_waker(key, cx.waker());
                        return Poll::Pending;
                    }
                    waiters.remove(key);
                    drop(waiters);
                    let lock: &'g Lock<T> = &cond.lock;
                    self.phase = Phase::Relocking(lock.acquire());
                }
                Phase::Relocking(relock) => {
                    let guard = std::task::ready!(Pin::new(relock).poll(cx));
                    self.phase = Phase::Done;
                    return Poll::Ready(guard);
                }
                Phase::Done => panic!("Condition::wait polled after it returned"),
            }
        }
    }
}

impl<T> Drop for CondWait<'_, T> {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Waiting(key) => {
                let mut waiters = self.cond.waiters.borrow_mut();
                let notified = !waiters.is_linked(key);
                waiters.remove(key);
                drop(waiters);
                if notified {
                    self.cond.notify(1);
                }
            }
            Phase::Relocking(relock) => {
                // The notification was taken but the caller never saw it.
                drop(relock);
                self.cond.notify(1);
            }
            Phase::Start(_) | Phase::Done => {}
        }
    }
}
