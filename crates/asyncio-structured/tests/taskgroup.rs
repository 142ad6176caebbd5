//! TaskGroup behaviours, after CPython's `test_taskgroups.py` (written anew).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use asyncio_core::{EventLoop, create_task, current_task, yield_now};
use asyncio_factory::eager_task_factory;
use asyncio_structured::{
    ChildFailure, ExceptionGroup, TaskGroup, TaskGroupError, run, task_group,
};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Boom(&'static str);

struct OnDrop(Rc<RefCell<Vec<&'static str>>>, &'static str);
impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.borrow_mut().push(self.1);
    }
}

async fn sleep_ticks(n: usize) {
    for _ in 0..n {
        yield_now().await;
    }
}

fn messages(e: &ExceptionGroup) -> Vec<String> {
    e.exceptions()
        .iter()
        .map(|f| match f {
            ChildFailure::Error { error, .. } => error.to_string(),
            ChildFailure::Panic { panic, .. } => format!("panic: {}", panic.message()),
            other => other.to_string(),
        })
        .collect()
}

#[test]
fn join_waits_for_every_child_and_returns_their_values() {
    let out = run(async {
        let tg = TaskGroup::new();
        let a = tg.create_fallible_task(async {
            sleep_ticks(5).await;
            Ok::<_, Boom>(1)
        });
        let b = tg.create_fallible_task(async {
            sleep_ticks(1).await;
            Ok::<_, Boom>(2)
        });
        tg.join().await.unwrap();
        assert!(a.done() && b.done());
        (a.await.unwrap(), b.await.unwrap())
    })
    .unwrap();
    assert_eq!(out, (1, 2));
}

#[test]
fn failures_are_aggregated_in_the_order_they_happened() {
    let err = run(async {
        let tg = TaskGroup::new();
        tg.create_fallible_task(async {
            sleep_ticks(3).await;
            Err::<(), _>(Boom("second"))
        });
        tg.create_fallible_task(async {
            sleep_ticks(1).await;
            Err::<(), _>(Boom("first"))
        });
        tg.join().await
    })
    .unwrap()
    .unwrap_err();
    // The second child is cancelled by the first failure before it can fail.
    assert_eq!(messages(&err), ["first"]);

    let err = run(async {
        let tg = TaskGroup::new();
        tg.create_fallible_task(async { Err::<(), _>(Boom("a")) });
        tg.create_fallible_task(async { Err::<(), _>(Boom("b")) });
        tg.join().await
    })
    .unwrap()
    .unwrap_err();
    // Both fail in the same iteration: both are kept, in order.
    assert_eq!(messages(&err), ["a", "b"]);
    assert!(err.to_string().contains("2 sub-exceptions"));
}

#[test]
fn a_failure_cancels_the_siblings_and_their_cleanup_runs() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let err = run(async move {
        let tg = TaskGroup::new();
        let l2 = l.clone();
        let slow = tg.create_task(async move {
            let _g = OnDrop(l2, "slow cleaned up");
            std::future::pending::<()>().await;
        });
        tg.create_fallible_task(async {
            yield_now().await;
            Err::<(), _>(Boom("fail"))
        });
        let r = tg.join().await;
        assert!(slow.cancelled());
        r
    })
    .unwrap()
    .unwrap_err();
    assert_eq!(messages(&err), ["fail"]);
    assert_eq!(*log.borrow(), ["slow cleaned up"]);
}

#[test]
fn a_panicking_child_is_a_failure_with_its_message() {
    let err = run(async {
        let tg = TaskGroup::new();
        tg.create_task_named(
            async {
                yield_now().await;
                if true {
                    panic!("child exploded");
                }
            },
            "exploder",
        );
        tg.join().await
    })
    .unwrap()
    .unwrap_err();
    assert_eq!(messages(&err), ["panic: child exploded"]);
    assert_eq!(err.exceptions()[0].task_name(), "exploder");
    assert!(err.exceptions()[0].is_panic());
}

