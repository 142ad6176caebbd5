//! `LoopFuture`: asyncio's `Future` object, a one-shot result that code sets
//! and any number of tasks await (`loop.create_future()`).

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use slab::Slab;

use crate::error::{CancelledError, InvalidStateError, TaskError};
use crate::event_loop::{EventLoop, get_running_loop};
use crate::task::{CallbackId, Task};

/// An error shared by every awaiter of a [`LoopFuture`] (the exception of
/// `set_exception`): one error, many readers.
///
/// ```
/// let e = asyncio::run(async {
///     let fut = asyncio::create_future::<()>();
///     fut.set_exception(std::io::Error::other("gone")).unwrap();
///     fut.exception().unwrap().unwrap()
/// })
/// .unwrap();
/// let shared: asyncio::SharedError = e;
/// assert_eq!(shared.to_string(), "gone");
/// ```
pub type SharedError = Arc<dyn Error + Send + Sync + 'static>;

/// Why a [`LoopFuture`] has no value.
///
/// ```
/// let err = asyncio::run(async {
///     let fut = asyncio::create_future::<u8>();
///     assert!(matches!(fut.result(), Err(asyncio::FutureError::InvalidState(_))));
///     fut.cancel();
///     fut.await.unwrap_err()
/// })
/// .unwrap();
/// assert!(err.is_cancelled());
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FutureError {
    /// The future was cancelled (with the message of `cancel_with`, if any).
    #[error(transparent)]
    Cancelled(#[from] CancelledError),
    /// The future's exception, set with `set_exception`.
    #[error(transparent)]
    Exception(SharedError),
    /// The result was asked for before the future was done.
    #[error(transparent)]
    InvalidState(#[from] InvalidStateError),
}

impl FutureError {
    /// Whether the future was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, FutureError::Cancelled(_))
    }

    /// The exception as an `E`, if it is one.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        match self {
            FutureError::Exception(e) => e.downcast_ref::<E>(),
            _ => None,
        }
    }
}

enum Outcome<T> {
    Pending,
    Result(T),
    Exception(SharedError),
    Cancelled(CancelledError),
}

type Callback<T> = Box<dyn FnOnce(&LoopFuture<T>)>;

struct State<T> {
    outcome: Outcome<T>,
    /// One waker per awaiting handle, keyed by the handle's slot.
    wakers: Slab<Option<Waker>>,
    callbacks: Vec<(u64, Callback<T>)>,
    next_callback: u64,
}

struct Shared<T> {
    state: RefCell<State<T>>,
    lp: EventLoop,
}

/// asyncio's `Future`: a result that is set once — [`set_result`],
/// [`set_exception`] or [`cancel`] — and that any number of tasks await
/// (each through its own clone of the handle), as `loop.create_future()`
/// returns it. Done callbacks run on the loop with `call_soon`, as asyncio's.
///
/// Awaiting needs `T: Clone` (each awaiter gets its copy; wrap a value that
/// cannot be cloned in an `Rc`). Named `LoopFuture` rather than `Future` so a
/// glob import of the facade does not hide `std::future::Future`.
///
/// ```
/// let out = asyncio::run(async {
///     let fut = asyncio::create_future::<u32>();
///     let waiters: Vec<_> = (0..3)
///         .map(|i| {
///             let f = fut.clone();
///             asyncio::create_task(async move { f.await.unwrap() + i })
///         })
///         .collect();
///     asyncio::sleep(std::time::Duration::from_millis(1)).await;
///     fut.set_result(40).unwrap();
///     let mut got = Vec::new();
///     for w in waiters {
///         got.push(w.await.unwrap());
///     }
///     got
/// })
/// .unwrap();
/// assert_eq!(out, [40, 41, 42]);
/// ```
///
/// [`set_result`]: Self::set_result
/// [`set_exception`]: Self::set_exception
/// [`cancel`]: Self::cancel
pub struct LoopFuture<T> {
    shared: Rc<Shared<T>>,
    /// This handle's waker slot while it awaits.
    key: Option<usize>,
}

impl EventLoop {
    /// A new pending [`LoopFuture`] attached to this loop, as
    /// `loop.create_future()`.
    pub fn create_future<T>(&self) -> LoopFuture<T> {
        LoopFuture {
            shared: Rc::new(Shared {
                state: RefCell::new(State {
                    outcome: Outcome::Pending,
                    wakers: Slab::new(),
                    callbacks: Vec::new(),
                    next_callback: 0,
                }),
                // Not an owning handle: a future the loop's own tasks keep
                // must not keep the loop open (see `EventLoop`).
                lp: self.non_owning(),
            }),
            key: None,
        }
    }
}

