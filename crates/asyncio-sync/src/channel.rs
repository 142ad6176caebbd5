//! `Channel`: asyncio's `Queue` for tasks on different threads (a loop per
//! core), with the same methods and the same `shutdown` semantics.
//!
//! Items travel through a lock-free `crossbeam_queue::SegQueue`; a `put` or
//! `get` that need not wait touches only atomics. Only a future that has to
//! wait takes the mutex around the lines of waiters, and a producer takes it
//! only when someone waits (`parked`).
//!
//! No lost wake-up: a waiter links itself, publishes `parked`, then looks at
//! the queue again; a producer pushes, then reads `parked`. With a `SeqCst`
//! fence on both sides one of them sees the other (the store-buffering
//! pattern). A woken waiter takes its item when it runs; if another task took
//! the item first it links itself again, and if it is dropped after being
//! woken it passes the wake-up on, so an item never waits while a getter
//! sleeps.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use crossbeam_queue::SegQueue;

use crate::error::{GetError, PutError, QueueEmpty, QueueFull, QueueShutDown, TaskDoneError};
use crate::sync::{AtomicBool, AtomicUsize, Mutex, MutexGuard, fence};
use crate::waiters::WaitList;

/// asyncio's `Queue` shared between threads: `Send + Sync` and `Clone` (every
/// clone is the same queue), so tasks on different loops, or plain threads
/// with any executor, put and get through it. Waiting receivers are woken
/// through their [`Waker`], which on an asyncio-rs loop goes through the
/// loop's cross-thread injector.
///
/// The methods are `Queue`'s: `put`/`get` wait, `put_nowait`/`get_nowait`
/// fail with [`PutError`]/[`GetError`], `task_done`/`join` count unfinished
/// items, and `shutdown(immediate)` behaves as `Queue.shutdown` in Python
/// 3.13. Waiters are served first come, first served; with threads racing,
/// "first" is the order in which they reached the queue.
///
/// ```
/// use asyncio_sync::Channel;
///
/// let jobs = Channel::new(16);
/// let rx = jobs.clone();
/// let worker = std::thread::spawn(move || {
///     asyncio::run(async {
///         let mut total = 0;
///         while let Ok(n) = rx.get().await {
///             total += n;
///             rx.task_done().unwrap();
///         }
///         total
///     }).unwrap()
/// });
/// asyncio::run(async {
///     for n in 1..=10 {
///         jobs.put(n).await.unwrap();
///     }
///     jobs.join().await;
///     jobs.shutdown(false);
/// }).unwrap();
/// assert_eq!(worker.join().unwrap(), 55);
/// ```
pub struct Channel<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Channel<T> {
    fn clone(&self) -> Self {
        Channel {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<T> {
    items: SegQueue<T>,
    /// 0: unbounded.
    maxsize: usize,
    /// Items in the queue plus slots reserved by puts about to push.
    len: AtomicUsize,
    unfinished: AtomicUsize,
    shutdown: AtomicBool,
    /// Set by `shutdown(true)`: a put that raced with it discards its item.
    immediate: AtomicBool,
    /// Linked waiters of all three lines: producers lock only when non-zero.
    parked: AtomicUsize,
    lines: Mutex<Lines>,
}

#[derive(Default)]
struct Lines {
    getters: WaitList<()>,
    putters: WaitList<()>,
    joiners: WaitList<()>,
}

impl Lines {
    fn parked(&self) -> usize {
        self.getters.len() + self.putters.len() + self.joiners.len()
    }
}

/// Which line a waiting future stands in.
#[derive(Clone, Copy)]
enum Line {
    Get,
    Put,
    Join,
}

impl Lines {
    fn line(&mut self, line: Line) -> &mut WaitList<()> {
        match line {
            Line::Get => &mut self.getters,
            Line::Put => &mut self.putters,
            Line::Join => &mut self.joiners,
        }
    }
}

impl<T> Inner<T> {
    fn lock(&self) -> MutexGuard<'_, Lines> {
        // The lines stay consistent across a panic (no user code runs under
        // the lock), so a poisoned lock is still usable.
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes how many wait, then unlocks: every locked change ends here.
    fn unlock(&self, lines: MutexGuard<'_, Lines>) {
        self.parked.store(lines.parked(), Ordering::SeqCst);
        drop(lines);
    }

    /// Wakes the first waiter of `line`, if anyone waits at all.
    fn wake_one(&self, line: Line) {
        fence(Ordering::SeqCst);
        self.wake_one_fenced(line);
    }

    /// `wake_one` for a caller that has just made its change and then a
    /// `SeqCst` fence.
    fn wake_one_fenced(&self, line: Line) {
        if self.parked.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut lines = self.lock();
        let waker = lines.line(line).wake_front();
        self.unlock(lines);
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn wake_all(&self, which: &[Line]) {
        let mut wakers = Vec::new();
        let mut lines = self.lock();
        for &line in which {
            lines.line(line).wake_all_with(&mut wakers, |_| {});
        }
        self.unlock(lines);
        for w in wakers {
            w.wake();
        }
    }

    /// Reserves a slot for one item, if the bound allows.
    fn reserve(&self) -> bool {
        if self.maxsize == 0 {
            self.len.fetch_add(1, Ordering::AcqRel);
            return true;
        }
        self.len
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.maxsize).then_some(n + 1)
            })
            .is_ok()
    }

    /// Puts `item` into a reserved slot and wakes a getter.
    fn push(&self, item: T) {
        self.unfinished.fetch_add(1, Ordering::AcqRel);
        self.items.push(item);
        // A put that raced with `shutdown(true)` must not leave an item
        // behind. The queue's own orderings are crossbeam's, so a fence on
        // each side (here and in `shutdown`) makes sure that either this
        // push sees `immediate`, or the shutdown's `discard` sees the item.
        fence(Ordering::SeqCst);
        if self.immediate.load(Ordering::SeqCst) {
            self.discard();
        }
        self.wake_one_fenced(Line::Get);
    }

    fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        if self.shutdown.load(Ordering::Acquire) {
            return Err(PutError::ShutDown(QueueShutDown(item)));
        }
        if !self.reserve() {
            return Err(PutError::Full(QueueFull(item)));
        }
        self.push(item);
        Ok(())
    }

