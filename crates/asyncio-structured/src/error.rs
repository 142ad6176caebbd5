//! The errors of structured concurrency.

use std::error::Error;
use std::fmt;

use asyncio_core::PanicError;

/// An error that travels: what a failed child's error is kept as.
///
/// ```
/// fn check(n: u32) -> Result<u32, asyncio::BoxError> {
///     if n > 10 { Err("too big".into()) } else { Ok(n) }
/// }
/// let group = asyncio::run(asyncio::task_group(|tg| async move {
///     tg.create_fallible_task(async { check(99) });
///     Ok::<_, asyncio::BoxError>(())
/// }))
/// .unwrap()
/// .unwrap_err();
/// assert!(group.to_string().contains("too big"));
/// ```
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// One failed child of a [`TaskGroup`](crate::TaskGroup): an error it returned,
/// or a panic.
///
/// ```
/// let group = asyncio::run(asyncio::task_group(|tg| async move {
///     tg.create_task_named(async { panic!("bad input") }, "parser");
///     Ok::<_, asyncio::TaskError>(())
/// }))
/// .unwrap()
/// .unwrap_err();
/// let failure: &asyncio::ChildFailure = &group.exceptions()[0];
/// assert_eq!(failure.task_name(), "parser");
/// assert!(failure.is_panic());
/// assert_eq!(failure.downcast_ref::<asyncio::PanicError>().unwrap().message(), "bad input");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ChildFailure {
    /// The child (made with `create_fallible_task`), or the group's body,
    /// returned `Err(error)`.
    Error {
        /// The name of the task that failed.
        task: String,
        /// What it returned.
        error: BoxError,
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

    /// The error the child failed with: what it returned, or its
    /// [`PanicError`].
    pub fn error(&self) -> &(dyn Error + Send + Sync + 'static) {
        match self {
            ChildFailure::Error { error, .. } => &**error,
            ChildFailure::Panic { panic, .. } => panic,
        }
    }

    /// The child's error as an `E`, if it is one (a panic is a
    /// [`PanicError`]).
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.error().downcast_ref::<E>()
    }

    /// Whether the child's error is an `E`.
    pub fn is<E: Error + 'static>(&self) -> bool {
        self.error().is::<E>()
    }
}

/// `{task}: {error}`, where `{error}` is the child's error's own message;
/// [`source`](Error::source) goes on with that error's source, so a chain
/// printed by anyhow reads each message once.
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

impl Error for ChildFailure {
    /// The source of the child's error (the error's own message is already
    /// in this failure's `Display`).
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.error().source()
    }
}

