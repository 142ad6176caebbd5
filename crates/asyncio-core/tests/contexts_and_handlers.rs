//! Contexts of tasks and callbacks (`Task.get_context`, `Handle.get_context`,
//! `context=` on `call_soon`/`call_later`/`call_at`) and the exception
//! handler's accessors and context (test_tasks' `test_get_context`,
//! test_events' handle context tests, test_base_events'
//! `test_set_exc_handler_*`/`test_default_exc_handler_*`, written anew).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use asyncio_core::{
    Context, ContextVar, EventLoop, ExceptionContext, TaskOptions, copy_context, create_task,
    create_task_with, get_running_loop, sleep, yield_now,
};

/// Runs `lp` until the callbacks queued now (and their timers, within
/// `turns` turns) have run.
fn run_turns(lp: &EventLoop, turns: usize) {
    for _ in 0..turns {
        lp.stop();
        lp.run_forever().unwrap();
    }
}

#[test]
fn a_tasks_get_context_is_the_context_it_was_given() {
    let var = ContextVar::new("v");
    let lp = EventLoop::new();
    lp.run_until_complete(async move {
        let ctx = Context::new();
        let v = var.clone();
        let task = create_task_with(
            async move {
                v.set(5);
            },
            TaskOptions::new().context(ctx.clone()),
        );
        task.await.unwrap();
        // The task's set went into `ctx`, the very context get_context returns.
        assert_eq!(ctx.run(|| var.get()), Some(5));
        let task = create_task_with(async {}, TaskOptions::new().context(ctx.clone()));
        task.get_context().run(|| var.set(6));
        assert_eq!(
            ctx.run(|| var.get()),
            Some(6),
            "the same context, not a copy"
        );
    })
    .unwrap();
}

#[test]
fn a_tasks_get_context_holds_what_the_task_set_and_is_not_the_creators() {
    let var = ContextVar::new("v");
    let lp = EventLoop::new();
    lp.run_until_complete(async move {
        var.set("creator");
        let v = var.clone();
        let task = create_task(async move { v.set("task") });
        yield_now().await;
        assert!(task.done());
        assert_eq!(task.get_context().run(|| var.get()), Some("task"));
        assert_eq!(var.get(), Some("creator"));
    })
    .unwrap();
}

#[test]
fn get_context_of_a_task_made_before_any_variable_was_set_is_empty_and_its_own() {
    let lp = EventLoop::new();
    let var = ContextVar::<u8>::new("late");
    lp.run_until_complete(async move {
        let task = create_task(async {});
        let ctx = task.get_context();
        assert!(ctx.is_empty());
        ctx.run(|| var.set(1));
        assert_eq!(task.get_context().run(|| var.get()), Some(1));
    })
    .unwrap();
}

#[test]
fn a_callback_runs_in_a_copy_of_the_context_current_when_it_was_scheduled() {
    let var = ContextVar::new("request");
    let seen = Rc::new(RefCell::new(Vec::new()));
    let lp = EventLoop::new();
    let (v, s) = (var.clone(), seen.clone());
    lp.run_until_complete(async move {
        v.set(1);
        let lp = get_running_loop().unwrap();
        let (v2, s2) = (v.clone(), s.clone());
        let handle = lp.call_soon(move || {
            s2.borrow_mut().push(v2.get());
            v2.set(99); // in the callback's copy only
        });
        assert_eq!(handle.get_context().run(|| v.get()), Some(1));
        v.set(2); // after the copy: the callback does not see it
        let (v3, s3) = (v.clone(), s.clone());
        lp.call_later(Duration::from_millis(1), move || {
            s3.borrow_mut().push(v3.get())
        });
        sleep(Duration::from_millis(5)).await;
        assert_eq!(
            v.get(),
            Some(2),
            "the callbacks' sets stayed in their copies"
        );
    })
    .unwrap();
    assert_eq!(*seen.borrow(), [Some(1), Some(2)]);
    assert_eq!(
        var.get(),
        None,
        "nothing leaked to the thread's own context"
    );
}

#[test]
fn call_soon_later_and_at_with_context_run_the_callback_in_that_context() {
    let var = ContextVar::new("user");
    let ctx = Context::new();
    ctx.run(|| var.set("ada"));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let lp = EventLoop::new();
    let (v1, s1) = (var.clone(), seen.clone());
    let h1 = lp.call_soon_with_context(move || s1.borrow_mut().push(v1.get()), ctx.clone());
    let (v2, s2) = (var.clone(), seen.clone());
    let h2 = lp.call_later_with_context(
        Duration::ZERO,
        move || s2.borrow_mut().push(v2.get()),
        ctx.clone(),
    );
    let (v3, s3) = (var.clone(), seen.clone());
    let h3 = lp.call_at_with_context(
        Instant::now(),
        move || {
            s3.borrow_mut().push(v3.get());
            v3.set("bob"); // changes `ctx` itself: it was given, not copied
        },
        ctx.clone(),
    );
    for h in [h2.get_context(), h3.get_context(), h1.get_context()] {
        assert_eq!(h.run(|| var.get()), Some("ada"));
    }
    lp.run_until_complete(sleep(Duration::from_millis(5)))
        .unwrap();
    assert_eq!(*seen.borrow(), [Some("ada"); 3]);
    assert_eq!(ctx.run(|| var.get()), Some("bob"));
    assert_eq!(var.get(), None);
}

