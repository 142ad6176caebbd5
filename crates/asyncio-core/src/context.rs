//! The thread-local state: which loop runs on this thread and which task it is polling.
//!
//! Both are plain pointers in `const`-initialised cells without destructors, so
//! reading them compiles to a load from the thread's TLS block.

use std::cell::Cell;
use std::ptr;

use crate::event_loop::LoopInner;
use crate::task::header::Header;

struct ThreadContext {
    running: Cell<*const LoopInner>,
    task: Cell<*const Header>,
}

thread_local! {
    static CONTEXT: ThreadContext = const {
        ThreadContext { running: Cell::new(ptr::null()), task: Cell::new(ptr::null()) }
    };
}

/// The loop running on this thread, or null.
#[inline]
pub(crate) fn running_loop() -> *const LoopInner {
    CONTEXT.with(|c| c.running.get())
}

/// Marks `lp` as the running loop; returns the previous value.
pub(crate) fn set_running_loop(lp: *const LoopInner) -> *const LoopInner {
    CONTEXT.with(|c| c.running.replace(lp))
}

/// The task being polled on this thread, or null.
#[inline]
pub(crate) fn current_task() -> *const Header {
    CONTEXT.with(|c| c.task.get())
}

/// Sets the task being polled; returns the previous one.
#[inline]
pub(crate) fn set_current_task(task: *const Header) -> *const Header {
    CONTEXT.with(|c| c.task.replace(task))
}
