//! `wait` and `as_completed`.

use std::future::poll_fn;
use std::pin::Pin;

use asyncio_core::{Task, create_task, yield_now};
use asyncio_structured::{EmptyWaitError, ReturnWhen, as_completed, run, wait, wait_fallible};
use futures_core::Stream;

fn after(ticks: usize, value: u32) -> Task<u32> {
    create_task(async move {
        for _ in 0..ticks {
            yield_now().await;
        }
        value
    })
}

#[test]
fn all_completed_waits_for_every_task() {
    run(async {
        let r = wait(vec![after(3, 1), after(1, 2)], ReturnWhen::AllCompleted)
            .unwrap()
            .await;
        assert_eq!((r.done.len(), r.pending.len()), (2, 0));
    })
    .unwrap();
}

#[test]
fn first_completed_returns_at_the_first_and_leaves_the_rest_running() {
    run(async {
        let r = wait(vec![after(10, 1), after(1, 2)], ReturnWhen::FirstCompleted)
            .unwrap()
            .await;
        assert_eq!(r.done.len(), 1);
        assert_eq!(r.pending.len(), 1);
        let pending = r.pending.into_iter().next().unwrap();
        assert!(!pending.cancelled());
        assert_eq!(pending.await, Ok(1));
    })
    .unwrap();
}

#[test]
fn first_exception_returns_at_the_first_panic() {
    run(async {
        let bad = create_task(async {
            yield_now().await;
            if true {
                panic!("bad");
            }
            0u32
        });
        let r = wait(vec![after(50, 1), bad], ReturnWhen::FirstException)
            .unwrap()
            .await;
        assert_eq!(r.done.len(), 1);
        assert!(r.done[0].panicked());
        assert_eq!(r.pending.len(), 1);
        for t in r.done {
            assert!(t.await.is_err());
        }
    })
    .unwrap();
}

#[test]
fn first_exception_without_a_panic_waits_for_all() {
    run(async {
        let r = wait(vec![after(2, 1), after(4, 2)], ReturnWhen::FirstException)
            .unwrap()
            .await;
        assert_eq!(r.pending.len(), 0);
    })
    .unwrap();
}

#[test]
fn waiting_on_nothing_is_an_error() {
    run(async {
        assert_eq!(
            wait(Vec::<Task<u32>>::new(), ReturnWhen::AllCompleted).err(),
            Some(EmptyWaitError)
        );
    })
    .unwrap();
}

#[test]
fn as_completed_yields_in_completion_order_including_already_done_tasks() {
    let order = run(async {
        let done_already = after(0, 0);
        yield_now().await;
        assert!(done_already.done());
        let tasks = vec![after(6, 3), done_already, after(3, 2), after(1, 1)];
        let mut stream = as_completed(tasks);
        assert_eq!(stream.remaining(), 4);
        let mut order = Vec::new();
        while let Some(t) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
            order.push(t.await.unwrap());
        }
        order
    })
    .unwrap();
    assert_eq!(order, [0, 1, 2, 3]);
}

#[test]
fn as_completed_of_nothing_ends_at_once() {
    run(async {
        let mut s = as_completed(Vec::<Task<u8>>::new());
        assert!(poll_fn(|cx| Pin::new(&mut s).poll_next(cx)).await.is_none());
    })
    .unwrap();
}

#[test]
fn wait_with_a_timeout_returns_the_unfinished_tasks_as_pending() {
    use std::time::Duration;
    asyncio_structured::run(async {
        let quick = asyncio_core::create_task(asyncio_core::sleep(Duration::from_millis(5)));
        let slow = asyncio_core::create_task(asyncio_core::sleep(Duration::from_secs(30)));
        let started = std::time::Instant::now();
        let r = asyncio_structured::wait(
            vec![quick, slow],
            asyncio_structured::ReturnWhen::AllCompleted,
        )
        .unwrap()
        .timeout(Duration::from_millis(40))
        .await;
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!((r.done.len(), r.pending.len()), (1, 1));
        assert!(
            !r.pending[0].cancelled(),
            "a timeout does not cancel the pending tasks"
        );
        r.pending[0].cancel();
    })
    .unwrap();
}