#[test]
fn create_task_is_refused_while_shutting_down_and_after_the_end() {
    run(async {
        let tg = TaskGroup::new();
        let handle = tg.handle();
        tg.create_fallible_task(async { Err::<(), _>(Boom("x")) });
        // One turn for the child to fail, one for the group's abort callback.
        yield_now().await;
        yield_now().await;
        assert_eq!(
            tg.try_create_task(async {}).err(),
            Some(TaskGroupError::ShuttingDown)
        );
        assert!(tg.join().await.is_err());
        assert_eq!(
            handle.try_create_task(async {}).err(),
            Some(TaskGroupError::Finished)
        );
    })
    .unwrap();
}

#[test]
fn children_may_add_children_while_the_group_is_joined() {
    let count = run(async {
        let tg = TaskGroup::new();
        let h = tg.handle();
        let counter = Rc::new(Cell::new(0));
        let c = counter.clone();
        tg.create_task(async move {
            yield_now().await;
            for _ in 0..3 {
                let c = c.clone();
                h.create_task(async move {
                    yield_now().await;
                    c.set(c.get() + 1);
                });
            }
        });
        tg.join().await.unwrap();
        counter.get()
    })
    .unwrap();
    assert_eq!(count, 3);
}

#[test]
fn cancelling_the_task_that_owns_the_group_cancels_the_children() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    run(async move {
        let l2 = l.clone();
        let owner = create_task(async move {
            let tg = TaskGroup::new();
            for name in ["c1", "c2"] {
                let l = l2.clone();
                tg.create_task(async move {
                    let _g = OnDrop(l, name);
                    std::future::pending::<()>().await;
                });
            }
            tg.join().await
        });
        sleep_ticks(2).await;
        owner.cancel();
        assert!(owner.await.unwrap_err().is_cancelled());
        // The children are dropped at their next turn.
        yield_now().await;
    })
    .unwrap();
    let mut seen = log.borrow().clone();
    seen.sort();
    assert_eq!(seen, ["c1", "c2"]);
}

#[test]
fn dropping_a_group_that_was_not_joined_cancels_its_children() {
    run(async {
        let tg = TaskGroup::new();
        let t = tg.create_task(std::future::pending::<()>());
        drop(tg);
        yield_now().await;
        assert!(t.cancelled());
    })
    .unwrap();
}

#[test]
fn nested_groups_report_the_inner_group_as_one_failure_of_the_outer() {
    let err = run(async {
        task_group(|outer| async move {
            outer.create_fallible_task(async {
                task_group(|inner| async move {
                    inner.create_fallible_task(async { Err::<(), _>(Boom("deep")) });
                    yield_now().await;
                    Ok::<_, Boom>(())
                })
                .await
            });
            Ok::<_, Boom>(())
        })
        .await
    })
    .unwrap()
    .unwrap_err();
    assert_eq!(err.len(), 1);
    let text = err.to_string();
    assert!(text.contains("deep"), "{text}");
}

#[test]
fn the_scoped_form_cancels_the_body_on_a_child_failure() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let err = run(async move {
        task_group(|tg| async move {
            let _g = OnDrop(l.clone(), "body cleaned up");
            tg.create_fallible_task(async { Err::<(), _>(Boom("child")) });
            sleep_ticks(10).await;
            l.borrow_mut().push("body finished");
            Ok::<_, Boom>(())
        })
        .await
    })
    .unwrap()
    .unwrap_err();
    assert_eq!(messages(&err), ["child"]);
    assert_eq!(*log.borrow(), ["body cleaned up"]);
}

