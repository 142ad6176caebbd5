//! `Event`: asyncio's flag that tasks can wait for.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::waiters::{WaitList, wake_all};

/// asyncio's `Event`: a flag, initially false; `wait()` returns once it is
/// set.
///
/// `set()` wakes every waiting task, and each of them returns even if the
/// flag is cleared again before it runs (as in asyncio).
///
/// ```
/// use std::rc::Rc;
///
/// asyncio::run(async {
///     let ready = Rc::new(asyncio::Event::new());
///     let r = ready.clone();
///     let waiter = asyncio::create_task(async move {
///         r.wait().await;
///         "woken"
///     });
///     asyncio::yield_now().await;
///     assert!(!waiter.done());
///     ready.set();
///     assert_eq!(waiter.await.unwrap(), "woken");
/// })
/// .unwrap();
/// ```
#[derive(Default)]
pub struct Event {
    state: RefCell<EventState>,
}

#[derive(Debug, Default)]
struct EventState {
    set: bool,
    waiters: WaitList<()>,
}

impl Event {
    /// Creates an event that is not set.
    ///
    /// ```
    /// assert!(!asyncio::Event::new().is_set());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag and wakes every waiting task. Setting a set event does
    /// nothing.
    ///
    /// ```
    /// let event = asyncio::Event::new();
    /// event.set();
    /// assert!(event.is_set());
    /// ```
    pub fn set(&self) {
        let mut st = self.state.borrow_mut();
        if st.set {
            return;
        }
        st.set = true;
        let mut wakers = Vec::new();
        st.waiters.wake_all_with(&mut wakers, |_| {});
        drop(st);
        wake_all(wakers);
    }

    /// Clears the flag: later `wait()` calls block until `set()` again.
    ///
    /// ```
    /// let event = asyncio::Event::new();
    /// event.set();
    /// event.clear();
    /// assert!(!event.is_set());
    /// ```
    pub fn clear(&self) {
        self.state.borrow_mut().set = false;
    }

    /// Whether the flag is set.
    ///
    /// ```
    /// let event = asyncio::Event::new();
    /// assert!(!event.is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        self.state.borrow().set
    }

    /// Waits until the flag is set; returns at once if it already is.
    /// Never fails. Dropping the future simply stops waiting.
    ///
    /// ```
    /// let event = asyncio::Event::new();
    /// event.set();
    /// asyncio::run(event.wait()).unwrap();
    /// ```
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        EventWait {
            event: self,
            key: None,
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("Event")
            .field("set", &st.set)
            .field("waiters", &st.waiters.len())
            .finish()
    }
}

struct EventWait<'a> {
    event: &'a Event,
    key: Option<usize>,
}

impl Future for EventWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.event.state.borrow_mut();
        match self.key {
            None if st.set => Poll::Ready(()),
            None => {
                self.key = Some(st.waiters.push_back(cx.waker(), ()));
                Poll::Pending
            }
            Some(key) if st.waiters.is_linked(key) => {
                st.waiters.set_waker(key, cx.waker());
                Poll::Pending
            }
            Some(key) => {
                st.waiters.remove(key);
                self.key = None;
                Poll::Ready(())
            }
        }
    }
}

impl Drop for EventWait<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            // `set()` wakes everyone, so a woken waiter has nothing to pass on.
            self.event.state.borrow_mut().waiters.remove(key);
        }
    }
}
