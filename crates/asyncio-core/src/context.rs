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
    /// `create_task` calls on the general path between making their task and
    /// returning it (see `event_loop::in_task_start`).
    starting: Cell<u32>,
    /// Where the innermost of those calls was made (debug mode reads it).
    site: Cell<Option<&'static std::panic::Location<'static>>>,
    /// Tasks that ended failed (panicked or cancelled) on this thread, in the
    /// order their completion was processed (see `TaskRef::failure_number`).
    failures: Cell<u64>,
}

#[cfg(not(loom))]
thread_local! {
    static CONTEXT: ThreadContext = const {
        ThreadContext {
            running: Cell::new(ptr::null()),
            task: Cell::new(ptr::null()),
            starting: Cell::new(0),
            site: Cell::new(None),
            failures: Cell::new(0),
        }
    };
}

// loom runs its threads on one OS thread: with a std thread-local, a model's
// second thread would see the loop of the first as running "on its thread"
// and wake tasks as if it were the loop, never through the injector.
#[cfg(loom)]
loom::thread_local! {
    static CONTEXT: ThreadContext = ThreadContext {
        running: Cell::new(ptr::null()),
        task: Cell::new(ptr::null()),
        starting: Cell::new(0),
        site: Cell::new(None),
        failures: Cell::new(0),
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

/// How many `create_task` calls are starting a task on the general path.
pub(crate) fn starting() -> u32 {
    CONTEXT.with(|c| c.starting.get())
}

/// A `create_task` call at `site` starts a task on the general path: one
/// more in [`starting`], and where it was made, in one thread-local access.
#[inline]
pub(crate) fn start_spawn(site: &'static std::panic::Location<'static>) {
    CONTEXT.with(|c| {
        c.starting.set(c.starting.get() + 1);
        c.site.set(Some(site));
    });
}

/// Where the innermost `create_task` on the general path was made.
pub(crate) fn spawn_site() -> Option<&'static std::panic::Location<'static>> {
    CONTEXT.with(|c| c.site.get())
}

/// Adds `delta` (±1) to [`starting`].
pub(crate) fn add_starting(delta: i32) {
    CONTEXT.with(|c| c.starting.set(c.starting.get().wrapping_add_signed(delta)));
}

/// How many tasks ended failed on this thread so far.
pub(crate) fn failures() -> u64 {
    CONTEXT.with(|c| c.failures.get())
}

/// Counts one more failed task; returns its number (from 1).
pub(crate) fn count_failure() -> u64 {
    CONTEXT.with(|c| {
        let n = c.failures.get() + 1;
        c.failures.set(n);
        n
    })
}

/// Sets the task being polled; returns the previous one.
#[inline]
pub(crate) fn set_current_task(task: *const Header) -> *const Header {
    CONTEXT.with(|c| c.task.replace(task))
}
