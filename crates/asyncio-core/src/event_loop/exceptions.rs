//! The exception handler (asyncio's `loop.set_exception_handler`) and how the
//! loop reports panics it catches instead of unwinding through itself.

use std::fmt;
use std::rc::Rc;

use crate::error::PanicError;
use crate::task::TaskRef;

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

/// What a state transition could not dispose of without running user code in
/// its middle: it waits in the loop's deferred list until the transition is
/// whole (see `state::DEFERRED`), then goes through the gate.
pub(crate) enum Deferred {
    /// A user value to drop: an outcome a later panic replaced, a value a
    /// cancelled task returned, a task's context.
    Drop(Box<dyn std::any::Any>),
    /// The panic of a task's poll that a panic in its future's destructor
    /// replaced as the task's outcome: it goes to the exception handler.
    ReplacedPanic(TaskRef, PanicError),
}

/// The default handler: one line on stderr, best effort. A closed stderr (a
/// program run as `prog 2>&1 | head`) loses the line; it never panics.
pub(super) fn default_exception_handler(ctx: &ExceptionContext) {
    crate::gate::write_stderr(format_args!("asyncio: {ctx}"));
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
        payload: crate::gate::Payload,
    ) {
        self.call_exception_handler(&ExceptionContext {
            message: message.to_owned(),
            task,
            panic: Some(PanicError::new(payload)),
        });
    }

    /// Reports a panic in the destructor of a value the loop dropped (a
    /// task's output or its context, a callback that never ran, …).
    pub(crate) fn report_drop_panic(&self, payload: crate::gate::Payload) {
        self.report_panic(
            "a value's destructor panicked while the loop dropped it",
            None,
            payload,
        );
    }

    /// Keeps `item` until the transition under way is whole; whoever defers
    /// sets `DEFERRED` on the task being stepped, whose step's end calls
    /// [`run_deferred`](Self::run_deferred).
    pub(crate) fn defer(&self, item: Deferred) {
        self.deferred.borrow_mut().push_back(item);
    }

    /// Disposes of what transitions deferred, in order, through the gate
    /// (what that runs may defer more: it is disposed of too).
    #[cold]
    #[inline(never)]
    pub(crate) fn run_deferred(&self) {
        loop {
            let item = self.deferred.borrow_mut().pop_front();
            match item {
                None => break,
                Some(Deferred::Drop(value)) => self.drop_reporting(value),
                Some(Deferred::ReplacedPanic(task, first)) => {
                    self.call_exception_handler(&ExceptionContext {
                        message: "a task panicked, then its future's destructor panicked too (the task ends with the second panic)".to_owned(),
                        task: Some(task),
                        panic: Some(first),
                    });
                }
            }
        }
    }

    /// Wakes a waker, reporting a panic in its `wake` instead of unwinding
    /// through the loop.
    pub(crate) fn wake_reporting(&self, waker: std::task::Waker) {
        if let Some(payload) = crate::gate::wake(waker) {
            self.report_panic("a waker panicked when woken", None, payload);
        }
    }

    /// Drops a user value, reporting a panic in its destructor.
    pub(crate) fn drop_reporting<T>(&self, value: T) {
        if let Some(payload) = crate::gate::drop_catching(value) {
            self.report_drop_panic(payload);
        }
    }

    /// Never unwinds: the handler runs through the gate, and the default one
    /// writes best effort.
    pub(crate) fn call_exception_handler(&self, ctx: &ExceptionContext) {
        // A handler being replaced right now (its old value's `Drop` reporting
        // something) is not there to borrow: the default handler takes over.
        let handler = self.handler.try_borrow().ok().and_then(|h| h.clone());
        match handler {
            None => default_exception_handler(ctx),
            Some(h) => {
                let called = crate::gate::call(crate::gate::Site::Handler, || h(ctx));
                // The last count of a handler replaced during its own call
                // goes here: its `Drop` is user code too.
                if let Some(payload) = crate::gate::drop_catching(h) {
                    crate::gate::discard_payload(payload);
                }
                if let Err(payload) = called {
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
