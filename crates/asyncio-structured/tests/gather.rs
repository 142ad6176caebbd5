//! `gather` and `shield`, as asyncio documents them.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use asyncio_core::{TaskError, create_task, current_task, yield_now};
use asyncio_structured::{gather, gather_tasks, run, shield};

async fn ticks(n: usize) {
    for _ in 0..n {
        yield_now().await;
    }
}

#[test]
fn gather_returns_outputs_in_input_order_not_completion_order() {
    let out = run(async {
        gather((0..5usize).map(|i| async move {
            ticks(5 - i).await;
            i
        }))
        .await
    })
    .unwrap();
    assert_eq!(out.unwrap(), vec![0, 1, 2, 3, 4]);
}

#[test]
fn gather_of_nothing_is_an_empty_vec_at_once() {
    let out = run(async { gather(std::iter::empty::<std::future::Ready<u8>>()).await }).unwrap();
    assert_eq!(out.unwrap(), Vec::<u8>::new());
}

#[test]
fn the_first_failure_propagates_and_the_others_keep_running() {
    let finished = Rc::new(Cell::new(0));
    let f = finished.clone();
    run(async move {
        let futs: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>> = vec![
            Box::pin({
                let f = f.clone();
                async move {
                    ticks(5).await;
                    f.set(f.get() + 1);
                }
            }),
            Box::pin(async {
                yield_now().await;
                panic!("one failed");
            }),
        ];
        let r = gather(futs).await;
        match r {
            Err(TaskError::Panicked(p)) => assert_eq!(p.message(), "one failed"),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.get(), 0, "gather returned before the slow child finished");
        ticks(10).await;
        assert_eq!(f.get(), 1, "the slow child was not cancelled");
    })
    .unwrap();
}

#[test]
fn return_exceptions_collects_every_outcome() {
    let out = run(async {
        let futs: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = u32>>>> = vec![
            Box::pin(async { 1 }),
            Box::pin(async { panic!("two") }),
            Box::pin(async {
                ticks(2).await;
                3
            }),
        ];
        gather(futs).return_exceptions().await
    })
    .unwrap();
    assert_eq!(out[0], Ok(1));
    assert!(out[1].as_ref().unwrap_err().is_panic());
    assert_eq!(out[2], Ok(3));
}

#[test]
fn cancelling_the_gathering_task_cancels_every_child() {
    let dropped = Rc::new(RefCell::new(0));
    let d = dropped.clone();
    run(async move {
        struct Count(Rc<RefCell<i32>>);
        impl Drop for Count {
            fn drop(&mut self) {
                *self.0.borrow_mut() += 1;
            }
        }
        let d2 = d.clone();
        let waiter = create_task(async move {
            let futs = (0..3).map(|_| {
                let d = d2.clone();
                async move {
                    let _c = Count(d);
                    std::future::pending::<()>().await;
                }
            });
            gather(futs).await
        });
        ticks(2).await;
        waiter.cancel();
        assert!(waiter.await.unwrap_err().is_cancelled());
        yield_now().await;
    })
    .unwrap();
    assert_eq!(*dropped.borrow(), 3);
}

#[test]
fn a_cancelled_child_fails_the_gather_with_cancelled() {
    run(async {
        let r = gather([async {
            current_task().unwrap().cancel();
            yield_now().await;
        }])
        .await;
        assert!(r.unwrap_err().is_cancelled());
    })
    .unwrap();
}

#[test]
fn shield_keeps_the_inner_task_running_when_the_outer_is_cancelled() {
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    run(async move {
        let inner_done = d.clone();
        let outer = create_task(async move {
            shield(async move {
                ticks(5).await;
                inner_done.set(true);
            })
            .await
        });
        yield_now().await;
        outer.cancel();
        assert!(outer.await.unwrap_err().is_cancelled());
        ticks(10).await;
    })
    .unwrap();
    assert!(done.get());
}

#[test]
fn cancelling_the_shielded_task_itself_still_cancels_it() {
    run(async {
        let s = shield(std::future::pending::<()>());
        s.task().cancel();
        assert!(s.await.unwrap_err().is_cancelled());
    })
    .unwrap();
}

