//! Which tasks `all_tasks()` lists and closing cancels, wherever a task is:
//! not yet run (in the ready queue), in its first step, suspended, or in an
//! eager step; and what a task's cell holds at each point of its life (the
//! future, then its value or its panic), each dropped exactly once.
//!
//! asyncio: "Return a set of not yet finished Task objects run by the loop"
//! (`all_tasks`); `Runner.close()` and `asyncio.run` cancel every remaining
//! task, including those that never started (CPython's
//! `test_tasks.test_all_tasks`, `test_runners.test_asyncio_run_cancel_*`).

use std::cell::Cell;
use std::collections::HashSet;
use std::rc::Rc;

use asyncio_core::{
    EventLoop, LoopFuture, Task, TaskError, TaskRef, all_tasks, create_future, create_task,
    current_task, yield_now,
};

fn ids(tasks: &[TaskRef]) -> HashSet<u64> {
    tasks.iter().map(TaskRef::id).collect()
}

#[test]
fn a_task_that_has_not_run_yet_is_listed() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let t = create_task(async move { r.set(true) });
        assert!(!ran.get(), "the default factory is lazy");
        let all = all_tasks().unwrap();
        assert!(all.contains(&t), "a task in the ready queue is pending");
        t.await.unwrap();
        assert!(!all_tasks().unwrap().iter().any(|x| x.done()));
    })
    .unwrap();
}

#[test]
fn the_current_task_is_listed_in_its_first_step() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        // No await yet: the main task runs its first step.
        let me = current_task().unwrap();
        assert!(all_tasks().unwrap().contains(&me));
        let child = create_task(async {
            let me = current_task().unwrap();
            all_tasks().unwrap().contains(&me)
        });
        assert!(
            child.await.unwrap(),
            "a child in its first step lists itself"
        );
    })
    .unwrap();
}

#[test]
fn a_task_that_wakes_itself_in_its_first_step_is_listed_once() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let child = create_task(async {
            // Queued again while it runs its first step.
            std::future::poll_fn(|cx| {
                cx.waker().wake_by_ref();
                std::task::Poll::Ready(())
            })
            .await;
            let me = current_task().unwrap();
            all_tasks().unwrap().iter().filter(|t| **t == me).count()
        });
        assert_eq!(child.await.unwrap(), 1);
    })
    .unwrap();
}

#[test]
fn a_task_cancelled_before_it_ran_leaves_the_list_without_running() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let t = create_task(async move { r.set(true) });
        assert!(t.cancel());
        assert!(all_tasks().unwrap().contains(&t), "cancelling is a request");
        yield_now().await;
        assert!(t.cancelled());
        assert!(!ran.get());
        assert!(!all_tasks().unwrap().contains(&t));
    })
    .unwrap();
}

/// Sets a flag when dropped (the future of a task, or its value).
struct Flag(Rc<Cell<u32>>);

impl Drop for Flag {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn close_cancels_tasks_that_never_ran_and_runs_their_callbacks() {
    let lp = EventLoop::new();
    let drops = Rc::new(Cell::new(0));
    let polled = Rc::new(Cell::new(false));
    let (flag, p) = (Flag(drops.clone()), polled.clone());
    let t = lp.create_task(async move {
        let _flag = flag;
        p.set(true);
    });
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    t.add_done_callback(move |t| c.set(t.cancelled()));
    lp.close().unwrap();
    assert!(t.cancelled(), "a task the loop never ran ends cancelled");
    assert!(!polled.get(), "and its future never runs");
    assert_eq!(drops.get(), 1, "its future is dropped once");
    assert!(called.get(), "its done callback ran");
}

/// Suspended tasks leave the list in every order: the list stays exact.
#[test]
fn tasks_finishing_in_any_order_leave_the_list_exact() {
    const N: usize = 300;
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let futs: Vec<LoopFuture<u32>> = (0..N).map(|_| create_future()).collect();
        let tasks: Vec<Task<u32>> = futs
            .iter()
            .map(|f| {
                let f = f.clone();
                create_task(async move { f.await.unwrap() })
            })
            .collect();
        yield_now().await;
        let mut pending: HashSet<u64> = tasks.iter().map(|t| t.id()).collect();
        pending.insert(current_task().unwrap().id());
        assert_eq!(ids(&all_tasks().unwrap()), pending);
        // A fixed permutation (multiplication by a unit mod N), finishing a
        // few at a time.
        let order: Vec<usize> = (0..N).map(|i| (i * 7 + 3) % N).collect();
        for chunk in order.chunks(7) {
            for &i in chunk {
                futs[i].set_result(i as u32).unwrap();
            }
            yield_now().await;
            for &i in chunk {
                assert!(tasks[i].done());
                pending.remove(&tasks[i].id());
            }
            assert_eq!(ids(&all_tasks().unwrap()), pending);
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), i as u32);
        }
    })
    .unwrap();
}

/// Every task starts eagerly; fixed, so the loop takes its fast path.
struct Eager;

