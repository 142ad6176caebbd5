//! asyncio's event loop for Rust: one loop per thread, tasks, wakers and task factories.
//!
//! ```
//! use asyncio::{EventLoop, create_task, current_task};
//!
//! let lp = EventLoop::new();
//! let total = lp
//!     .run_until_complete(async {
//!         let me = current_task().expect("the main future runs as a task");
//!         let children: Vec<_> = (1..=3u64).map(|i| create_task(async move { i * 10 })).collect();
//!         let mut total = 0;
//!         for child in children {
//!             total += child.await.expect("no child fails");
//!         }
//!         assert!(!me.done());
//!         total
//!     })
//!     .unwrap();
//! assert_eq!(total, 60);
//! ```
//!
//! The model is asyncio's: a loop runs on the thread that created it; tasks are
//! futures that need not be `Send`; `create_task` returns a [`Task`] that can be
//! awaited, cancelled or dropped (which detaches, never cancels); a panic in a
//! task is caught and becomes the task's outcome; cancellation drops the task's
//! future at its next suspension point. [`Waker`](std::task::Waker)s are
//! `Send + Sync`: waking from another thread goes through a lock-free injector.
//!
//! Each task is one allocation. The loop-side reference count is a plain
//! integer (tasks never leave their thread), so `current_task()` is a
//! thread-local read and an increment; only wakers use an atomic count.

#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

mod blocking;
mod cell_cache;
mod context;
mod contextvars;
mod error;
mod event_loop;
mod factory;
mod future;
mod gate;
mod handle;
mod io;
mod reactor;
mod shared;
mod signals;
mod sync;
mod task;
mod time;
mod yield_now;

#[cfg(all(test, loom))]
mod loom_models;

pub use contextvars::{Context, ContextError, ContextVar, Token, copy_context};
pub use error::{CancelledError, InvalidStateError, PanicError, RunError, RuntimeError, TaskError};
pub use event_loop::{
    CallHandle, EventLoop, ExceptionContext, ExceptionHandler, IO_POLL_INTERVAL, MAX_EAGER_DEPTH,
    all_tasks, create_task, create_task_in_place, create_task_with, current_task,
    default_exception_handler, get_running_loop, in_eager_step, in_task_start, set_task_factory,
    task_failure_count, try_create_task,
};
pub use factory::{LazyTaskFactory, StartMode, TaskFactory, TaskOptions};
pub use future::{FutureError, LoopFuture, SharedError, create_future};
pub use gate::call_user;
#[cfg(feature = "fault-plan")]
pub use gate::fault_plan;
pub use task::{CallbackId, Task, TaskRef};
pub use yield_now::{YieldNow, yield_now};

pub use blocking::{Blocking, Executor, ExecutorShutdown, to_thread};
pub use handle::{ConcurrentFuture, LoopHandle};
#[cfg(unix)]
pub use io::IoRegistration;
pub use signals::SignalError;
#[doc(hidden)]
pub use signals::signal_action_is_default;
pub use time::{
    Sleep, Timeout, TimeoutError, TimeoutFinished, TimeoutHandle, TimerHandle, sleep, sleep_until,
    timeout, timeout_at, wait_for,
};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
