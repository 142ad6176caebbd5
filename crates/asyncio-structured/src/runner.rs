//! `asyncio.run` and `asyncio.Runner`.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::rc::Rc;

use asyncio_core::{
    Context, EventLoop, RunError, RuntimeError, TaskFactory, TaskOptions, get_running_loop,
};

/// Runs `future` on a new event loop and closes the loop, as `asyncio.run`.
///
/// The future runs as the loop's main task. When it finishes, every task still
/// pending is cancelled and run until its cancellation completes, then the loop is
/// closed: no task outlives `run`.
///
/// # Errors
/// [`RuntimeError::AnotherLoopRunning`] when called from inside a running loop
/// (await the future there instead), and [`RunError::Cancelled`] when the main
/// task was cancelled.
///
/// # Panics
/// A panic in the main future is resumed here after the loop was closed, as
/// asyncio re-raises the main coroutine's exception.
///
/// ```
/// let r = asyncio::run(async {
///     // Nesting is refused with an error, never a hang.
///     asyncio::run(async { 1 })
/// });
/// assert!(r.unwrap().is_err());
/// ```
///
/// The main future may borrow from the caller, as `futures::executor::block_on`'s
/// (the tasks it creates are `'static`, as every task):
///
/// ```
/// let mut n = 0;
/// asyncio::run(async { n += 1 }).unwrap();
/// assert_eq!(n, 1);
/// ```
pub fn run<F>(future: F) -> Result<F::Output, RunError>
where
    F: Future,
{
    if get_running_loop().is_ok() {
        return Err(RuntimeError::AnotherLoopRunning.into());
    }
    let runner = Runner::new();
    let out = runner.run(future);
    runner.close()?;
    out
}

/// Configures a [`Runner`].
///
/// ```
/// let runner = asyncio::Runner::builder()
///     .debug(true)
///     .task_factory(asyncio::eager_task_factory)
///     .build();
/// let eager = runner
///     .run(async {
///         assert!(asyncio::get_running_loop().unwrap().get_debug());
///         asyncio::create_task(async {}).done()
///     })
///     .unwrap();
/// assert!(eager);
/// runner.close().unwrap();
/// ```
#[derive(Default)]
pub struct RunnerBuilder {
    debug: Option<bool>,
    task_factory: Option<Rc<dyn TaskFactory>>,
    handle_sigint: Option<bool>,
}

impl RunnerBuilder {
    /// Turns the loop's debug mode on or off (asyncio's `debug=`).
    pub fn debug(mut self, enabled: bool) -> Self {
        self.debug = Some(enabled);
        self
    }

    /// Installs a task factory on the loop before the first `run`, so the main
    /// task is created through it too.
    pub fn task_factory(mut self, factory: impl TaskFactory) -> Self {
        self.task_factory = Some(Rc::new(factory));
        self
    }

    /// The runner. Its loop is created lazily, on the first `run` or `get_loop`.
    /// Whether Ctrl-C (SIGINT) during [`Runner::run`] cancels the main task
    /// (the run then returns [`RunError::Interrupted`]; a second Ctrl-C while
    /// it is being cancelled ends the process, killed by SIGINT, as Python's
    /// `KeyboardInterrupt`). By default, as asyncio's Runner: only on the
    /// program's main thread, and only while SIGINT has its default action
    /// (a program started with SIGINT ignored, by `nohup` or as a shell's
    /// background job, keeps ignoring it; Python's Runner likewise leaves
    /// SIGINT alone unless its handler is the default one). `true` catches it
    /// anyway, on any thread; when the run ends SIGINT gets its previous
    /// action back.
    pub fn handle_sigint(mut self, enabled: bool) -> Self {
        self.handle_sigint = Some(enabled);
        self
    }

    /// Creates the runner (its loop is created on first use).
    pub fn build(self) -> Runner {
        let sigint = self.handle_sigint.unwrap_or_else(|| {
            std::thread::current().name() == Some("main")
                && asyncio_core::signal_action_is_default(signal_hook::consts::SIGINT)
        });
        Runner {
            state: RefCell::new(State::Fresh(self)),
            sigint,
        }
    }
}

impl fmt::Debug for RunnerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunnerBuilder")
            .field("debug", &self.debug)
            .field("task_factory", &self.task_factory.is_some())
            .finish()
    }
}

enum State {
    Fresh(RunnerBuilder),
    /// The loop, and the context every `run` uses (asyncio's runner copies
    /// the thread's context once, when it makes its loop).
    Open(EventLoop, Context),
    Closed,
}

/// Runs several top-level futures on one event loop, as `asyncio.Runner`.
///
/// Each [`run`](Self::run) call runs a future as the loop's main task; tasks it
/// leaves pending stay on the loop for later calls. [`close`](Self::close) (or
/// dropping the runner) cancels what is left, lets it finish its cancellation and
/// closes the loop.
///
/// ```
/// use asyncio::Runner;
///
/// let runner = Runner::new();
/// let first = runner.run(async { 1 }).unwrap();
/// let second = runner.run(async { 2 }).unwrap();
/// assert_eq!(first + second, 3);
/// runner.close().unwrap();
/// runner.close().unwrap(); // idempotent
/// ```
pub struct Runner {
    state: RefCell<State>,
    sigint: bool,
}

