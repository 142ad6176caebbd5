//! What a TaskGroup child returns, what fails the group, and how the group's
//! ExceptionGroup is inspected.

use std::cell::Cell;
use std::rc::Rc;

use asyncio_core::{EventLoop, TaskError, yield_now};
use asyncio_factory::eager_task_factory;
use asyncio_structured::{
    ChildFailure, ExceptionGroup, TaskGroup, TaskGroupError, run, task_group,
};

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("boom: {0}")]
struct Boom(&'static str);

#[derive(Debug, thiserror::Error)]
#[error("other: {0}")]
struct Other(&'static str);

fn loops() -> [EventLoop; 2] {
    let eager = EventLoop::new();
    eager.set_task_factory(eager_task_factory);
    [EventLoop::new(), eager]
}

#[test]
fn a_child_returns_any_value_and_its_task_yields_it() {
    for lp in loops() {
        let out = lp
            .run_until_complete(task_group(|tg| async move {
                let n = tg.create_task(async { 40usize });
                let s = tg.create_task(async {
                    yield_now().await;
                    String::from("two")
                });
                let v = tg.create_task(async { vec![1u8, 2] });
                Ok::<_, TaskError>((n.await? + 2, s.await?, v.await?))
            }))
            .unwrap();
        assert_eq!(out.unwrap(), (42, "two".to_owned(), vec![1, 2]));
    }
}

#[test]
fn a_result_from_create_task_is_a_value_not_a_failure() {
    for lp in loops() {
        let out = lp
            .run_until_complete(task_group(|tg| async move {
                let failing = tg.create_task(async { Err::<u8, _>(Boom("kept")) });
                let sibling = tg.create_task(async {
                    yield_now().await;
                    yield_now().await;
                    7u8
                });
                Ok::<_, TaskError>((failing.await?, sibling.await?))
            }))
            .unwrap();
        let (failing, sibling) = out.expect("an Err value does not fail the group");
        assert_eq!(failing, Err(Boom("kept")));
        assert_eq!(sibling, 7);
    }
}

#[test]
fn an_err_of_a_fallible_child_fails_the_group_and_cancels_its_siblings() {
    for lp in loops() {
        let sibling_ran_to_end = Rc::new(Cell::new(false));
        let s = sibling_ran_to_end.clone();
        let tasks = Rc::new(Cell::new(None));
        let t = tasks.clone();
        let err = lp
            .run_until_complete(task_group(|tg| async move {
                let sibling = tg.create_task(async move {
                    for _ in 0..10 {
                        yield_now().await;
                    }
                    s.set(true);
                });
                let failing = tg.create_fallible_task(async {
                    yield_now().await;
                    Err::<u8, _>(Boom("child"))
                });
                t.set(Some((sibling, failing)));
                std::future::pending::<()>().await;
                Ok::<_, TaskError>(())
            }))
            .unwrap()
            .unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err.downcast_ref::<Boom>(), Some(&Boom("child")));
        assert!(!sibling_ran_to_end.get(), "the sibling was cancelled");
        let (sibling, failing) = tasks.take().unwrap();
        assert!(sibling.cancelled());
        // The failed child's error went to the group; its own task ends
        // cancelled and says where the error is.
        let mut failing = failing;
        let own = failing.try_result().unwrap().unwrap_err();
        assert!(own.is_cancelled());
        assert!(
            own.cancelled_message().unwrap().contains("ExceptionGroup"),
            "{own}"
        );
    }
}

#[test]
fn an_ok_of_a_fallible_child_is_its_tasks_value() {
    let out = run(task_group(|tg| async move {
        let t = tg.create_fallible_task(async { Ok::<_, Boom>(5u32) });
        Ok::<_, TaskError>(t.await? * 2)
    }))
    .unwrap();
    assert_eq!(out.unwrap(), 10);
}

#[test]
fn a_panicking_child_fails_the_group_and_its_task_ends_cancelled() {
    for lp in loops() {
        let err = lp
            .run_until_complete(task_group(|tg| async move {
                let t = tg.create_task(async {
                    if true {
                        panic!("child panicked");
                    }
                    1
                });
                // The body stops here: awaiting the failed child gives
                // Cancelled, or the group's abort cancels the body first.
                let v = t.await?;
                Ok::<_, TaskError>(v)
            }))
            .unwrap()
            .unwrap_err();
        assert_eq!(err.len(), 1, "{err}");
        assert!(err.exceptions()[0].is_panic());
        assert_eq!(
            err.downcast_ref::<asyncio_core::PanicError>()
                .unwrap()
                .message(),
            "child panicked"
        );
    }
}

#[test]
fn the_bodys_err_fails_the_group_and_cancels_the_children() {
    for lp in loops() {
        let child_finished = Rc::new(Cell::new(false));
        let c = child_finished.clone();
        let err = lp
            .run_until_complete(task_group(|tg| async move {
                tg.create_task(async move {
                    for _ in 0..10 {
                        yield_now().await;
                    }
                    c.set(true);
                });
                yield_now().await;
                Err::<(), _>(Boom("body"))
            }))
            .unwrap()
            .unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err.downcast_ref::<Boom>(), Some(&Boom("body")));
        assert!(!child_finished.get(), "the child was cancelled");
    }
}

