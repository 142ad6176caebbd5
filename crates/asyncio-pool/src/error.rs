//! The errors of a pool: why `LoopPool::run` produced no values, and why a
//! hand-off was refused.

use std::error::Error;
use std::fmt;
use std::io;
use std::sync::Arc;

use asyncio_core::{PanicError, RuntimeError};

/// One failed worker: its main future returned an error, panicked, or its
/// thread could not be set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum WorkerFailure {
    /// The worker's future returned `Err(error)` (or its loop refused to run).
    Error {
        /// The worker's index.
        worker: usize,
        /// What it returned (see [`WorkerError`]).
        error: WorkerError,
    },
    /// The worker's future (or the factory building it) panicked.
    Panic {
        /// The worker's index.
        worker: usize,
        /// The caught panic, with its message.
        panic: PanicError,
    },
}

impl WorkerFailure {
    /// The index of the worker that failed.
    pub fn worker(&self) -> usize {
        match self {
            WorkerFailure::Error { worker, .. } | WorkerFailure::Panic { worker, .. } => *worker,
        }
    }

    /// Whether the failure is a panic.
    pub fn is_panic(&self) -> bool {
        matches!(self, WorkerFailure::Panic { .. })
    }
}

impl fmt::Display for WorkerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerFailure::Error { worker, error } => {
                // The whole chain: the pool's error has no source to follow.
                write!(f, "worker {worker}: {error}")?;
                for source in error.sources() {
                    write!(f, ": {source}")?;
                }
                Ok(())
            }
            WorkerFailure::Panic { worker, panic } => {
                write!(f, "worker {worker}: panicked: {}", panic.message())
            }
        }
    }
}

/// A worker's error, brought back to the thread that ran the pool: the
/// typed error itself (workers' errors are `Send + Sync`, as a `TaskGroup`
/// child's), readable with [`downcast_ref`](Self::downcast_ref), and its
/// message.
///
/// ```
/// use std::io;
///
/// let err = asyncio_pool::LoopPool::new()
///     .workers(2)
///     .run(|w| async move {
///         if w.index() == 1 {
///             return Err(io::Error::new(io::ErrorKind::AddrInUse, "port taken"));
///         }
///         Ok(())
///     })
///     .unwrap_err();
/// let asyncio_pool::WorkerFailure::Error { worker, error } = &err.failures()[0] else { panic!() };
/// assert_eq!(*worker, 1);
/// let io = error.downcast_ref::<io::Error>().unwrap();
/// assert_eq!(io.kind(), io::ErrorKind::AddrInUse);
/// ```
#[derive(Debug, Clone)]
pub struct WorkerError {
    error: Arc<dyn Error + Send + Sync + 'static>,
    message: String,
    sources: Vec<String>,
}

impl WorkerError {
    pub(crate) fn new(error: Box<dyn Error + Send + Sync + 'static>) -> Self {
        let mut sources = Vec::new();
        let mut next = error.source();
        while let Some(e) = next {
            sources.push(e.to_string());
            next = e.source();
        }
        WorkerError {
            message: error.to_string(),
            sources,
            error: Arc::from(error),
        }
    }

    /// The error the worker returned.
    pub fn error(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.error
    }

    /// The worker's error as an `E`, if it is one.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.error.downcast_ref::<E>()
    }

    /// Whether the worker's error is an `E`.
    pub fn is<E: Error + 'static>(&self) -> bool {
        self.error.is::<E>()
    }

    /// The error's message (its `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The messages of the error's `source()` chain, nearest first.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }
}

impl PartialEq for WorkerError {
    /// Two worker errors are equal when their messages are.
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message && self.sources == other.sources
    }
}

impl Eq for WorkerError {}

/// The worker's error's own message; [`source`](Error::source) goes on with
/// that error's source.
impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for WorkerError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.error.source()
    }
}

/// The failures of a pool's workers, in the order the pool saw them (a
/// `TaskGroup`'s `ExceptionGroup`, across loops). The workers cancelled
/// because of the first failure are not in it.
#[derive(Debug)]
pub struct WorkerErrors {
    failures: Vec<WorkerFailure>,
}