#[test]
fn a_body_panic_and_child_failures_come_back_together() {
    let err = run(async {
        task_group(|tg| async move {
            tg.create_fallible_task(async { Err::<(), _>(Boom("first child")) });
            tg.create_fallible_task(async { Err::<(), _>(Boom("second child")) });
            tg.create_fallible_task(async {
                yield_now().await;
                yield_now().await;
                Err::<(), _>(Boom("too late"))
            });
            // The first two children fail during this turn, before the body
            // resumes and panics.
            yield_now().await;
            panic!("body");
            #[allow(unreachable_code)]
            Ok::<_, Boom>(())
        })
        .await
    })
    .unwrap()
    .unwrap_err();
    // All in the order they happened; the body's panic cancelled the third
    // child before it failed.
    assert_eq!(
        messages(&err),
        ["first child", "second child", "panic: body"]
    );
}

#[test]
fn a_body_panic_after_an_eager_childs_failure_comes_back_with_it() {
    let lp = eager_loop();
    let err = lp
        .run_until_complete(async {
            task_group(|tg| async move {
                // Fails inside create_task, which aborts the group at once.
                let child = tg.create_fallible_task(async { Err::<(), _>(Boom("eager child")) });
                assert!(!child.done());
                panic!("body");
                #[allow(unreachable_code)]
                Ok::<_, Boom>(())
            })
            .await
        })
        .unwrap()
        .unwrap_err();
    assert_eq!(messages(&err), ["eager child", "panic: body"]);
}

#[test]
fn the_scoped_form_returns_the_bodys_output_when_nothing_fails() {
    let out = run(async {
        task_group(|tg| async move {
            tg.create_task(sleep_ticks(3));
            Ok::<_, Boom>("body value")
        })
        .await
    })
    .unwrap();
    assert_eq!(out.unwrap(), "body value");
}

