//! ex_6_1 of the asyncio 3.12/3.13 tutorial series this project follows: one
//! million trivial tasks in a TaskGroup, under the eager task factory.
//!
//! ```python
//! async def light_coro():
//!     pass
//!
//! async def main():
//!     print('Before running task group!')
//!     time0 = time.time()
//!     asyncio.get_event_loop().set_task_factory(asyncio.eager_task_factory)
//!     async with asyncio.TaskGroup() as tg:
//!         for _ in range(1000000):
//!             tg.create_task(light_coro())
//!     print(f'It took {time.time() - time0} to run!')
//!     print('After running task group with eager task factory!')
//! ```

use std::time::Instant;

async fn light_coro() {}

async fn main_task() -> Result<(), asyncio::ExceptionGroup> {
    println!("Before running task group!");
    let time0 = Instant::now();
    asyncio::get_running_loop()
        .expect("inside asyncio::run")
        .set_task_factory(asyncio::eager_task_factory);
    asyncio::task_group(|tg| async move {
        for _ in 0..1_000_000 {
            tg.create_task(light_coro());
        }
        Ok::<_, asyncio::TaskError>(())
    })
    .await?;
    let took = time0.elapsed();
    println!("It took {} seconds to run!", took.as_secs_f64());
    println!(
        "That is {:.1} ns per task.",
        took.as_nanos() as f64 / 1_000_000.0
    );
    println!("After running task group with eager task factory!");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    asyncio::run(main_task())??;
    Ok(())
}
