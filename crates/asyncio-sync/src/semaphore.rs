//! `Semaphore` and `BoundedSemaphore`: asyncio's counting semaphores, FIFO.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::ReleaseError;
use crate::waiters::{WaitList, WakeBatch};

/// The counter and line shared by both semaphores.
#[derive(Debug)]
struct Core {
    state: RefCell<State>,
    /// `Some(initial value)` for a `BoundedSemaphore`.
    bound: Option<usize>,
}

#[derive(Debug)]
struct State {
    /// Free permits (asyncio's `_value`, minus permits already handed to
    /// woken waiters that have not run yet).
    value: usize,
    /// Permits handed to woken waiters that have not run yet. While any are,
    /// the semaphore is `locked()` and a new `acquire` queues behind them, as
    /// asyncio's woken waiters stay in `_waiters` until they run.
    in_flight: usize,
    /// For a plain `Semaphore`, the permits that exist: free, in flight, or
    /// held by a permit guard (those given up with `forget` no longer count).
    /// Only `release` raises it, so checking it there keeps every other count
    /// from overflowing. (A `BoundedSemaphore` is capped by its bound instead.)
    total: usize,
    /// Each waiter's data is how many permits it asks for.
    waiters: WaitList<usize>,
}

impl Core {
    fn new(value: usize, bound: Option<usize>) -> Self {
        Self {
            state: RefCell::new(State {
                value,
                in_flight: 0,
                total: value,
                waiters: WaitList::new(),
            }),
            bound,
        }
    }

    fn try_acquire(&self, n: usize) -> bool {
        let mut st = self.state.borrow_mut();
        if n == 0 || (st.waiters.is_empty() && st.in_flight == 0 && st.value >= n) {
            st.value -= n;
            true
        } else {
            false
        }
    }

    /// Adds permits and hands them out to waiters, strictly in line: a large
    /// request at the front is never overtaken by a smaller one behind it.
    fn add(&self, n: usize) {
        let mut st = self.state.borrow_mut();
        st.value += n;
        let mut batch = WakeBatch::default();
        grant(&mut st, &mut batch);
        drop(st);
        batch.wake();
    }

    /// Releases permits from a dropped permit guard; a `BoundedSemaphore`
    /// never goes past its bound (see [`SemaphorePermit`]).
    fn give_back(&self, n: usize) {
        let n = match self.bound {
            None => n,
            Some(bound) => {
                let st = self.state.borrow();
                n.min(bound.saturating_sub(st.value + st.in_flight))
            }
        };
        if n > 0 {
            self.add(n);
        }
    }

    fn try_permit(&self, n: usize) -> Option<SemaphorePermit<'_>> {
        // Not `then_some`: it would build (and drop) a permit guard on failure,
        // giving back permits that were never taken.
        if self.try_acquire(n) {
            Some(SemaphorePermit { core: self, n })
        } else {
            None
        }
    }

    fn acquire(&self, n: usize) -> Acquire<'_> {
        Acquire {
            core: self,
            n,
            key: None,
        }
    }

    fn locked(&self) -> bool {
        let st = self.state.borrow();
        st.value == 0 || !st.waiters.is_empty() || st.in_flight > 0
    }

    /// A hand-written `release()`: one more permit exists.
    fn release(&self) {
        {
            let mut st = self.state.borrow_mut();
            st.total = st.total.checked_add(1).unwrap_or_else(|| {
                panic!(
                    "Semaphore::release: the semaphore already holds usize::MAX permits \
                     (free, in flight or held); release only permits that were taken, \
                     or start from a smaller value"
                )
            });
        }
        self.add(1);
    }

    /// Permits taken with `forget`: they exist no more until released by hand.
    fn forget(&self, n: usize) {
        if self.bound.is_none() {
            self.state.borrow_mut().total -= n;
        }
    }

    fn value(&self) -> usize {
        self.state.borrow().value
    }
}

fn grant(st: &mut State, batch: &mut WakeBatch) {
    while let Some(&mut need) = st.waiters.front_mut() {
        if st.value < need {
            break;
        }
        st.value -= need;
        st.in_flight += need;
        batch.push(st.waiters.wake_front());
    }
}

