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