    fn try_get(&self) -> Option<T> {
        let item = self.items.pop()?;
        self.len.fetch_sub(1, Ordering::AcqRel);
        if self.maxsize != 0 {
            self.wake_one(Line::Put);
        }
        Some(item)
    }

    /// Drops every item (`shutdown(true)`), each counted as done.
    fn discard(&self) {
        let mut n = 0;
        while let Some(item) = self.items.pop() {
            self.len.fetch_sub(1, Ordering::AcqRel);
            drop(item);
            n += 1;
        }
        if n > 0 {
            let left = self
                .unfinished
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                    Some(u.saturating_sub(n))
                })
                .map_or(0, |u| u.saturating_sub(n));
            if left == 0 {
                self.wake_all(&[Line::Join]);
            }
        }
    }

    /// The waiting step of a future: links it in `line` (again, if it was
    /// woken) or refreshes its waker.
    fn park(&self, line: Line, key: &mut Option<usize>, waker: &Waker) {
        let mut lines = self.lock();
        let list = lines.line(line);
        match *key {
            Some(k) if list.is_linked(k) => list.set_waker(k, waker),
            Some(k) => {
                // Woken, but its chance was taken: back to the front.
                list.remove(k);
                *key = Some(list.push_front(waker, ()));
            }
            None => *key = Some(list.push_back(waker, ())),
        }
        self.unlock(lines);
        fence(Ordering::SeqCst);
    }

    /// Leaves `line`; a future that was woken and leaves without using its
    /// wake-up (`pass_on`) hands it to the next in line.
    fn leave(&self, line: Line, key: &mut Option<usize>, pass_on: bool) {
        let Some(k) = key.take() else { return };
        let mut lines = self.lock();
        let list = lines.line(line);
        let woken = !list.is_linked(k);
        list.remove(k);
        let next = if woken && pass_on {
            list.wake_front()
        } else {
            None
        };
        self.unlock(lines);
        if let Some(w) = next {
            w.wake();
        }
    }
}

