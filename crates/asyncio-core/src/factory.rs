//! The task-factory extension point: how a new task starts.
//!
//! The loop owns the mechanism (schedule the task, or run its first step inside
//! `create_task`); a [`TaskFactory`] picks one per task and may customise the task
//! on the way. The strategies users pick by name (`eager_task_factory`,
//! `create_eager_task_factory`, …) live in the `asyncio-factory` crate.

use crate::task::TaskRef;

/// How a new task starts.
///
/// ```
/// use asyncio::{StartMode, TaskFactory, TaskRef};
///
/// /// Starts tasks named "urgent" at once, the others later.
/// struct UrgentFirst;
/// impl TaskFactory for UrgentFirst {
///     fn create(&self, task: &TaskRef) -> StartMode {
///         if task.name() == "urgent" { StartMode::Eager } else { StartMode::Lazy }
///     }
/// }
///
/// asyncio::run(async {
///     asyncio::set_task_factory(UrgentFirst);
///     let t = asyncio::create_task_with(async {}, asyncio::TaskOptions::new().name("urgent"));
///     assert!(t.done());
///     assert!(!asyncio::create_task(async {}).done());
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartMode {
    /// Put the task at the back of the ready queue; it first runs on a later loop
    /// iteration (asyncio's default).
    Lazy,
    /// Run the task's first step inside `create_task`, until it first suspends; a
    /// task that finishes there is never scheduled (asyncio's eager task factory).
    /// Falls back to `Lazy` when the loop is not running, or when eager steps are
    /// already nested [`MAX_EAGER_DEPTH`](crate::MAX_EAGER_DEPTH) deep.
    Eager,
}

/// Decides how each new task of a loop starts (`loop.set_task_factory`).
///
/// A factory sees the task type-erased, so one factory serves every future type
/// and can be stored in the loop. It may rename the task or add done callbacks
/// before choosing the start.
///
/// ```
/// use asyncio::{EventLoop, StartMode, TaskFactory, TaskRef};
///
/// struct Named;
/// impl TaskFactory for Named {
///     fn create(&self, task: &TaskRef) -> StartMode {
///         task.set_name(format!("worker-{}", task.id()));
///         StartMode::Lazy
///     }
/// }
///
/// let lp = EventLoop::new();
/// lp.set_task_factory(Named);
/// let name = lp.run_until_complete(async {
///     asyncio::create_task(async {}).name()
/// });
/// assert!(name.unwrap().starts_with("worker-"));
/// ```
pub trait TaskFactory: 'static {
    /// Called for each new task before it starts: returns how it starts.
    fn create(&self, task: &TaskRef) -> StartMode;

    /// Called once the task started, with the mode it actually started in (an
    /// eager start falls back to lazy off a running loop or past
    /// [`MAX_EAGER_DEPTH`](crate::MAX_EAGER_DEPTH)): after its eager step (the
    /// task may be done already) or once it was scheduled. A panic here does
    /// not leave `create_task`: it goes to the loop's exception handler, since
    /// the task already runs.
    fn started(&self, task: &TaskRef, mode: StartMode) {
        let _ = (task, mode);
    }

    /// When every task gets the same mode and `create`/`started` do nothing else,
    /// return that mode: the loop then skips both calls on its spawn path.
    fn fixed_mode(&self) -> Option<StartMode> {
        None
    }
}

/// The default factory: every task starts lazily.
///
/// ```
/// asyncio::run(async {
///     asyncio::set_task_factory(asyncio::eager_task_factory);
///     asyncio::set_task_factory(asyncio::LazyTaskFactory);
///     assert!(!asyncio::create_task(async {}).done(), "lazy again");
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LazyTaskFactory;

impl TaskFactory for LazyTaskFactory {
    fn create(&self, _task: &TaskRef) -> StartMode {
        StartMode::Lazy
    }

    fn fixed_mode(&self) -> Option<StartMode> {
        Some(StartMode::Lazy)
    }
}

/// Per-call settings for [`create_task_with`](crate::create_task_with).
///
/// ```
/// use asyncio::{EventLoop, TaskOptions};
///
/// let lp = EventLoop::new();
/// lp.run_until_complete(async {
///     let opts = TaskOptions::new().name("fetch").eager_start(true);
///     let task = asyncio::create_task_with(async { 1 }, opts);
///     assert_eq!(task.name(), "fetch");
///     assert!(task.done(), "an eager task that does not suspend finishes inside create_task");
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct TaskOptions {
    pub(crate) name: Option<String>,
    pub(crate) eager_start: Option<bool>,
    pub(crate) context: Option<crate::contextvars::Context>,
}

impl TaskOptions {
    /// No name, the loop's factory decides the start.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the task (asyncio's `name=`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Runs the task in `context` instead of a copy of the creator's (asyncio's
    /// `context=`).
    pub fn context(mut self, context: crate::contextvars::Context) -> Self {
        self.context = Some(context);
        self
    }

    /// Starts this task eagerly (`true`) or lazily (`false`) whatever the loop's
    /// factory says (Python 3.14's `eager_start=`).
    pub fn eager_start(mut self, eager: bool) -> Self {
        self.eager_start = Some(eager);
        self
    }
}
