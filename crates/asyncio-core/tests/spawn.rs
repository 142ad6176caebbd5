//! Creating tasks, running them in FIFO order, and asking which task runs.

use std::cell::RefCell;
use std::rc::Rc;

use asyncio_core::{
    EventLoop, RuntimeError, all_tasks, create_task, current_task, try_create_task, yield_now,
};

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

#[test]
fn tasks_run_in_creation_order() {
    let lp = EventLoop::new();
    let log = log();
    let l = log.clone();
    lp.run_until_complete(async move {
        let tasks: Vec<_> = (0..5)
            .map(|i| {
                let l = l.clone();
                create_task(async move { l.borrow_mut().push(format!("t{i}")) })
            })
            .collect();
        l.borrow_mut().push("main".into());
        for t in tasks {
            t.await.unwrap();
        }
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["main", "t0", "t1", "t2", "t3", "t4"]);
}

#[test]
fn yield_now_goes_to_the_back_of_the_queue() {
    let lp = EventLoop::new();
    let log = log();
    let l = log.clone();
    lp.run_until_complete(async move {
        let mk = |name: &'static str, l: Log| {
            create_task(async move {
                for i in 0..3 {
                    l.borrow_mut().push(format!("{name}{i}"));
                    yield_now().await;
                }
            })
        };
        let a = mk("a", l.clone());
        let b = mk("b", l.clone());
        a.await.unwrap();
        b.await.unwrap();
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["a0", "b0", "a1", "b1", "a2", "b2"]);
}

#[test]
fn task_output_comes_back_through_await() {
    let lp = EventLoop::new();
    let out = lp
        .run_until_complete(async { create_task(async { String::from("hello") }).await })
        .unwrap();
    assert_eq!(out.unwrap(), "hello");
}

#[test]
fn dropping_a_task_detaches_it_and_it_still_runs() {
    let lp = EventLoop::new();
    let ran = Rc::new(RefCell::new(false));
    let r = ran.clone();
    lp.run_until_complete(async move {
        drop(create_task(async move {
            yield_now().await;
            *r.borrow_mut() = true;
        }));
        yield_now().await;
        yield_now().await;
    })
    .unwrap();
    assert!(*ran.borrow());
}

#[test]
fn current_task_is_the_running_task_and_none_outside() {
    assert!(current_task().is_none());
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let main = current_task().expect("main runs as a task");
        let child = create_task(async { current_task().unwrap().id() });
        let child_id = child.id();
        assert_eq!(child.await.unwrap(), child_id);
        assert_eq!(current_task().unwrap(), main);
        assert_ne!(main.id(), child_id);
    })
    .unwrap();
    assert!(current_task().is_none());
}

#[test]
fn all_tasks_lists_pending_tasks_only() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let main = current_task().unwrap();
        let done = create_task(async {});
        let waiting = create_task(async {
            yield_now().await;
            yield_now().await;
        });
        yield_now().await;
        assert!(done.done());
        let all = all_tasks().unwrap();
        assert!(all.contains(&main));
        assert!(all.contains(&waiting));
        assert!(!all.contains(&done));
        waiting.await.unwrap();
        assert_eq!(all_tasks().unwrap(), vec![main]);
    })
    .unwrap();
}

#[test]
fn names_default_to_task_n_and_can_be_set() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let t = create_task(async {});
        assert_eq!(t.name(), format!("Task-{}", t.id()));
        t.set_name("worker");
        assert_eq!(t.name(), "worker");
        assert!(format!("{:?}", t.to_ref()).contains("worker"));
    })
    .unwrap();
}

#[test]
fn task_ids_are_distinct_and_increasing() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let ids: Vec<u64> = (0..10).map(|_| create_task(async {}).id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    })
    .unwrap();
}

#[test]
fn create_task_outside_a_running_loop_is_an_error() {
    assert_eq!(
        try_create_task(async {}).err(),
        Some(RuntimeError::NoRunningLoop)
    );
    let err = std::panic::catch_unwind(|| drop(create_task(async {}))).unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("no running event loop"), "{msg}");
}

#[test]
fn event_loop_create_task_before_running_starts_when_it_runs() {
    let lp = EventLoop::new();
    let t = lp.create_task(async { 5 });
    assert!(!t.done());
    let out = lp.run_until_complete(t).unwrap();
    assert_eq!(out, Ok(5));
}

#[test]
fn try_result_fails_before_completion_and_after_taking() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let mut t = create_task(async { 1 });
        assert_eq!(
            t.try_result().unwrap_err(),
            asyncio_core::InvalidStateError::NotDone
        );
        yield_now().await;
        assert_eq!(t.try_result().unwrap(), Ok(1));
        assert_eq!(
            t.try_result().unwrap_err(),
            asyncio_core::InvalidStateError::ResultTaken
        );
    })
    .unwrap();
}

#[test]
fn a_task_can_await_another_task_that_is_still_pending() {
    let lp = EventLoop::new();
    let out = lp
        .run_until_complete(async {
            let inner = create_task(async {
                for _ in 0..10 {
                    yield_now().await;
                }
                7
            });
            let outer = create_task(async move { inner.await.unwrap() * 2 });
            outer.await.unwrap()
        })
        .unwrap();
    assert_eq!(out, 14);
}

#[test]
fn create_task_in_place_runs_the_future_it_makes() {
    let lp = EventLoop::new();
    let out = lp
        .run_until_complete(async {
            let base = 40;
            let task = asyncio_core::create_task_in_place(move || async move {
                yield_now().await;
                base + 2
            });
            task.await.unwrap()
        })
        .unwrap();
    assert_eq!(out, 42);
}

#[test]
fn a_panicking_maker_creates_no_task_and_the_loop_goes_on() {
    let lp = EventLoop::new();
    let (caught, tasks_before, tasks_after, next) = lp
        .run_until_complete(async {
            let before = all_tasks().unwrap().len();
            let caught = std::panic::catch_unwind(|| {
                asyncio_core::create_task_in_place(|| -> std::future::Ready<u8> {
                    panic!("maker failed")
                })
            })
            .is_err();
            let after = all_tasks().unwrap().len();
            // The memory given back is reused by the next task.
            let next = create_task(async { 7 }).await.unwrap();
            (caught, before, after, next)
        })
        .unwrap();
    assert!(caught, "the maker's panic reaches the caller");
    assert_eq!(tasks_before, tasks_after, "no task was created");
    assert_eq!(next, 7);
}

#[test]
#[should_panic(expected = "no running event loop")]
fn create_task_in_place_outside_a_loop_panics_without_calling_the_maker() {
    asyncio_core::create_task_in_place(|| -> std::future::Ready<()> {
        unreachable!("the maker must not run outside a loop")
    });
}

#[test]
fn a_tasks_debug_shows_its_name_and_state() {
    let lp = asyncio_core::EventLoop::new();
    let (pending, done) = lp
        .run_until_complete(async {
            let t = asyncio_core::create_task_with(
                async { 1 },
                asyncio_core::TaskOptions::new().name("fetcher"),
            );
            let pending = format!("{t:?}");
            asyncio_core::yield_now().await;
            (pending, format!("{t:?}"))
        })
        .unwrap();
    assert!(
        pending.contains("\"fetcher\"") && pending.contains("pending"),
        "{pending}"
    );
    assert!(done.contains("finished"), "{done}");
    assert!(
        !pending.contains("raw") && !pending.contains("ptr"),
        "{pending}"
    );
}