impl Runner {
    /// A runner with default settings.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        RunnerBuilder::default().build()
    }

    /// Configures a runner (debug mode, task factory).
    pub fn builder() -> RunnerBuilder {
        RunnerBuilder::default()
    }

    /// The runner's loop, created on first use.
    ///
    /// # Errors
    /// [`RuntimeError::Closed`] once the runner was closed.
    pub fn get_loop(&self) -> Result<EventLoop, RuntimeError> {
        let mut state = self.state.borrow_mut();
        if let State::Fresh(builder) = &mut *state {
            let lp = EventLoop::new();
            if let Some(debug) = builder.debug {
                lp.set_debug(debug);
            }
            if let Some(f) = builder.task_factory.take() {
                lp.set_task_factory_rc(Some(f));
            }
            *state = State::Open(lp, asyncio_core::copy_context());
        }
        match &*state {
            State::Open(lp, _) => Ok(lp.clone()),
            State::Closed => Err(RuntimeError::Closed),
            State::Fresh(_) => unreachable!("initialised above"),
        }
    }

    /// Runs `future` to completion on the runner's loop and returns its output.
    ///
    /// The main task runs in the runner's context (a copy of the thread's
    /// context, made when the runner opened its loop), the same for every
    /// run, as asyncio's: a context variable one run sets, the next run sees.
    ///
    /// # Errors
    /// [`RuntimeError::Closed`] after `close`, [`RuntimeError::AlreadyRunning`] /
    /// [`RuntimeError::AnotherLoopRunning`] from inside a running loop (never a
    /// deadlock), [`RunError::Cancelled`] if the main task was cancelled.
    ///
    /// # Panics
    /// A panic of the main future is resumed here; the runner stays usable.
    pub fn run<F>(&self, future: F) -> Result<F::Output, RunError>
    where
        F: Future,
    {
        if let Ok(running) = get_running_loop() {
            let ours =
                matches!(&*self.state.borrow(), State::Open(lp, _) if lp.same_loop(&running));
            return Err(if ours {
                RuntimeError::AlreadyRunning
            } else {
                RuntimeError::AnotherLoopRunning
            }
            .into());
        }
        let lp = self.get_loop()?;
        let context = match &*self.state.borrow() {
            State::Open(_, ctx) => ctx.clone(),
            _ => unreachable!("get_loop opened the runner"),
        };
        // One context for every run, as asyncio's `Runner.run`: what one run's
        // main task sets, the next one sees.
        self.run_main(&lp, future, Some(TaskOptions::new().context(context)))
    }

    /// Runs the main future, with Ctrl-C handling when enabled.
    fn run_main<F>(
        &self,
        lp: &EventLoop,
        future: F,
        options: Option<TaskOptions>,
    ) -> Result<F::Output, RunError>
    where
        F: Future,
    {
        let guard = if self.sigint {
            crate::sigint::SigintGuard::install(lp).ok()
        } else {
            None
        };
        let Some(guard) = guard else {
            return match options {
                Some(o) => lp.run_until_complete_with(future, o),
                None => lp.run_until_complete(future),
            };
        };
        let wrapped = guard.wrap(future);
        let out = match options {
            Some(o) => lp.run_until_complete_with(wrapped, o),
            None => lp.run_until_complete(wrapped),
        };
        drop(guard);
        match out? {
            Ok(value) => Ok(value),
            Err(()) => Err(RunError::Interrupted),
        }
    }

    /// Runs `future` as [`run`](Self::run) does, with `context` as the main task's
    /// context (asyncio's `runner.run(coro, context=ctx)`); the task's changes to
    /// context variables stay in `context`.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_in_context<F>(&self, future: F, context: Context) -> Result<F::Output, RunError>
    where
        F: Future,
    {
        if get_running_loop().is_ok() {
            return self.run(future);
        }
        let lp = self.get_loop()?;
        self.run_main(&lp, future, Some(TaskOptions::new().context(context)))
    }

    /// Cancels every task left, runs the loop until their cancellation finished,
    /// and closes the loop. Closing again does nothing.
    ///
    /// # Errors
    /// [`RuntimeError::CloseWhileRunning`] when called from inside the runner's
    /// own loop.
    pub fn close(&self) -> Result<(), RuntimeError> {
        let open = match &*self.state.borrow() {
            State::Open(lp, _) => Some(lp.clone()),
            _ => None,
        };
        let Some(lp) = open else {
            drop(self.state.replace(State::Closed));
            return Ok(());
        };
        if lp.is_running() {
            return Err(RuntimeError::CloseWhileRunning);
        }
        let cancelled = lp.cancel_all_tasks();
        // asyncio's Runner.close: wait (up to 300 s) for the default executor's
        // running jobs; on timeout they go on in the background, as there.
        if lp
            .shutdown_default_executor_blocking(EXECUTOR_SHUTDOWN_TIMEOUT)
            .is_err()
        {
            eprintln!(
                "asyncio: the default executor did not finish within {} seconds",
                EXECUTOR_SHUTDOWN_TIMEOUT.as_secs()
            );
        }
        let closed = lp.close();
        drop(self.state.replace(State::Closed));
        cancelled.and(closed)
    }
}

/// How long `Runner::close` waits for the default executor (CPython's
/// `THREAD_JOIN_TIMEOUT`).
///
/// ```
/// // How long closing a runner waits for `to_thread` work still running.
/// assert_eq!(asyncio::EXECUTOR_SHUTDOWN_TIMEOUT.as_secs(), 300);
/// ```
pub const EXECUTOR_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

impl Drop for Runner {
    fn drop(&mut self) {
        // Only fails when dropped inside its own running loop, which `&self`
        // borrows make impossible; the loop then closes when its last handle goes.
        let _ = self.close();
    }
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.state.borrow() {
            State::Fresh(_) => "fresh",
            State::Open(..) => "open",
            State::Closed => "closed",
        };
        f.debug_struct("Runner").field("state", &state).finish()
    }
}