/// test_taskgroups: `create_task` on a group that is shutting down raises
/// `RuntimeError` (the coroutine closed unrun), and the group collects that
/// error from the body after the failure that started the shutdown.
#[test]
fn create_task_on_a_group_shutting_down_panics_and_the_group_collects_it() {
    let polled = Rc::new(Cell::new(false));
    let p = polled.clone();
    let lp = EventLoop::new();
    // Eager: the first child fails inside its create_task, which aborts the
    // group at once, while the body still runs.
    lp.set_task_factory(eager_task_factory);
    let err = lp
        .run_until_complete(task_group(|tg| async move {
            tg.create_fallible_task(async { Err::<(), _>(Boom("first")) });
            assert_eq!(
                tg.try_create_task(async {}).err(),
                Some(TaskGroupError::ShuttingDown)
            );
            tg.create_task(async move { p.set(true) });
            Ok::<_, TaskError>(())
        }))
        .unwrap()
        .unwrap_err();
    assert!(!polled.get(), "the refused child never ran");
    assert_eq!(err.len(), 2, "{err}");
    assert!(err.exceptions()[0].to_string().contains("first"));
    assert!(err.exceptions()[1].is_panic());
    assert!(err.exceptions()[1].to_string().contains("shutting down"));
}

#[test]
fn create_task_on_an_explicit_group_shutting_down_panics_without_polling_the_child() {
    let polled = Rc::new(Cell::new(false));
    let p = polled.clone();
    let err = run(async move {
        let tg = TaskGroup::new();
        tg.create_fallible_task(async { Err::<(), _>(Boom("first")) });
        // One turn for the child to fail, one for the group's abort callback.
        yield_now().await;
        yield_now().await;
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tg.create_task(async move { p.set(true) });
        }));
        let payload = refused.unwrap_err();
        let message = asyncio_core::PanicError::new(payload);
        assert!(message.message().contains("shutting down"), "{message}");
        tg.join().await
    })
    .unwrap()
    .unwrap_err();
    assert!(!polled.get(), "the refused child never ran");
    assert_eq!(err.len(), 1);
}

#[test]
#[should_panic(expected = "use try_create_task")]
fn create_task_on_a_group_that_ended_panics_saying_what_to_do() {
    run(async {
        let tg = TaskGroup::new();
        let handle = tg.handle();
        tg.join().await.unwrap();
        assert_eq!(
            handle.try_create_task(async {}).err(),
            Some(TaskGroupError::Finished)
        );
        handle.create_task(async {});
    })
    .unwrap();
}

