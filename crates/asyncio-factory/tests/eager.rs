//! The eager start, as CPython documents `eager_task_factory`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use asyncio_core::{
    EventLoop, MAX_EAGER_DEPTH, Task, TaskError, TaskOptions, TaskRef, all_tasks, create_task,
    create_task_with, current_task, in_eager_step, yield_now,
};
use asyncio_factory::{create_eager_task_factory, eager_task_factory};

fn eager_loop() -> EventLoop {
    let lp = EventLoop::new();
    lp.set_task_factory(eager_task_factory);
    lp
}

#[test]
fn an_eager_task_that_does_not_suspend_finishes_inside_create_task() {
    let lp = eager_loop();
    lp.run_until_complete(async {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let t = create_task(async move { r.set(true) });
        assert!(ran.get(), "the body ran synchronously");
        assert!(t.done());
        assert!(
            !all_tasks().unwrap().contains(&t),
            "never scheduled or registered"
        );
        t.await.unwrap();
    })
    .unwrap();
}

#[test]
fn lazy_tasks_do_not_run_inside_create_task() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let t = create_task(async move { r.set(true) });
        assert!(!ran.get());
        t.await.unwrap();
        assert!(ran.get());
    })
    .unwrap();
}

#[test]
fn current_task_is_the_new_task_during_its_eager_step_and_the_creator_after() {
    let lp = eager_loop();
    lp.run_until_complete(async {
        let creator = current_task().unwrap();
        let seen = Rc::new(RefCell::new(None));
        let s = seen.clone();
        let t = create_task(async move {
            *s.borrow_mut() = current_task();
        });
        assert_eq!(seen.borrow().as_ref(), Some(&t.to_ref()));
        assert_eq!(current_task().unwrap(), creator);
    })
    .unwrap();
}

#[test]
fn an_eager_task_that_suspends_is_registered_and_resumes_later() {
    let lp = eager_loop();
    lp.run_until_complete(async {
        let steps = Rc::new(RefCell::new(Vec::new()));
        let s = steps.clone();
        let t = create_task(async move {
            s.borrow_mut().push("before");
            yield_now().await;
            s.borrow_mut().push("after");
            5
        });
        assert_eq!(*steps.borrow(), ["before"]);
        assert!(!t.done());
        assert!(all_tasks().unwrap().contains(&t));
        assert_eq!(t.await, Ok(5));
        assert_eq!(*steps.borrow(), ["before", "after"]);
    })
    .unwrap();
}

#[test]
fn all_tasks_during_an_eager_step_includes_the_stepping_task() {
    let lp = eager_loop();
    lp.run_until_complete(async {
        let inner_view = Rc::new(RefCell::new(Vec::new()));
        let v = inner_view.clone();
        let t = create_task(async move {
            *v.borrow_mut() = all_tasks().unwrap();
        });
        assert!(inner_view.borrow().contains(&t.to_ref()));
    })
    .unwrap();
}

/// Counts how often each of `expected` appears in `all`, which must hold
/// nothing else.
fn assert_lists_each_once(all: &[TaskRef], expected: &[&TaskRef]) {
    assert_eq!(all.len(), expected.len(), "{all:?}");
    for task in expected {
        let times = all.iter().filter(|t| t == task).count();
        assert_eq!(times, 1, "{task:?} listed {times} times in {all:?}");
    }
}

#[test]
fn another_loops_all_tasks_never_lists_this_loops_eager_tasks() {
    let lp = eager_loop();
    let other = EventLoop::new();
    let seen = lp
        .run_until_complete(async move {
            create_task(async move { (other.all_tasks(), all_tasks().unwrap().len()) })
                .await
                .unwrap()
        })
        .unwrap();
    assert!(seen.0.is_empty(), "{:?}", seen.0);
    assert_eq!(seen.1, 2, "this loop's: the main task and the stepping one");
}

