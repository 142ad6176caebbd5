//! `Lock`: asyncio's mutual-exclusion lock, FIFO-fair, released by a guard.

use std::cell::{RefCell, RefMut};
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::waiters::WaitList;

/// asyncio's `Lock`: one holder at a time, handed over in the order tasks
/// asked for it.
///
/// `lock().await` returns a [`LockGuard`]; dropping the guard releases the
/// lock (asyncio's `async with lock:`). Like tokio's `Mutex<T>`, the lock may
/// protect a value, reached through the guard; `Lock::new()` protects `()`,
/// as asyncio's does.
///
/// Fairness: on release the lock passes straight to the task that has waited
/// longest, and a new `lock()` call never overtakes a waiting one. A waiting
/// `lock()` future that is dropped leaves the line; one that was already
/// handed the lock passes it on.
///
/// Not thread-safe (neither is asyncio's); share it within one thread with
/// `Rc<Lock>`.
///
/// ```
/// use std::rc::Rc;
///
/// let total = asyncio::run(async {
///     let counter = Rc::new(asyncio::Lock::with_value(0));
///     let tasks: Vec<_> = (0..10)
///         .map(|_| {
///             let c = counter.clone();
///             asyncio::create_task(async move {
///                 let mut guard = c.lock().await; // async with lock:
///                 let v = *guard;
///                 asyncio::yield_now().await;
///                 *guard = v + 1;
///             })
///         })
///         .collect();
///     for t in tasks {
///         t.await.unwrap();
///     }
///     let v = *counter.lock().await;
///     v
/// })
/// .unwrap();
/// assert_eq!(total, 10);
/// ```
pub struct Lock<T = ()> {
    state: RefCell<LockState>,
    value: RefCell<T>,
}

#[derive(Debug)]
struct LockState {
    /// Held by a guard, or handed to a woken waiter that has not yet run.
    locked: bool,
    waiters: WaitList<()>,
}

impl Lock<()> {
    /// Creates an unlocked lock that protects nothing (asyncio's `Lock()`).
    ///
    /// ```
    /// let lock = asyncio::Lock::new();
    /// assert!(!lock.locked());
    /// ```
    pub fn new() -> Self {
        Self::with_value(())
    }
}

impl Default for Lock<()> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Lock<T> {
    /// Creates an unlocked lock that protects `value`.
    ///
    /// ```
    /// let lock = asyncio::Lock::with_value(5);
    /// assert_eq!(*lock.try_lock().unwrap(), 5);
    /// ```
    pub fn with_value(value: T) -> Self {
        Self {
            state: RefCell::new(LockState {
                locked: false,
                waiters: WaitList::new(),
            }),
            value: RefCell::new(value),
        }
    }

    /// Waits until the lock is free and no earlier task waits for it, then
    /// takes it (asyncio's `acquire()`). Never fails.
    ///
    /// Dropping the returned future gives up the place in line without
    /// losing a hand-over.
    ///
    /// ```
    /// let lock = asyncio::Lock::with_value(0);
    /// asyncio::run(async {
    ///     *lock.lock().await += 1;
    /// }).unwrap();
    /// assert_eq!(*lock.try_lock().unwrap(), 1);
    /// ```
    pub fn lock(&self) -> impl Future<Output = LockGuard<'_, T>> + '_ {
        self.acquire()
    }

    pub(crate) fn acquire(&self) -> Acquire<'_, T> {
        Acquire {
            lock: self,
            key: None,
        }
    }

    /// Takes the lock if it is free and nobody waits for it; `None` otherwise.
    ///
    /// ```
    /// let lock = asyncio::Lock::new();
    /// let guard = lock.try_lock().unwrap();
    /// assert!(lock.try_lock().is_none());
    /// drop(guard);
    /// assert!(lock.try_lock().is_some());
    /// ```
    pub fn try_lock(&self) -> Option<LockGuard<'_, T>> {
        let mut st = self.state.borrow_mut();
        if st.locked {
            return None;
        }
        st.locked = true;
        drop(st);
        Some(self.guard())
    }

    /// Whether the lock is held (asyncio's `locked()`). A lock handed to a
    /// woken task that has not run yet counts as held.
    ///
    /// ```
    /// let lock = asyncio::Lock::new();
    /// let guard = lock.try_lock();
    /// assert!(lock.locked());
    /// ```
    pub fn locked(&self) -> bool {
        self.state.borrow().locked
    }

    /// Mutable access to the value without locking: `&mut self` proves that
    /// nobody else holds the lock.
    ///
    /// ```
    /// let mut lock = asyncio::Lock::with_value(1);
    /// *lock.get_mut() = 2;
    /// assert_eq!(lock.into_inner(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// Consumes the lock and returns the value it protected.
    ///
    /// ```
    /// assert_eq!(asyncio::Lock::with_value("v").into_inner(), "v");
    /// ```
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }

    fn guard(&self) -> LockGuard<'_, T> {
        let value = self
            .value
            .try_borrow_mut()
            .expect("the holder of the lock is the only borrower of its value");
        LockGuard {
            lock: self,
            value: Some(value),
        }
    }

    /// Releases the lock: hands it to the first waiter, or marks it free.
    pub(crate) fn unlock(&self) {
        let mut st = self.state.borrow_mut();
        let waker = st.waiters.wake_front();
        if waker.is_none() {
            st.locked = false;
        }
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn same_lock(&self, other: &Lock<T>) -> bool {
        std::ptr::eq(self, other)
    }
}