/// asyncio's `Semaphore`: a counter of permits; `acquire()` waits while none
/// is free.
///
/// FIFO: permits go to waiters in the order they asked, and a new `acquire`
/// never overtakes a waiting one (not even one that was handed its permit
/// and has not run yet), so a task asking for many permits
/// ([`acquire_many`](Semaphore::acquire_many)) is not starved by a stream of
/// small requests. A waiting future that is dropped leaves the line; one that
/// was already handed its permits gives them back to the next in line.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let peak = asyncio::run(async {
///     let sem = Rc::new(asyncio::Semaphore::new(2));
///     let (now, peak) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
///     let tasks: Vec<_> = (0..5)
///         .map(|_| {
///             let (sem, now, peak) = (sem.clone(), now.clone(), peak.clone());
///             asyncio::create_task(async move {
///                 let _permit = sem.acquire().await;
///                 now.set(now.get() + 1);
///                 peak.set(peak.get().max(now.get()));
///                 asyncio::yield_now().await;
///                 now.set(now.get() - 1);
///             })
///         })
///         .collect();
///     for t in tasks {
///         t.await.unwrap();
///     }
///     peak.get()
/// })
/// .unwrap();
/// assert_eq!(peak, 2, "never more than two at once");
/// ```
#[derive(Debug)]
pub struct Semaphore {
    core: Core,
}

impl Semaphore {
    /// Creates a semaphore with `value` free permits (asyncio's
    /// `Semaphore(value)`; a negative value cannot be written).
    ///
    /// ```
    /// let sem = asyncio::Semaphore::new(1);
    /// assert!(!sem.locked());
    /// ```
    pub fn new(value: usize) -> Self {
        Self {
            core: Core::new(value, None),
        }
    }

    /// Waits for one permit (asyncio's `acquire()`); the permit returns when
    /// the guard is dropped. Never fails.
    ///
    /// ```
    /// let sem = asyncio::Semaphore::new(1);
    /// let permit = asyncio::run(sem.acquire()).unwrap();
    /// assert!(sem.locked());
    /// drop(permit);
    /// assert!(!sem.locked());
    /// ```
    pub fn acquire(&self) -> impl Future<Output = SemaphorePermit<'_>> + '_ {
        self.core.acquire(1)
    }

    /// Waits for `n` permits at once, keeping its place in line until all
    /// are free. `acquire_many(0)` is ready at once.
    ///
    /// ```
    /// let sem = asyncio::Semaphore::new(3);
    /// let permit = asyncio::run(sem.acquire_many(3)).unwrap();
    /// assert_eq!(permit.permits(), 3);
    /// assert!(sem.try_acquire().is_none());
    /// ```
    pub fn acquire_many(&self, n: usize) -> impl Future<Output = SemaphorePermit<'_>> + '_ {
        self.core.acquire(n)
    }

    /// Takes one permit if one is free and nobody waits (a waiter handed a
    /// permit that has not run yet still waits); `None` otherwise.
    ///
    /// ```
    /// let sem = asyncio::Semaphore::new(1);
    /// let p = sem.try_acquire();
    /// assert!(p.is_some());
    /// assert!(sem.try_acquire().is_none());
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if they are free and nobody waits; `None` otherwise.
    ///
    /// ```
    /// let sem = asyncio::Semaphore::new(2);
    /// assert!(sem.try_acquire_many(3).is_none());
    /// assert!(sem.try_acquire_many(2).is_some());
    /// ```
    pub fn try_acquire_many(&self, n: usize) -> Option<SemaphorePermit<'_>> {
        self.core.try_permit(n)
    }

    /// Adds one permit, waking the first waiter if it can now proceed
    /// (asyncio's `release()`). A plain semaphore may be released more times
    /// than it was acquired, as in asyncio.
    ///
    /// ```
    /// let sem = asyncio::Semaphore::new(0);
    /// sem.release();
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    ///
    /// # Panics
    ///
    /// If the semaphore would hold more than `usize::MAX` permits (counting
    /// the free ones, those handed to waiters and those held by
    /// [`SemaphorePermit`]s); the count is left unchanged. asyncio's counter
    /// is unbounded, but wrapping to 0 would be a wrong count.
    ///
    /// ```should_panic
    /// let sem = asyncio::Semaphore::new(usize::MAX);
    /// sem.release(); // panics: no room for one more permit
    /// ```
    pub fn release(&self) {
        self.core.release();
    }

    /// Whether an `acquire()` would wait (asyncio's `locked()`): no permit
    /// is free, or tasks are already waiting, counting one that was handed a
    /// permit but has not run yet.
    ///
    /// ```
    /// let sem = asyncio::Semaphore::new(0);
    /// assert!(sem.locked());
    /// ```
    pub fn locked(&self) -> bool {
        self.core.locked()
    }

    /// How many permits are free right now.
    ///
    /// ```
    /// let sem = asyncio::Semaphore::new(4);
    /// let _p = sem.try_acquire_many(3);
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    pub fn available_permits(&self) -> usize {
        self.core.value()
    }
}