impl<T> Channel<T> {
    /// An empty channel holding at most `maxsize` items; `0` means unbounded,
    /// as `Queue(maxsize=0)`.
    ///
    /// ```
    /// let ch = asyncio_sync::Channel::<u32>::new(8);
    /// assert_eq!(ch.maxsize(), 8);
    /// assert!(ch.empty());
    /// ```
    pub fn new(maxsize: usize) -> Self {
        Channel {
            inner: Arc::new(Inner {
                items: SegQueue::new(),
                maxsize,
                len: AtomicUsize::new(0),
                unfinished: AtomicUsize::new(0),
                shutdown: AtomicBool::new(false),
                immediate: AtomicBool::new(false),
                parked: AtomicUsize::new(0),
                lines: Mutex::new(Lines::default()),
            }),
        }
    }

    /// The bound given to `new` (0: unbounded).
    pub fn maxsize(&self) -> usize {
        self.inner.maxsize
    }

    /// How many items the channel holds (asyncio's `qsize()`); with other
    /// threads putting and getting, a snapshot.
    pub fn qsize(&self) -> usize {
        self.inner.len.load(Ordering::Acquire)
    }

    /// Whether the channel holds no item (a snapshot, as `qsize`).
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether the channel holds `maxsize` items; never for an unbounded one.
    pub fn full(&self) -> bool {
        self.inner.maxsize > 0 && self.qsize() >= self.inner.maxsize
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shutdown(&self) -> bool {
        self.inner.shutdown.load(Ordering::Acquire)
    }

    /// Puts an item, waiting while the channel is full (asyncio's `put()`).
    ///
    /// # Errors
    /// [`QueueShutDown`] carrying the item back if the channel is shut down
    /// before the item could go in. Dropping the future drops the item; a
    /// free slot it was woken for goes to the next putter.
    pub fn put(&self, item: T) -> impl Future<Output = Result<(), QueueShutDown<T>>> + '_ {
        Put {
            inner: &self.inner,
            item: Some(item),
            key: None,
        }
    }

    /// Removes and returns an item, waiting while the channel is empty
    /// (asyncio's `get()`).
    ///
    /// # Errors
    /// [`QueueShutDown`] once the channel is shut down and empty: after
    /// `shutdown(false)` the items left are handed out first. Dropping the
    /// future loses no item (items leave only when a getter returns them).
    pub fn get(&self) -> impl Future<Output = Result<T, QueueShutDown>> + '_ {
        Get {
            inner: &self.inner,
            key: None,
        }
    }

    /// Puts an item without waiting (asyncio's `put_nowait()`).
    ///
    /// # Errors
    /// [`PutError::Full`] or [`PutError::ShutDown`], each with the item.
    ///
    /// ```
    /// let ch = asyncio_sync::Channel::new(1);
    /// ch.put_nowait('a').unwrap();
    /// assert_eq!(ch.put_nowait('b').unwrap_err().into_inner(), 'b');
    /// ```
    pub fn put_nowait(&self, item: T) -> Result<(), PutError<T>> {
        self.inner.try_put(item)
    }

    /// Removes and returns an item without waiting (asyncio's `get_nowait()`).
    ///
    /// # Errors
    /// [`GetError::Empty`], or [`GetError::ShutDown`] when empty and shut down.
    pub fn get_nowait(&self) -> Result<T, GetError> {
        match self.inner.try_get() {
            Some(item) => Ok(item),
            None if self.is_shutdown() => Err(GetError::ShutDown(QueueShutDown(()))),
            None => Err(GetError::Empty(QueueEmpty)),
        }
    }

    /// Marks one item taken with `get` as processed (asyncio's `task_done()`).
    ///
    /// # Errors
    /// [`TaskDoneError`] if called more times than items were put.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        let before = self
            .inner
            .unfinished
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_sub(1))
            .map_err(|_| TaskDoneError)?;
        if before == 1 {
            fence(Ordering::SeqCst);
            if self.inner.parked.load(Ordering::SeqCst) > 0 {
                self.inner.wake_all(&[Line::Join]);
            }
        }
        Ok(())
    }

    /// Waits until every item put has been marked with `task_done` (asyncio's
    /// `join()`); at once if none is unfinished.
    pub fn join(&self) -> impl Future<Output = ()> + '_ {
        Join {
            inner: &self.inner,
            key: None,
        }
    }

    /// Shuts the channel down (asyncio's `shutdown(immediate)`): `put` fails
    /// from now on and blocked putters wake to fail; with `immediate = false`
    /// getters still receive the items left, then fail; with `immediate =
    /// true` the items left are dropped, each counted as done (so `join`
    /// returns), and every blocked getter fails. A `put` racing with an
    /// immediate shutdown on another thread either fails or has its item
    /// discarded too.
    ///
    /// ```
    /// let ch = asyncio_sync::Channel::new(0);
    /// ch.put_nowait(1).unwrap();
    /// ch.shutdown(false);
    /// assert_eq!(ch.get_nowait(), Ok(1));
    /// assert!(ch.get_nowait().is_err());
    /// ```
    pub fn shutdown(&self, immediate: bool) {
        self.inner.shutdown.store(true, Ordering::SeqCst);
        if immediate {
            self.inner.immediate.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            self.inner.discard();
        }
        self.inner.wake_all(&[Line::Get, Line::Put]);
    }
}

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("maxsize", &self.maxsize())
            .field("qsize", &self.qsize())
            .field("shutdown", &self.is_shutdown())
            .finish_non_exhaustive()
    }
}

