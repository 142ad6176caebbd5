//! Context variables, as Python's `contextvars` for asyncio tasks.
//!
//! Each task runs in its own [`Context`]: a copy of its creator's, made when the
//! task is created. [`ContextVar::set`] changes the value in the current context
//! only, so a task's settings are seen by the tasks it creates afterwards but
//! never by its creator or its siblings. Outside any task the thread has its own
//! context.
//!
//! Nothing is copied while no variable was ever set on the thread: a task
//! created then carries no context, and spawning costs one thread-local flag
//! read.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

type VarMap = HashMap<u64, Rc<dyn Any>>;

struct ContextCell {
    /// The variables' values. The map itself is never changed in place once
    /// shared: `set` swaps in a new one, so copying a context is one `Rc` clone.
    map: RefCell<Rc<VarMap>>,
}

impl Drop for ContextCell {
    /// The values are user values whose destructors may panic. The hash
    /// table does not free its memory when an element's destructor unwinds
    /// through it, so the last owner of a map drops the values one by one,
    /// frees the table, and only then passes the first panic on (the loop
    /// reports it where it drops a task's context).
    fn drop(&mut self) {
        let Some(map) = Rc::get_mut(self.map.get_mut()) else {
            return;
        };
        let mut first = None;
        // The emptied table is freed with the field, even while the first
        // panic unwinds.
        for (_, value) in map.drain() {
            if let Some(payload) = crate::gate::drop_catching(value) {
                match first {
                    None => first = Some(payload),
                    Some(_) => crate::gate::discard_payload(payload),
                }
            }
        }
        if let Some(payload) = first {
            std::panic::resume_unwind(payload);
        }
    }
}

/// A mapping of context variables to values, as Python's `contextvars.Context`.
///
/// Cloning a `Context` gives another handle to the same context; [`copy`]
/// (`Context.copy()`) gives an independent one with the same values.
///
/// [`copy`]: Context::copy
///
/// ```
/// let var = asyncio::ContextVar::new("request");
/// let ctx = asyncio::Context::new();
/// ctx.run(|| var.set(7));
/// assert_eq!(ctx.run(|| var.get()), Some(7));
/// assert_eq!(var.get(), None, "set in ctx, not outside it");
/// ```
#[derive(Clone)]
pub struct Context {
    cell: Rc<ContextCell>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Context {
            cell: Rc::new(ContextCell {
                map: RefCell::new(Rc::new(VarMap::new())),
            }),
        }
    }

    /// An independent context holding the same values (O(1)).
    pub fn copy(&self) -> Context {
        Context {
            cell: Rc::new(ContextCell {
                map: RefCell::new(Rc::clone(&self.cell.map.borrow())),
            }),
        }
    }

    /// Runs `f` with this context as the current one, as `Context.run`.
    ///
    /// ```
    /// use asyncio::{Context, ContextVar};
    ///
    /// let user = ContextVar::<&str>::new("user");
    /// let ctx = Context::new();
    /// ctx.run(|| user.set("ada"));
    /// assert_eq!(ctx.run(|| user.get()), Some("ada"));
    /// assert_eq!(user.get(), None, "the thread's own context is untouched");
    /// ```
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let prev = enter(Some(self.clone()));
        let _restore = Restore(Some(prev));
        f()
    }

    /// How many variables have a value here.
    pub fn len(&self) -> usize {
        self.cell.map.borrow().len()
    }

    /// Whether no variable has a value here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn same(&self, other: &Context) -> bool {
        Rc::ptr_eq(&self.cell, &other.cell)
    }
}

impl Default for Context {
    fn default() -> Self {
        Context::new()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("vars", &self.len())
            .finish()
    }
}

thread_local! {
    /// The current context: the running task's, or the thread's own.
    static CURRENT: RefCell<Option<Context>> = const { RefCell::new(None) };
    /// Set once any context was entered on this thread; until then the loop
    /// skips all context work.
    static IN_USE: Cell<bool> = const { Cell::new(false) };
}

