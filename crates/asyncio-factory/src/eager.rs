//! The eager strategy, plain and with a per-task constructor.

use std::fmt;

use asyncio_core::{StartMode, TaskFactory, TaskRef};

/// Starts every task eagerly (the type of [`eager_task_factory`]).
///
/// ```
/// asyncio::run(async {
///     asyncio::set_task_factory(asyncio::EagerTaskFactory);
///     assert!(asyncio::create_task(async {}).done(), "finished inside create_task");
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EagerTaskFactory;

impl TaskFactory for EagerTaskFactory {
    fn create(&self, _task: &TaskRef) -> StartMode {
        StartMode::Eager
    }

    fn fixed_mode(&self) -> Option<StartMode> {
        Some(StartMode::Eager)
    }
}

/// asyncio's `eager_task_factory`: each new task runs inside `create_task` until
/// it first suspends; a task that finishes there is never scheduled.
///
/// ```
/// let lp = asyncio::EventLoop::new();
/// lp.set_task_factory(asyncio::eager_task_factory);
/// ```
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
///
/// let order = Rc::new(RefCell::new(Vec::new()));
/// let o = order.clone();
/// asyncio::run(async move {
///     asyncio::set_task_factory(asyncio::eager_task_factory);
///     let o2 = o.clone();
///     let t = asyncio::create_task(async move { o2.borrow_mut().push("child") });
///     o.borrow_mut().push("parent");
///     t.await.unwrap();
/// })
/// .unwrap();
/// assert_eq!(*order.borrow(), ["child", "parent"]);
/// ```
#[allow(non_upper_case_globals)]
pub const eager_task_factory: EagerTaskFactory = EagerTaskFactory;

/// asyncio's `create_eager_task_factory(custom_task_constructor)`.
///
/// Rust has no task subclasses; `ctor` is called with each new task before its
/// eager step instead, and may name it, add done callbacks or record it.
///
/// ```
/// use asyncio::{EventLoop, create_task};
///
/// let lp = EventLoop::new();
/// lp.set_task_factory(asyncio::create_eager_task_factory(|t| t.set_name("eager")));
/// let name = lp.run_until_complete(async { create_task(async {}).name() }).unwrap();
/// assert_eq!(name, "eager");
/// ```
///
/// ```
/// let name = asyncio::run(async {
///     asyncio::set_task_factory(asyncio::create_eager_task_factory(|t| t.set_name("eager")));
///     asyncio::create_task(async {}).name()
/// })
/// .unwrap();
/// assert_eq!(name, "eager");
/// ```
pub fn create_eager_task_factory<C>(ctor: C) -> EagerTaskFactoryWith<C>
where
    C: Fn(&TaskRef) + 'static,
{
    EagerTaskFactoryWith { ctor }
}

/// The factory [`create_eager_task_factory`] returns.
///
/// ```
/// let factory: asyncio::EagerTaskFactoryWith<_> =
///     asyncio::create_eager_task_factory(|t: &asyncio::TaskRef| t.set_name("worker"));
/// asyncio::run(async move {
///     asyncio::set_task_factory(factory);
///     assert_eq!(asyncio::create_task(async {}).name(), "worker");
/// })
/// .unwrap();
/// ```
pub struct EagerTaskFactoryWith<C> {
    ctor: C,
}

impl<C: Fn(&TaskRef) + 'static> TaskFactory for EagerTaskFactoryWith<C> {
    fn create(&self, task: &TaskRef) -> StartMode {
        (self.ctor)(task);
        StartMode::Eager
    }
}

impl<C> fmt::Debug for EagerTaskFactoryWith<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EagerTaskFactoryWith")
            .finish_non_exhaustive()
    }
}
