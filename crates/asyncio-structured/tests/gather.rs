//! `gather` and `shield`, as asyncio documents them.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use asyncio_core::{TaskError, create_task, current_task, yield_now};
use asyncio_structured::{gather, run, shield};

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
