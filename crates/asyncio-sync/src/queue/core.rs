//! The queue logic shared by `Queue`, `LifoQueue` and `PriorityQueue`.
//!
//! Items stay in the store until a getter actually returns them: a woken
//! getter is only told "there is an item for you", and takes it when it runs.
//! So a getter dropped after being woken loses nothing; it passes its wake-up
//! on. `woken_getters` counts getters woken but not yet run; a new item wakes
//! another getter only when there are more items than woken getters, so each
//! item wakes at most one task (no thundering herd) and no item sits in the
//! queue while a getter sleeps (no lost wake-up). Putters mirror this with
//! free slots.

use std::cell::RefCell;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

use super::store::{PREALLOCATE_AT_MOST, Store};
use crate::error::{GetError, PutError, QueueEmpty, QueueFull, QueueShutDown, TaskDoneError};
use crate::waiters::WaitList;

pub(crate) struct Core<S> {
    state: RefCell<State<S>>,
}

struct State<S> {
    store: S,
    /// 0 means unbounded, as in asyncio.
    maxsize: usize,
    shutdown: bool,
    unfinished: usize,
    getters: WaitList<()>,
    woken_getters: usize,
    putters: WaitList<()>,
    woken_putters: usize,
    joiners: WaitList<()>,
}

impl<S: Store> State<S> {
    #[inline]
    fn full(&self) -> bool {
        self.maxsize > 0 && self.store.len() >= self.maxsize
    }

    #[inline]
    fn free(&self) -> usize {
        if self.maxsize == 0 {
            usize::MAX
        } else {
            self.maxsize.saturating_sub(self.store.len())
        }
    }

    #[inline]
    fn push(&mut self, item: S::Item) -> Option<Waker> {
        // Checked before the item goes in, so a refused put changes nothing.
        let Some(unfinished) = self.unfinished.checked_add(1) else {
            unfinished_overflow()
        };
        self.store.push(item);
        self.unfinished = unfinished;
        self.wake_getter()
    }

    /// Wakes one more getter if the items outnumber the getters already woken.
    #[inline]
    fn wake_getter(&mut self) -> Option<Waker> {
        if self.getters.is_empty() || self.store.len() <= self.woken_getters {
            return None;
        }
        self.woken_getters += 1;
        self.getters.wake_front()
    }

    /// Wakes one more putter if the free slots outnumber the putters woken.
    #[inline]
    fn wake_putter(&mut self) -> Option<Waker> {
        if self.putters.is_empty() || self.free() <= self.woken_putters {
            return None;
        }
        self.woken_putters += 1;
        self.putters.wake_front()
    }
}

/// asyncio's count is unbounded; wrapping it would make `join()` return
/// while work is left (a 32-bit target gets there after 4 billion puts).
#[cold]
#[inline(never)]
fn unfinished_overflow() -> ! {
    panic!(
        "Queue::put: usize::MAX items were put and not yet marked done; \
         call task_done() once for each item taken with get()"
    )
}

#[inline]
fn wake(waker: Option<Waker>) {
    if let Some(w) = waker {
        w.wake();
    }
}

impl<S: Store> Core<S> {
    pub(crate) fn new(maxsize: usize) -> Self {
        let capacity = if maxsize == 0 {
            0
        } else {
            maxsize.min(PREALLOCATE_AT_MOST)
        };
        Self {
            state: RefCell::new(State {
                store: S::with_capacity(capacity),
                maxsize,
                shutdown: false,
                unfinished: 0,
                getters: WaitList::new(),
                woken_getters: 0,
                putters: WaitList::new(),
                woken_putters: 0,
                joiners: WaitList::new(),
            }),
        }
    }

    pub(crate) fn maxsize(&self) -> usize {
        self.state.borrow().maxsize
    }

    pub(crate) fn qsize(&self) -> usize {
        self.state.borrow().store.len()
    }

    pub(crate) fn full(&self) -> bool {
        self.state.borrow().full()
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.state.borrow().shutdown
    }

    pub(crate) fn put_nowait(&self, item: S::Item) -> Result<(), PutError<S::Item>> {
        let mut st = self.state.borrow_mut();
        if st.shutdown {
            return Err(PutError::ShutDown(QueueShutDown(item)));
        }
        if st.full() {
            return Err(PutError::Full(QueueFull(item)));
        }
        let waker = st.push(item);
        drop(st);
        wake(waker);
        Ok(())
    }