impl asyncio_core::TaskFactory for Eager {
    fn create(&self, _task: &TaskRef) -> asyncio_core::StartMode {
        asyncio_core::StartMode::Eager
    }
    fn fixed_mode(&self) -> Option<asyncio_core::StartMode> {
        Some(asyncio_core::StartMode::Eager)
    }
}

#[test]
fn tasks_in_nested_eager_steps_are_listed_until_they_finish() {
    let lp = EventLoop::new();
    lp.set_task_factory(Eager);
    lp.run_until_complete(async {
        let outer = create_task(async {
            let outer = current_task().unwrap();
            let inner = create_task(async move {
                let inner = current_task().unwrap();
                let all = all_tasks().unwrap();
                (all.contains(&inner), all.contains(&outer))
            });
            assert!(inner.done(), "it finished in its eager step");
            inner.await.unwrap()
        });
        assert!(outer.done());
        assert_eq!(outer.await.unwrap(), (true, true));
        assert_eq!(all_tasks().unwrap(), vec![current_task().unwrap()]);
    })
    .unwrap();
}

#[test]
fn a_value_never_taken_is_dropped_once_with_the_task() {
    let lp = EventLoop::new();
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let t = lp.create_task(async move { Flag(d) });
    lp.run_until_complete(yield_now()).unwrap();
    assert!(t.done());
    assert_eq!(drops.get(), 0, "the value waits in the task");
    drop(t);
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_value_taken_is_the_awaiters_and_dropped_once() {
    let lp = EventLoop::new();
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let mut t = lp.create_task(async move { Flag(d) });
    lp.run_until_complete(yield_now()).unwrap();
    let v = t.try_result().unwrap().unwrap();
    assert!(t.try_result().is_err(), "taken once");
    drop(t);
    assert_eq!(drops.get(), 0);
    drop(v);
    assert_eq!(drops.get(), 1);
}

#[test]
fn the_future_of_a_cancelled_task_is_dropped_once_and_nothing_is_left() {
    let lp = EventLoop::new();
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let t = lp.create_task(async move {
        let _f = Flag(d);
        std::future::pending::<Flag>().await
    });
    lp.run_until_complete(yield_now()).unwrap();
    t.cancel();
    lp.run_until_complete(yield_now()).unwrap();
    assert_eq!(drops.get(), 1);
    let err = lp.run_until_complete(t).unwrap().err();
    assert!(matches!(err, Some(TaskError::Cancelled(_))));
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_panic_is_kept_until_taken_and_its_payload_dropped_once() {
    // The payload must be `Send`: its drops are counted in a thread-local.
    thread_local!(static DROPS: Rc<Cell<u32>> = Rc::new(Cell::new(0)));
    struct SendPayload;
    impl Drop for SendPayload {
        fn drop(&mut self) {
            DROPS.with(|d| d.set(d.get() + 1));
        }
    }
    let lp = EventLoop::new();
    lp.set_exception_handler(Some(|_: &asyncio_core::ExceptionContext| {}));
    let mut t = lp.create_task(async {
        if DROPS.with(|d| d.get()) == 0 {
            std::panic::panic_any(SendPayload);
        }
        1
    });
    // (The panic hook prints the expected panic: swapping the process-wide
    // hook would also silence the other tests running at the same time.)
    lp.run_until_complete(yield_now()).unwrap();
    assert!(t.done() && !t.cancelled());
    assert_eq!(DROPS.with(|d| d.get()), 0, "the panic waits in the task");
    let err = t.try_result().unwrap().unwrap_err();
    assert!(matches!(err, TaskError::Panicked(_)));
    drop(t);
    assert_eq!(DROPS.with(|d| d.get()), 0, "the awaiter holds it now");
    drop(err);
    assert_eq!(DROPS.with(|d| d.get()), 1);
}

/// Tasks that suspend after others left take their places in the list: the
/// list stays exact through every mix of arrivals and departures.
#[test]
fn tasks_arriving_while_others_leave_keep_the_list_exact() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let me = current_task().unwrap().id();
        let mut live: Vec<(LoopFuture<()>, Task<()>)> = Vec::new();
        let mut expected: HashSet<u64> = HashSet::from([me]);
        let mut seed = 12345u32;
        for round in 0..40 {
            // A few arrive...
            for _ in 0..(round % 5 + 1) {
                let f: LoopFuture<()> = create_future();
                let g = f.clone();
                let t = create_task(async move { g.await.unwrap() });
                expected.insert(t.id());
                live.push((f, t));
            }
            yield_now().await;
            assert_eq!(ids(&all_tasks().unwrap()), expected, "round {round}");
            // ...and a pseudo-random few leave.
            for _ in 0..(round % 3 + 1) {
                if live.is_empty() {
                    break;
                }
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let (f, t) = live.swap_remove(seed as usize % live.len());
                f.set_result(()).unwrap();
                expected.remove(&t.id());
                t.await.unwrap();
            }
            assert_eq!(ids(&all_tasks().unwrap()), expected, "round {round}");
        }
        for (f, t) in live {
            f.set_result(()).unwrap();
            t.await.unwrap();
        }
        assert_eq!(ids(&all_tasks().unwrap()), HashSet::from([me]));
    })
    .unwrap();
}
