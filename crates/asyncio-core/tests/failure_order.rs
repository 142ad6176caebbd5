//! `TaskRef::failure_number` and `task_failure_count`: the order in which
//! tasks ended failed, which asyncio expresses as the order their done
//! callbacks run (what `gather` uses to pick the first exception).

use asyncio_core::{EventLoop, create_task, task_failure_count, yield_now};

#[test]
fn failures_are_numbered_in_the_order_the_tasks_ended() {
    let lp = EventLoop::new();
    lp.set_exception_handler(Some(|_: &asyncio_core::ExceptionContext| {}));
    lp.run_until_complete(async {
        let before = task_failure_count();
        let ok = create_task(async { 1 });
        let pending = create_task(std::future::pending::<()>());
        // Queued second but ends first: it fails at once, `late` after a turn.
        let late = create_task(async {
            yield_now().await;
            panic!("late")
        });
        let early = create_task(async { panic!("early") });
        yield_now().await;
        yield_now().await;
        assert_eq!(ok.failure_number(), None, "a success has no failure number");
        assert_eq!(
            pending.failure_number(),
            None,
            "nor has a task still running"
        );
        assert_eq!(early.failure_number(), Some(before + 1));
        assert_eq!(late.failure_number(), Some(before + 2));
        pending.cancel();
        yield_now().await;
        assert_eq!(
            pending.failure_number(),
            Some(before + 3),
            "a cancelled task counts as failed"
        );
        assert_eq!(task_failure_count(), before + 3);
        drop((ok, pending, late, early));
    })
    .unwrap();
}

/// A task cancelled before it ever ran, that nobody awaits and that has no
/// done callback, still takes its place among the failures: `gather_tasks`
/// relies on it to report the failure that came first.
#[test]
fn a_task_cancelled_before_it_ran_is_numbered_when_it_ends() {
    let lp = EventLoop::new();
    lp.set_exception_handler(Some(|_: &asyncio_core::ExceptionContext| {}));
    lp.run_until_complete(async {
        let before = task_failure_count();
        let never_ran = create_task(async { 1 });
        let panics = create_task(async { panic!("first") });
        never_ran.cancel();
        yield_now().await;
        assert!(never_ran.cancelled());
        // Queued first, it ends first (its cancellation is its first step).
        assert_eq!(never_ran.failure_number(), Some(before + 1));
        assert_eq!(panics.failure_number(), Some(before + 2));
        drop((never_ran, panics));
    })
    .unwrap();
}
