//! asyncio's Lock, Event and Condition together.
//!
//! - A `Lock` guards a shared counter that tasks update across an `await`.
//! - An `Event` holds every worker at the start line until `main` sets it.
//! - A `Condition` lets a watcher sleep until the counter reaches a target.

use std::rc::Rc;

async fn worker(id: usize, start: Rc<asyncio::Event>, total: Rc<asyncio::Condition<u32>>) {
    start.wait().await;
    for _ in 0..3 {
        let mut count = total.lock().await; // `async with cond:` (its lock)
        let seen = *count;
        asyncio::yield_now().await; // others run, but cannot touch the count
        *count = seen + 1;
        drop(count);
        total.notify_all();
    }
    println!("worker {id} done");
}

async fn watcher(total: Rc<asyncio::Condition<u32>>, target: u32) {
    let guard = total.lock().await;
    let guard = total.wait_for(guard, |count| *count >= target).await;
    println!("watcher: the count reached {}", *guard);
}

async fn main_task() {
    let start = Rc::new(asyncio::Event::new());
    let total = Rc::new(asyncio::Condition::with_value(0u32));
    let watch = asyncio::create_task(watcher(total.clone(), 12));
    let workers: Vec<_> = (0..4)
        .map(|id| asyncio::create_task(worker(id, start.clone(), total.clone())))
        .collect();
    asyncio::yield_now().await;
    println!("main: workers waiting at the start line; set the event");
    start.set();
    for w in workers {
        w.await.expect("workers do not fail");
    }
    watch.await.expect("the watcher does not fail");

    // The Lock on its own: `try_lock` fails while someone holds it.
    let lock = asyncio::Lock::new();
    let guard = lock.lock().await;
    println!(
        "locked: {}, try_lock: {:?}",
        lock.locked(),
        lock.try_lock().is_some()
    );
    drop(guard);
    println!("after release, locked: {}", lock.locked());
}

fn main() {
    asyncio::run(main_task()).expect("the example runs to completion");
}
