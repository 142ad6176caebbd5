//! `LoopPool`: N threads, each with its own loop, each running the future a
//! factory (`Fn + Sync`, shared by the threads) builds on that thread; a
//! `TaskGroup` across loops.

use std::future::Future;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::mpsc;
use std::task::{Context, Poll};

use asyncio_core::{LoopHandle, PanicError, RunError, RuntimeError, get_running_loop};
use asyncio_structured::Runner;
use asyncio_sync::Channel;

use crate::error::{PoolError, WorkerError, WorkerErrors, WorkerFailure, WorkerOutput};
use crate::handle::{PoolHandle, Shared, Worker};

/// A pool of event loops, one per thread (thread-per-core): configure it,
/// then [`run`](Self::run) a future on every loop.
///
/// Tasks never move between loops (no work stealing): each loop keeps
/// asyncio's single-threaded model, and work crosses loops only when handed
/// over explicitly ([`PoolHandle::spawn_on`], a [`LoopHandle`], a
/// [`Channel`]).
///
/// ```
/// let sums = asyncio_pool::LoopPool::new()
///     .workers(2)
///     .run(|worker| async move {
///         // A !Send future: an Rc lives across an await.
///         let local = std::rc::Rc::new(worker.index() * 10);
///         asyncio_core::sleep(std::time::Duration::from_millis(1)).await;
///         Ok::<_, std::io::Error>(*local)
///     })
///     .unwrap();
/// assert_eq!(sums, [0, 10]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct LoopPool {
    workers: Option<usize>,
    pin: bool,
    handle_sigint: Option<bool>,
}

/// What a worker reports to the thread that runs the pool.
enum Outcome<T> {
    Done(T),
    Cancelled,
    Failed(WorkerFailure),
}

impl LoopPool {
    /// A pool with one worker per available core
    /// ([`std::thread::available_parallelism`]), not pinned, handling Ctrl-C
    /// when run on the program's main thread.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many workers (threads, each with a loop); `0` is refused by `run`
    /// with [`PoolError::NoWorkers`].
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Pins worker `i` to the `i`-th CPU this process may run on (modulo
    /// their count) with `sched_setaffinity`; off by default. On Linux a
    /// worker that cannot be pinned fails; on systems without
    /// `sched_setaffinity` (macOS, the BSDs) the workers run unpinned.
    pub fn pin_to_cores(mut self, on: bool) -> Self {
        self.pin = on;
        self
    }

    /// Whether Ctrl-C (SIGINT) during `run` cancels every worker's main task
    /// (`run` then returns [`PoolError::Interrupted`]; a second Ctrl-C while
    /// they are being cancelled ends the process, as asyncio's Runner). By
    /// default only when `run` is called on the program's main thread. The
    /// signal is caught once, by the calling thread's loop, for the whole
    /// pool.
    pub fn handle_sigint(mut self, on: bool) -> Self {
        self.handle_sigint = Some(on);
        self
    }

    /// How many workers `run` starts.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
    }

