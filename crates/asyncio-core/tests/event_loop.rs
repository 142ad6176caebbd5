//! The loop's life: running, nesting, closing, and misuse of each.

use std::cell::Cell;
use std::rc::Rc;

use asyncio_core::{EventLoop, RunError, RuntimeError, create_task, get_running_loop, yield_now};

mod common;
use common::Checks;

#[test]
fn run_until_complete_inside_the_same_running_loop_is_an_error() {
    let lp = EventLoop::new();
    let inner = lp.clone();
    let r = lp
        .run_until_complete(async move { inner.run_until_complete(async { 1 }) })
        .unwrap();
    assert_eq!(r, Err(RunError::Runtime(RuntimeError::AlreadyRunning)));
}

#[test]
fn running_a_second_loop_inside_a_running_one_is_an_error() {
    let lp = EventLoop::new();
    let r = lp
        .run_until_complete(async { EventLoop::new().run_until_complete(async { 1 }) })
        .unwrap();
    assert_eq!(r, Err(RunError::Runtime(RuntimeError::AnotherLoopRunning)));
}

#[test]
fn a_closed_loop_refuses_to_run() {
    let lp = EventLoop::new();
    lp.close().unwrap();
    assert!(lp.is_closed());
    assert_eq!(
        lp.run_until_complete(async {}),
        Err(RunError::Runtime(RuntimeError::Closed))
    );
    assert_eq!(
        lp.try_create_task(async {}).err(),
        Some(RuntimeError::Closed)
    );
}

#[test]
fn close_is_idempotent_and_refused_while_running() {
    let lp = EventLoop::new();
    let inner = lp.clone();
    let r = lp.run_until_complete(async move { inner.close() }).unwrap();
    assert_eq!(r, Err(RuntimeError::CloseWhileRunning));
    lp.close().unwrap();
    lp.close().unwrap();
}

#[test]
fn close_drops_pending_tasks_and_marks_them_cancelled() {
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let lp = EventLoop::new();
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let t = lp.create_task(async move {
        let _f = Flag(d);
        std::future::pending::<()>().await;
    });
    lp.run_until_complete(yield_now()).unwrap();
    assert!(!t.done());
    lp.close().unwrap();
    assert!(dropped.get());
    assert!(t.cancelled());
}

/// docs/semantics.md: `close` drops the futures of pending tasks, they end
/// cancelled, and their done callbacks run (in the order they were added),
/// although the loop never runs again.
#[test]
fn close_runs_the_done_callbacks_of_the_tasks_it_cancels() {
    let lp = EventLoop::new();
    let checks = Checks::new();
    let tasks: Vec<_> = (0..2)
        .map(|_| lp.create_task(std::future::pending::<()>()))
        .collect();
    for (i, t) in tasks.iter().enumerate() {
        for n in ["first", "second"] {
            let c = checks.clone();
            t.add_done_callback(move |task| {
                c.check(format!("task {i}, {n} callback"), || {
                    assert!(task.cancelled(), "ran for a task that is not cancelled");
                });
            });
        }
    }
    lp.run_until_complete(yield_now()).unwrap();
    assert!(checks.names().is_empty(), "nothing is done yet");
    lp.close().unwrap();
    // Every callback passed its check...
    let mut ran = checks.names();
    checks.assert_ran(&ran);
    // ...and ran once, each task's in the order they were added (the tasks in
    // whichever order close takes them: a stable sort by task keeps the rest).
    ran.sort_by_key(|n| n.starts_with("task 1"));
    assert_eq!(
        ran,
        [
            "task 0, first callback",
            "task 0, second callback",
            "task 1, first callback",
            "task 1, second callback"
        ]
    );
    assert!(tasks.iter().all(|t| t.cancelled()));
}

#[test]
fn cancel_all_tasks_lets_each_task_finish_its_cancellation() {
    let lp = EventLoop::new();
    let tasks: Vec<_> = (0..3)
        .map(|_| lp.create_task(std::future::pending::<()>()))
        .collect();
    lp.run_until_complete(yield_now()).unwrap();
    lp.cancel_all_tasks().unwrap();
    assert!(tasks.iter().all(|t| t.cancelled()));
    assert!(lp.all_tasks().is_empty());
}

#[test]
fn the_loop_is_reported_running_only_inside_run() {
    let lp = EventLoop::new();
    assert!(!lp.is_running());
    assert_eq!(get_running_loop().unwrap_err(), RuntimeError::NoRunningLoop);
    let l2 = lp.clone();
    lp.run_until_complete(async move {
        assert!(l2.is_running());
        assert!(get_running_loop().unwrap().same_loop(&l2));
    })
    .unwrap();
    assert!(!lp.is_running());
}

#[test]
fn a_main_task_that_nothing_can_wake_is_reported_stalled_not_hung() {
    let lp = EventLoop::new();
    let r = lp.run_until_complete(std::future::pending::<()>());
    assert_eq!(r, Err(RunError::Runtime(RuntimeError::Stalled)));
    // The loop is still usable, and the stalled task is still pending.
    assert_eq!(lp.all_tasks().len(), 1);
    assert_eq!(lp.run_until_complete(async { 3 }).unwrap(), 3);
}

#[test]
fn tasks_left_pending_by_one_run_continue_in_the_next() {
    let lp = EventLoop::new();
    let progress = Rc::new(Cell::new(0));
    let p = progress.clone();
    let t = lp.create_task(async move {
        for _ in 0..4 {
            p.set(p.get() + 1);
            yield_now().await;
        }
    });
    lp.run_until_complete(yield_now()).unwrap();
    let after_first = progress.get();
    assert!(after_first < 4);
    lp.run_until_complete(t).unwrap().unwrap();
    assert_eq!(progress.get(), 4);
}

#[test]
fn dropping_the_last_loop_handle_closes_it_and_drops_its_tasks() {
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let t = {
        let lp = EventLoop::new();
        let t = lp.create_task(async move {
            let _f = Flag(d);
            std::future::pending::<()>().await;
        });
        lp.run_until_complete(yield_now()).unwrap();
        t
    };
    assert!(dropped.get());
    assert!(
        t.cancelled(),
        "a task outliving its loop is done, cancelled"
    );
}

#[test]
fn debug_flag_round_trips() {
    let lp = EventLoop::new();
    assert!(!lp.get_debug());
    lp.set_debug(true);
    assert!(lp.get_debug());
}

#[test]
fn task_get_loop_is_its_loop() {
    let lp = EventLoop::new();
    let l2 = lp.clone();
    lp.run_until_complete(async move {
        let t = create_task(async {});
        assert!(t.get_loop().same_loop(&l2));
    })
    .unwrap();
}
