//! `Queue`, `LifoQueue`, `PriorityQueue`: order, bounds, task_done/join,
//! shutdown, the Stream, and cancellation safety.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::Poll;

use asyncio_sync::{
    GetError, LifoQueue, PriorityQueue, PutError, Queue, QueueEmpty, QueueFull, QueueShutDown,
    TaskDoneError,
};
use common::{Rt, counting_waker, poll_once, poll_with, settle};
use futures::StreamExt;

on_both!(
    producers_and_consumers_move_every_item_once,
    |rt: Rt| async move {
        let q = Rc::new(Queue::new(4));
        let got = Rc::new(RefCell::new(Vec::new()));
        let producers: Vec<_> = (0..3)
            .map(|p| {
                let q = q.clone();
                rt.spawn(async move {
                    for i in 0..50 {
                        q.put(p * 1000 + i).await.unwrap();
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let (q, got) = (q.clone(), got.clone());
                rt.spawn(async move {
                    while let Ok(item) = q.get().await {
                        assert!(q.qsize() <= 4);
                        got.borrow_mut().push(item);
                        q.task_done().unwrap();
                    }
                })
            })
            .collect();
        for p in producers {
            p.await;
        }
        q.join().await;
        q.shutdown(false);
        for c in consumers {
            c.await;
        }
        let got = got.borrow();
        assert_eq!(got.len(), 150);
        for p in 0..3 {
            let mine: Vec<_> = got.iter().copied().filter(|v| v / 1000 == p).collect();
            assert_eq!(
                mine,
                (0..50).map(|i| p * 1000 + i).collect::<Vec<_>>(),
                "FIFO per producer"
            );
        }
    }
);

on_both!(getters_are_served_in_arrival_order, |rt: Rt| async move {
    let q = Rc::new(Queue::new(0));
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut handles = Vec::new();
    for g in 0..3 {
        let (q, log) = (q.clone(), log.clone());
        handles.push(rt.spawn(async move {
            let item = q.get().await.unwrap();
            log.borrow_mut().push((g, item));
        }));
        settle(2).await;
    }
    for item in ['a', 'b', 'c'] {
        q.put(item).await.unwrap();
    }
    for h in handles {
        h.await;
    }
    assert_eq!(*log.borrow(), [(0, 'a'), (1, 'b'), (2, 'c')]);
});

on_both!(join_waits_for_every_task_done, |rt: Rt| async move {
    let q = Rc::new(Queue::new(0));
    for i in 0..3 {
        q.put_nowait(i).unwrap();
    }
    let joined = Rc::new(Cell::new(false));
    let (q2, j) = (q.clone(), joined.clone());
    let joiner = rt.spawn(async move {
        q2.join().await;
        j.set(true);
    });
    for _ in 0..3 {
        q.get().await.unwrap();
        settle(2).await;
        assert!(!joined.get(), "join returns only after task_done");
    }
    q.task_done().unwrap();
    q.task_done().unwrap();
    settle(2).await;
    assert!(!joined.get());
    q.task_done().unwrap();
    joiner.await;
    assert!(joined.get());
    q.join().await; // nothing unfinished: returns at once
});

on_both!(
    shutdown_wakes_blocked_getters_and_putters,
    |rt: Rt| async move {
        let empty = Rc::new(Queue::<u32>::new(1));
        let full = Rc::new(Queue::new(1));
        full.put_nowait(0).unwrap();
        let e = empty.clone();
        let getter = rt.spawn(async move { e.get().await });
        let f = full.clone();
        let putter = rt.spawn(async move { f.put(1).await });
        settle(3).await;
        empty.shutdown(false);
        full.shutdown(false);
        assert_eq!(getter.await, Err(QueueShutDown(())));
        assert_eq!(putter.await, Err(QueueShutDown(1)), "the item comes back");
        // The item already in `full` is still handed out, then gets fail.
        assert_eq!(full.get().await, Ok(0));
        assert_eq!(full.get().await, Err(QueueShutDown(())));
    }
);

#[test]
fn each_queue_kind_has_its_order() {
    let fifo = Queue::new(0);
    let lifo = LifoQueue::new(0);
    let prio = PriorityQueue::new(0);
    for v in [3, 1, 2] {
        fifo.put_nowait(v).unwrap();
        lifo.put_nowait(v).unwrap();
        prio.put_nowait(v).unwrap();
    }
    let drain =
        |f: &dyn Fn() -> Result<i32, GetError>| std::iter::from_fn(|| f().ok()).collect::<Vec<_>>();
    assert_eq!(drain(&|| fifo.get_nowait()), [3, 1, 2]);
    assert_eq!(drain(&|| lifo.get_nowait()), [2, 1, 3]);
    assert_eq!(drain(&|| prio.get_nowait()), [1, 2, 3]);
}

#[test]
fn nowait_errors_carry_the_item_back() {
    let q = Queue::new(2);
    assert_eq!(q.get_nowait(), Err(GetError::Empty(QueueEmpty)));
    q.put_nowait("a").unwrap();
    q.put_nowait("b").unwrap();
    assert!(q.full());
    assert_eq!(q.qsize(), 2);
    match q.put_nowait("c") {
        Err(PutError::Full(QueueFull(item))) => assert_eq!(item, "c"),
        other => panic!("expected QueueFull, got {other:?}"),
    }
    assert_eq!(q.qsize(), 2, "a refused item does not go in");
    assert_eq!(QueueFull(()).to_string(), "the queue is full");
    assert_eq!(QueueEmpty.to_string(), "the queue is empty");
}

#[test]
fn maxsize_zero_is_unbounded() {
    let q = Queue::new(0);
    for i in 0..10_000 {
        q.put_nowait(i).unwrap();
    }
    assert!(!q.full());
    assert_eq!(q.qsize(), 10_000);
    assert_eq!(q.maxsize(), 0);
}

#[test]
fn too_many_task_done_is_an_error() {
    let q = Queue::new(0);
    assert_eq!(q.task_done(), Err(TaskDoneError));
    q.put_nowait(1).unwrap();
    q.get_nowait().unwrap();
    assert_eq!(q.task_done(), Ok(()));
    assert_eq!(q.task_done(), Err(TaskDoneError));
    assert_eq!(
        TaskDoneError.to_string(),
        "task_done() called too many times"
    );
}

#[test]
fn ex_6_4_put_after_shutdown_fails_with_queue_shut_down() {
    let q = Queue::new(0);
    assert!(poll_once(std::pin::pin!(q.put(1))).is_ready());
    q.shutdown(false);
    assert!(q.is_shutdown());
    let put = poll_once(std::pin::pin!(q.put(2)));
    assert_eq!(put, Poll::Ready(Err(QueueShutDown(2))));
    assert_eq!(QueueShutDown(()).to_string(), "the queue is shut down");
    assert!(matches!(
        q.put_nowait(3),
        Err(PutError::ShutDown(QueueShutDown(3)))
    ));
    // A graceful shutdown still hands out what is left.
    assert_eq!(q.get_nowait(), Ok(1));
    assert_eq!(q.get_nowait(), Err(GetError::ShutDown(QueueShutDown(()))));
    q.shutdown(false); // twice is fine
}

#[test]
fn immediate_shutdown_discards_items_and_releases_join() {
    let dropped = Rc::new(Cell::new(0));
    struct Item(Rc<Cell<u32>>);
    impl Drop for Item {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let q = Queue::new(0);
    for _ in 0..3 {
        q.put_nowait(Item(dropped.clone())).unwrap();
    }
    let taken = q.get_nowait().unwrap(); // one taken, not yet done
    let mut join = Box::pin(q.join());
    let (wj, woken_join) = counting_waker();
    assert!(poll_with(join.as_mut(), &wj).is_pending());
    q.shutdown(true);
    assert_eq!(dropped.get(), 2, "the items left are discarded");
    assert!(q.empty());
    assert!(matches!(q.get_nowait(), Err(GetError::ShutDown(_))));
    assert_eq!(woken_join.get(), 0, "the taken item is still unfinished");
    q.task_done().unwrap();
    assert_eq!(woken_join.get(), 1);
    assert!(poll_once(join.as_mut()).is_ready());
    drop(taken);
}

#[test]
fn immediate_shutdown_after_a_graceful_one_still_discards() {
    let q = Queue::new(0);
    q.put_nowait(1).unwrap();
    q.shutdown(false);
    q.shutdown(true);
    assert!(q.empty());
    assert!(poll_once(std::pin::pin!(q.join())).is_ready());
}

#[test]
fn the_stream_ends_at_shutdown_once_drained() {
    let q = Queue::new(0);
    for i in 0..3 {
        q.put_nowait(i).unwrap();
    }
    let mut stream = Box::pin(q.stream());
    assert_eq!(
        poll_once(std::pin::pin!(stream.next())),
        Poll::Ready(Some(0))
    );
    q.shutdown(false);
    let rest: Vec<_> = futures::executor::block_on(stream.collect());
    assert_eq!(rest, [1, 2]);
}

#[test]
fn a_stream_waiting_on_an_empty_queue_ends_when_it_shuts_down() {
    let q = Queue::<u8>::new(0);
    let mut stream = Box::pin(q.stream());
    let (w, woken) = counting_waker();
    let mut next = stream.next();
    assert!(poll_with(std::pin::Pin::new(&mut next), &w).is_pending());
    q.shutdown(false);
    assert_eq!(woken.get(), 1);
    assert_eq!(poll_once(std::pin::Pin::new(&mut next)), Poll::Ready(None));
}

// Cancellation safety.

#[test]
fn a_getter_dropped_after_it_was_handed_an_item_does_not_lose_it() {
    let q = Queue::new(0);
    let mut first = Box::pin(q.get());
    let mut second = Box::pin(q.get());
    let (w1, woken1) = counting_waker();
    let (w2, woken2) = counting_waker();
    assert!(poll_with(first.as_mut(), &w1).is_pending());
    assert!(poll_with(second.as_mut(), &w2).is_pending());
    q.put_nowait("item").unwrap();
    assert_eq!(
        (woken1.get(), woken2.get()),
        (1, 0),
        "one item wakes one getter"
    );
    drop(first); // cancelled after being woken for the item
    assert_eq!(woken2.get(), 1, "the wake-up passes on");
    assert_eq!(poll_once(second.as_mut()), Poll::Ready(Ok("item")));
}

#[test]
fn an_item_handed_to_a_dropped_getter_stays_first_in_line() {
    let q = Queue::new(0);
    let mut getter = Box::pin(q.get());
    assert!(poll_once(getter.as_mut()).is_pending());
    q.put_nowait(1).unwrap();
    q.put_nowait(2).unwrap();
    drop(getter);
    assert_eq!(q.get_nowait(), Ok(1));
    assert_eq!(q.get_nowait(), Ok(2));
}

#[test]
fn a_putter_dropped_after_it_was_given_a_slot_passes_the_slot_on() {
    let q = Queue::new(1);
    q.put_nowait(0).unwrap();
    let mut first = Box::pin(q.put(1));
    let mut second = Box::pin(q.put(2));
    let (w2, woken2) = counting_waker();
    assert!(poll_once(first.as_mut()).is_pending());
    assert!(poll_with(second.as_mut(), &w2).is_pending());
    assert_eq!(q.get_nowait(), Ok(0));
    assert_eq!(woken2.get(), 0, "one slot wakes one putter");
    drop(first);
    assert_eq!(woken2.get(), 1, "the slot is not lost");
    assert_eq!(poll_once(second.as_mut()), Poll::Ready(Ok(())));
    assert_eq!(q.get_nowait(), Ok(2));
}

#[test]
fn a_woken_getter_that_finds_the_item_taken_keeps_its_place() {
    let q = Queue::new(0);
    let mut first = Box::pin(q.get());
    let mut second = Box::pin(q.get());
    assert!(poll_once(first.as_mut()).is_pending());
    assert!(poll_once(second.as_mut()).is_pending());
    q.put_nowait('x').unwrap();
    // Someone else takes the item before the woken getter runs.
    assert_eq!(q.get_nowait(), Ok('x'));
    assert!(poll_once(first.as_mut()).is_pending());
    q.put_nowait('y').unwrap();
    assert_eq!(
        poll_once(second.as_mut()),
        Poll::Pending,
        "not second's turn"
    );
    assert_eq!(poll_once(first.as_mut()), Poll::Ready(Ok('y')));
}

#[test]
fn a_dropped_join_is_harmless() {
    let q = Queue::new(0);
    q.put_nowait(1).unwrap();
    let mut a = Box::pin(q.join());
    let mut b = Box::pin(q.join());
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    drop(a);
    q.get_nowait().unwrap();
    q.task_done().unwrap();
    assert!(poll_once(b.as_mut()).is_ready());
}
