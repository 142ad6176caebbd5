//! ex_2_7 of the asyncio 3.12/3.13 tutorial series this project follows: a
//! TaskGroup whose children run concurrently, whose first failure cancels the
//! others, and whose end waits for all of them.
//!
//! ```python
//! async with asyncio.TaskGroup() as tg:
//!     tg.create_task(worker("A", 1))
//!     tg.create_task(worker("B", 3))      # fails
//!     tg.create_task(worker("C", 10))     # cancelled by B's failure
//! ```

use std::fmt;

#[derive(Debug)]
struct WorkerFailed(&'static str);

impl fmt::Display for WorkerFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker {} gave up", self.0)
    }
}

impl std::error::Error for WorkerFailed {}

struct Farewell(&'static str);

impl Drop for Farewell {
    fn drop(&mut self) {
        println!("worker {}: cleaning up", self.0);
    }
}

async fn worker(name: &'static str, steps: usize, fail: bool) -> Result<(), WorkerFailed> {
    let _farewell = Farewell(name);
    for step in 1..=steps {
        println!("worker {name}: step {step}/{steps}");
        asyncio::yield_now().await;
    }
    if fail {
        return Err(WorkerFailed(name));
    }
    println!("worker {name}: done");
    Ok(())
}

async fn main_task() {
    let result = asyncio::task_group(|tg| async move {
        // A worker's `Err` fails the group, as an exception does in asyncio.
        tg.create_fallible_task_named(worker("A", 1, false), "A");
        tg.create_fallible_task_named(worker("B", 3, true), "B");
        tg.create_fallible_task_named(worker("C", 10, false), "C");
        Ok::<_, WorkerFailed>(())
    })
    .await;
    match result {
        Ok(()) => println!("all workers finished"),
        Err(errors) => println!("{errors}"),
    }
}

fn main() -> Result<(), asyncio::RunError> {
    asyncio::run(main_task())
}
