//! Every public error reads each of its causes once, through anyhow's `{:#}`
//! (one line, causes joined by `: `) and `{:?}` (the message, then a
//! "Caused by:" list): a `Display` never repeats the text of its `source()`,
//! as the Rust API guidelines ask.

use std::error::Error;
use std::io;

/// The messages of `error`'s chain, as anyhow prints them.
fn chain_texts(error: &anyhow::Error) -> Vec<String> {
    error.chain().map(|e| e.to_string()).collect()
}

/// Asserts that `error`, taken into anyhow, prints each message of its chain
/// once under `{:#}` and `{:?}`, and that no message contains a later one.
#[track_caller]
fn reads_once<E: Error + Send + Sync + 'static>(error: E) {
    let error = anyhow::Error::from(error);
    let texts = chain_texts(&error);
    let alternate = format!("{error:#}");
    // Without a backtrace, whatever the environment asks for.
    let debug = format!("{error:?}");
    let debug = debug.split("\n\nStack backtrace:").next().unwrap_or("");
    for (i, outer) in texts.iter().enumerate() {
        for inner in &texts[i + 1..] {
            assert!(
                !outer.contains(inner.as_str()),
                "{outer:?} repeats its cause {inner:?}\n{{:#}}: {alternate}\n{{:?}}: {debug}"
            );
        }
    }
    for text in &texts {
        // anyhow indents the lines of a cause under `{:?}`: compare line by
        // line.
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let line = line.trim();
            for (name, rendered) in [("{:#}", alternate.as_str()), ("{:?}", debug)] {
                let seen = rendered.matches(line).count();
                assert_eq!(
                    seen, 1,
                    "{line:?} is printed {seen} times under {name}:\n{rendered}"
                );
            }
        }
    }
}

/// A user's error with a cause, as a child of a TaskGroup may return.
fn child_error() -> anyhow::Error {
    anyhow::Error::from(io::Error::other("disk full")).context("child failed")
}

fn exception_group() -> asyncio::ExceptionGroup {
    asyncio::run(asyncio::task_group(|tg| async move {
        tg.create_fallible_task(async { Err::<(), _>(child_error()) });
        tg.create_task_named(async { panic!("bad input") }, "parser");
        Ok::<_, anyhow::Error>(())
    }))
    .unwrap()
    .unwrap_err()
}

fn nested_exception_group() -> asyncio::ExceptionGroup {
    asyncio::run(asyncio::task_group(|tg| async move {
        tg.create_fallible_task(async {
            asyncio::task_group(|inner| async move {
                inner.create_fallible_task(async { Err::<(), _>(child_error()) });
                Ok::<_, anyhow::Error>(())
            })
            .await
        });
        Ok::<_, anyhow::Error>(())
    }))
    .unwrap()
    .unwrap_err()
}

fn task_errors() -> (asyncio::TaskError, asyncio::TaskError) {
    asyncio::run(async {
        let a = asyncio::create_task(std::future::pending::<()>());
        a.cancel_with("shutting down");
        let b = asyncio::create_task(async { panic!("oops") });
        (a.await.unwrap_err(), b.await.unwrap_err())
    })
    .unwrap()
}

#[test]
fn the_errors_of_tasks_and_the_loop_read_once() {
    reads_once(asyncio::CancelledError::new());
    reads_once(asyncio::CancelledError::with_message("time is up"));
    reads_once(asyncio::InvalidStateError::NotDone);
    reads_once(asyncio::InvalidStateError::ResultTaken);
    reads_once(asyncio::InvalidStateError::AlreadyDone);
    reads_once(asyncio::RuntimeError::NoRunningLoop);
    reads_once(asyncio::RuntimeError::Stalled);
    reads_once(asyncio::RuntimeError::Stopped);
    reads_once(asyncio::RunError::Runtime(asyncio::RuntimeError::Closed));
    reads_once(asyncio::RunError::Cancelled(
        asyncio::CancelledError::with_message("bye"),
    ));
    reads_once(asyncio::RunError::Interrupted);
    let (cancelled, panicked) = task_errors();
    reads_once(cancelled);
    reads_once(panicked.clone());
    if let asyncio::TaskError::Panicked(p) = panicked {
        reads_once(p);
    }
    reads_once(asyncio::TimeoutError);
    reads_once(asyncio::TimeoutFinished);
    reads_once(asyncio::ContextError::WrongVar);
    reads_once(asyncio::ContextError::WrongContext);
    reads_once(asyncio::SignalError::Invalid(-1));
    reads_once(asyncio::SignalError::Forbidden(9));
    reads_once(asyncio::SignalError::Closed);
    reads_once(asyncio::SignalError::Io(io::Error::other("pipe refused")));
    let future_error = asyncio::run(async {
        let fut = asyncio::create_future::<()>();
        let e: asyncio::SharedError = std::sync::Arc::new(io::Error::other("bad"));
        fut.set_exception(e).unwrap();
        fut.await.unwrap_err()
    })
    .unwrap();
    reads_once(future_error);
}

