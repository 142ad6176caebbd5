//! ex_4_4 of the asyncio 3.12/3.13 tutorial series this project follows:
//! `asyncio.Barrier` (Python 3.11+) as a meeting point.
//!
//! Three workers get ready at their own pace, meet at the barrier, and only
//! then start together. Each `wait()` returns a distinct index in arrival
//! order (the last to arrive gets `parties - 1`), so exactly one task — here
//! the one with index 0 — announces the start.
//!
//! ```python
//! async def worker(barrier, name, prep):
//!     for _ in range(prep):
//!         await asyncio.sleep(0)
//!     print(f"{name} ready, {barrier.n_waiting} already waiting")
//!     index = await barrier.wait()
//!     if index == 0:
//!         print("everyone is here: go")
//!     print(f"{name} starts")
//!
//! async def main():
//!     barrier = asyncio.Barrier(3)
//!     async with asyncio.TaskGroup() as tg:
//!         for name, prep in [("A", 3), ("B", 1), ("C", 2)]:
//!             tg.create_task(worker(barrier, name, prep))
//!     print(barrier)
//! ```

use std::rc::Rc;

async fn worker(barrier: Rc<asyncio::Barrier>, name: &'static str, prep: usize) {
    for _ in 0..prep {
        asyncio::yield_now().await; // asyncio.sleep(0): getting ready
    }
    println!("{name} ready, {} already waiting", barrier.n_waiting());
    let index = barrier
        .wait()
        .await
        .expect("nobody resets or aborts this barrier");
    if index == 0 {
        println!("everyone is here: go");
    }
    println!("{name} starts (index {index})");
}

async fn main_task() {
    let barrier = Rc::new(asyncio::Barrier::new(3).expect("three parties"));
    let b = barrier.clone();
    asyncio::task_group(|tg| async move {
        for (name, prep) in [("A", 3), ("B", 1), ("C", 2)] {
            tg.create_task(worker(b.clone(), name, prep));
        }
        Ok::<_, asyncio::TaskError>(())
    })
    .await
    .expect("no worker fails");
    println!("{barrier:?}");

    // A broken barrier: abort() fails the waiters and every later wait().
    barrier.abort();
    match barrier.wait().await {
        Ok(_) => unreachable!("an aborted barrier lets nobody through"),
        Err(err) => println!("after abort(): {err}"),
    }
}

fn main() {
    asyncio::run(main_task()).expect("the example runs to completion");
}