    /// Starts the workers, calls `make(worker)` once on each worker's thread
    /// (`make` is shared by the threads, hence `Sync`; it may borrow from the
    /// caller, since `run` returns only after every thread ended) and runs
    /// the future it returns as that loop's main task (so the future
    /// need not be `Send`); waits for all of them and returns their values,
    /// in worker order.
    ///
    /// As a `TaskGroup` across loops: the first worker to fail (return `Err`
    /// or panic) cancels the others' main tasks, and the failures come back
    /// together, in the order they happened, as [`PoolError::Failed`]. A
    /// cancelled main task is dropped at its next suspension point; a worker
    /// that blocks its thread without awaiting cannot be cancelled.
    ///
    /// A worker whose main task finished keeps its loop running the jobs
    /// handed to it until every worker has finished (or the pool is
    /// cancelled); then every loop is closed (its remaining tasks cancelled)
    /// before `run` returns.
    ///
    /// [`PoolHandle::stop`] ends the run cleanly: every main task is
    /// cancelled and `run` returns `Ok` with the values of the workers that
    /// had finished before it.
    ///
    /// # Errors
    /// [`PoolError::NoWorkers`], [`PoolError::Runtime`] when called inside a
    /// running loop, [`PoolError::Spawn`], [`PoolError::Failed`],
    /// [`PoolError::Interrupted`] (Ctrl-C), [`PoolError::Cancelled`]
    /// ([`PoolHandle::cancel`]).
    pub fn run<F, Fut>(self, make: F) -> Result<Vec<<Fut::Output as WorkerOutput>::Ok>, PoolError>
    where
        F: Fn(Worker) -> Fut + Sync,
        Fut: Future + 'static,
        Fut::Output: WorkerOutput,
    {
        let n = self.worker_count();
        if n == 0 {
            return Err(PoolError::NoWorkers);
        }
        if get_running_loop().is_ok() {
            return Err(RuntimeError::AnotherLoopRunning.into());
        }
        let sigint = self
            .handle_sigint
            .unwrap_or_else(|| std::thread::current().name() == Some("main"));
        let outcomes = Channel::new(0);
        let make = &make;
        std::thread::scope(|scope| {
            let (loops_tx, loops_rx) = mpsc::channel::<(usize, LoopHandle)>();
            let mut starts = Vec::with_capacity(n);
            for i in 0..n {
                let (go_tx, go_rx) = mpsc::channel::<PoolHandle>();
                let loops_tx = loops_tx.clone();
                let outcomes = outcomes.clone();
                let pin = self.pin;
                let spawned = std::thread::Builder::new()
                    .name(format!("asyncio-pool-{i}"))
                    .spawn_scoped(scope, move || {
                        worker_thread(i, pin, make, loops_tx, &go_rx, &outcomes);
                    });
                if let Err(source) = spawned {
                    // The started workers see their start channel close and
                    // end without running anything.
                    return Err(PoolError::Spawn { worker: i, source });
                }
                starts.push(go_tx);
            }
            drop(loops_tx);
            let mut handles: Vec<Option<LoopHandle>> = vec![None; n];
            for (i, h) in loops_rx.iter().take(n) {
                handles[i] = Some(h);
            }
            if let Some(worker) = handles.iter().position(Option::is_none) {
                return Err(PoolError::Spawn {
                    worker,
                    source: std::io::Error::other("the worker's event loop could not be created"),
                });
            }
            let handles: Vec<LoopHandle> = handles.into_iter().flatten().collect();
            let pool = PoolHandle {
                shared: Arc::new(Shared::new(handles)),
            };
            for go in &starts {
                // A worker that died before this (it cannot: it waits) would
                // simply not start.
                let _ = go.send(pool.clone());
            }
            let result = collect(n, &pool, &outcomes, sigint);
            // The loops close, and their threads are joined as the scope
            // ends: every loop is closed before `run` returns.
            pool.shared.end();
            result
        })
    }
}

/// Waits for every worker's outcome on a loop of the calling thread (which
/// also catches Ctrl-C for the pool), cancelling the others at the first
/// failure.
fn collect<T: Send + 'static>(
    n: usize,
    pool: &PoolHandle,
    outcomes: &Channel<(usize, Outcome<T>)>,
    sigint: bool,
) -> Result<Vec<T>, PoolError> {
    let runner = Runner::builder().handle_sigint(sigint).build();
    let rx = outcomes.clone();
    let cancel = pool.clone();
    let gathered = runner.run(async move {
        let mut values: Vec<Option<T>> = (0..n).map(|_| None).collect();
        let mut failures = Vec::new();
        let mut cancelled = false;
        for _ in 0..n {
            let (i, outcome) = rx
                .get()
                .await
                .expect("the outcome channel is never shut down");
            match outcome {
                Outcome::Done(v) => values[i] = Some(v),
                Outcome::Cancelled => cancelled = true,
                Outcome::Failed(f) => {
                    failures.push(f);
                    cancel.cancel();
                }
            }
        }
        (values, failures, cancelled)
    });
    let outcome = match gathered {
        Ok(gathered) => gathered,
        Err(RunError::Interrupted) => {
            pool.cancel();
            return Err(PoolError::Interrupted);
        }
        Err(e) => {
            // The calling thread's loop could not run (nothing else here
            // cancels its main task): stop the workers too.
            pool.cancel();
            return Err(match e {
                RunError::Runtime(e) => PoolError::Runtime(e),
                _ => PoolError::Cancelled,
            });
        }
    };
    drop(runner);
    let (values, failures, cancelled) = outcome;
    if !failures.is_empty() {
        return Err(WorkerErrors::new(failures).into());
    }
    if pool.shared.is_stopped() {
        // `stop`: the workers cancelled by it have no value.
        return Ok(values.into_iter().flatten().collect());
    }
    if cancelled || pool.shared.is_cancelled() {
        return Err(PoolError::Cancelled);
    }
    Ok(values
        .into_iter()
        .map(|v| v.expect("every worker that was not cancelled gave a value"))
        .collect())
}