struct Restore(Option<Option<Context>>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(prev) = self.0.take() {
            let _ = enter(prev);
        }
    }
}

/// Makes `ctx` current; returns the previous one.
pub(crate) fn enter(ctx: Option<Context>) -> Option<Context> {
    if ctx.is_some() {
        mark_in_use();
    }
    CURRENT.with(|c| c.replace(ctx))
}

/// Notes that a context is in use on this thread (a task was given one).
pub(crate) fn mark_in_use() {
    if !IN_USE.with(|u| u.replace(true)) {
        // The running loop's eager fast path skips context work: close it.
        let lp = crate::context::running_loop();
        if !lp.is_null() {
            // SAFETY: the running loop is alive while it runs on this thread.
            unsafe { &*lp }.fast_eager.set(false);
        }
    }
}

/// Whether contexts were ever used on this thread.
#[inline]
pub(crate) fn in_use() -> bool {
    IN_USE.with(|u| u.get())
}

/// A copy of the current context, for a new task; `None` while none is in use.
#[inline]
pub(crate) fn copy_for_task() -> Option<Context> {
    if !in_use() {
        return None;
    }
    CURRENT.with(|c| c.borrow().as_ref().map(Context::copy))
}

/// The current context, created (for the thread or the running task) on first use.
fn current() -> Context {
    if let Some(ctx) = CURRENT.with(|c| c.borrow().clone()) {
        return ctx;
    }
    let task = crate::current_task();
    // A task given a context while none was in use on the thread (a
    // `Runner`'s, say) runs without entering it until it needs it: now.
    let ctx = match task.as_ref().and_then(|t| t.context()) {
        Some(ctx) => ctx,
        None => {
            let ctx = Context::new();
            if let Some(task) = &task {
                task.attach_context(ctx.clone());
            }
            ctx
        }
    };
    enter(Some(ctx.clone()));
    ctx
}

/// A copy of the current context, as `contextvars.copy_context()`.
///
/// ```
/// let var = asyncio::ContextVar::new("user");
/// asyncio::run(async move {
///     var.set("alice");
///     let snapshot = asyncio::copy_context();
///     var.set("bob");
///     let seen = snapshot.run(|| var.get());
///     assert_eq!(seen, Some("alice"));
///     assert_eq!(var.get(), Some("bob"));
/// })
/// .unwrap();
/// ```
pub fn copy_context() -> Context {
    match CURRENT.with(|c| c.borrow().clone()) {
        Some(ctx) => ctx.copy(),
        None => Context::new(),
    }
}

static NEXT_VAR: AtomicU64 = AtomicU64::new(1);

/// A context variable, as Python's `contextvars.ContextVar`.
///
/// Values are per context: a task sees the values its creator had when it was
/// created, plus its own changes. Clones of a `ContextVar` are the same variable.
///
/// ```
/// use asyncio::{ContextVar, EventLoop, create_task};
///
/// let request_id = ContextVar::with_default("request_id", 0u32);
/// let lp = EventLoop::new();
/// let rid = request_id.clone();
/// let seen = lp
///     .run_until_complete(async move {
///         rid.set(7);
///         let inner = rid.clone();
///         let child = create_task(async move {
///             let inherited = inner.get();
///             inner.set(8); // the child's own context only
///             inherited
///         });
///         (child.await.unwrap(), rid.get())
///     })
///     .unwrap();
/// assert_eq!(seen, (Some(7), Some(7)));
/// ```
pub struct ContextVar<T> {
    id: u64,
    name: Rc<str>,
    default: Option<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Clone + 'static> ContextVar<T> {
    /// A variable with no default: `get` returns `None` until it is set.
    pub fn new(name: &str) -> Self {
        ContextVar {
            id: NEXT_VAR.fetch_add(1, Ordering::Relaxed),
            name: Rc::from(name),
            default: None,
            _not_send: PhantomData,
        }
    }