/// A new pending [`LoopFuture`] on the running loop
/// (`asyncio.get_running_loop().create_future()`).
///
/// # Panics
/// Outside a running event loop: use [`EventLoop::create_future`] there.
///
/// ```
/// let v = asyncio::run(async {
///     let fut = asyncio::create_future();
///     let setter = fut.clone();
///     asyncio::get_running_loop().unwrap().call_soon(move || {
///         setter.set_result("ready").unwrap();
///     });
///     fut.await.unwrap()
/// })
/// .unwrap();
/// assert_eq!(v, "ready");
/// ```
pub fn create_future<T>() -> LoopFuture<T> {
    match get_running_loop() {
        Ok(lp) => lp.create_future(),
        Err(e) => {
            panic!("asyncio::create_future: {e}; use EventLoop::create_future outside a loop")
        }
    }
}

impl<T: 'static> LoopFuture<T> {
    /// Whether a result, an exception or a cancellation was set.
    pub fn done(&self) -> bool {
        !matches!(self.shared.state.borrow().outcome, Outcome::Pending)
    }

    /// Whether the future was cancelled.
    pub fn cancelled(&self) -> bool {
        matches!(self.shared.state.borrow().outcome, Outcome::Cancelled(_))
    }

    /// Sets the result and wakes every awaiter, as `Future.set_result`.
    ///
    /// # Errors
    /// [`InvalidStateError::AlreadyDone`] if the future is already done (the
    /// value is dropped; asyncio raises `InvalidStateError`).
    pub fn set_result(&self, value: T) -> Result<(), InvalidStateError> {
        self.finish(Outcome::Result(value))
    }

    /// Sets an exception and wakes every awaiter, as `Future.set_exception`;
    /// each awaiter gets [`FutureError::Exception`] with the same error.
    ///
    /// # Errors
    /// [`InvalidStateError::AlreadyDone`] if the future is already done.
    pub fn set_exception(
        &self,
        error: impl Into<Box<dyn Error + Send + Sync + 'static>>,
    ) -> Result<(), InvalidStateError> {
        self.finish(Outcome::Exception(Arc::from(error.into())))
    }

    /// Cancels the future, as `Future.cancel()`: returns `false` if it was
    /// already done. Awaiters get [`FutureError::Cancelled`].
    pub fn cancel(&self) -> bool {
        self.finish(Outcome::Cancelled(CancelledError::new()))
            .is_ok()
    }

    /// [`cancel`](Self::cancel) with a message, as `Future.cancel(msg)`.
    pub fn cancel_with(&self, msg: impl Into<String>) -> bool {
        self.finish(Outcome::Cancelled(CancelledError::with_message(msg)))
            .is_ok()
    }

    /// The exception, if the future ended with one (`Future.exception()`).
    ///
    /// # Errors
    /// [`FutureError::InvalidState`] before the future is done,
    /// [`FutureError::Cancelled`] if it was cancelled.
    pub fn exception(&self) -> Result<Option<SharedError>, FutureError> {
        match &self.shared.state.borrow().outcome {
            Outcome::Pending => Err(InvalidStateError::NotDone.into()),
            Outcome::Result(_) => Ok(None),
            Outcome::Exception(e) => Ok(Some(Arc::clone(e))),
            Outcome::Cancelled(c) => Err(c.clone().into()),
        }
    }

    /// Adds a callback to run (with `call_soon`) once the future is done, at
    /// once if it already is, as `Future.add_done_callback`.
    pub fn add_done_callback(&self, callback: impl FnOnce(&LoopFuture<T>) + 'static) -> CallbackId {
        let mut state = self.shared.state.borrow_mut();
        state.next_callback += 1;
        let id = state.next_callback;
        if matches!(state.outcome, Outcome::Pending) {
            state.callbacks.push((id, Box::new(callback)));
        } else {
            drop(state);
            let me = self.handle();
            self.shared.lp.call_soon(move || callback(&me));
        }
        CallbackId::new(id)
    }

    /// Removes a callback that has not been scheduled yet; returns whether it
    /// was found (`Future.remove_done_callback`).
    pub fn remove_done_callback(&self, id: CallbackId) -> bool {
        let removed = {
            let mut state = self.shared.state.borrow_mut();
            let pos = state.callbacks.iter().position(|(c, _)| *c == id.get());
            pos.map(|p| state.callbacks.remove(p))
        };
        // Dropped outside the borrow: its captures are user code.
        removed.is_some()
    }

    /// The loop the future belongs to.
    pub fn get_loop(&self) -> EventLoop {
        self.shared.lp.clone()
    }

    /// A new handle to the same future, not awaiting yet.
    fn handle(&self) -> LoopFuture<T> {
        LoopFuture {
            shared: Rc::clone(&self.shared),
            key: None,
        }
    }

    fn finish(&self, outcome: Outcome<T>) -> Result<(), InvalidStateError> {
        let (wakers, callbacks) = {
            let mut state = self.shared.state.borrow_mut();
            if !matches!(state.outcome, Outcome::Pending) {
                return Err(InvalidStateError::AlreadyDone);
            }
            state.outcome = outcome;
            let wakers: Vec<Waker> = state
                .wakers
                .iter_mut()
                .filter_map(|(_, w)| w.take())
                .collect();
            (wakers, std::mem::take(&mut state.callbacks))
        };
        // Outside the borrow: waking and scheduling may run user code.
        // Every waiter is woken even if one waker panics; the first panic
        // goes on to the caller once the callbacks are scheduled.
        let mut panicked = None;
        for w in wakers {
            if let Some(payload) = crate::gate::wake(w) {
                match panicked {
                    None => panicked = Some(payload),
                    Some(_) => crate::gate::discard_payload(payload),
                }
            }
        }
        for (_, cb) in callbacks {
            let me = self.handle();
            // A closed loop cannot run the callback: it is dropped (asyncio
            // would raise on the closed loop).
            let _ = self.shared.lp.try_call_soon(move || cb(&me));
        }
        if let Some(payload) = panicked {
            std::panic::resume_unwind(payload);
        }
        Ok(())
    }
}