/// A value whose destructor panics with `msg` (a `finally` that raises).
struct Bomb(&'static str);
impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

/// A loop (lazy, or under the eager factory) whose exception handler records
/// what it is given.
fn recording_loop(eager: bool) -> (EventLoop, Rc<RefCell<Vec<String>>>) {
    let lp = if eager {
        eager_loop()
    } else {
        EventLoop::new()
    };
    let reported = Rc::new(RefCell::new(Vec::new()));
    let r = Rc::clone(&reported);
    lp.set_exception_handler(Some(move |ctx: &asyncio_core::ExceptionContext| {
        r.borrow_mut().push(format!("{ctx}"));
    }));
    (lp, reported)
}

// Issue 13 item 7: a child that the group cancels and whose cleanup panics
// fails with that panic's own message, recorded once in the group's error and
// nowhere else (asyncio: the exception raised while handling CancelledError
// is the child's exception, which the group retrieves).
#[test]
fn a_child_that_panics_while_being_cancelled_is_a_failure_with_its_message() {
    for eager in [false, true] {
        let (lp, reported) = recording_loop(eager);
        let (err, cancelled) = lp
            .run_until_complete(async {
                let tg = TaskGroup::new();
                let bomb = tg.create_task_named(
                    async {
                        let _b = Bomb("cleanup failed");
                        std::future::pending::<()>().await;
                    },
                    "bomb",
                );
                tg.create_fallible_task(async {
                    yield_now().await;
                    Err::<(), _>(Boom("trigger"))
                });
                let err = tg.join().await.unwrap_err();
                (err, bomb.cancelled())
            })
            .unwrap();
        assert_eq!(
            messages(&err),
            ["trigger", "panic: cleanup failed"],
            "eager: {eager}"
        );
        assert_eq!(err.exceptions()[1].task_name(), "bomb");
        assert!(
            cancelled,
            "the child's task ends cancelled (eager: {eager})"
        );
        lp.close().unwrap();
        assert_eq!(*reported.borrow(), Vec::<String>::new(), "eager: {eager}");
    }
}

// The same when the child's handle is dropped at once (detached): its failure
// is the group's, never reported as never retrieved.
#[test]
fn a_detached_childs_cleanup_panic_is_reported_once_in_the_group() {
    let (lp, reported) = recording_loop(false);
    let err = lp
        .run_until_complete(async {
            task_group(|tg| async move {
                tg.create_task(async {
                    let _b = Bomb("child cleanup");
                    std::future::pending::<()>().await;
                });
                tg.create_fallible_task(async {
                    yield_now().await;
                    Err::<(), _>(Boom("trigger"))
                });
                std::future::pending::<()>().await;
                Ok::<_, Boom>(())
            })
            .await
        })
        .unwrap()
        .unwrap_err();
    assert_eq!(messages(&err), ["trigger", "panic: child cleanup"]);
    lp.close().unwrap();
    assert_eq!(*reported.borrow(), Vec::<String>::new());
}

// After CPython's test_taskgroups `test_taskgroup_19`: the body, cancelled
// because a child failed, fails in its cleanup; the group's error holds both,
// and the panic does not escape the group.
#[test]
fn a_body_that_panics_while_being_cancelled_comes_back_with_the_childs_failure() {
    for eager in [false, true] {
        let (lp, reported) = recording_loop(eager);
        let out = lp
            .run_until_complete(async {
                task_group(|tg| async move {
                    tg.create_fallible_task(async {
                        yield_now().await;
                        Err::<(), _>(Boom("crash soon"))
                    });
                    let _b = Bomb("body cleanup");
                    std::future::pending::<()>().await;
                    Ok::<_, Boom>(())
                })
                .await
            })
            .expect("the panic stays in the group");
        let err = out.unwrap_err();
        assert_eq!(
            messages(&err),
            ["crash soon", "panic: body cleanup"],
            "eager: {eager}"
        );
        lp.close().unwrap();
        assert_eq!(*reported.borrow(), Vec::<String>::new(), "eager: {eager}");
    }
}

// Both at once: the body and a sibling fail in their cleanup after one
// child's failure; each failure is there once, with its message.
#[test]
fn cleanup_panics_of_the_body_and_of_a_child_are_all_recorded_once() {
    let (lp, reported) = recording_loop(false);
    let err = lp
        .run_until_complete(async {
            task_group(|tg| async move {
                tg.create_task(async {
                    let _b = Bomb("child cleanup");
                    std::future::pending::<()>().await;
                });
                tg.create_fallible_task(async {
                    yield_now().await;
                    Err::<(), _>(Boom("trigger"))
                });
                let _b = Bomb("body cleanup");
                std::future::pending::<()>().await;
                Ok::<_, Boom>(())
            })
            .await
        })
        .unwrap()
        .unwrap_err();
    let mut m = messages(&err);
    assert_eq!(m.remove(0), "trigger", "the first failure comes first");
    m.sort();
    assert_eq!(m, ["panic: body cleanup", "panic: child cleanup"]);
    lp.close().unwrap();
    assert_eq!(*reported.borrow(), Vec::<String>::new());
}

// A group that is dropped (its owner cancelled) has nobody to hand failures
// to: a child's cleanup panic then ends its task with that panic, which the
// loop reports (once), rather than vanishing.
#[test]
fn a_cleanup_panic_of_a_child_of_a_dropped_group_is_reported_by_the_loop() {
    let (lp, reported) = recording_loop(false);
    lp.run_until_complete(async {
        let tg = TaskGroup::new();
        tg.create_task(async {
            let _b = Bomb("orphan cleanup");
            std::future::pending::<()>().await;
        });
        yield_now().await;
        drop(tg); // cancels the child
        sleep_ticks(3).await;
    })
    .unwrap();
    lp.close().unwrap();
    let reported = reported.borrow();
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert!(reported[0].contains("orphan cleanup"), "{reported:?}");
}

#[test]
fn an_eager_childs_failure_during_create_task_is_seen_by_the_group() {
    let lp = EventLoop::new();
    lp.set_task_factory(eager_task_factory);
    let err = lp
        .run_until_complete(async {
            let tg = TaskGroup::new();
            let t = tg.create_fallible_task(async { Err::<(), _>(Boom("eager")) });
            assert_eq!(
                tg.try_create_task(async {}).err(),
                Some(TaskGroupError::ShuttingDown)
            );
            let out = tg.join().await;
            // Its error is the group's: the child's own task ends cancelled,
            // saying so.
            let e = t.await.unwrap_err();
            assert!(e.is_cancelled());
            assert!(e.cancelled_message().unwrap().contains("ExceptionGroup"));
            out
        })
        .unwrap()
        .unwrap_err();
    assert_eq!(messages(&err), ["eager"]);
}

#[test]
fn an_eager_child_that_suspends_is_cancelled_if_a_sibling_fails_during_its_step() {
    let lp = EventLoop::new();
    lp.set_task_factory(eager_task_factory);
    lp.run_until_complete(async {
        let tg = TaskGroup::new();
        let h = tg.handle();
        // This child's eager step starts a failing grandchild, then suspends.
        let t = tg.create_task(async move {
            drop(h.create_fallible_task(async { Err::<(), _>(Boom("inner")) }));
            yield_now().await;
        });
        assert!(tg.join().await.is_err());
        assert!(t.cancelled());
    })
    .unwrap();
}

#[test]
fn a_hundred_thousand_children_all_run() {
    for eager in [false, true] {
        let lp = EventLoop::new();
        if eager {
            lp.set_task_factory(eager_task_factory);
        }
        let n = if cfg!(miri) { 100 } else { 100_000 };
        let done = lp
            .run_until_complete(async move {
                let counter = Rc::new(Cell::new(0usize));
                let tg = TaskGroup::new();
                for _ in 0..n {
                    let c = counter.clone();
                    drop(tg.create_task(async move { c.set(c.get() + 1) }));
                }
                tg.join().await.unwrap();
                counter.get()
            })
            .unwrap();
        assert_eq!(done, n);
    }
}

#[test]
#[ignore = "stress: one million children; run from ci/stress.sh"]
fn a_million_children_all_run() {
    let lp = EventLoop::new();
    lp.set_task_factory(eager_task_factory);
    let done = lp
        .run_until_complete(async {
            let counter = Rc::new(Cell::new(0usize));
            let tg = TaskGroup::new();
            for _ in 0..1_000_000 {
                let c = counter.clone();
                drop(tg.create_task(async move {
                    yield_now().await;
                    c.set(c.get() + 1)
                }));
            }
            tg.join().await.unwrap();
            counter.get()
        })
        .unwrap();
    assert_eq!(done, 1_000_000);
}

#[test]
fn current_task_inside_a_child_is_the_child() {
    run(async {
        let tg = TaskGroup::new();
        let t = tg.create_fallible_task(async { Ok::<_, Boom>(current_task().unwrap().id()) });
        tg.join().await.unwrap();
        let id = t.id();
        assert_eq!(t.await.unwrap(), id);
    })
    .unwrap();
}

fn eager_loop() -> EventLoop {
    let lp = EventLoop::new();
    lp.set_task_factory(eager_task_factory);
    lp
}

#[test]
fn an_eager_child_that_suspends_keeps_the_group_open_until_it_ends() {
    let lp = eager_loop();
    let log: Rc<RefCell<Vec<&'static str>>> = Rc::default();
    let l = Rc::clone(&log);
    lp.run_until_complete(async move {
        let tg = TaskGroup::new();
        for _ in 0..3 {
            // Finish inside create_task: never counted.
            tg.create_task(async {});
        }
        let l2 = Rc::clone(&l);
        let t = tg.create_fallible_task(async move {
            sleep_ticks(3).await;
            l2.borrow_mut().push("child");
            Ok::<_, Boom>(5)
        });
        assert!(!t.done());
        tg.join().await.unwrap();
        l.borrow_mut().push("joined");
        assert_eq!(t.await.unwrap(), 5);
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["child", "joined"]);
}

#[test]
fn children_created_in_an_eager_step_are_counted_only_if_they_suspend() {
    let lp = eager_loop();
    let out = lp
        .run_until_complete(async {
            task_group(|tg| async move {
                let inner = tg.clone();
                let a = tg.create_fallible_task(async move {
                    // Inside A's eager step: B finishes at once, C suspends.
                    let b = inner.create_fallible_task(async { Ok::<_, Boom>(1) });
                    let c = inner.create_fallible_task(async {
                        sleep_ticks(2).await;
                        Ok::<_, Boom>(10)
                    });
                    assert!(b.done() && !c.done());
                    yield_now().await;
                    Ok::<_, Boom>(b.await.unwrap() + c.await.unwrap())
                });
                assert!(!a.done());
                // Handed out of the body (wrapped: the body returns, not awaits it).
                Ok::<_, Boom>(Some(a))
            })
            .await
        })
        .unwrap();
    let a = out.expect("no child failed").expect("the body returns A");
    assert!(a.done(), "the group waited for A and C");
    let mut a = a;
    assert_eq!(a.try_result().unwrap().unwrap(), 11);
}

#[test]
fn a_failure_after_suspending_in_the_eager_step_is_reported_once() {
    let lp = eager_loop();
    let err = lp
        .run_until_complete(async {
            let tg = TaskGroup::new();
            tg.create_fallible_task(async {
                yield_now().await;
                Err::<(), _>(Boom("late"))
            });
            tg.create_fallible_task(async { Ok::<_, Boom>(()) });
            tg.join().await
        })
        .unwrap()
        .unwrap_err();
    assert_eq!(messages(&err), ["late"]);
}

#[test]
fn a_group_dropped_with_suspended_eager_children_outlives_them() {
    let lp = eager_loop();
    let log: Rc<RefCell<Vec<&'static str>>> = Rc::default();
    let l = Rc::clone(&log);
    lp.run_until_complete(async move {
        let tg = TaskGroup::new();
        let guard = OnDrop(Rc::clone(&l), "child dropped");
        let child = tg.create_task(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        // The owner goes away: the child is cancelled, and reports to the group
        // (kept alive by the child's own reference) when the loop drops it.
        drop(tg);
        l.borrow_mut().push("group dropped");
        assert!(child.await.unwrap_err().is_cancelled());
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["group dropped", "child dropped"]);
}

/// An eager task factory that, once `armed`, panics in `create`
/// (`panic_in_create`) or in `started`.
struct PanickyFactory {
    armed: Rc<Cell<bool>>,
    panic_in_create: bool,
}

impl asyncio_core::TaskFactory for PanickyFactory {
    fn create(&self, _task: &asyncio_core::TaskRef) -> asyncio_core::StartMode {
        if self.armed.get() && self.panic_in_create {
            panic!("factory refuses");
        }
        asyncio_core::StartMode::Eager
    }

    fn started(&self, _task: &asyncio_core::TaskRef, _mode: asyncio_core::StartMode) {
        if self.armed.get() && !self.panic_in_create {
            panic!("started hook fails");
        }
    }
}

#[test]
fn a_child_whose_creation_panics_is_never_counted() {
    // Outside a loop: the named form builds the child before `create_task`
    // finds no loop and panics.
    let tg = TaskGroup::new();
    let outside = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tg.create_fallible_task_named(async { Ok::<_, Boom>(()) }, "orphan")
    }));
    assert!(outside.is_err());
    assert!(format!("{tg:?}").contains("children: 0"), "{tg:?}");
    drop(tg);

    // In a loop whose task factory panics before the child ever runs.
    let lp = EventLoop::new();
    let armed = Rc::new(Cell::new(false));
    lp.set_task_factory(PanickyFactory {
        armed: Rc::clone(&armed),
        panic_in_create: true,
    });
    let out = lp
        .run_until_complete(async move {
            armed.set(true);
            let tg = TaskGroup::new();
            let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                tg.create_fallible_task(async { Ok::<_, Boom>(()) })
            }));
            assert!(refused.is_err());
            tg.join().await
        })
        .unwrap();
    assert!(out.is_ok(), "nothing ran, nothing failed");
}