    /// A variable whose value is `default` until it is set.
    pub fn with_default(name: &str, default: T) -> Self {
        ContextVar {
            default: Some(default),
            ..ContextVar::new(name)
        }
    }

    /// The variable's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value in the current context, else the default, else `None` (where
    /// Python raises `LookupError`).
    pub fn get(&self) -> Option<T> {
        let found = CURRENT.with(|c| {
            c.borrow()
                .as_ref()
                .and_then(|ctx| ctx.cell.map.borrow().get(&self.id).cloned())
        });
        match found {
            Some(v) => Some(
                v.downcast_ref::<T>()
                    .expect("a ContextVar id is only ever bound to its own type")
                    .clone(),
            ),
            None => self.default.clone(),
        }
    }

    /// Sets the value in the current context; the token undoes it with
    /// [`reset`](Self::reset).
    pub fn set(&self, value: T) -> Token<T> {
        let ctx = current();
        let old = {
            let mut map = ctx.cell.map.borrow_mut();
            Rc::make_mut(&mut map).insert(self.id, Rc::new(value))
        };
        Token {
            var: self.id,
            ctx,
            old,
            _t: PhantomData,
        }
    }

    /// Restores the value the variable had before the `set` that made `token`.
    ///
    /// # Errors
    /// [`ContextError::WrongVar`] for another variable's token, and
    /// [`ContextError::WrongContext`] when called in another context than the
    /// `set` (Python's `ValueError`). A token is consumed, so it cannot be used
    /// twice (Python's `RuntimeError`).
    pub fn reset(&self, token: Token<T>) -> Result<(), ContextError> {
        if token.var != self.id {
            return Err(ContextError::WrongVar);
        }
        let same_context =
            CURRENT.with(|c| c.borrow().as_ref().is_some_and(|ctx| ctx.same(&token.ctx)));
        if !same_context {
            return Err(ContextError::WrongContext);
        }
        let replaced = {
            let mut map = token.ctx.cell.map.borrow_mut();
            let map = Rc::make_mut(&mut map);
            match token.old {
                Some(old) => map.insert(self.id, old),
                None => map.remove(&self.id),
            }
        };
        // Dropped once the map is no longer borrowed: its destructor may read
        // context variables.
        drop(replaced);
        Ok(())
    }
}

impl<T> Clone for ContextVar<T>
where
    T: Clone,
{
    fn clone(&self) -> Self {
        ContextVar {
            id: self.id,
            name: Rc::clone(&self.name),
            default: self.default.clone(),
            _not_send: PhantomData,
        }
    }
}

impl<T> fmt::Debug for ContextVar<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextVar")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What [`ContextVar::set`] returns, to undo the change with
/// [`ContextVar::reset`].
///
/// ```
/// let var = asyncio::ContextVar::new("level");
/// asyncio::Context::new().run(|| {
///     var.set(1);
///     let token = var.set(2);
///     var.reset(token).unwrap();
///     assert_eq!(var.get(), Some(1));
/// });
/// ```
pub struct Token<T> {
    var: u64,
    ctx: Context,
    old: Option<Rc<dyn Any>>,
    _t: PhantomData<T>,
}

impl<T> fmt::Debug for Token<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("var", &self.var)
            .finish_non_exhaustive()
    }
}

/// Why [`ContextVar::reset`] refused a token.
///
/// ```
/// let a = asyncio::ContextVar::new("a");
/// let b = asyncio::ContextVar::new("b");
/// asyncio::Context::new().run(|| {
///     let token = a.set(1);
///     assert_eq!(b.reset(token), Err(asyncio::ContextError::WrongVar));
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// The token was made by another variable.
    #[error("the token was created by a different ContextVar")]
    WrongVar,
    /// The token was made in another context.
    #[error("the token was created in a different Context")]
    WrongContext,
}
