//! A future adapter that turns a panic into a value.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use asyncio_core::PanicError;

/// Polls `F`, catching a panic as `Err(PanicError)`.
pub(crate) struct CatchPanic<F> {
    fut: F,
}

impl<F> CatchPanic<F> {
    pub(crate) fn new(fut: F) -> Self {
        CatchPanic { fut }
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, PanicError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `fut` is structurally pinned: it is never moved out of `self`,
        // and `CatchPanic` has no `Drop` or `Unpin` impl that would move it.
        let fut = unsafe { self.map_unchecked_mut(|s| &mut s.fut) };
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(PanicError::new(payload))),
        }
    }
}