/// asyncio's `BoundedSemaphore`: a [`Semaphore`] that refuses to be released
/// past its initial value.
///
/// A hand-written [`release`](BoundedSemaphore::release) past the bound is a
/// [`ReleaseError`]. A dropped [`SemaphorePermit`] never pushes the count past
/// the bound: if its permits were already returned by hand, the guard returns
/// only what fits.
///
/// ```
/// use asyncio::{BoundedSemaphore, ReleaseError};
///
/// let sem = BoundedSemaphore::new(1);
/// sem.try_acquire().unwrap().forget();
/// assert_eq!(sem.release(), Ok(()));
/// assert_eq!(sem.release(), Err(ReleaseError));
/// ```
///
/// ```
/// let sem = asyncio::BoundedSemaphore::new(1);
/// assert_eq!(sem.release(), Err(asyncio::ReleaseError), "released above its start value");
/// let permit = sem.try_acquire().unwrap();
/// drop(permit);
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[derive(Debug)]
pub struct BoundedSemaphore {
    core: Core,
}

impl BoundedSemaphore {
    /// Creates a bounded semaphore with `value` free permits, which is also
    /// its bound.
    ///
    /// ```
    /// let sem = asyncio::BoundedSemaphore::new(2);
    /// assert_eq!(sem.available_permits(), 2);
    /// ```
    pub fn new(value: usize) -> Self {
        Self {
            core: Core::new(value, Some(value)),
        }
    }

    /// Waits for one permit; see [`Semaphore::acquire`].
    ///
    /// ```
    /// let sem = asyncio::BoundedSemaphore::new(1);
    /// let _permit = asyncio::run(sem.acquire()).unwrap();
    /// assert!(sem.locked());
    /// ```
    pub fn acquire(&self) -> impl Future<Output = SemaphorePermit<'_>> + '_ {
        self.acquire_many(1)
    }

    /// Waits for `n` permits at once; see [`Semaphore::acquire_many`].
    ///
    /// # Panics
    ///
    /// If `n` is larger than the bound: such a request could never be met.
    ///
    /// ```
    /// let sem = asyncio::BoundedSemaphore::new(2);
    /// assert_eq!(asyncio::run(sem.acquire_many(2)).unwrap().permits(), 2);
    /// ```
    pub fn acquire_many(&self, n: usize) -> impl Future<Output = SemaphorePermit<'_>> + '_ {
        let bound = self.core.bound.expect("a BoundedSemaphore has a bound");
        assert!(
            n <= bound,
            "acquire_many({n}) on a BoundedSemaphore of {bound} can never succeed"
        );
        self.core.acquire(n)
    }

    /// Takes one permit if one is free and nobody waits; `None` otherwise.
    ///
    /// ```
    /// let sem = asyncio::BoundedSemaphore::new(1);
    /// let _p = sem.try_acquire().unwrap();
    /// assert!(sem.try_acquire().is_none());
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if they are free and nobody waits; `None` otherwise.
    ///
    /// ```
    /// let sem = asyncio::BoundedSemaphore::new(2);
    /// assert!(sem.try_acquire_many(2).is_some());
    /// ```
    pub fn try_acquire_many(&self, n: usize) -> Option<SemaphorePermit<'_>> {
        self.core.try_permit(n)
    }

    /// Returns one permit by hand (for permits taken with
    /// [`SemaphorePermit::forget`]).
    ///
    /// # Errors
    ///
    /// [`ReleaseError`] if every permit is already free (asyncio raises
    /// `ValueError`); the count is left unchanged.
    ///
    /// ```
    /// let sem = asyncio::BoundedSemaphore::new(1);
    /// assert!(sem.release().is_err());
    /// ```
    pub fn release(&self) -> Result<(), ReleaseError> {
        let bound = self.core.bound.expect("a BoundedSemaphore has a bound");
        {
            let st = self.core.state.borrow();
            if st.value + st.in_flight >= bound {
                return Err(ReleaseError);
            }
        }
        // Below the bound, so the count cannot overflow (`total` is kept
        // for plain semaphores only: a bounded one is capped by its bound).
        self.core.add(1);
        Ok(())
    }

    /// Whether an `acquire()` would wait; see [`Semaphore::locked`].
    ///
    /// ```
    /// let sem = asyncio::BoundedSemaphore::new(1);
    /// assert!(!sem.locked());
    /// ```
    pub fn locked(&self) -> bool {
        self.core.locked()
    }

    /// How many permits are free right now.
    ///
    /// ```
    /// let sem = asyncio::BoundedSemaphore::new(3);
    /// assert_eq!(sem.available_permits(), 3);
    /// ```
    pub fn available_permits(&self) -> usize {
        self.core.value()
    }
}

