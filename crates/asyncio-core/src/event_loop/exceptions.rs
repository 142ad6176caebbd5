//! The exception handler (asyncio's `loop.set_exception_handler`) and how the
//! loop reports panics it catches instead of unwinding through itself.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::PanicError;
use crate::task::TaskRef;

use super::LoopInner;
use super::run::CallHandle;

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
    /// The error, typed, when the failure was an error value rather than a
    /// panic (asyncio's `'exception'` key): downcast it with
    /// `exception.downcast_ref::<E>()`.
    pub exception: Option<Arc<dyn Error + Send + Sync>>,
    /// The callback concerned (asyncio's `'handle'`): one scheduled with
    /// `call_soon`, `call_later` or `call_at` whose call panicked.
    pub handle: Option<CallHandle>,
    /// The future concerned (asyncio's `'future'`), type-erased: a
    /// [`LoopFuture<T>`](crate::LoopFuture) (`downcast_ref::<LoopFuture<T>>()`)
    /// or whatever future type the reporter names in its docs.
    pub future: Option<Rc<dyn Any>>,
    /// The transport concerned (asyncio's `'transport'`), type-erased: the
    /// I/O crate that reports says which type it puts here.
    pub transport: Option<Rc<dyn Any>>,
    /// The socket concerned (asyncio's `'socket'`), type-erased, as
    /// `transport`.
    pub socket: Option<Rc<dyn Any>>,
}

impl ExceptionContext {
    /// A context with only a message, for libraries that report through the
    /// loop's exception handler (asyncio's `call_exception_handler({'message': ...})`);
    /// the `with_*` methods add what it concerns.
    ///
    /// ```
    /// let ctx = asyncio::ExceptionContext::new("socket.accept() failed");
    /// assert_eq!(ctx.to_string(), "socket.accept() failed");
    ///
    /// let err = std::io::Error::other("too many open files");
    /// let ctx = asyncio::ExceptionContext::new("accept failed").with_exception(err);
    /// assert_eq!(ctx.to_string(), "accept failed: too many open files");
    /// let io = ctx.exception.as_ref().unwrap().downcast_ref::<std::io::Error>();
    /// assert_eq!(io.unwrap().kind(), std::io::ErrorKind::Other);
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        ExceptionContext {
            message: message.into(),
            task: None,
            panic: None,
            exception: None,
            handle: None,
            future: None,
            transport: None,
            socket: None,
        }
    }

    /// Adds the typed error (asyncio's `'exception'`).
    pub fn with_exception(mut self, error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        self.exception = Some(Arc::from(error.into()));
        self
    }

    /// Adds the task concerned.
    pub fn with_task(mut self, task: TaskRef) -> Self {
        self.task = Some(task);
        self
    }

    /// Adds the panic caught.
    pub fn with_panic(mut self, panic: PanicError) -> Self {
        self.panic = Some(panic);
        self
    }

    /// Adds the callback concerned.
    pub fn with_handle(mut self, handle: CallHandle) -> Self {
        self.handle = Some(handle);
        self
    }

    /// Adds the future concerned.
    pub fn with_future(mut self, future: Rc<dyn Any>) -> Self {
        self.future = Some(future);
        self
    }

    /// Adds the transport concerned.
    pub fn with_transport(mut self, transport: Rc<dyn Any>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Adds the socket concerned.
    pub fn with_socket(mut self, socket: Rc<dyn Any>) -> Self {
        self.socket = Some(socket);
        self
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
        if self.handle.is_some() {
            f.write_str(" (in a scheduled callback)")?;
        }
        if let Some(panic) = &self.panic {
            write!(f, ": panicked: {}", panic.message())?;
        }
        if let Some(error) = &self.exception {
            // The error and each of its causes, once.
            write!(f, ": {error}")?;
            let mut source = error.source();
            while let Some(cause) = source {
                write!(f, ": {cause}")?;
                source = cause.source();
            }
        }
        Ok(())
    }
}

/// An installed exception handler, as
/// [`EventLoop::get_exception_handler`](crate::EventLoop::get_exception_handler)
/// returns it.
pub type ExceptionHandler = Rc<dyn Fn(&ExceptionContext)>;

pub(crate) type Handler = ExceptionHandler;

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

/// The default exception handler (asyncio's `loop.default_exception_handler`):
/// one line on stderr, best effort. A closed stderr (a program run as
/// `prog 2>&1 | head`) loses the line; it never panics. A custom handler may
/// hand what it does not handle itself on to it (also as
/// [`EventLoop::default_exception_handler`](crate::EventLoop::default_exception_handler)).
///
/// ```
/// let lp = asyncio::EventLoop::new();
/// lp.set_exception_handler(Some(|ctx: &asyncio::ExceptionContext| {
///     if !ctx.message.contains("expected") {
///         asyncio::default_exception_handler(ctx);
///     }
/// }));
/// lp.call_exception_handler(&asyncio::ExceptionContext::new("expected, ignored"));
/// ```
pub fn default_exception_handler(ctx: &ExceptionContext) {
    crate::gate::write_stderr(format_args!("asyncio: {ctx}"));
}

impl LoopInner {
    pub(crate) fn report_unobserved(&self, task: &TaskRef) {
        // SAFETY: the task is complete and alive (we hold a reference).
        let panic = unsafe { (task.header().vtable.peek_panic)(task.as_ptr()) };
        let mut ctx = ExceptionContext::new("Task exception was never retrieved");
        ctx.task = Some(task.clone());
        ctx.panic = panic;
        self.call_exception_handler(&ctx);
    }

    /// Hands a caught panic to the exception handler.
    pub(crate) fn report_panic(
        &self,
        message: &str,
        task: Option<TaskRef>,
        payload: crate::gate::Payload,
    ) {
        let mut ctx = ExceptionContext::new(message).with_panic(PanicError::new(payload));
        ctx.task = task;
        self.call_exception_handler(&ctx);
    }

    /// Hands a panic of a scheduled callback to the exception handler, with
    /// the callback's handle (asyncio's `'handle'`).
    pub(super) fn report_callback_panic(&self, handle: CallHandle, payload: crate::gate::Payload) {
        self.call_exception_handler(
            &ExceptionContext::new("Exception in callback")
                .with_panic(PanicError::new(payload))
                .with_handle(handle),
        );
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
                    self.call_exception_handler(
                        &ExceptionContext::new(
                            "a task panicked, then its future's destructor panicked too (the task ends with the second panic)",
                        )
                        .with_task(task)
                        .with_panic(first),
                    );
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
                    default_exception_handler(
                        &ExceptionContext::new("Unhandled error in exception handler")
                            .with_panic(PanicError::new(payload)),
                    );
                    default_exception_handler(ctx);
                }
            }
        }
    }
}