#[test]
fn as_completed_with_a_timeout_ends_early_and_says_so() {
    use futures_core::Stream;
    use std::time::Duration;
    asyncio_structured::run(async {
        let quick = asyncio_core::create_task(async {
            asyncio_core::sleep(Duration::from_millis(5)).await;
            "quick"
        });
        let slow = asyncio_core::create_task(async {
            asyncio_core::sleep(Duration::from_secs(30)).await;
            "slow"
        });
        let mut stream =
            asyncio_structured::as_completed(vec![slow, quick]).timeout(Duration::from_millis(40));
        let mut got = Vec::new();
        while let Some(t) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await
        {
            got.push(t.await.unwrap());
        }
        assert_eq!(got, ["quick"]);
        assert!(stream.timed_out());
        let left = stream.into_remaining();
        assert_eq!(left.len(), 1);
        left[0].cancel();
    })
    .unwrap();
}

fn fallible_after(ticks: usize, out: Result<u32, String>) -> Task<Result<u32, String>> {
    create_task(async move {
        for _ in 0..ticks {
            yield_now().await;
        }
        out
    })
}

/// test_tasks' `test_wait_first_exception`: a task that raises ends the
/// wait; in Rust a task that returns `Err` raised, for `wait_fallible`.
#[test]
fn first_exception_of_wait_fallible_returns_at_the_first_err() {
    run(async {
        let r = wait_fallible(
            vec![
                fallible_after(50, Ok(1)),
                fallible_after(1, Ok(2)),
                fallible_after(3, Err("bad".into())),
            ],
            ReturnWhen::FirstException,
        )
        .unwrap()
        .await;
        assert_eq!((r.done.len(), r.pending.len()), (2, 1));
        assert_eq!(
            r.done[1].result().unwrap().unwrap(),
            &Err("bad".to_string())
        );
    })
    .unwrap();
}

#[test]
fn first_exception_of_wait_fallible_also_returns_at_a_panic_but_not_at_a_cancel() {
    run(async {
        let cancelled = fallible_after(100, Ok(0));
        cancelled.cancel();
        let panicking = create_task(async {
            for _ in 0..5 {
                yield_now().await;
            }
            if true {
                panic!("bad");
            }
            Ok::<u32, String>(0)
        });
        let r = wait_fallible(
            vec![cancelled, panicking, fallible_after(50, Ok(1))],
            ReturnWhen::FirstException,
        )
        .unwrap()
        .await;
        assert_eq!((r.done.len(), r.pending.len()), (2, 1));
        assert!(r.done[0].cancelled() && r.done[1].panicked());
    })
    .unwrap();
}

#[test]
fn first_exception_of_plain_wait_treats_an_err_as_a_value() {
    run(async {
        let r = wait(
            vec![
                fallible_after(1, Err("a value".into())),
                fallible_after(4, Ok(2)),
            ],
            ReturnWhen::FirstException,
        )
        .unwrap()
        .await;
        assert_eq!(r.pending.len(), 0, "no panic: it waited for all");
    })
    .unwrap();
}

#[test]
fn first_exception_of_wait_fallible_without_a_failure_waits_for_all() {
    run(async {
        let r = wait_fallible(
            vec![fallible_after(2, Ok(1)), fallible_after(4, Ok(2))],
            ReturnWhen::FirstException,
        )
        .unwrap()
        .await;
        assert_eq!(r.pending.len(), 0);
        assert!(
            wait_fallible(
                Vec::<Task<Result<(), ()>>>::new(),
                ReturnWhen::FirstException
            )
            .is_err()
        );
    })
    .unwrap();
}