/// Permits taken from a [`Semaphore`] or [`BoundedSemaphore`]; dropping it
/// returns them (asyncio's `async with sem:`).
///
/// ```
/// let sem = asyncio::Semaphore::new(1);
/// {
///     let _permit = sem.try_acquire().unwrap();
///     assert_eq!(sem.available_permits(), 0);
/// }
/// assert_eq!(sem.available_permits(), 1);
/// ```
///
/// ```
/// let sem = asyncio::Semaphore::new(3);
/// let permit: asyncio::SemaphorePermit<'_> = sem.try_acquire_many(2).unwrap();
/// assert_eq!(sem.available_permits(), 1);
/// drop(permit);
/// assert_eq!(sem.available_permits(), 3);
/// ```
pub struct SemaphorePermit<'a> {
    core: &'a Core,
    n: usize,
}

impl SemaphorePermit<'_> {
    /// How many permits this guard holds.
    ///
    /// ```
    /// let sem = asyncio::Semaphore::new(2);
    /// assert_eq!(sem.try_acquire_many(2).unwrap().permits(), 2);
    /// ```
    pub fn permits(&self) -> usize {
        self.n
    }

    /// Keeps the permits taken without returning them; release them by hand
    /// later with `release()` (asyncio's bare `acquire()`/`release()` style).
    ///
    /// ```
    /// let sem = asyncio::Semaphore::new(1);
    /// sem.try_acquire().unwrap().forget();
    /// assert!(sem.locked());
    /// sem.release();
    /// assert!(!sem.locked());
    /// ```
    pub fn forget(mut self) {
        self.core.forget(self.n);
        self.n = 0;
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.core.give_back(self.n);
        }
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.n)
            .finish()
    }
}

struct Acquire<'a> {
    core: &'a Core,
    n: usize,
    key: Option<usize>,
}

impl<'a> Future for Acquire<'a> {
    type Output = SemaphorePermit<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let core = self.core;
        let n = self.n;
        match self.key {
            None => {
                if core.try_acquire(n) {
                    return Poll::Ready(SemaphorePermit { core, n });
                }
                let mut st = core.state.borrow_mut();
                self.key = Some(st.waiters.push_back(cx.waker(), n));
                Poll::Pending
            }
            Some(key) => {
                let mut st = core.state.borrow_mut();
                if st.waiters.is_linked(key) {
                    st.waiters.set_waker(key, cx.waker());
                    return Poll::Pending;
                }
                st.waiters.remove(key);
                st.in_flight -= n;
                self.key = None;
                // Acquirers that queued behind this one while it was in flight
                // may proceed now (asyncio's `acquire` wakes them as it leaves).
                if st.value > 0 && !st.waiters.is_empty() {
                    let mut batch = WakeBatch::default();
                    grant(&mut st, &mut batch);
                    drop(st);
                    batch.wake();
                }
                Poll::Ready(SemaphorePermit { core, n })
            }
        }
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut st = self.core.state.borrow_mut();
        if !st.waiters.is_linked(key) {
            // Handed its permits but never ran: give them to the next in line.
            st.in_flight -= self.n;
            st.value += self.n;
        }
        st.waiters.remove(key);
        // Leaving the front may also let the next (smaller) request proceed.
        let mut batch = WakeBatch::default();
        grant(&mut st, &mut batch);
        drop(st);
        batch.wake();
    }
}
