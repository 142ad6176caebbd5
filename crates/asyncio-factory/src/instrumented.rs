//! A wrapper that counts what another factory's tasks did at their start.

use std::cell::Cell;
use std::rc::Rc;

use asyncio_core::{StartMode, TaskFactory, TaskRef};

/// Counts kept by an [`InstrumentedFactory`].
///
/// ```
/// let factory = asyncio::InstrumentedFactory::new(asyncio::eager_task_factory);
/// let stats = factory.stats_handle();
/// asyncio::run(async move {
///     asyncio::set_task_factory(factory);
///     asyncio::create_task(async {});
///     asyncio::create_task(asyncio::yield_now());
/// })
/// .unwrap();
/// let s: asyncio::FactoryStats = stats.get();
/// assert_eq!((s.created, s.finished_eagerly, s.suspended), (2, 1, 1));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactoryStats {
    /// Tasks created through the factory.
    pub created: u64,
    /// Tasks that finished during their eager step (never scheduled).
    pub finished_eagerly: u64,
    /// Tasks that started eagerly and suspended, so were scheduled after all.
    pub suspended: u64,
    /// Tasks started lazily (scheduled at once).
    pub scheduled: u64,
}

#[derive(Debug, Default)]
struct Counters {
    created: Cell<u64>,
    finished_eagerly: Cell<u64>,
    suspended: Cell<u64>,
    scheduled: Cell<u64>,
}

/// Wraps a factory and counts how its tasks start, so you can see whether the
/// eager start helps a workload: it does when most tasks finish eagerly.
///
/// ```
/// use asyncio::{EventLoop, create_task, yield_now};
/// use asyncio::{InstrumentedFactory, eager_task_factory};
///
/// let lp = EventLoop::new();
/// let factory = InstrumentedFactory::new(eager_task_factory);
/// let stats = factory.stats_handle();
/// lp.set_task_factory(factory);
/// lp.run_until_complete(async {
///     create_task(async {});
///     create_task(async { yield_now().await });
/// })
/// .unwrap();
/// let s = stats.get();
/// // The main task counts too: it finished without suspending.
/// assert_eq!((s.created, s.finished_eagerly, s.suspended), (3, 2, 1));
/// ```
///
/// ```
/// let factory = asyncio::InstrumentedFactory::new(asyncio::LazyTaskFactory);
/// let stats = factory.stats_handle();
/// asyncio::run(async move {
///     asyncio::set_task_factory(factory);
///     asyncio::create_task(async {}).await.unwrap();
/// })
/// .unwrap();
/// assert_eq!(stats.get().scheduled, 1);
/// ```
#[derive(Debug)]
pub struct InstrumentedFactory<F> {
    inner: F,
    counters: Rc<Counters>,
}

/// Reads the counts of an [`InstrumentedFactory`] after it was installed.
///
/// ```
/// let factory = asyncio::InstrumentedFactory::new(asyncio::eager_task_factory);
/// let handle: asyncio::StatsHandle = factory.stats_handle();
/// assert_eq!(handle.get(), asyncio::FactoryStats::default());
/// ```
#[derive(Debug, Clone)]
pub struct StatsHandle {
    counters: Rc<Counters>,
}

impl StatsHandle {
    /// The counts so far.
    pub fn get(&self) -> FactoryStats {
        let c = &self.counters;
        FactoryStats {
            created: c.created.get(),
            finished_eagerly: c.finished_eagerly.get(),
            suspended: c.suspended.get(),
            scheduled: c.scheduled.get(),
        }
    }
}

impl<F: TaskFactory> InstrumentedFactory<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> Self {
        InstrumentedFactory {
            inner,
            counters: Rc::default(),
        }
    }

    /// A handle that reads the counts once the factory is installed in a loop.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            counters: Rc::clone(&self.counters),
        }
    }

    /// The counts so far.
    pub fn stats(&self) -> FactoryStats {
        self.stats_handle().get()
    }
}

impl<F: TaskFactory> TaskFactory for InstrumentedFactory<F> {
    fn create(&self, task: &TaskRef) -> StartMode {
        let c = &self.counters;
        c.created.set(c.created.get() + 1);
        self.inner.create(task)
    }

    fn started(&self, task: &TaskRef, mode: StartMode) {
        self.inner.started(task, mode);
        let c = &self.counters;
        let counter = match mode {
            StartMode::Lazy => &c.scheduled,
            StartMode::Eager if task.done() => &c.finished_eagerly,
            StartMode::Eager => &c.suspended,
        };
        counter.set(counter.get() + 1);
    }
}