impl<T: fmt::Debug> fmt::Debug for Lock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        let mut d = f.debug_struct("Lock");
        d.field("locked", &st.locked)
            .field("waiters", &st.waiters.len());
        match self.value.try_borrow() {
            Ok(v) => d.field("value", &*v),
            Err(_) => d.field("value", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// Holds a [`Lock`]; dropping it releases the lock (asyncio's `release()`).
/// Derefs to the protected value.
///
/// ```
/// let lock = asyncio::Lock::with_value(String::new());
/// let mut guard = lock.try_lock().unwrap();
/// guard.push_str("held");
/// drop(guard);
/// assert!(!lock.locked());
/// ```
///
/// ```
/// asyncio::run(async {
///     let lock = asyncio::Lock::new();
///     let guard: asyncio::LockGuard<'_, ()> = lock.lock().await;
///     assert!(lock.locked() && lock.try_lock().is_none());
///     drop(guard); // the release
///     assert!(!lock.locked());
/// })
/// .unwrap();
/// ```
pub struct LockGuard<'a, T> {
    lock: &'a Lock<T>,
    /// Always `Some` until the guard is dropped: the borrow of the value ends
    /// before the lock is handed on, since the next holder may be polled
    /// inside the hand-over's `wake`.
    value: Option<RefMut<'a, T>>,
}

impl<'a, T> LockGuard<'a, T> {
    /// The lock this guard holds.
    ///
    /// ```
    /// let lock = asyncio::Lock::new();
    /// let guard = lock.try_lock().unwrap();
    /// assert!(std::ptr::eq(guard.lock(), &lock));
    /// ```
    pub fn lock(&self) -> &'a Lock<T> {
        self.lock
    }
}

impl<T> Deref for LockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_deref().expect("a live guard holds the value")
    }
}

impl<T> DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value
            .as_deref_mut()
            .expect("a live guard holds the value")
    }
}

impl<T> Drop for LockGuard<'_, T> {
    fn drop(&mut self) {
        // End the borrow of the value first: the waker of the next holder
        // may poll it (and borrow the value) before `unlock` returns.
        self.value = None;
        self.lock.unlock();
    }
}

impl<T: fmt::Debug> fmt::Debug for LockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").field("value", &**self).finish()
    }
}

/// The future returned by [`Lock::lock`].
pub(crate) struct Acquire<'a, T> {
    lock: &'a Lock<T>,
    key: Option<usize>,
}

impl<'a, T> Future for Acquire<'a, T> {
    type Output = LockGuard<'a, T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let lock = self.lock;
        let mut st = lock.state.borrow_mut();
        match self.key {
            None => {
                if !st.locked {
                    st.locked = true;
                    drop(st);
                    return Poll::Ready(lock.guard());
                }
                self.key = Some(st.waiters.push_back(cx.waker(), ()));
                Poll::Pending
            }
            Some(key) => {
                if st.waiters.is_linked(key) {
                    st.waiters.set_waker(key, cx.waker());
                    return Poll::Pending;
                }
                // Woken: the releaser handed the lock over (`locked` stayed true).
                st.waiters.remove(key);
                self.key = None;
                drop(st);
                Poll::Ready(lock.guard())
            }
        }
    }
}

impl<T> Drop for Acquire<'_, T> {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut st = self.lock.state.borrow_mut();
        let handed_over = !st.waiters.is_linked(key);
        st.waiters.remove(key);
        drop(st);
        if handed_over {
            self.lock.unlock();
        }
    }
}