    pub(crate) fn get_nowait(&self) -> Result<S::Item, GetError> {
        let mut st = self.state.borrow_mut();
        match st.store.pop() {
            Some(item) => {
                let waker = st.wake_putter();
                drop(st);
                wake(waker);
                Ok(item)
            }
            None if st.shutdown => Err(GetError::ShutDown(QueueShutDown(()))),
            None => Err(GetError::Empty(QueueEmpty)),
        }
    }

    pub(crate) fn poll_put(
        &self,
        key: &mut Option<usize>,
        item: &mut Option<S::Item>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), QueueShutDown<S::Item>>> {
        let mut st = self.state.borrow_mut();
        let mut was_woken = false;
        if let Some(k) = *key {
            if st.putters.is_linked(k) {
                st.putters.set_waker(k, cx.waker());
                return Poll::Pending;
            }
            st.putters.remove(k);
            st.woken_putters -= 1;
            *key = None;
            was_woken = true;
        }
        let mut taken = || {
            item.take()
                .expect("a put future is not polled after it returned")
        };
        if st.shutdown {
            return Poll::Ready(Err(QueueShutDown(taken())));
        }
        if st.full() {
            // A woken putter whose slot was taken meanwhile keeps its place.
            *key = Some(if was_woken {
                st.putters.push_front(cx.waker(), ())
            } else {
                st.putters.push_back(cx.waker(), ())
            });
            return Poll::Pending;
        }
        let waker = st.push(taken());
        drop(st);
        wake(waker);
        Poll::Ready(Ok(()))
    }

    pub(crate) fn drop_put(&self, key: usize) {
        let mut st = self.state.borrow_mut();
        let was_woken = !st.putters.is_linked(key);
        st.putters.remove(key);
        if was_woken {
            st.woken_putters -= 1;
            let waker = st.wake_putter();
            drop(st);
            wake(waker);
        }
    }

    pub(crate) fn poll_get(
        &self,
        key: &mut Option<usize>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<S::Item, QueueShutDown>> {
        let mut st = self.state.borrow_mut();
        let mut was_woken = false;
        if let Some(k) = *key {
            if st.getters.is_linked(k) {
                st.getters.set_waker(k, cx.waker());
                return Poll::Pending;
            }
            st.getters.remove(k);
            st.woken_getters -= 1;
            *key = None;
            was_woken = true;
        }
        if let Some(item) = st.store.pop() {
            let waker = st.wake_putter();
            drop(st);
            wake(waker);
            return Poll::Ready(Ok(item));
        }
        if st.shutdown {
            return Poll::Ready(Err(QueueShutDown(())));
        }
        *key = Some(if was_woken {
            st.getters.push_front(cx.waker(), ())
        } else {
            st.getters.push_back(cx.waker(), ())
        });
        Poll::Pending
    }

    pub(crate) fn drop_get(&self, key: usize) {
        let mut st = self.state.borrow_mut();
        let was_woken = !st.getters.is_linked(key);
        st.getters.remove(key);
        if was_woken {
            // The item this getter was woken for is still in the store.
            st.woken_getters -= 1;
            let waker = st.wake_getter();
            drop(st);
            wake(waker);
        }
    }

    pub(crate) fn task_done(&self) -> Result<(), TaskDoneError> {
        let mut st = self.state.borrow_mut();
        if st.unfinished == 0 {
            return Err(TaskDoneError);
        }
        st.unfinished -= 1;
        if st.unfinished == 0 && !st.joiners.is_empty() {
            let mut wakers = Vec::new();
            st.joiners.wake_all_with(&mut wakers, |_| {});
            drop(st);
            crate::waiters::wake_all(wakers);
        }
        Ok(())
    }

    pub(crate) fn poll_join(&self, key: &mut Option<usize>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.state.borrow_mut();
        match *key {
            None if st.unfinished == 0 => Poll::Ready(()),
            None => {
                *key = Some(st.joiners.push_back(cx.waker(), ()));
                Poll::Pending
            }
            Some(k) if st.joiners.is_linked(k) => {
                st.joiners.set_waker(k, cx.waker());
                Poll::Pending
            }
            Some(k) => {
                st.joiners.remove(k);
                *key = None;
                Poll::Ready(())
            }
        }
    }

    pub(crate) fn drop_join(&self, key: usize) {
        // Joiners are all woken together: nothing to pass on.
        self.state.borrow_mut().joiners.remove(key);
    }

    pub(crate) fn shutdown(&self, immediate: bool) {
        let mut st = self.state.borrow_mut();
        st.shutdown = true;
        let mut discarded = None;
        let mut wakers = Vec::new();
        if immediate {
            let old = std::mem::take(&mut st.store);
            st.unfinished = st.unfinished.saturating_sub(old.len());
            discarded = Some(old);
            if st.unfinished == 0 {
                st.joiners.wake_all_with(&mut wakers, |_| {});
            }
        }
        st.woken_getters += st.getters.len();
        st.getters.wake_all_with(&mut wakers, |_| {});
        st.woken_putters += st.putters.len();
        st.putters.wake_all_with(&mut wakers, |_| {});
        drop(st);
        // Wake first: a destructor that panics must not leave the waiters,
        // already taken out of line, asleep for ever.
        crate::waiters::wake_all(wakers);
        // Items are dropped outside the borrow: their destructors may use the queue.
        drop(discarded);
    }
}

impl<S> fmt::Debug for Core<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("Queue")
            .field("maxsize", &st.maxsize)
            .field("shutdown", &st.shutdown)
            .field("unfinished_tasks", &st.unfinished)
            .field("getters", &st.getters.len())
            .field("putters", &st.putters.len())
            .finish_non_exhaustive()
    }
}

