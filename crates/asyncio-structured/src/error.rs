//! The errors of structured concurrency.

use std::error::Error;
use std::fmt;

use asyncio_core::PanicError;

/// One failed child of a [`TaskGroup`](crate::TaskGroup): an error it returned,
/// or a panic.
#[derive(Debug)]
#[non_exhaustive]
pub enum ChildFailure {
    /// The child returned `Err(error)`.
    Error {
        /// The child task's name.
        task: String,
        /// What it returned.
        error: Box<dyn Error + 'static>,
    },
    /// The child (or the group's body) panicked.
    Panic {
        /// The task's name.
        task: String,
        /// The caught panic.
        panic: PanicError,
    },
}

impl ChildFailure {
    /// The name of the task that failed.
    pub fn task_name(&self) -> &str {
        match self {
            ChildFailure::Error { task, .. } | ChildFailure::Panic { task, .. } => task,
        }
    }

    /// Whether the failure is a panic.
    pub fn is_panic(&self) -> bool {
        matches!(self, ChildFailure::Panic { .. })
    }
}

impl fmt::Display for ChildFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildFailure::Error { task, error } => write!(f, "{task}: {error}"),
            ChildFailure::Panic { task, panic } => {
                write!(f, "{task}: panicked: {}", panic.message())
            }
        }
    }
}

/// The failures of a task group, in the order they happened (asyncio's
/// `ExceptionGroup` as a `TaskGroup` raises it).
#[derive(Debug)]
pub struct ExceptionGroup {
    failures: Vec<ChildFailure>,
}

impl ExceptionGroup {
    pub(crate) fn new(failures: Vec<ChildFailure>) -> Self {
        debug_assert!(!failures.is_empty());
        ExceptionGroup { failures }
    }

    /// The failures, first one first.
    pub fn failures(&self) -> &[ChildFailure] {
        &self.failures
    }

    /// Takes the failures.
    pub fn into_failures(self) -> Vec<ChildFailure> {
        self.failures
    }

    /// How many children failed.
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    /// Always `false`: a group error has at least one failure.
    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for ExceptionGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.failures.len();
        write!(
            f,
            "unhandled errors in a TaskGroup ({n} sub-exception{})",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, failure) in self.failures.iter().enumerate() {
            write!(f, "\n  [{}] {failure}", i + 1)?;
        }
        Ok(())
    }
}

impl Error for ExceptionGroup {}

/// Why a task group refused a new task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskGroupError {
    /// The group has finished (joined or dropped): it takes no new tasks.
    #[error("the TaskGroup has finished: create tasks before it ends")]
    Finished,
    /// A child failed and the group is cancelling the rest.
    #[error("the TaskGroup is shutting down after a child failed")]
    ShuttingDown,
}

/// What a `TaskGroup` child may return: `()`, or a `Result` whose `Err` counts as
/// the child's failure.
pub trait ChildOutput: 'static {
    /// The value of a successful child.
    type Ok: 'static;

    /// Splits success from failure.
    fn into_result(self) -> Result<Self::Ok, Box<dyn Error + 'static>>;
}

impl ChildOutput for () {
    type Ok = ();

    fn into_result(self) -> Result<(), Box<dyn Error + 'static>> {
        Ok(())
    }
}

impl<T: 'static, E: Into<Box<dyn Error + 'static>> + 'static> ChildOutput for Result<T, E> {
    type Ok = T;

    fn into_result(self) -> Result<T, Box<dyn Error + 'static>> {
        self.map_err(Into::into)
    }
}
