//! Context variables: each task starts with a copy of its creator's context.

use asyncio_core::{EventLoop, TaskOptions, create_task, create_task_with, yield_now};
use asyncio_factory::eager_task_factory;
use asyncio_structured::{
    Context, ContextError, ContextVar, Runner, copy_context, run, task_group,
};

#[test]
fn a_child_sees_its_creators_values_at_creation_time() {
    let var = ContextVar::new("v");
    let v = var.clone();
    let (child_saw, parent_after) = run(async move {
        v.set(1);
        let inner = v.clone();
        let child = create_task(async move { inner.get() });
        v.set(2); // after the child was created: the child keeps 1
        (child.await.unwrap(), v.get())
    })
    .unwrap();
    assert_eq!(child_saw, Some(1));
    assert_eq!(parent_after, Some(2));
}

#[test]
fn a_lazy_childs_changes_never_reach_its_creator_or_siblings() {
    let var = ContextVar::with_default("v", "default");
    let v = var.clone();
    run(async move {
        let (a, b) = (v.clone(), v.clone());
        let first = create_task(async move {
            a.set("first");
            yield_now().await;
            a.get()
        });
        let second = create_task(async move {
            yield_now().await;
            b.get()
        });
        assert_eq!(first.await.unwrap(), Some("first"));
        assert_eq!(second.await.unwrap(), Some("default"));
        assert_eq!(v.get(), Some("default"));
    })
    .unwrap();
}

/// The same on the eager factory's fast path, on a thread where no context
/// variable was used before, and after the run too (issue 13 item 2: failed
/// before ae897eb).
#[test]
fn an_eager_childs_changes_never_reach_its_creator_or_siblings() {
    let (seen, after_the_run) = std::thread::spawn(|| {
        let var = ContextVar::with_default("v", "default");
        let v = var.clone();
        let lp = EventLoop::new();
        lp.set_task_factory(eager_task_factory);
        let seen = lp
            .run_until_complete(async move {
                let a = v.clone();
                // The thread's first `set`, in an eager step.
                let first = create_task(async move {
                    a.set("first");
                    a.get()
                });
                let b = v.clone();
                let sibling = create_task(async move { b.get() });
                (first.await.unwrap(), sibling.await.unwrap(), v.get())
            })
            .unwrap();
        (seen, var.get())
    })
    .join()
    .unwrap();
    assert_eq!(seen.0, Some("first"));
    assert_eq!(seen.1, Some("default"), "a later sibling");
    assert_eq!(seen.2, Some("default"), "the creator");
    assert_eq!(after_the_run, Some("default"), "the thread after the run");
}

/// A task's `set` stays in the task, also when it is the main task of `run`
/// on a thread where no context variable was used before (issue 13 item 2:
/// failed before ae897eb).
#[test]
fn the_main_tasks_changes_never_reach_the_caller_of_run() {
    let after_the_run = std::thread::spawn(|| {
        let var = ContextVar::with_default("v", "default");
        let v = var.clone();
        run(async move { v.set("main task") }).unwrap();
        var.get()
    })
    .join()
    .unwrap();
    assert_eq!(after_the_run, Some("default"));
}

#[test]
fn values_survive_suspension_points_within_a_task() {
    let var = ContextVar::new("v");
    let v = var.clone();
    let seen = run(async move {
        let inner = v.clone();
        let t = create_task(async move {
            inner.set(10u64);
            for _ in 0..3 {
                yield_now().await;
            }
            inner.get()
        });
        // Another task changing its own context in between does not interfere.
        let noisy = v.clone();
        create_task(async move {
            noisy.set(99);
            yield_now().await;
        })
        .await
        .unwrap();
        t.await.unwrap()
    })
    .unwrap();
    assert_eq!(seen, Some(10));
}

#[test]
fn reset_restores_the_previous_value_and_checks_its_token() {
    let a = ContextVar::new("a");
    let b = ContextVar::<i32>::new("b");
    let (a2, b2) = (a.clone(), b.clone());
    run(async move {
        a2.set(1);
        let token = a2.set(2);
        assert_eq!(a2.get(), Some(2));
        let other = a2.set(3);
        assert_eq!(b2.reset(other), Err(ContextError::WrongVar));
        a2.reset(token).unwrap();
        assert_eq!(a2.get(), Some(1));
        // A token made in another task's context is refused.
        let inner = a2.clone();
        let foreign = create_task(async move { inner.set(5) }).await.unwrap();
        assert_eq!(a2.reset(foreign), Err(ContextError::WrongContext));
    })
    .unwrap();
}

