//! Several producers and consumers on one bounded `asyncio::Queue`: the
//! producers put jobs, the consumers mark each one done, `join()` waits for
//! all of them, then `shutdown()` ends the consumers' loops.
//!
//! ```python
//! async def consumer(name, queue):
//!     while True:
//!         try:
//!             job = await queue.get()
//!         except asyncio.QueueShutDown:
//!             return
//!         ...
//!         queue.task_done()
//! ```

use std::cell::Cell;
use std::rc::Rc;

async fn producer(name: &'static str, queue: Rc<asyncio::Queue<(usize, &'static str)>>) {
    for job in 0..5 {
        queue
            .put((job, name))
            .await
            .expect("the queue is open while producers run");
    }
    println!("producer {name}: all jobs queued");
}

async fn consumer(
    id: usize,
    queue: Rc<asyncio::Queue<(usize, &'static str)>>,
    handled: Rc<Cell<usize>>,
) -> usize {
    let mut mine = 0;
    while let Ok((job, from)) = queue.get().await {
        asyncio::yield_now().await; // the "work"
        println!("consumer {id}: job {job} from {from}");
        mine += 1;
        handled.set(handled.get() + 1);
        queue.task_done().expect("one task_done per job taken");
    }
    println!("consumer {id}: queue shut down after {mine} jobs");
    mine
}

async fn main_task() {
    let queue = Rc::new(asyncio::Queue::new(3));
    let handled = Rc::new(Cell::new(0));
    let consumers: Vec<_> = (0..2)
        .map(|id| asyncio::create_task(consumer(id, queue.clone(), handled.clone())))
        .collect();
    let producers: Vec<_> = ["P", "Q", "R"]
        .into_iter()
        .map(|name| asyncio::create_task(producer(name, queue.clone())))
        .collect();
    for p in producers {
        p.await.expect("producers do not fail");
    }
    queue.join().await; // every job taken and marked done
    println!(
        "join(): {} jobs handled, shutting the queue down",
        handled.get()
    );
    queue.shutdown(false);
    let per_consumer: Vec<usize> = {
        let mut v = Vec::new();
        for c in consumers {
            v.push(c.await.expect("consumers do not fail"));
        }
        v
    };
    println!("jobs per consumer: {per_consumer:?}");
    assert_eq!(per_consumer.iter().sum::<usize>(), 15);
}

fn main() {
    asyncio::run(main_task()).expect("the example runs to completion");
}
