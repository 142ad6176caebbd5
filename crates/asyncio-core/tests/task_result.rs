//! `Task::result`: Python's `Task.result()`, which can be called again, next
//! to `try_result`, which moves the outcome out (test_tasks' result tests,
//! written anew).

use asyncio_core::{EventLoop, InvalidStateError, TaskError, create_task, yield_now};

#[test]
fn result_can_be_read_again_and_again_until_the_value_is_moved_out() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let mut task = create_task(async { vec![1, 2, 3] });
        assert!(matches!(task.result(), Err(InvalidStateError::NotDone)));
        yield_now().await;
        for _ in 0..3 {
            assert_eq!(task.result().unwrap().unwrap(), &vec![1, 2, 3]);
        }
        assert_eq!(task.try_result().unwrap().unwrap(), vec![1, 2, 3]);
        assert!(matches!(task.result(), Err(InvalidStateError::ResultTaken)));
    })
    .unwrap();
}

#[test]
fn result_of_a_cancelled_task_is_cancelled_each_time_with_its_message() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let task = create_task(std::future::pending::<()>());
        yield_now().await;
        task.cancel_with("enough");
        yield_now().await;
        for _ in 0..2 {
            let err = task.result().unwrap().unwrap_err();
            assert!(err.is_cancelled());
            assert_eq!(err.cancelled_message(), Some("enough"));
        }
        // The outcome is still there for whoever awaits the task.
        assert!(task.await.unwrap_err().is_cancelled());
    })
    .unwrap();
}

#[test]
fn result_of_a_panicked_task_is_the_panic_each_time_and_counts_as_retrieved() {
    let lp = EventLoop::new();
    let reports = std::rc::Rc::new(std::cell::Cell::new(0));
    let r = reports.clone();
    lp.set_exception_handler(Some(move |_: &asyncio_core::ExceptionContext| {
        r.set(r.get() + 1)
    }));
    lp.run_until_complete(async {
        let task = create_task(async {
            if true {
                panic!("boom");
            }
        });
        yield_now().await;
        for _ in 0..2 {
            match task.result().unwrap() {
                Err(TaskError::Panicked(p)) => assert_eq!(p.message(), "boom"),
                other => panic!("expected the panic, got {other:?}"),
            }
        }
        drop(task);
    })
    .unwrap();
    assert_eq!(
        reports.get(),
        0,
        "a failure read through result() was retrieved"
    );
}
