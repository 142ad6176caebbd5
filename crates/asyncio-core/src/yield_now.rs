//! `yield_now`: asyncio's `sleep(0)`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Gives the other ready tasks a turn, as `await asyncio.sleep(0)`.
///
/// The task goes to the back of the ready queue and resumes on a later iteration.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
///
/// let lp = asyncio::EventLoop::new();
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let l = log.clone();
/// lp.run_until_complete(async move {
///     let l2 = l.clone();
///     let other = asyncio::create_task(async move { l2.borrow_mut().push("other") });
///     asyncio::yield_now().await;
///     l.borrow_mut().push("main");
///     other.await.unwrap();
/// })
/// .unwrap();
/// assert_eq!(*log.borrow(), ["other", "main"]);
/// ```
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
///
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let l = log.clone();
/// asyncio::run(async move {
///     let l2 = l.clone();
///     let other = asyncio::create_task(async move { l2.borrow_mut().push("other") });
///     l.borrow_mut().push("before");
///     asyncio::yield_now().await; // asyncio.sleep(0): the other task runs now
///     l.borrow_mut().push("after");
///     other.await.unwrap();
/// })
/// .unwrap();
/// assert_eq!(*log.borrow(), ["before", "other", "after"]);
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
///
/// ```
/// asyncio::run(async {
///     let step: asyncio::YieldNow = asyncio::yield_now();
///     step.await;
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // gate-exempt: the waker of whoever polls us, from inside their poll.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