#[test]
fn callbacks_scheduled_outside_any_context_still_have_one_to_get() {
    let lp = EventLoop::new();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let var = ContextVar::new("n");
    let v = var.clone();
    let handle = lp.call_soon(move || r.set(v.get() == Some(3)));
    handle.get_context().run(|| var.set(3));
    run_turns(&lp, 1);
    assert!(ran.get(), "the callback saw what was set in its context");
}

#[test]
fn copy_context_in_a_callback_is_its_own_context() {
    let var = ContextVar::new("v");
    let lp = EventLoop::new();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    let ctx = Context::new();
    ctx.run(|| var.set(4));
    let v = var.clone();
    lp.call_soon_with_context(
        move || *g.borrow_mut() = copy_context().run(|| v.get()),
        ctx,
    );
    run_turns(&lp, 1);
    assert_eq!(*got.borrow(), Some(4));
}

#[test]
fn get_exception_handler_returns_the_handler_set_and_none_for_the_default() {
    let lp = EventLoop::new();
    assert!(lp.get_exception_handler().is_none());
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    lp.set_exception_handler(Some(move |_: &ExceptionContext| c.set(c.get() + 1)));
    let handler = lp.get_exception_handler().expect("set");
    handler(&ExceptionContext::new("direct"));
    assert_eq!(calls.get(), 1);
    lp.set_exception_handler(None::<fn(&ExceptionContext)>);
    assert!(lp.get_exception_handler().is_none());
}

#[test]
fn a_custom_handler_can_hand_contexts_off_to_the_default_one() {
    let lp = EventLoop::new();
    let handled = Rc::new(RefCell::new(Vec::new()));
    let h = handled.clone();
    lp.set_exception_handler(Some(move |ctx: &ExceptionContext| {
        if ctx.message.starts_with("mine") {
            h.borrow_mut().push(ctx.message.clone());
        } else {
            // Handed off: written to stderr, not back to this handler.
            asyncio_core::default_exception_handler(ctx);
        }
    }));
    lp.call_exception_handler(&ExceptionContext::new("mine: kept"));
    lp.call_exception_handler(&ExceptionContext::new("someone else's: handed off"));
    lp.default_exception_handler(&ExceptionContext::new("straight to the default"));
    assert_eq!(*handled.borrow(), ["mine: kept"]);
}

#[test]
fn a_panicking_callback_is_reported_with_its_handle() {
    let lp = EventLoop::new();
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    lp.set_exception_handler(Some(move |ctx: &ExceptionContext| {
        r.borrow_mut().push(ctx.clone());
    }));
    let handle = lp.call_soon(|| panic!("callback broke"));
    run_turns(&lp, 1);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1);
    let ctx = &reports[0];
    assert_eq!(ctx.message, "Exception in callback");
    assert_eq!(ctx.handle.as_ref(), Some(&handle));
    assert_eq!(ctx.panic.as_ref().unwrap().message(), "callback broke");
    assert!(ctx.to_string().contains("callback broke"));
}

#[test]
fn a_panicking_timer_callback_is_reported_with_its_handle() {
    let lp = EventLoop::new();
    let got_handle = Rc::new(Cell::new(false));
    let g = got_handle.clone();
    lp.set_exception_handler(Some(move |ctx: &ExceptionContext| {
        g.set(ctx.handle.is_some() && ctx.panic.is_some());
    }));
    lp.call_later(Duration::ZERO, || panic!("timer broke"));
    lp.run_until_complete(sleep(Duration::from_millis(5)))
        .unwrap();
    assert!(got_handle.get());
}

#[derive(Debug, thiserror::Error)]
#[error("accept failed")]
struct AcceptFailed(#[source] std::io::Error);

#[test]
fn an_exception_context_carries_the_typed_error_and_what_it_concerns() {
    let lp = EventLoop::new();
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    lp.set_exception_handler(Some(move |ctx: &ExceptionContext| {
        *s.borrow_mut() = Some(ctx.clone());
    }));
    let transport: Rc<dyn std::any::Any> = Rc::new(String::from("a transport"));
    lp.run_until_complete(async {
        let task = create_task(async {});
        let future = get_running_loop().unwrap().create_future::<u8>();
        get_running_loop().unwrap().call_exception_handler(
            &ExceptionContext::new("server error")
                .with_exception(AcceptFailed(std::io::Error::other("too many open files")))
                .with_task(task.to_ref())
                .with_future(Rc::new(future))
                .with_transport(transport.clone())
                .with_socket(Rc::new(7_i32)),
        );
    })
    .unwrap();
    let ctx = seen.borrow_mut().take().expect("reported");
    let err = ctx.exception.as_ref().unwrap();
    let typed = err.downcast_ref::<AcceptFailed>().expect("typed");
    assert_eq!(typed.0.to_string(), "too many open files");
    assert!(ctx.task.is_some());
    assert!(
        ctx.future
            .unwrap()
            .downcast_ref::<asyncio_core::LoopFuture<u8>>()
            .is_some()
    );
    assert!(Rc::ptr_eq(ctx.transport.as_ref().unwrap(), &transport));
    assert_eq!(ctx.socket.unwrap().downcast_ref::<i32>(), Some(&7));
    // The message reads each cause once.
    let text = ExceptionContext::new("server error")
        .with_exception(AcceptFailed(std::io::Error::other("too many open files")))
        .to_string();
    assert_eq!(text, "server error: accept failed: too many open files");
}
