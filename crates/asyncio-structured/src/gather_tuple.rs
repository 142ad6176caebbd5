//! `gather!(a, b, c)`: futures of different output types, gathered into a
//! tuple (`asyncio.gather(a, b, c)`, `futures::join!` with tasks).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use asyncio_core::{Task, TaskError, create_task};

/// Runs each future of a tuple as a task and gathers their outputs into a
/// tuple, in order, as `asyncio.gather(a, b, c)` does for coroutines of any
/// result types. Tuples of 1 to 12 futures; the [`gather!`](crate::gather!)
/// macro is the same without the tuple's parentheses.
///
/// As [`gather`](crate::gather()): the tasks are created at once (through the
/// loop's task factory); the first child that panics or is cancelled
/// completes the gather with that [`TaskError`] and the others run on (their
/// outcomes are then taken and dropped when they end, so nothing is reported
/// as never retrieved); dropping the gather before it completes cancels the
/// children.
///
/// ```
/// let (n, s) = asyncio::run(async {
///     asyncio::gather_tuple((async { 40 + 2 }, async { "two" })).await
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!((n, s), (42, "two"));
/// ```
///
/// # Panics
/// Outside a running event loop, as `create_task`.
#[track_caller]
pub fn gather_tuple<G: IntoTasks>(futures: G) -> GatherTuple<G::Tasks> {
    GatherTuple {
        tasks: futures.into_tasks(),
        done: false,
    }
}

/// `asyncio.gather(a, b, c)` for futures of different types: the tuple of
/// their outputs. Expands to [`gather_tuple`]`((a, b, c))`.
///
/// ```
/// let out = asyncio::run(async {
///     let (a, b, c) = asyncio::gather!(async { 1u8 }, async { 'b' }, async { "c" }).await?;
///     Ok::<_, asyncio::TaskError>(format!("{a}{b}{c}"))
/// })
/// .unwrap();
/// assert_eq!(out.unwrap(), "1bc");
/// ```
#[macro_export]
macro_rules! gather {
    ($($fut:expr),+ $(,)?) => {
        $crate::gather_tuple(($($fut,)+))
    };
}

/// A tuple of futures that [`gather_tuple`] can start as tasks (implemented
/// for tuples of 1 to 12 `'static` futures).
///
/// ```
/// // Any tuple of 1 to 12 futures: `gather_tuple` accepts it.
/// fn start<G: asyncio::IntoTasks>(futures: G) -> asyncio::GatherTuple<G::Tasks> {
///     asyncio::gather_tuple(futures)
/// }
/// let out = asyncio::run(async { start((async { 1 }, async { 'x' })).await }).unwrap();
/// assert_eq!(out.unwrap(), (1, 'x'));
/// ```
pub trait IntoTasks {
    /// The tuple of their tasks.
    type Tasks: TaskTuple;

    /// Starts every future as a task, in order.
    #[track_caller]
    fn into_tasks(self) -> Self::Tasks;
}

/// The tasks [`gather_tuple`] waits for (implemented for tuples of slots).
///
/// ```
/// // The output of a gathered tuple is the tuple of its futures' outputs.
/// fn outputs<S: asyncio::TaskTuple<Output = (u8, &'static str)>>(_: &asyncio::GatherTuple<S>) {}
/// asyncio::run(async {
///     let g = asyncio::gather_tuple((async { 1u8 }, async { "one" }));
///     outputs(&g);
///     assert_eq!(g.await.unwrap(), (1, "one"));
/// })
/// .unwrap();
/// ```
pub trait TaskTuple {
    /// The tuple of the tasks' values.
    type Output;

    /// Polls the unfinished tasks: `Ready(Err)` at the first failure,
    /// `Ready(Ok)` once all are done.
    #[doc(hidden)]
    fn poll_tasks(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TaskError>>;

    /// Takes the values once all tasks succeeded.
    #[doc(hidden)]
    fn take_values(&mut self) -> Self::Output;

    /// Lets the unfinished tasks run on, dropping their outcomes when they end.
    #[doc(hidden)]
    fn detach_rest(&mut self);

    /// Cancels the unfinished tasks.
    #[doc(hidden)]
    fn cancel_rest(&mut self);
}

/// One child of a [`GatherTuple`]: its task until it finished, then its value.
#[doc(hidden)]
pub struct GatherSlot<T> {
    task: Option<Task<T>>,
    value: Option<T>,
}

impl<T> fmt::Debug for GatherSlot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatherSlot")
            .field("done", &self.task.is_none())
            .finish_non_exhaustive()
    }
}

