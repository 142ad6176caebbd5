//! `run_until_complete` takes a main future that borrows from its caller: it
//! is finished or dropped before the call returns, on every way out.

use std::cell::{Cell, RefCell};

use asyncio_core::{EventLoop, RunError, RuntimeError, TaskRef, current_task, yield_now};

struct OnDrop<'a> {
    dropped: &'a Cell<bool>,
    task_at_drop: &'a Cell<bool>,
}

impl Drop for OnDrop<'_> {
    fn drop(&mut self) {
        self.dropped.set(true);
        self.task_at_drop.set(current_task().is_some());
    }
}

#[test]
fn the_main_future_mutates_a_local_of_the_caller() {
    let lp = EventLoop::new();
    let mut hits = 0;
    let mut log = Vec::new();
    lp.run_until_complete(async {
        for i in 0..3 {
            yield_now().await;
            hits += 1;
            log.push(i);
        }
    })
    .unwrap();
    assert_eq!((hits, log), (3, vec![0, 1, 2]));
}

#[test]
fn the_output_may_borrow_from_the_caller() {
    let lp = EventLoop::new();
    let text = String::from("borrowed words");
    let first: &str = lp
        .run_until_complete(async {
            yield_now().await;
            text.split(' ').next().unwrap()
        })
        .unwrap();
    assert_eq!(first, "borrowed");
}

#[test]
fn a_cancelled_main_future_is_dropped_inside_its_task_before_run_returns() {
    let lp = EventLoop::new();
    let dropped = Cell::new(false);
    let task_at_drop = Cell::new(false);
    let out = lp.run_until_complete(async {
        let _g = OnDrop {
            dropped: &dropped,
            task_at_drop: &task_at_drop,
        };
        current_task().unwrap().cancel();
        yield_now().await;
        unreachable!("cancelled at its suspension point");
    });
    assert!(matches!(out, Err(RunError::Cancelled(_))));
    assert!(dropped.get());
    assert!(
        task_at_drop.get(),
        "dropped by the loop, as a cancelled task's future"
    );
}

#[test]
fn a_stalled_main_future_is_dropped_before_run_returns_and_the_task_left_behind_is_inert() {
    let lp = EventLoop::new();
    let dropped = Cell::new(false);
    let task_at_drop = Cell::new(false);
    let kept: RefCell<Option<TaskRef>> = RefCell::new(None);
    let out = lp.run_until_complete(async {
        let _g = OnDrop {
            dropped: &dropped,
            task_at_drop: &task_at_drop,
        };
        *kept.borrow_mut() = current_task();
        // Nothing can ever wake this.
        std::future::pending::<()>().await;
    });
    assert!(matches!(out, Err(RunError::Runtime(RuntimeError::Stalled))));
    assert!(dropped.get(), "dropped before run_until_complete returned");
    // The main task the loop still holds no longer reaches the caller's
    // frame: cancelling and running it, then closing, touches nothing.
    let main = kept.borrow_mut().take().unwrap();
    main.cancel();
    lp.run_until_complete(yield_now()).unwrap();
    lp.cancel_all_tasks().unwrap();
    lp.close().unwrap();
}

#[test]
fn a_panicking_main_future_is_resumed_and_its_borrows_end_with_the_call() {
    let lp = EventLoop::new();
    let mut v = vec![1];
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lp.run_until_complete(async {
            v.push(2);
            yield_now().await;
            panic!("main broke");
        })
    }));
    assert!(r.is_err());
    v.push(3);
    assert_eq!(v, [1, 2, 3]);
    // The loop is usable afterwards.
    assert_eq!(lp.run_until_complete(async { 5 }).unwrap(), 5);
}
