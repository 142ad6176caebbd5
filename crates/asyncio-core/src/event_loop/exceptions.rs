//! The exception handler (asyncio's `loop.set_exception_handler`) and how the
//! loop reports panics it catches instead of unwinding through itself.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::rc::Rc;

use crate::error::PanicError;
use crate::task::TaskRef;
use crate::task::header::Header;

use super::LoopInner;

/// What the exception handler receives, as asyncio's context dict.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
///
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let s = seen.clone();
/// let lp = asyncio::EventLoop::new();
/// lp.set_exception_handler(Some(move |ctx: &asyncio::ExceptionContext| {
///     s.borrow_mut().push(ctx.to_string())
/// }));
/// lp.run_until_complete(async {
///     drop(asyncio::create_task(async { panic!("lost") }));
///     asyncio::yield_now().await;
/// })
/// .unwrap();
/// assert!(seen.borrow()[0].contains("never retrieved"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExceptionContext {
    /// What happened, e.g. `"Task exception was never retrieved"`.
    pub message: String,
    /// The task concerned, if any.
    pub task: Option<TaskRef>,
    /// The panic, if one was caught.
    pub panic: Option<PanicError>,
}

impl ExceptionContext {
    /// A context with only a message, for libraries that report through the
    /// loop's exception handler (asyncio's `call_exception_handler({'message': ...})`).
    ///
    /// ```
    /// let ctx = asyncio::ExceptionContext::new("socket.accept() failed");
    /// assert_eq!(ctx.to_string(), "socket.accept() failed");
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        ExceptionContext {
            message: message.into(),
            task: None,
            panic: None,
        }
    }
}

impl fmt::Display for ExceptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(task) = &self.task {
            write!(f, " (task {} '{}'", task.id(), task.name())?;
            if let Some(site) = task.created_at() {
                write!(f, ", created at {site}")?;
            }
            f.write_str(")")?;
        }
        if let Some(panic) = &self.panic {
            write!(f, ": panicked: {}", panic.message())?;
        }
        Ok(())
    }
}

pub(crate) type Handler = Rc<dyn Fn(&ExceptionContext)>;

pub(super) fn default_exception_handler(ctx: &ExceptionContext) {
    eprintln!("asyncio: {ctx}");
}

impl LoopInner {
    pub(crate) fn report_unobserved(&self, task: &TaskRef) {
        // SAFETY: the task is complete and alive (we hold a reference).
        let panic = unsafe { (task.header().vtable.peek_panic)(task.as_ptr()) };
        self.call_exception_handler(&ExceptionContext {
            message: "Task exception was never retrieved".to_owned(),
            task: Some(task.clone()),
            panic,
        });
    }

    /// Hands a caught panic to the exception handler.
    pub(super) fn report_panic(
        &self,
        message: &str,
        task: Option<TaskRef>,
        payload: crate::unwind::Payload,
    ) {
        self.call_exception_handler(&ExceptionContext {
            message: message.to_owned(),
            task,
            panic: Some(PanicError::new(payload)),
        });
    }

    /// Reports a panic in the destructor of a value the loop dropped (a
    /// task's output or its context, a callback that never ran, …).
    pub(crate) fn report_drop_panic(&self, payload: crate::unwind::Payload) {
        self.report_panic(
            "a value's destructor panicked while the loop dropped it",
            None,
            payload,
        );
    }

    /// Reports the panic of a task's poll that a panic in its future's
    /// destructor replaced as the task's outcome.
    pub(crate) fn report_replaced_panic(&self, task: NonNull<Header>, first: PanicError) {
        self.call_exception_handler(&ExceptionContext {
            message: "a task panicked, then its future's destructor panicked too (the task ends with the second panic)".to_owned(),
            // SAFETY: called during the task's step, which holds a reference.
            task: Some(unsafe { TaskRef::clone_raw(task) }),
            panic: Some(first),
        });
    }

    /// Wakes a waker, reporting a panic in its `wake` instead of unwinding
    /// through the loop.
    pub(crate) fn wake_reporting(&self, waker: std::task::Waker) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| waker.wake())) {
            self.report_panic("a waker panicked when woken", None, payload);
        }
    }

    /// Drops a user value, reporting a panic in its destructor.
    pub(crate) fn drop_reporting<T>(&self, value: T) {
        if let Some(payload) = crate::unwind::drop_catching(value) {
            self.report_drop_panic(payload);
        }
    }

    pub(crate) fn call_exception_handler(&self, ctx: &ExceptionContext) {
        let handler = self.handler.borrow().clone();
        match handler {
            None => default_exception_handler(ctx),
            Some(h) => {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| h(ctx))) {
                    default_exception_handler(&ExceptionContext {
                        message: "Unhandled error in exception handler".to_owned(),
                        task: None,
                        panic: Some(PanicError::new(payload)),
                    });
                    default_exception_handler(ctx);
                }
            }
        }
    }
}