impl<T: 'static> GatherSlot<T> {
    fn new(task: Task<T>) -> Self {
        GatherSlot {
            task: Some(task),
            value: None,
        }
    }

    /// `Ok(true)` once the value is in.
    fn poll(&mut self, cx: &mut Context<'_>) -> Result<bool, TaskError> {
        let Some(task) = &mut self.task else {
            return Ok(true);
        };
        match Pin::new(task).poll(cx) {
            Poll::Pending => Ok(false),
            Poll::Ready(out) => {
                self.task = None;
                self.value = Some(out?);
                Ok(true)
            }
        }
    }

    /// The failure number of the task, if it ended failed and its outcome
    /// was not taken yet.
    fn failure(&self) -> Option<u64> {
        self.task.as_ref().and_then(|t| t.failure_number())
    }

    /// Takes the error of a task that ended failed.
    fn take_failure(&mut self) -> TaskError {
        let mut task = self.task.take().expect("a failed child is still held");
        match task.try_result() {
            Ok(Err(e)) => e,
            _ => unreachable!("failure_number is only given for a failed, finished task"),
        }
    }

    fn take(&mut self) -> T {
        self.value
            .take()
            .expect("every task of the gather succeeded")
    }

    fn detach(&mut self) {
        if let Some(mut task) = self.task.take() {
            let handle = task.to_ref();
            // The outcome is taken (and dropped) when the task ends, as
            // asyncio's gather retrieves every child's exception.
            let _ = handle.try_add_done_callback(move |_| drop(task.try_result()));
        }
    }

    fn cancel(&mut self) {
        if let Some(task) = self.task.take() {
            task.cancel();
        }
    }
}

macro_rules! tuples {
    ($($T:ident $t:ident),+) => {
        impl<$($T),+> IntoTasks for ($($T,)+)
        where
            $($T: Future + 'static, $T::Output: 'static,)+
        {
            type Tasks = ($(GatherSlot<$T::Output>,)+);

            #[track_caller]
            fn into_tasks(self) -> Self::Tasks {
                let ($($t,)+) = self;
                ($(GatherSlot::new(create_task($t)),)+)
            }
        }

        impl<$($T: 'static),+> TaskTuple for ($(GatherSlot<$T>,)+) {
            type Output = ($($T,)+);

            fn poll_tasks(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TaskError>> {
                let ($($t,)+) = self;
                // Of the children that failed since the last poll, the one that
                // failed first, whatever its place in the tuple: asyncio's gather
                // reports the first exception raised.
                let mut first: Option<u64> = None;
                $(
                    if let Some(n) = $t.failure() {
                        first = Some(first.map_or(n, |f| f.min(n)));
                    }
                )+
                if let Some(n) = first {
                    $(
                        if $t.failure() == Some(n) {
                            return Poll::Ready(Err($t.take_failure()));
                        }
                    )+
                }
                let mut all = true;
                $(
                    match $t.poll(cx) {
                        Ok(done) => all &= done,
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                )+
                if all { Poll::Ready(Ok(())) } else { Poll::Pending }
            }

            fn take_values(&mut self) -> Self::Output {
                let ($($t,)+) = self;
                ($($t.take(),)+)
            }

            fn detach_rest(&mut self) {
                let ($($t,)+) = self;
                $($t.detach();)+
            }

            fn cancel_rest(&mut self) {
                let ($($t,)+) = self;
                $($t.cancel();)+
            }
        }
    };
}

tuples!(A a);
tuples!(A a, B b);
tuples!(A a, B b, C c);
tuples!(A a, B b, C c, D d);
tuples!(A a, B b, C c, D d, E e);
tuples!(A a, B b, C c, D d, E e, F f);
tuples!(A a, B b, C c, D d, E e, F f, G g);
tuples!(A a, B b, C c, D d, E e, F f, G g, H h);
tuples!(A a, B b, C c, D d, E e, F f, G g, H h, I i);
tuples!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j);
tuples!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k);
tuples!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k, L l);

/// The future of [`gather_tuple`] and [`gather!`](crate::gather!).
///
/// ```
/// let (a, b) = asyncio::run(async {
///     let g: asyncio::GatherTuple<_> = asyncio::gather!(async { 2 }, async { 3.5 });
///     g.await
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!((a, b), (2, 3.5));
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct GatherTuple<S: TaskTuple> {
    tasks: S,
    done: bool,
}

impl<S: TaskTuple> Future for GatherTuple<S> {
    type Output = Result<S::Output, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.done, "a gather was polled after it completed");
        match this.tasks.poll_tasks(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => {
                this.done = true;
                Poll::Ready(Ok(this.tasks.take_values()))
            }
            Poll::Ready(Err(e)) => {
                this.done = true;
                this.tasks.detach_rest();
                Poll::Ready(Err(e))
            }
        }
    }
}

/// Nothing in it is pinned: the tasks are handles, the values are moved out.
impl<S: TaskTuple> Unpin for GatherTuple<S> {}

impl<S: TaskTuple> Drop for GatherTuple<S> {
    fn drop(&mut self) {
        if !self.done {
            self.tasks.cancel_rest();
        }
    }
}

impl<S: TaskTuple> fmt::Debug for GatherTuple<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatherTuple")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