impl<T: Clone + 'static> LoopFuture<T> {
    /// The result, as `Future.result()`.
    ///
    /// # Errors
    /// [`FutureError::InvalidState`] before the future is done; otherwise its
    /// exception or cancellation.
    pub fn result(&self) -> Result<T, FutureError> {
        match &self.shared.state.borrow().outcome {
            Outcome::Pending => Err(InvalidStateError::NotDone.into()),
            Outcome::Result(v) => Ok(v.clone()),
            Outcome::Exception(e) => Err(FutureError::Exception(Arc::clone(e))),
            Outcome::Cancelled(c) => Err(FutureError::Cancelled(c.clone())),
        }
    }
}

impl<T> Clone for LoopFuture<T> {
    /// Another handle to the same future (another awaiter).
    fn clone(&self) -> Self {
        LoopFuture {
            shared: Rc::clone(&self.shared),
            key: None,
        }
    }
}

impl<T: Clone + 'static> std::future::Future for LoopFuture<T> {
    type Output = Result<T, FutureError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.done() {
            if let Some(key) = this.key.take() {
                // The waker is dropped after the borrow ends.
                let old = this.shared.state.borrow_mut().wakers.remove(key);
                drop(old);
            }
            return Poll::Ready(this.result());
        }
        let mut state = this.shared.state.borrow_mut();
        match this.key {
            Some(key) => {
                let slot = &mut state.wakers[key];
                if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    let old = slot.replace(cx.waker().clone());
                    drop(state);
                    drop(old);
                }
            }
            None => this.key = Some(state.wakers.insert(Some(cx.waker().clone()))),
        }
        Poll::Pending
    }
}

impl<T> Drop for LoopFuture<T> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let old = self.shared.state.borrow_mut().wakers.try_remove(key);
            drop(old);
        }
    }
}

impl<T> Unpin for LoopFuture<T> {}

impl<T> fmt::Debug for LoopFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.shared.state.borrow().outcome {
            Outcome::Pending => "pending",
            Outcome::Result(_) => "finished",
            Outcome::Exception(_) => "exception",
            Outcome::Cancelled(_) => "cancelled",
        };
        f.debug_struct("LoopFuture").field("state", &state).finish()
    }
}

impl<T: Clone + 'static> Task<T> {
    /// A [`LoopFuture`] of this task's outcome, so several tasks can await one
    /// task (asyncio lets any number await a task). Each awaiter gets a clone
    /// of the value; a panic becomes [`FutureError::Exception`] holding the
    /// [`PanicError`](crate::PanicError), a cancellation
    /// [`FutureError::Cancelled`] with its message.
    ///
    /// The task's outcome is taken by the shared future when the task ends
    /// (one loop turn later, through a done callback), so nothing is reported
    /// as never retrieved.
    ///
    /// ```
    /// let out = asyncio::run(async {
    ///     let shared = asyncio::create_task(async { String::from("one result") }).shared();
    ///     let a = asyncio::create_task({
    ///         let s = shared.clone();
    ///         async move { s.await.unwrap().len() }
    ///     });
    ///     let b = shared.await.unwrap();
    ///     (a.await.unwrap(), b)
    /// })
    /// .unwrap();
    /// assert_eq!(out, (10, "one result".to_owned()));
    /// ```
    pub fn shared(mut self) -> LoopFuture<T> {
        let fut = self.get_loop().create_future();
        let setter = fut.clone();
        let handle = self.to_ref();
        let settle = move |_: &crate::TaskRef| {
            let outcome = self
                .try_result()
                .expect("a done task's outcome, taken only by its shared future");
            let _ = match outcome {
                Ok(v) => setter.set_result(v),
                Err(TaskError::Cancelled(c)) => setter.finish(Outcome::Cancelled(c)),
                Err(TaskError::Panicked(p)) => setter.set_exception(p),
            };
        };
        if handle.try_add_done_callback(settle).is_err() {
            // The loop is closed: the task is done and can run nothing more.
            fut.cancel_with("the task's loop is closed");
        }
        fut
    }
}