/// Writes `error` and its `source()` chain, `: ` between them (anyhow's
/// `{:#}`), with every line after the first indented by `indent` so a nested
/// group stays readable.
fn write_chain(
    f: &mut fmt::Formatter<'_>,
    error: &(dyn Error + 'static),
    indent: &str,
) -> fmt::Result {
    let mut next = Some(error);
    let mut first = true;
    while let Some(e) = next {
        if !first {
            f.write_str(": ")?;
        }
        first = false;
        let text = e.to_string();
        let mut lines = text.split('\n');
        f.write_str(lines.next().unwrap_or(""))?;
        for line in lines {
            write!(f, "\n{indent}{line}")?;
        }
        next = e.source();
    }
    Ok(())
}

/// The failures of a task group, in the order they happened (asyncio's
/// `ExceptionGroup` as a `TaskGroup` raises it).
///
/// Inspect it as Python's: [`exceptions`](Self::exceptions) lists the
/// failures, [`split`](Self::split) and [`subgroup`](Self::subgroup) pick them
/// by error type (also inside nested groups, as `except*` does), and
/// [`downcast_ref`](Self::downcast_ref) finds the first of a type. It is
/// `Send + Sync + 'static`, so `?` takes it into `anyhow::Error` or
/// `Box<dyn Error + Send + Sync>`. Its message lists every failure with its
/// causes, and it has no [`source`](Error::source), so anyhow's `{:#}` and
/// `{:?}` print each cause once.
///
/// ```
/// use std::io;
///
/// let out = asyncio::run(async {
///     asyncio::task_group(|tg| async move {
///         tg.create_fallible_task(async { Err::<(), _>(io::Error::other("disk full")) });
///         tg.create_fallible_task(async { Err::<(), _>(std::fmt::Error) });
///         Ok::<_, io::Error>(())
///     })
///     .await
/// })
/// .unwrap();
/// let group = out.unwrap_err();
/// assert_eq!(group.exceptions().len(), 2);
/// assert_eq!(group.downcast_ref::<io::Error>().unwrap().to_string(), "disk full");
/// let (io_errors, rest) = group.split::<io::Error>();
/// assert_eq!(io_errors.unwrap().len(), 1);
/// assert!(rest.unwrap().exceptions()[0].is::<std::fmt::Error>());
/// ```
#[derive(Debug)]
pub struct ExceptionGroup {
    failures: Vec<ChildFailure>,
}

impl ExceptionGroup {
    pub(crate) fn new(failures: Vec<ChildFailure>) -> Self {
        debug_assert!(!failures.is_empty());
        ExceptionGroup { failures }
    }

    /// The failures, first one first (Python's `exceptions`).
    pub fn exceptions(&self) -> &[ChildFailure] {
        &self.failures
    }

    /// Takes the failures.
    pub fn into_exceptions(self) -> Vec<ChildFailure> {
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

    /// The first error of type `E` among the failures, looking inside nested
    /// groups too (a panic is a [`PanicError`]).
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.failures.iter().find_map(|f| {
            f.downcast_ref::<E>().or_else(|| {
                f.downcast_ref::<ExceptionGroup>()
                    .and_then(|g| g.downcast_ref::<E>())
            })
        })
    }

    /// Splits the group into the failures whose error is an `E` and the rest
    /// (Python's `split(E)`); either side is `None` when it would be empty.
    /// Nested groups are split too, keeping their place.
    pub fn split<E: Error + 'static>(self) -> (Option<ExceptionGroup>, Option<ExceptionGroup>) {
        self.split_by(|f| f.is::<E>())
    }

    /// The failures whose error is an `E` (Python's `subgroup(E)`), or `None`.
    pub fn subgroup<E: Error + 'static>(self) -> Option<ExceptionGroup> {
        self.split::<E>().0
    }

    /// Splits the group by a condition on each failure (Python's
    /// `split(condition)`); a nested group is split by the same condition.
    pub fn split_by(
        self,
        mut condition: impl FnMut(&ChildFailure) -> bool,
    ) -> (Option<ExceptionGroup>, Option<ExceptionGroup>) {
        self.split_dyn(&mut condition)
    }

    /// The failures that meet `condition` (Python's `subgroup(condition)`).
    pub fn subgroup_by(
        self,
        condition: impl FnMut(&ChildFailure) -> bool,
    ) -> Option<ExceptionGroup> {
        self.split_by(condition).0
    }

    fn split_dyn(
        self,
        condition: &mut dyn FnMut(&ChildFailure) -> bool,
    ) -> (Option<ExceptionGroup>, Option<ExceptionGroup>) {
        let mut matching = Vec::new();
        let mut rest = Vec::new();
        for failure in self.failures {
            if condition(&failure) {
                matching.push(failure);
                continue;
            }
            match failure {
                ChildFailure::Error { task, error } if error.is::<ExceptionGroup>() => {
                    let nested = *error
                        .downcast::<ExceptionGroup>()
                        .expect("checked with is::<ExceptionGroup>");
                    let (m, r) = nested.split_dyn(condition);
                    let wrap = |g: ExceptionGroup| ChildFailure::Error {
                        task: task.clone(),
                        error: Box::new(g),
                    };
                    matching.extend(m.map(wrap));
                    rest.extend(r.map(wrap));
                }
                other => rest.push(other),
            }
        }
        let group = |v: Vec<ChildFailure>| (!v.is_empty()).then(|| ExceptionGroup::new(v));
        (group(matching), group(rest))
    }
}

impl<'a> IntoIterator for &'a ExceptionGroup {
    type Item = &'a ChildFailure;
    type IntoIter = std::slice::Iter<'a, ChildFailure>;

    fn into_iter(self) -> Self::IntoIter {
        self.failures.iter()
    }
}

/// The count, then each failure on its own line with its whole `source()`
/// chain (`[1] Task-2: child failed: disk full`), as Python prints an
/// `ExceptionGroup`'s sub-exceptions. The group has no
/// [`source`](Error::source): a chain can follow only one failure, and every
/// one is already in the message, so anyhow prints each once.
impl fmt::Display for ExceptionGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.failures.len();
        write!(
            f,
            "unhandled errors in a TaskGroup ({n} sub-exception{})",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, failure) in self.failures.iter().enumerate() {
            write!(f, "\n  [{}] ", i + 1)?;
            write_chain(f, failure, "      ")?;
        }
        Ok(())
    }
}

impl Error for ExceptionGroup {}

/// Why a task group refused a new task.
///
/// ```
/// asyncio::run(async {
///     let tg = asyncio::TaskGroup::new();
///     let handle = tg.handle();
///     tg.join().await.unwrap();
///     assert_eq!(
///         handle.try_create_task(async {}).err(),
///         Some(asyncio::TaskGroupError::Finished)
///     );
/// })
/// .unwrap();
/// ```
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