fn group_of(failures: Vec<Result<(), Box<dyn std::error::Error + Send + Sync>>>) -> ExceptionGroup {
    run(task_group(|tg| async move {
        for f in failures {
            tg.create_fallible_task(async move { f });
        }
        Ok::<_, TaskError>(())
    }))
    .unwrap()
    .unwrap_err()
}

#[test]
fn split_and_subgroup_pick_failures_by_type_in_order() {
    let group = group_of(vec![
        Err(Box::new(Boom("a"))),
        Err(Box::new(Other("b"))),
        Err(Box::new(Boom("c"))),
    ]);
    assert_eq!(group.exceptions().len(), 3);
    assert_eq!(group.downcast_ref::<Other>().unwrap().0, "b");
    let (booms, rest) = group.split::<Boom>();
    let booms = booms.unwrap();
    let names: Vec<_> = booms
        .exceptions()
        .iter()
        .map(|f| f.downcast_ref::<Boom>().unwrap().0)
        .collect();
    assert_eq!(names, ["a", "c"]);
    let rest = rest.unwrap();
    assert_eq!(rest.len(), 1);
    assert!(rest.exceptions()[0].is::<Other>());
    assert!(rest.subgroup::<Boom>().is_none());
}

#[test]
fn split_looks_into_nested_groups() {
    let inner = group_of(vec![
        Err(Box::new(Boom("deep"))),
        Err(Box::new(Other("deep other"))),
    ]);
    // A group whose second child failed with a whole group (a nested
    // `task_group` that failed, say); both fail in the same loop turn.
    let err = run(task_group(|outer| async move {
        outer.create_fallible_task(async { Err::<(), _>(Other("outer")) });
        outer.create_fallible_task(async move { Err::<(), _>(inner) });
        std::future::pending::<()>().await;
        Ok::<_, TaskError>(())
    }))
    .unwrap()
    .unwrap_err();
    assert_eq!(err.len(), 2);
    // Found inside the nested group.
    assert_eq!(err.downcast_ref::<Boom>(), Some(&Boom("deep")));
    let (booms, rest) = err.split::<Boom>();
    let booms = booms.unwrap();
    // The nested group keeps its place, holding only the match.
    assert_eq!(booms.len(), 1);
    let nested = booms.exceptions()[0]
        .downcast_ref::<ExceptionGroup>()
        .unwrap();
    assert_eq!(nested.len(), 1);
    assert!(nested.exceptions()[0].is::<Boom>());
    let rest = rest.unwrap();
    assert_eq!(rest.len(), 2, "{rest}");
}

#[test]
fn split_by_a_condition_and_every_failure_in_the_message() {
    use std::error::Error;
    let group = group_of(vec![Err(Box::new(Boom("x"))), Err(Box::new(Other("y")))]);
    // Every failure is in the group's message, so it has no source to
    // repeat; each failure's error is reached through the failure.
    assert!(group.source().is_none());
    let text = group.to_string();
    assert!(
        text.contains("boom: x") && text.contains("other: y"),
        "{text}"
    );
    assert_eq!(
        group.exceptions()[0].downcast_ref::<Boom>(),
        Some(&Boom("x"))
    );
    let named: Vec<String> = (&group)
        .into_iter()
        .map(|f| f.task_name().to_owned())
        .collect();
    assert_eq!(named.len(), 2);
    let (first_only, _) = group.split_by(|f: &ChildFailure| f.task_name() == named[0]);
    assert_eq!(first_only.unwrap().len(), 1);
}

#[test]
fn in_debug_mode_a_childs_creation_site_is_the_users_create_task_call() {
    for lp in loops() {
        lp.set_debug(true);
        let (line, site) = lp
            .run_until_complete(task_group(|tg| async move {
                let line = line!() + 1;
                let t = tg.create_task(async { yield_now().await });
                Ok::<_, TaskError>((line, t.created_at()))
            }))
            .unwrap()
            .unwrap();
        let site = site.expect("recorded in debug mode");
        assert_eq!(site.line(), line);
        assert!(site.file().ends_with("child_values.rs"), "{site}");
    }
}