// Issue 13 item 6: asyncio's gather takes a task as it is (ensure_future
// returns it): no second task per input, outputs in input order.
#[test]
fn gathering_tasks_uses_them_without_a_task_per_input() {
    let (added, out) = run(async {
        let tasks: Vec<_> = (0..3usize)
            .map(|i| {
                create_task(async move {
                    ticks(3 - i).await;
                    i
                })
            })
            .collect();
        let before = asyncio_core::all_tasks().unwrap().len();
        let g = gather_tasks(tasks);
        let added = asyncio_core::all_tasks().unwrap().len() - before;
        (added, g.await)
    })
    .unwrap();
    assert_eq!(added, 0, "no task was created for the gather");
    assert_eq!(out.unwrap(), vec![0, 1, 2]);
}

// asyncio's gather docs: "If gather() is cancelled, all submitted awaitables
// (that have not completed yet) are also cancelled."
#[test]
fn cancelling_a_gather_of_tasks_cancels_the_unfinished_ones() {
    let log: Rc<RefCell<Vec<&'static str>>> = Rc::default();
    let l = log.clone();
    // Observed inside the run: at its end `run` cancels whatever is left.
    let (outer_cancelled, slow_cancelled, fast_ok, cleaned) = run(async move {
        let fast = create_task(async { 1 });
        let l2 = l.clone();
        let slow = create_task(async move {
            struct Cleanup(Rc<RefCell<Vec<&'static str>>>);
            impl Drop for Cleanup {
                fn drop(&mut self) {
                    self.0.borrow_mut().push("slow cleaned up");
                }
            }
            let _c = Cleanup(l2);
            std::future::pending::<()>().await;
            2
        });
        let (fast_ref, slow_ref) = (fast.to_ref(), slow.to_ref());
        let outer = create_task(gather_tasks(vec![fast, slow]));
        ticks(3).await;
        assert!(fast_ref.done() && !slow_ref.done());
        outer.cancel();
        ticks(3).await;
        (
            outer.cancelled(),
            slow_ref.cancelled(),
            fast_ref.done() && !fast_ref.cancelled(),
            l.borrow().clone(),
        )
    })
    .unwrap();
    assert!(outer_cancelled);
    assert!(slow_cancelled, "the unfinished task was cancelled");
    assert!(fast_ok, "the finished one is left alone");
    assert_eq!(cleaned, ["slow cleaned up"]);
    assert_eq!(*log.borrow(), ["slow cleaned up"]);
}

#[test]
fn dropping_a_gather_of_tasks_before_it_completes_cancels_them() {
    let cancelled = run(async {
        let t = create_task(std::future::pending::<()>());
        let r = t.to_ref();
        let g = gather_tasks(vec![t]);
        yield_now().await;
        drop(g);
        ticks(2).await;
        r.cancelled()
    })
    .unwrap();
    assert!(cancelled);
}

// The first failure completes the gather; the others keep running and their
// later failures are taken by the gather, never reported as unretrieved.
#[test]
fn a_gather_of_tasks_fails_first_and_retrieves_the_later_failures() {
    let lp = asyncio_core::EventLoop::new();
    let reported = Rc::new(RefCell::new(Vec::new()));
    let r = reported.clone();
    lp.set_exception_handler(Some(move |ctx: &asyncio_core::ExceptionContext| {
        r.borrow_mut().push(format!("{ctx}"));
    }));
    let (first, later_done) = lp
        .run_until_complete(async {
            let a = create_task(async {
                yield_now().await;
                panic!("first");
            });
            let b = create_task(async {
                ticks(5).await;
                panic!("later");
            });
            let b_ref = b.to_ref();
            let first = gather_tasks(vec![a, b]).await;
            let running = !b_ref.done();
            ticks(10).await;
            (first, running && b_ref.done())
        })
        .unwrap();
    match first {
        Err(TaskError::Panicked(p)) => assert_eq!(p.message(), "first"),
        other => panic!("{other:?}"),
    }
    assert!(later_done, "the other task kept running after the gather");
    lp.close().unwrap();
    assert_eq!(*reported.borrow(), Vec::<String>::new());
}

#[test]
fn return_exceptions_over_tasks_collects_every_outcome_including_finished_ones() {
    let lp = asyncio_core::EventLoop::new();
    lp.set_task_factory(asyncio_factory::eager_task_factory);
    let out = lp
        .run_until_complete(async {
            let done = create_task(async { 1 }); // finished in its eager step
            assert!(done.done());
            let failing = create_task(async {
                yield_now().await;
                panic!("boom");
            });
            let cancelled = create_task(std::future::pending::<i32>());
            cancelled.cancel();
            gather_tasks(vec![done, failing, cancelled])
                .return_exceptions()
                .await
        })
        .unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].as_ref().ok(), Some(&1));
    assert!(matches!(&out[1], Err(TaskError::Panicked(p)) if p.message() == "boom"));
    assert!(matches!(out[2], Err(TaskError::Cancelled(_))));
}