impl WorkerErrors {
    pub(crate) fn new(failures: Vec<WorkerFailure>) -> Self {
        debug_assert!(!failures.is_empty());
        WorkerErrors { failures }
    }

    /// The failures, first one first.
    pub fn failures(&self) -> &[WorkerFailure] {
        &self.failures
    }

    /// Takes the failures.
    pub fn into_failures(self) -> Vec<WorkerFailure> {
        self.failures
    }

    /// How many workers failed (at least one).
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    /// Always `false`: there is at least one failure.
    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for WorkerErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.failures.len();
        write!(
            f,
            "unhandled errors in a LoopPool ({n} sub-exception{})",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, failure) in self.failures.iter().enumerate() {
            write!(f, "\n  [{}] {failure}", i + 1)?;
        }
        Ok(())
    }
}

impl Error for WorkerErrors {}

/// Why [`LoopPool::run`](crate::LoopPool::run) returned no values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// `workers(0)`: a pool needs at least one loop.
    #[error("a LoopPool needs at least one worker: call workers(n) with n >= 1")]
    NoWorkers,
    /// `run` was called inside a running loop (it would block that loop).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A worker thread could not be started; the workers already started
    /// were stopped.
    #[error("could not start the thread of worker {worker}")]
    Spawn {
        /// The worker whose thread failed to start.
        worker: usize,
        /// The OS's error.
        source: io::Error,
    },
    /// One or more workers failed; the others were cancelled.
    #[error(transparent)]
    Failed(#[from] WorkerErrors),
    /// Ctrl-C (SIGINT) cancelled every worker's main task (asyncio raises
    /// `KeyboardInterrupt`).
    #[error("interrupted by Ctrl-C (SIGINT): every worker's main task was cancelled")]
    Interrupted,
    /// [`PoolHandle::cancel`](crate::PoolHandle::cancel) cancelled the
    /// workers before they all finished.
    #[error("the pool was cancelled before every worker finished")]
    Cancelled,
}

impl PoolError {
    /// The worker failures, if that is why the run failed.
    pub fn failures(&self) -> &[WorkerFailure] {
        match self {
            PoolError::Failed(group) => group.failures(),
            _ => &[],
        }
    }
}

/// A hand-off to a loop of the pool was refused because that loop is closed
/// (its worker finished, or the pool ended). The job comes back in `job`,
/// never dropped silently.
#[derive(thiserror::Error)]
#[error(
    "worker {worker}'s loop is closed: the job was not handed off (it is returned in the error)"
)]
pub struct HandoffError<F> {
    /// The worker whose loop refused the job.
    pub worker: usize,
    /// The job, given back.
    pub job: F,
}

impl<F> fmt::Debug for HandoffError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandoffError")
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

/// What a worker's future may return: `()`, or a `Result` whose `Err` counts
/// as the worker's failure. Values and errors cross back to the thread that
/// called `run`, so both must be `Send` (errors `Sync` too, as a `TaskGroup`
/// child's error, an `anyhow::Error` or an `io::Error` are): the error comes
/// back typed, in a [`WorkerError`]. An error holding an `Rc` can be turned
/// into text first (`.map_err(|e| e.to_string())`).
pub trait WorkerOutput: 'static {
    /// The value of a successful worker.
    type Ok: Send + 'static;

    /// Splits success from failure.
    fn into_result(self) -> Result<Self::Ok, Box<dyn Error + Send + Sync + 'static>>;
}

impl WorkerOutput for () {
    type Ok = ();

    fn into_result(self) -> Result<(), Box<dyn Error + Send + Sync + 'static>> {
        Ok(())
    }
}

impl<T, E> WorkerOutput for Result<T, E>
where
    T: Send + 'static,
    E: Into<Box<dyn Error + Send + Sync + 'static>> + 'static,
{
    type Ok = T;

    fn into_result(self) -> Result<T, Box<dyn Error + Send + Sync + 'static>> {
        self.map_err(Into::into)
    }
}