/// `put(item).await`.
pub(crate) struct Put<'a, S: Store> {
    pub(crate) core: &'a Core<S>,
    pub(crate) item: Option<S::Item>,
    pub(crate) key: Option<usize>,
}

// The item is never pinned: it is only moved into the store.
impl<S: Store> Unpin for Put<'_, S> {}

impl<S: Store> std::future::Future for Put<'_, S> {
    type Output = Result<(), QueueShutDown<S::Item>>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.core.poll_put(&mut this.key, &mut this.item, cx)
    }
}

impl<S: Store> Drop for Put<'_, S> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.core.drop_put(key);
        }
    }
}

/// `get().await`, and the queue as a `Stream`.
pub(crate) struct Get<'a, S: Store> {
    pub(crate) core: &'a Core<S>,
    pub(crate) key: Option<usize>,
}

impl<S: Store> std::future::Future for Get<'_, S> {
    type Output = Result<S::Item, QueueShutDown>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let core = self.core;
        core.poll_get(&mut self.key, cx)
    }
}

impl<S: Store> Stream for Get<'_, S> {
    type Item = S::Item;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let core = self.core;
        core.poll_get(&mut self.key, cx).map(Result::ok)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Other getters may take the items left: no lower bound can be promised.
        (0, None)
    }
}

impl<S: Store> Drop for Get<'_, S> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.core.drop_get(key);
        }
    }
}

/// `join().await`.
pub(crate) struct Join<'a, S: Store> {
    pub(crate) core: &'a Core<S>,
    pub(crate) key: Option<usize>,
}

impl<S: Store> std::future::Future for Join<'_, S> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let core = self.core;
        core.poll_join(&mut self.key, cx)
    }
}

impl<S: Store> Drop for Join<'_, S> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.core.drop_join(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::store::Fifo;

    #[test]
    fn a_put_past_usize_max_unfinished_items_panics_and_changes_nothing() {
        let q: Core<Fifo<u8>> = Core::new(0);
        // Reaching the limit by hand: usize::MAX real puts would take forever.
        q.state.borrow_mut().unfinished = usize::MAX;
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.put_nowait(1)))
            .expect_err("the count is full");
        let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
        assert!(msg.contains("call task_done()"), "says what to do: {msg}");
        assert_eq!(q.qsize(), 0, "the item was not put");
        assert_eq!(q.state.borrow().unfinished, usize::MAX, "nor counted");
        assert!(q.task_done().is_ok(), "the queue is still usable");
        assert_eq!(q.put_nowait(2), Ok(()));
    }
}