#[test]
fn the_errors_of_task_groups_read_once() {
    reads_once(exception_group());
    // A nested group's header is the outer one's, by design: check its
    // causes instead.
    let nested = anyhow::Error::from(nested_exception_group());
    for rendered in [format!("{nested:#}"), format!("{nested:?}")] {
        let rendered = rendered.split("\n\nStack backtrace:").next().unwrap();
        for cause in ["child failed", "disk full", "Task-3"] {
            assert_eq!(
                rendered.matches(cause).count(),
                1,
                "{cause:?} in {rendered}"
            );
        }
    }
    for failure in exception_group().into_exceptions() {
        reads_once(failure);
    }
    reads_once(asyncio::TaskGroupError::Finished);
    reads_once(asyncio::TaskGroupError::ShuttingDown);
    reads_once(asyncio::EmptyWaitError);
}

#[test]
fn a_task_group_error_names_every_cause_of_every_failure() {
    let rendered = format!("{:#}", anyhow::Error::from(exception_group()));
    for part in ["child failed", "disk full", "parser", "bad input"] {
        assert!(rendered.contains(part), "{part:?} missing from {rendered}");
    }
}

#[test]
fn the_errors_of_queues_and_primitives_read_once() {
    reads_once(asyncio::QueueFull(1u8));
    reads_once(asyncio::QueueEmpty);
    reads_once(asyncio::QueueShutDown(()));
    reads_once(asyncio::PutError::Full(asyncio::QueueFull(1u8)));
    reads_once(asyncio::PutError::ShutDown(asyncio::QueueShutDown(1u8)));
    reads_once(asyncio::GetError::Empty(asyncio::QueueEmpty));
    reads_once(asyncio::GetError::ShutDown(asyncio::QueueShutDown(())));
    reads_once(asyncio::QueueError::Full);
    reads_once(asyncio::QueueError::Empty);
    reads_once(asyncio::QueueError::ShutDown);
    reads_once(asyncio::TaskDoneError);
    reads_once(asyncio::ReleaseError);
    reads_once(asyncio::ZeroPartiesError);
    reads_once(asyncio::BrokenBarrierError);
}

#[test]
fn the_errors_of_streams_and_subprocesses_read_once() {
    let incomplete = asyncio::IncompleteReadError {
        partial: b"ab".to_vec(),
        expected: Some(4),
    };
    reads_once(incomplete.clone());
    let overrun = asyncio::LimitOverrunError {
        consumed: 10,
        message: "Separator is not found, and chunk exceed the limit",
    };
    reads_once(overrun.clone());
    reads_once(asyncio::ReadExactlyError::Incomplete(incomplete.clone()));
    reads_once(asyncio::ReadExactlyError::Io(io::Error::other("reset")));
    reads_once(asyncio::ReadUntilError::Incomplete(incomplete));
    reads_once(asyncio::ReadUntilError::LimitOverrun(overrun));
    reads_once(asyncio::ReadUntilError::EmptySeparator);
    reads_once(asyncio::ReadUntilError::Io(io::Error::other("reset")));
    reads_once(asyncio::WriteBufferLimitsError { high: 1, low: 2 });
    reads_once(asyncio::WriterClosedError::WriteAfterClose);
    reads_once(asyncio::WriterClosedError::WriteAfterEof);
    reads_once(asyncio::WriterClosedError::ConnectionLost);
    reads_once(io::Error::from(asyncio::WriterClosedError::ConnectionLost));
    reads_once(asyncio::BlockingSocketError);
    reads_once(asyncio::ServerStateError::Closed);
    reads_once(asyncio::ServerStateError::AlreadyServing);
    let spawn = asyncio::run(async {
        asyncio::create_subprocess_exec("/nonexistent/program", ["x"])
            .spawn()
            .unwrap_err()
    })
    .unwrap();
    reads_once(spawn);
}

#[test]
fn the_errors_of_loop_pools_read_once() {
    reads_once(asyncio::PoolError::NoWorkers);
    reads_once(asyncio::PoolError::Interrupted);
    reads_once(asyncio::PoolError::Cancelled);
    reads_once(asyncio::PoolError::Runtime(
        asyncio::RuntimeError::AnotherLoopRunning,
    ));
    reads_once(asyncio::PoolError::Spawn {
        worker: 1,
        source: io::Error::other("no threads left"),
    });
    reads_once(asyncio::HandoffError { worker: 0, job: () });
    let failed = asyncio::LoopPool::new()
        .workers(2)
        .handle_sigint(false)
        .run(|w| async move {
            if w.index() == 0 {
                Err(child_error())
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert!(format!("{failed:#}").contains("disk full"), "{failed:#}");
    reads_once(failed);
}