/// Where `all_tasks()` was called, what it said, and the task that called it.
type View = (&'static str, Vec<TaskRef>, TaskRef);

#[test]
fn all_tasks_lists_every_task_of_nested_eager_steps_once() {
    // Three eager steps nested inside the main task: an unnamed task (the fast
    // path), a named one (the general path) and an unnamed one again.
    let lp = eager_loop();
    lp.run_until_complete(async {
        let main = current_task().unwrap();
        let views: Rc<RefCell<Vec<View>>> = Rc::default();
        let v = views.clone();
        let outer = create_task(async move {
            let outer = current_task().unwrap();
            let v2 = v.clone();
            let middle = create_task_with(
                async move {
                    let middle = current_task().unwrap();
                    let v3 = v2.clone();
                    let inner = create_task(async move {
                        let inner = current_task().unwrap();
                        v3.borrow_mut()
                            .push(("inner step", all_tasks().unwrap(), inner));
                        yield_now().await;
                    });
                    // `inner` suspended: registered now, and listed once.
                    v2.borrow_mut()
                        .push(("middle step", all_tasks().unwrap(), middle));
                    inner.await.unwrap();
                },
                TaskOptions::new().name("middle"),
            );
            v.borrow_mut()
                .push(("outer step", all_tasks().unwrap(), outer));
            middle.await.unwrap();
        });
        let views = std::mem::take(&mut *views.borrow_mut());
        assert_eq!(
            views.iter().map(|(at, ..)| *at).collect::<Vec<_>>(),
            ["inner step", "middle step", "outer step"]
        );
        // Each view holds the main task, the tasks whose steps enclose it and
        // the tasks that suspended in theirs.
        let everyone = [&main, &views[2].2, &views[1].2, &views[0].2];
        for (_, all, _) in &views {
            assert_lists_each_once(all, &everyone);
        }
        outer.await.unwrap();
        assert_lists_each_once(&all_tasks().unwrap(), &[&main]);
    })
    .unwrap();
}

#[test]
fn a_panic_in_the_eager_step_is_stored_in_the_task() {
    let lp = eager_loop();
    lp.run_until_complete(async {
        let t: Task<()> = create_task(async { panic!("eager boom") });
        assert!(t.done() && t.panicked());
        match t.await {
            Err(TaskError::Panicked(p)) => assert_eq!(p.message(), "eager boom"),
            other => panic!("{other:?}"),
        }
    })
    .unwrap();
}

#[test]
fn eager_start_off_a_running_loop_falls_back_to_scheduling() {
    let lp = eager_loop();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let t = lp.create_task(async move { r.set(true) });
    assert!(!ran.get() && !t.done());
    lp.run_until_complete(t).unwrap().unwrap();
    assert!(ran.get());
}

#[test]
fn per_call_eager_start_overrides_the_loop_factory() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let t = create_task_with(async {}, TaskOptions::new().eager_start(true));
        assert!(t.done());
    })
    .unwrap();
    let lp = eager_loop();
    lp.run_until_complete(async {
        let t = create_task_with(async {}, TaskOptions::new().eager_start(false));
        assert!(!t.done());
        t.await.unwrap();
    })
    .unwrap();
}

#[test]
fn create_eager_task_factory_calls_the_constructor_before_the_step() {
    let lp = EventLoop::new();
    let names = Rc::new(RefCell::new(Vec::new()));
    lp.set_task_factory(create_eager_task_factory(|t| {
        t.set_name(format!("custom-{}", t.id()))
    }));
    let n = names.clone();
    lp.run_until_complete(async move {
        let n2 = n.clone();
        let t = create_task(async move { n2.borrow_mut().push(current_task().unwrap().name()) });
        assert!(t.done(), "still eager");
        assert_eq!(n.borrow()[0], format!("custom-{}", t.id()));
    })
    .unwrap();
}