#[test]
fn eager_tasks_and_group_children_inherit_the_context_too() {
    let var = ContextVar::new("v");
    let v = var.clone();
    let lp = EventLoop::new();
    lp.set_task_factory(eager_task_factory);
    let out = lp
        .run_until_complete(async move {
            v.set("outer");
            let a = v.clone();
            let eager = create_task(async move { a.get() });
            assert!(eager.done());
            let b = v.clone();
            let grouped = task_group(|tg| async move {
                tg.create_fallible_task(async move { Ok::<_, std::io::Error>(b.get()) })
                    .await
            })
            .await
            .unwrap();
            (eager.await.unwrap(), grouped)
        })
        .unwrap();
    assert_eq!(out, (Some("outer"), Some("outer")));
}

#[test]
fn eager_children_get_their_own_context_when_contexts_come_into_use_mid_run() {
    // On a thread of its own, so that no context was used on it before the
    // loop started: the eager loop's first spawns skip all context work.
    std::thread::spawn(|| {
        let var = ContextVar::with_default("v", "default");
        let v = var.clone();
        let lp = EventLoop::new();
        lp.set_task_factory(eager_task_factory);
        let (creator_after, child_after_suspending) = lp
            .run_until_complete(async move {
                create_task(async {}).await.unwrap();
                // The thread's first context.
                v.set("creator");
                let c = v.clone();
                let child = create_task(async move {
                    c.set("child");
                    yield_now().await;
                    c.get()
                });
                (v.get(), child.await.unwrap())
            })
            .unwrap();
        // The child's change stayed in its own context, which it kept across
        // its suspension.
        assert_eq!(creator_after, Some("creator"));
        assert_eq!(child_after_suspending, Some("child"));
    })
    .join()
    .unwrap();
}

#[test]
fn an_explicit_context_is_used_as_is_and_keeps_the_tasks_changes() {
    let var = ContextVar::new("v");
    let ctx = Context::new();
    ctx.run(|| var.set(1));
    let (v, c) = (var.clone(), ctx.clone());
    run(async move {
        let inner = v.clone();
        let t = create_task_with(
            async move {
                let before = inner.get();
                inner.set(2);
                before
            },
            TaskOptions::new().context(c.clone()),
        );
        assert_eq!(t.await.unwrap(), Some(1));
        assert_eq!(v.get(), None, "the creator's context is another one");
    })
    .unwrap();
    assert_eq!(ctx.run(|| var.get()), Some(2));
}

#[test]
fn runner_run_in_context_runs_the_main_task_in_that_context() {
    let var = ContextVar::new("v");
    let ctx = copy_context();
    let runner = Runner::new();
    let v = var.clone();
    runner
        .run_in_context(async move { v.set("kept") }, ctx.clone())
        .unwrap();
    let v = var.clone();
    let seen = runner
        .run_in_context(async move { v.get() }, ctx.clone())
        .unwrap();
    assert_eq!(seen, Some("kept"));
    assert_eq!(var.get(), None);
}

/// test_taskgroups' `test_taskgroup_context` / 3.11's `context=` on
/// `TaskGroup.create_task`: the child runs in the context given, not in a
/// copy of the body's.
#[test]
fn a_taskgroup_child_created_with_a_context_runs_in_that_context() {
    let var = asyncio_core::ContextVar::new("user");
    let ctx = asyncio_core::Context::new();
    ctx.run(|| var.set("given"));
    let (v, c) = (var.clone(), ctx.clone());
    let seen = asyncio_structured::run(asyncio_structured::task_group(|tg| async move {
        v.set("body");
        let v2 = v.clone();
        let child = tg.create_task_with(
            async move {
                let seen = v2.get();
                v2.set("child");
                seen
            },
            asyncio_core::TaskOptions::new().context(c),
        );
        let v3 = v.clone();
        let plain = tg.create_task(async move { v3.get() });
        Ok::<_, asyncio_core::TaskError>((child.await?, plain.await?, v.get()))
    }))
    .unwrap()
    .unwrap();
    assert_eq!(seen, (Some("given"), Some("body"), Some("body")));
    assert_eq!(
        ctx.run(|| var.get()),
        Some("child"),
        "the child set into the context given"
    );
}