#[test]
fn a_panicking_started_hook_is_reported_and_the_child_still_counts() {
    let lp = EventLoop::new();
    let armed = Rc::new(Cell::new(false));
    lp.set_task_factory(PanickyFactory {
        armed: Rc::clone(&armed),
        panic_in_create: false,
    });
    let reported = Rc::new(RefCell::new(Vec::new()));
    let r = Rc::clone(&reported);
    lp.set_exception_handler(Some(move |ctx: &asyncio_core::ExceptionContext| {
        r.borrow_mut().push(format!("{ctx}"));
    }));
    let finished = Rc::new(Cell::new(false));
    let f = Rc::clone(&finished);
    let out = lp
        .run_until_complete(async move {
            armed.set(true);
            let tg = TaskGroup::new();
            let child = tg.create_fallible_task(async move {
                yield_now().await;
                f.set(true);
                Ok::<_, Boom>(5)
            });
            assert!(!child.done(), "it suspended in its eager step");
            tg.join().await.unwrap();
            child.await.unwrap()
        })
        .unwrap();
    assert_eq!(out, 5);
    assert!(finished.get(), "join waited for the child");
    // The child's, then the main task's (armed during its own eager step).
    let reported = reported.borrow();
    assert_eq!(reported.len(), 2, "{reported:?}");
    assert!(
        reported[0].contains("started` hook panicked (task 2"),
        "{reported:?}"
    );
    assert!(reported[1].contains("(task 1"), "{reported:?}");
}