/// Task `n` creates task `n + 1` and awaits it, `depth` times; each level
/// notes in `eager` whether it started inside its creator's `create_task`.
fn chain(
    depth: u32,
    n: u32,
    eager: Rc<RefCell<Vec<bool>>>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = u32>>> {
    Box::pin(async move {
        eager.borrow_mut().push(in_eager_step());
        if n == depth {
            return n;
        }
        let next = chain(depth, n + 1, Rc::clone(&eager));
        create_task(next).await.unwrap()
    })
}

#[test]
fn deep_eager_recursion_falls_back_to_scheduling_past_the_bound() {
    let lp = eager_loop();
    let depth = if cfg!(miri) { 200 } else { 20_000 };
    let eager = Rc::new(RefCell::new(Vec::new()));
    let out = lp
        .run_until_complete(chain(depth, 0, Rc::clone(&eager)))
        .unwrap();
    assert_eq!(out, depth);
    let eager = eager.borrow();
    assert_eq!(eager.len(), depth as usize + 1);
    // Eager steps nest at most MAX_EAGER_DEPTH deep: no longer run of levels
    // started eagerly, one inside the other, and a scheduled level after each.
    let longest_run = eager.split(|&e| !e).map(<[bool]>::len).max().unwrap();
    assert_eq!(longest_run, MAX_EAGER_DEPTH as usize);
    let scheduled = eager.iter().filter(|&&e| !e).count();
    assert!(
        scheduled >= depth as usize / (MAX_EAGER_DEPTH as usize + 1),
        "{scheduled} levels scheduled"
    );
}

/// Level `n` of a chain: logs whether it started in an eager step, then
/// creates level `n + 1` (every other level with a name, which takes the
/// general path rather than the fast one) and awaits it.
fn logged_chain(
    depth: u32,
    n: u32,
    log: Rc<RefCell<Vec<bool>>>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    Box::pin(async move {
        log.borrow_mut().push(in_eager_step());
        if n == depth {
            return;
        }
        let next = logged_chain(depth, n + 1, Rc::clone(&log));
        let task = if n.is_multiple_of(2) {
            create_task(next)
        } else {
            create_task_with(next, TaskOptions::new().name(format!("level {}", n + 1)))
        };
        task.await.unwrap();
    })
}

#[test]
fn exactly_max_eager_depth_steps_nest_whichever_path_starts_them() {
    let lp = eager_loop();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = Rc::clone(&log);
    let depth = 3 * (MAX_EAGER_DEPTH + 1);
    lp.run_until_complete(async move {
        // Resumed by the loop: no eager step below the chain.
        yield_now().await;
        create_task(logged_chain(depth, 1, l)).await.unwrap();
    })
    .unwrap();
    let log = log.borrow();
    assert_eq!(log.len(), depth as usize);
    for (level, &eager) in (1u32..).zip(log.iter()) {
        // Past the bound a level is scheduled instead, and starts the count anew.
        let expected = !level.is_multiple_of(MAX_EAGER_DEPTH + 1);
        assert_eq!(eager, expected, "level {level}");
    }
}

#[test]
fn in_eager_step_holds_from_a_tasks_start_to_its_first_suspension() {
    assert!(!in_eager_step(), "outside a loop");
    let lp = eager_loop();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = Rc::clone(&seen);
    lp.run_until_complete(async move {
        assert!(in_eager_step(), "the main task starts eagerly too");
        yield_now().await;
        assert!(!in_eager_step(), "resumed by the loop");
        let s1 = Rc::clone(&s);
        let eager = create_task(async move {
            s1.borrow_mut().push(("eager, first step", in_eager_step()));
            yield_now().await;
            s1.borrow_mut().push(("eager, resumed", in_eager_step()));
        });
        assert!(!in_eager_step(), "the creator, after the child's step");
        let s2 = Rc::clone(&s);
        let lazy = create_task_with(
            async move { s2.borrow_mut().push(("lazy", in_eager_step())) },
            TaskOptions::new().eager_start(false),
        );
        eager.await.unwrap();
        lazy.await.unwrap();
    })
    .unwrap();
    let mut seen = seen.borrow().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("eager, first step", true),
            ("eager, resumed", false),
            ("lazy", false)
        ]
    );
}

#[test]
#[ignore = "stress: a million-deep chain of eager tasks; run from ci/stress.sh"]
fn a_million_deep_eager_chain_does_not_overflow_the_stack() {
    let lp = eager_loop();
    let out = lp
        .run_until_complete(chain(1_000_000, 0, Rc::default()))
        .unwrap();
    assert_eq!(out, 1_000_000);
}

#[test]
fn a_task_that_cancels_itself_in_its_eager_step_and_suspends_ends_cancelled() {
    let lp = eager_loop();
    let ran_on = Rc::new(Cell::new(false));
    let r = Rc::clone(&ran_on);
    let cancelled = lp
        .run_until_complete(async move {
            let task = create_task(async move {
                current_task().expect("inside its step").cancel();
                yield_now().await;
                r.set(true);
            });
            assert!(!task.done(), "it suspended in its eager step");
            task.await.unwrap_err().is_cancelled()
        })
        .unwrap();
    assert!(cancelled);
    assert!(
        !ran_on.get(),
        "the cancel requested during the step took effect"
    );
}

/// An output whose drops are counted.
struct Counted(Rc<Cell<u32>>, u32);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn outputs_of_finished_eager_tasks_are_dropped_once_whether_read_or_not() {
    let lp = eager_loop();
    let drops = Rc::new(Cell::new(0));
    let d = Rc::clone(&drops);
    let sum = lp
        .run_until_complete(async move {
            let mut sum = 0;
            for i in 0..40u32 {
                let d = Rc::clone(&d);
                let task = create_task(async move { Counted(d, i) });
                assert!(task.done());
                if i % 2 == 0 {
                    sum += task.await.unwrap().1;
                } else {
                    drop(task);
                }
            }
            sum
        })
        .unwrap();
    assert_eq!(sum, (0..40).step_by(2).sum::<u32>());
    assert_eq!(drops.get(), 40, "every output dropped exactly once");
}

#[test]
fn reused_cells_keep_eager_and_suspended_tasks_apart() {
    let lp = eager_loop();
    let out = lp
        .run_until_complete(async {
            let mut pending = Vec::new();
            let mut total = 0u64;
            for i in 0..60u64 {
                if i % 3 == 0 {
                    pending.push(create_task(async move {
                        yield_now().await;
                        i * 10
                    }));
                } else {
                    total += create_task(async move { i }).await.unwrap();
                }
            }
            for t in pending {
                total += t.await.unwrap();
            }
            total
        })
        .unwrap();
    let expected: u64 = (0..60u64)
        .map(|i| if i % 3 == 0 { i * 10 } else { i })
        .sum();
    assert_eq!(out, expected);
}
