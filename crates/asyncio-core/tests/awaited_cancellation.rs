//! A task whose awaiter gives up — `wait_for`/`timeout` expiring, or the
//! awaiting task being cancelled — has finished cancelling (done, cancelled,
//! its destructors run) by the time the awaiter goes on, as in CPython 3.12+
//! (test_waitfor's `test_wait_for`, `test_wait_for_waits_for_task_cancellation`;
//! test_tasks' cancellation of a task awaiting a task; written anew).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use asyncio_core::{
    EventLoop, RunError, TaskRef, create_task, current_task, sleep, timeout, wait_for, yield_now,
};

/// Sets its flag when dropped: the `finally` of a Python coroutine.
struct Finally(Rc<Cell<bool>>);

impl Drop for Finally {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// test_wait_for: on `TimeoutError`, `fut.done()`, `fut.cancelled()`, and
/// its `finally` has run.
#[test]
fn when_wait_for_times_out_the_task_is_already_done_cancelled_and_cleaned_up() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let cleaned = Rc::new(Cell::new(false));
        let c = cleaned.clone();
        let task = create_task(async move {
            let _finally = Finally(c);
            sleep(Duration::from_secs(10)).await;
            "done"
        });
        let r = task.to_ref();
        let out = wait_for(task, Duration::from_millis(5)).await;
        assert!(out.is_err(), "timed out");
        assert!(r.done(), "done when TimeoutError is raised");
        assert!(r.cancelled(), "cancelled by the timeout");
        assert!(cleaned.get(), "its finally ran before TimeoutError");
    })
    .unwrap();
}

#[test]
fn when_a_timeout_around_a_task_expires_the_task_has_finished_cancelling() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let cleaned = Rc::new(Cell::new(false));
        let c = cleaned.clone();
        let task = create_task(async move {
            let _finally = Finally(c);
            std::future::pending::<()>().await;
        });
        let r = task.to_ref();
        assert!(timeout(Duration::from_millis(5), task).await.is_err());
        assert!(r.done() && r.cancelled() && cleaned.get());
    })
    .unwrap();
}

/// The awaiter of a task is cancelled: asyncio cancels the awaited task too
/// and resumes the awaiter only once that task is done. Here the awaiter is
/// the main task, so `run_until_complete` returns right when it ends: the
/// task it awaited has finished cancelling by then.
#[test]
fn a_cancelled_awaiter_ends_only_after_the_task_it_awaited_finished_cancelling() {
    let lp = EventLoop::new();
    let cleaned = Rc::new(Cell::new(false));
    let inner_ref = Rc::new(RefCell::new(None));
    let (c, slot) = (cleaned.clone(), inner_ref.clone());
    let out = lp.run_until_complete(async move {
        let inner = create_task(async move {
            let _finally = Finally(c);
            sleep(Duration::from_secs(10)).await;
        });
        *slot.borrow_mut() = Some(inner.to_ref());
        // Cancelled at its next suspension point: while awaiting `inner`.
        current_task().unwrap().cancel();
        inner.await
    });
    assert!(matches!(out, Err(RunError::Cancelled(_))), "{out:?}");
    let inner = inner_ref.borrow_mut().take().unwrap();
    assert!(inner.done() && inner.cancelled());
    assert!(
        cleaned.get(),
        "the awaited task's finally ran before the awaiter ended"
    );
}

/// The cleanup runs as the cancelled task's own: `current_task()` inside
/// its destructors is that task, as a coroutine's `finally` runs in its task.
#[test]
fn the_cancelled_tasks_cleanup_runs_as_that_task() {
    struct Seen(Rc<RefCell<Option<TaskRef>>>);
    impl Drop for Seen {
        fn drop(&mut self) {
            *self.0.borrow_mut() = current_task();
        }
    }
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let seen = Rc::new(RefCell::new(None));
        let s = seen.clone();
        let task = create_task(async move {
            let _seen = Seen(s);
            std::future::pending::<()>().await;
        });
        let r = task.to_ref();
        assert!(wait_for(task, Duration::from_millis(1)).await.is_err());
        assert_eq!(seen.borrow().as_ref(), Some(&r));
        // And the current task is the caller's again.
        assert_ne!(current_task().as_ref(), Some(&r));
    })
    .unwrap();
}

/// A chain of tasks each awaiting the next, cancelled at its head: every one
/// ends cancelled and cleaned up, however long the chain (past the nesting
/// bound the rest finish at their next turn instead of deeper in the stack).
#[test]
fn cancelling_the_head_of_a_long_chain_of_awaiting_tasks_cancels_them_all() {
    const LEN: usize = 2_000;
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let bottom_ran = Rc::new(Cell::new(0usize));
        let mut refs = Vec::with_capacity(LEN);
        let b = bottom_ran.clone();
        let mut next = create_task(async move {
            b.set(b.get() + 1);
            std::future::pending::<()>().await;
        });
        refs.push(next.to_ref());
        for _ in 1..LEN {
            let below = next;
            next = create_task(async move {
                let _ = below.await;
            });
            refs.push(next.to_ref());
        }
        for _ in 0..3 {
            yield_now().await;
        }
        next.cancel();
        let _ = next.await;
        // The first MAX_SYNC_CANCEL_DEPTH (64) links under the head finished
        // inside its cancellation; each later turn finishes 64 more.
        assert!(refs[LEN - 64..].iter().all(|r| r.done() && r.cancelled()));
        for _ in 0..LEN {
            if refs.iter().all(TaskRef::done) {
                break;
            }
            yield_now().await;
        }
        assert!(refs.iter().all(|r| r.done() && r.cancelled()));
        assert_eq!(bottom_ran.get(), 1);
    })
    .unwrap();
}

/// A task whose handle is dropped while awaited, but which is the one being
/// polled (it holds its own handle), is cancelled at its next suspension
/// point, as before: it cannot be finished from inside its own step.
#[test]
fn a_task_dropping_its_own_awaited_handle_is_cancelled_at_its_next_suspension() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let slot: Rc<RefCell<Option<asyncio_core::Task<()>>>> = Rc::new(RefCell::new(None));
        let s = slot.clone();
        let me = create_task(async move {
            // Give the awaiter time to poll the handle, then drop it from
            // inside this task's own step.
            yield_now().await;
            yield_now().await;
            drop(s.borrow_mut().take());
            sleep(Duration::from_secs(10)).await;
        });
        let r = me.to_ref();
        // An awaiter polls the handle once (it becomes "awaited").
        let waker = futures_noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let mut me = me;
        assert!(std::pin::Pin::new(&mut me).poll_fut(&mut cx).is_pending());
        *slot.borrow_mut() = Some(me);
        for _ in 0..5 {
            yield_now().await;
        }
        assert!(r.done() && r.cancelled());
    })
    .unwrap();
}

fn futures_noop_waker() -> std::task::Waker {
    std::task::Waker::noop().clone()
}

trait PollFut {
    fn poll_fut(self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()>;
}

impl PollFut for std::pin::Pin<&mut asyncio_core::Task<()>> {
    fn poll_fut(self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::future::Future::poll(self, cx).map(|_| ())
    }
}