#[test]
fn gather_tuple_collects_outputs_of_different_types_in_order() {
    let out = asyncio_structured::run(async {
        asyncio_structured::gather!(
            async {
                asyncio_core::yield_now().await;
                1u8
            },
            async { String::from("two") },
            async { [3u16; 2] },
        )
        .await
    })
    .unwrap();
    assert_eq!(out.unwrap(), (1, "two".to_owned(), [3, 3]));
}

#[test]
fn gather_tuple_fails_at_the_first_failure_and_lets_the_others_run() {
    let finished = std::rc::Rc::new(std::cell::Cell::new(false));
    let f = finished.clone();
    let lp = asyncio_core::EventLoop::new();
    let reported = std::rc::Rc::new(std::cell::Cell::new(0));
    let r = reported.clone();
    lp.set_exception_handler(Some(move |_: &asyncio_core::ExceptionContext| {
        r.set(r.get() + 1)
    }));
    let out = lp
        .run_until_complete(async move {
            let out = asyncio_structured::gather_tuple((
                async move {
                    for _ in 0..3 {
                        asyncio_core::yield_now().await;
                    }
                    f.set(true);
                    if true {
                        panic!("late failure, retrieved by the gather");
                    }
                    0u8
                },
                async {
                    if true {
                        panic!("first");
                    }
                    "never"
                },
            ))
            .await;
            for _ in 0..5 {
                asyncio_core::yield_now().await;
            }
            out
        })
        .unwrap();
    let err = out.unwrap_err();
    assert!(err.is_panic());
    assert!(err.to_string().contains("first"));
    assert!(finished.get(), "the other child ran on");
    assert_eq!(
        reported.get(),
        0,
        "no outcome is reported as never retrieved"
    );
}