struct Get<'a, T> {
    inner: &'a Inner<T>,
    key: Option<usize>,
}

impl<T> Future for Get<'_, T> {
    type Output = Result<T, QueueShutDown>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let inner = this.inner;
        for parked in [false, true] {
            if let Some(item) = inner.try_get() {
                inner.leave(Line::Get, &mut this.key, false);
                return Poll::Ready(Ok(item));
            }
            if inner.shutdown.load(Ordering::SeqCst) {
                inner.leave(Line::Get, &mut this.key, false);
                return Poll::Ready(Err(QueueShutDown(())));
            }
            if !parked {
                inner.park(Line::Get, &mut this.key, cx.waker());
            }
        }
        Poll::Pending
    }
}

impl<T> Drop for Get<'_, T> {
    fn drop(&mut self) {
        self.inner.leave(Line::Get, &mut self.key, true);
    }
}

struct Put<'a, T> {
    inner: &'a Inner<T>,
    item: Option<T>,
    key: Option<usize>,
}

impl<T> Unpin for Put<'_, T> {}

impl<T> Future for Put<'_, T> {
    type Output = Result<(), QueueShutDown<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let inner = this.inner;
        for parked in [false, true] {
            let item = this.item.take().expect("Put polled after it completed");
            match inner.try_put(item) {
                Ok(()) => {
                    inner.leave(Line::Put, &mut this.key, false);
                    return Poll::Ready(Ok(()));
                }
                Err(PutError::ShutDown(e)) => {
                    inner.leave(Line::Put, &mut this.key, false);
                    return Poll::Ready(Err(e));
                }
                Err(PutError::Full(QueueFull(item))) => this.item = Some(item),
            }
            if !parked {
                inner.park(Line::Put, &mut this.key, cx.waker());
            }
        }
        Poll::Pending
    }
}

impl<T> Drop for Put<'_, T> {
    fn drop(&mut self) {
        let pass_on = self.item.is_some();
        self.inner.leave(Line::Put, &mut self.key, pass_on);
    }
}

struct Join<'a, T> {
    inner: &'a Inner<T>,
    key: Option<usize>,
}

impl<T> Future for Join<'_, T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        for parked in [false, true] {
            if this.inner.unfinished.load(Ordering::SeqCst) == 0 {
                this.inner.leave(Line::Join, &mut this.key, false);
                return Poll::Ready(());
            }
            if !parked {
                this.inner.park(Line::Join, &mut this.key, cx.waker());
            }
        }
        Poll::Pending
    }
}

impl<T> Drop for Join<'_, T> {
    fn drop(&mut self) {
        self.inner.leave(Line::Join, &mut self.key, false);
    }
}