/// One worker's thread: its loop, the factory, the main task, the close.
fn worker_thread<F, Fut>(
    i: usize,
    pin: bool,
    make: &F,
    loops: mpsc::Sender<(usize, LoopHandle)>,
    go: &mpsc::Receiver<PoolHandle>,
    outcomes: &Channel<(usize, Outcome<<Fut::Output as WorkerOutput>::Ok>)>,
) where
    F: Fn(Worker) -> Fut + Sync,
    Fut: Future + 'static,
    Fut::Output: WorkerOutput,
{
    let runner = Runner::builder().handle_sigint(false).build();
    let lp = runner.get_loop().expect("a new runner opens its loop");
    // The sender goes at once: if a worker dies before sending, the pool
    // sees every sender gone instead of waiting for ever.
    let sent = loops.send((i, lp.handle()));
    drop(loops);
    if sent.is_err() {
        return;
    }
    let Ok(pool) = go.recv() else {
        // Another worker's thread could not start: the pool is not run.
        return;
    };
    // A pool's loops serve I/O: each makes its poller now, not when a
    // connection is first handed to it (then the process may be out of
    // descriptors, and the connection would be lost).
    let started = if pin {
        crate::affinity::pin_to_core(i)
    } else {
        Ok(())
    }
    .and_then(|()| lp.open_poller());
    let outcome = if let Err(e) = started {
        Outcome::Failed(WorkerFailure::Error {
            worker: i,
            error: WorkerError::new(Box::new(e)),
        })
    } else {
        let worker = Worker {
            index: i,
            pool: pool.clone(),
        };
        let ran = catch_unwind(AssertUnwindSafe(|| {
            let main = make(worker);
            runner.run(Cancellable {
                fut: Some(Box::pin(main)),
                pool: pool.clone(),
                worker: i,
            })
        }));
        match ran {
            Ok(Ok(Some(out))) => match out.into_result() {
                Ok(v) => Outcome::Done(v),
                Err(error) => Outcome::Failed(WorkerFailure::Error {
                    worker: i,
                    error: WorkerError::new(error),
                }),
            },
            Ok(Ok(None)) => Outcome::Cancelled,
            Ok(Err(e)) => Outcome::Failed(WorkerFailure::Error {
                worker: i,
                error: WorkerError::new(Box::new(e)),
            }),
            Err(payload) => Outcome::Failed(WorkerFailure::Panic {
                worker: i,
                panic: PanicError::new(payload),
            }),
        }
    };
    // Reported at once, so a failure cancels the others without waiting.
    let _ = outcomes.put_nowait((i, outcome));
    // Serve hand-offs until the whole pool is done, then close the loop.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        runner.run(PoolEnd {
            pool: pool.clone(),
            worker: i,
        })
    }));
    if let Err(e) = runner.close() {
        eprintln!("asyncio-pool: worker {i}'s loop did not close cleanly: {e}");
    }
}

/// A worker's main future, dropped (cancelled) when the pool is cancelled:
/// `None` means cancelled.
struct Cancellable<F> {
    fut: Option<Pin<Box<F>>>,
    pool: PoolHandle,
    worker: usize,
}

impl<F: Future> Future for Cancellable<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.pool.shared.is_cancelled() {
            self.fut = None;
            return Poll::Ready(None);
        }
        let fut = self
            .fut
            .as_mut()
            .expect("the main future is not polled after it finished");
        match fut.as_mut().poll(cx) {
            Poll::Ready(v) => {
                self.fut = None;
                Poll::Ready(Some(v))
            }
            Poll::Pending => {
                self.pool.shared.park_main(self.worker, cx.waker());
                if self.pool.shared.is_cancelled() {
                    // Cancelled while it was polled: drop it now.
                    self.fut = None;
                    return Poll::Ready(None);
                }
                Poll::Pending
            }
        }
    }
}

/// After its main task, a worker's loop goes on running the jobs handed to
/// it until every worker is done (or the pool is cancelled).
struct PoolEnd {
    pool: PoolHandle,
    worker: usize,
}

impl Future for PoolEnd {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.pool.shared.is_ended() {
            return Poll::Ready(());
        }
        self.pool.shared.park_main(self.worker, cx.waker());
        if self.pool.shared.is_ended() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}