#[test]
fn dropping_a_gather_tuple_cancels_its_children() {
    struct SetOnDrop(std::rc::Rc<std::cell::Cell<bool>>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let flags = [
        std::rc::Rc::new(std::cell::Cell::new(false)),
        std::rc::Rc::new(std::cell::Cell::new(false)),
    ];
    let [fa, fb] = flags.clone();
    let lp = asyncio_core::EventLoop::new();
    lp.run_until_complete(async move {
        let mut g = asyncio_structured::gather_tuple((
            async move {
                let _g = SetOnDrop(fa);
                std::future::pending::<u8>().await
            },
            async move {
                let _g = SetOnDrop(fb);
                std::future::pending::<&str>().await
            },
        ));
        std::future::poll_fn(|cx| {
            assert!(std::pin::Pin::new(&mut g).poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
        asyncio_core::yield_now().await;
        drop(g);
        asyncio_core::yield_now().await;
    })
    .unwrap();
    assert!(
        flags.iter().all(|f| f.get()),
        "both children were cancelled"
    );
}

/// The message of a gather's panic failure.
fn panic_message(e: &TaskError) -> String {
    match e {
        TaskError::Panicked(p) => p.message().to_owned(),
        other => panic!("expected a panic, got {other:?}"),
    }
}

#[test]
fn a_gather_of_tasks_reports_the_failure_that_happened_first_not_the_lowest_index() {
    // asyncio's gather raises the exception of the first child whose done
    // callback runs: the one that failed first. `b` is queued before `a`, so
    // it fails first in the same turn, though `a` comes first in the list.
    let out = run(async {
        let b = create_task(async { panic!("b failed first") });
        let a = create_task(async { panic!("a failed second") });
        gather_tasks(vec![a, b]).await
    })
    .unwrap();
    assert_eq!(panic_message(&out.unwrap_err()), "b failed first");
}

#[test]
fn failures_from_before_the_gather_come_first_in_the_order_given() {
    // Tasks that failed before `gather(*tasks)` get their done callbacks
    // scheduled at once, in argument order: the first *given* wins (not the
    // first to fail, `b`), also over a failure that happens afterwards but
    // comes earlier in the list.
    let out = run(async {
        let b = create_task(async { panic!("b") });
        let a = create_task(async { panic!("a") });
        yield_now().await;
        assert!(a.done() && b.done());
        let later = create_task(async { panic!("later") });
        gather_tasks(vec![later, a, b]).await
    })
    .unwrap();
    assert_eq!(panic_message(&out.unwrap_err()), "a");
}

#[test]
fn a_gather_of_tasks_collects_tasks_that_end_one_per_turn_in_any_order() {
    // Tasks that end in reverse order, one per loop turn: each completion
    // reaches the gather through its own waker, and the outputs still come
    // back in the order given.
    // (Fewer under Miri, which runs each turn slowly.)
    let n = if cfg!(miri) { 12 } else { 200usize };
    let out = run(async move {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                create_task(async move {
                    ticks(n - i).await;
                    i
                })
            })
            .collect();
        gather_tasks(tasks).await
    })
    .unwrap();
    assert_eq!(out.unwrap(), (0..n).collect::<Vec<_>>());
}

#[test]
fn a_gather_of_tasks_fails_when_a_task_that_was_still_running_panics_later() {
    let out = run(async {
        let slow_ok = create_task(async {
            ticks(10).await;
            1
        });
        let slow_fail = create_task(async {
            ticks(3).await;
            panic!("slow failure")
        });
        let fast = create_task(async { 3 });
        gather_tasks(vec![slow_ok, slow_fail, fast]).await
    })
    .unwrap();
    assert_eq!(panic_message(&out.unwrap_err()), "slow failure");
}

#[test]
fn a_gather_of_tasks_that_are_all_done_already_returns_their_outputs() {
    let out = run(async {
        let tasks: Vec<_> = (0..3).map(|i| create_task(async move { i })).collect();
        yield_now().await;
        assert!(tasks.iter().all(|t| t.done()));
        gather_tasks(tasks).await
    })
    .unwrap();
    assert_eq!(out.unwrap(), vec![0, 1, 2]);
}

#[test]
fn a_gather_of_no_tasks_is_an_empty_vec() {
    let out = run(async { gather_tasks(Vec::<asyncio_core::Task<u8>>::new()).await }).unwrap();
    assert_eq!(out.unwrap(), Vec::<u8>::new());
}

/// Two children fail before the gather looks again, the second in the tuple
/// first: the gather reports that one, as asyncio's reports the first
/// exception raised (not the first in argument order).
#[test]
fn gather_tuple_reports_the_failure_that_came_first_not_the_first_in_order() {
    let lp = asyncio_core::EventLoop::new();
    lp.set_exception_handler(Some(|_: &asyncio_core::ExceptionContext| {}));
    let err = lp
        .run_until_complete(async {
            asyncio_structured::gather_tuple((
                async {
                    // Fails one turn later, before the gather runs again.
                    asyncio_core::yield_now().await;
                    if true {
                        panic!("second");
                    }
                    0u8
                },
                async {
                    if true {
                        panic!("first");
                    }
                    'x'
                },
            ))
            .await
        })
        .unwrap()
        .unwrap_err();
    match err {
        asyncio_core::TaskError::Panicked(p) => assert_eq!(p.message(), "first"),
        other => panic!("expected the first panic, got {other:?}"),
    }
}

/// Debug mode records where each task was created: a child of a gather was
/// created by the user's `gather` call, not inside the library.
#[test]
fn in_debug_mode_gather_children_were_created_at_the_gather_call() {
    fn site() -> Option<&'static std::panic::Location<'static>> {
        asyncio_core::current_task().unwrap().created_at()
    }
    let lp = asyncio_core::EventLoop::new();
    lp.set_debug(true);
    let (line, sites, tuple_line, tuple_sites) = lp
        .run_until_complete(async {
            let line = line!() + 1;
            let g = asyncio_structured::gather((0..2).map(|_| async { site() }));
            let sites = g.await.unwrap();
            let tuple_line = line!() + 1;
            let t = asyncio_structured::gather_tuple((async { site() }, async { site() }));
            let (a, b) = t.await.unwrap();
            (line, sites, tuple_line, [a, b])
        })
        .unwrap();
    for s in sites {
        let s = s.expect("recorded in debug mode");
        assert_eq!(
            (s.line(), s.file().ends_with("tests/gather.rs")),
            (line, true),
            "{s}"
        );
    }
    for s in tuple_sites {
        let s = s.expect("recorded in debug mode");
        assert_eq!(s.line(), tuple_line, "{s}");
    }
}

/// A gather of `width` gathers of ... of leaves, `depth` levels deep, each
/// level's children created by `gather` itself.
fn fan(depth: u32, width: u32) -> std::pin::Pin<Box<dyn std::future::Future<Output = u32>>> {
    Box::pin(async move {
        if depth == 0 {
            return 1;
        }
        let counts = gather((0..width).map(|_| fan(depth - 1, width)))
            .await
            .expect("no child fails");
        counts.into_iter().sum()
    })
}

/// test_eager_task_factory's recursive gather: under the eager factory, a
/// gather whose children all finished inside their `create_task` is done at
/// once (asyncio's gather of done futures), so the whole tree completes
/// inside the first `create_task`, with no task ever suspending.
#[test]
fn a_recursive_gather_of_eager_children_completes_without_suspending() {
    let factory = asyncio_factory::InstrumentedFactory::new(asyncio_factory::eager_task_factory);
    let stats = factory.stats_handle();
    let lp = asyncio_core::EventLoop::new();
    lp.set_task_factory(factory);
    let leaves = lp
        .run_until_complete(async {
            let tree = create_task(fan(3, 3));
            assert!(tree.done(), "the whole tree finished inside create_task");
            tree.await.unwrap()
        })
        .unwrap();
    assert_eq!(leaves, 27);
    let s = stats.get();
    // 1 + 3 + 9 + 27 tasks of the tree, and the main task.
    assert_eq!(s.created, 41);
    assert_eq!((s.finished_eagerly, s.suspended), (41, 0));
}

#[test]
fn a_gather_whose_children_all_failed_eagerly_fails_without_suspending() {
    let lp = asyncio_core::EventLoop::new();
    lp.set_task_factory(asyncio_factory::eager_task_factory);
    lp.run_until_complete(async {
        let polls = Rc::new(Cell::new(0));
        let p = polls.clone();
        let g = create_task(async move {
            p.set(p.get() + 1);
            let first = gather([
                Box::pin(async { 1 }) as std::pin::Pin<Box<dyn std::future::Future<Output = i32>>>,
                Box::pin(async { panic!("eager failure") }),
            ])
            .await;
            let all = gather((2..=3).map(|i| async move { i }))
                .return_exceptions()
                .await;
            (first.is_err(), all)
        });
        assert!(g.done(), "both gathers completed inside create_task");
        let (failed, all) = g.await.unwrap();
        assert!(failed);
        assert_eq!(all, vec![Ok(2), Ok(3)]);
        assert_eq!(polls.get(), 1);
    })
    .unwrap();
}