// At a runner's shutdown every task is cancelled, and a child may be dropped
// before the task that owns its group: its cleanup panic is then reported by
// the loop, not kept in a group that nobody will read.
#[test]
fn a_childs_cleanup_panic_at_shutdown_is_reported_by_the_loop() {
    let runner = asyncio_structured::Runner::new();
    let lp = runner.get_loop().unwrap();
    let reported = Rc::new(RefCell::new(Vec::new()));
    let r = Rc::clone(&reported);
    lp.set_exception_handler(Some(move |ctx: &asyncio_core::ExceptionContext| {
        r.borrow_mut().push(format!("{ctx}"));
    }));
    runner
        .run(async {
            create_task(async {
                let _ = task_group(|tg| async move {
                    tg.create_task(async {
                        let _b = Bomb("cleanup at shutdown");
                        std::future::pending::<()>().await;
                    });
                    std::future::pending::<()>().await;
                    Ok::<_, Boom>(())
                })
                .await;
            });
            sleep_ticks(3).await;
        })
        .unwrap();
    runner.close().unwrap();
    let reported = reported.borrow();
    let hits = reported
        .iter()
        .filter(|m| m.contains("cleanup at shutdown"))
        .count();
    assert_eq!(hits, 1, "{reported:?}");
}

// `EventLoop::close()` drops what is left after the loop stopped running: a
// child's cleanup panic then is the loop's to report, even for a group made
// outside any task (which has no owner to watch).
#[test]
fn a_childs_cleanup_panic_when_the_loop_closes_is_reported_by_the_loop() {
    let (lp, reported) = recording_loop(false);
    let tg = TaskGroup::new();
    let h = tg.handle();
    lp.run_until_complete(async move {
        h.create_task(async {
            let _b = Bomb("cleanup at close");
            std::future::pending::<()>().await;
        });
        yield_now().await;
    })
    .unwrap();
    lp.close().unwrap();
    drop(tg);
    let reported = reported.borrow();
    let hits = reported
        .iter()
        .filter(|m| m.contains("cleanup at close"))
        .count();
    assert_eq!(hits, 1, "{reported:?}");
}
