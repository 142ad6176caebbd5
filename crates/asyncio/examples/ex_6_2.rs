//! ex_6_2 of the asyncio 3.12/3.13 tutorial series this project follows: one
//! million trivial coroutines gathered, with the default (lazy) task factory.
//!
//! ```python
//! async def main():
//!     print('Before running gather!')
//!     tasks_list = [light_coro() for _ in range(1000000)]
//!     time0 = time.time()
//!     tasks = asyncio.gather(*tasks_list)
//!     await tasks
//!     print(f'It took {time.time() - time0} to run!')
//!     print('After running gather without eager task factory!')
//!     print(f"tasks: {tasks}")
//! ```

use std::time::Instant;

async fn light_coro() {}

async fn main_task() -> Result<(), asyncio::TaskError> {
    println!("Before running gather!");
    let tasks_list: Vec<_> = (0..1_000_000).map(|_| light_coro()).collect();
    let time0 = Instant::now();
    let tasks = asyncio::gather(tasks_list);
    let results = tasks.await?;
    let took = time0.elapsed();
    println!("It took {} seconds to run!", took.as_secs_f64());
    println!(
        "That is {:.1} ns per task.",
        took.as_nanos() as f64 / 1_000_000.0
    );
    println!("After running gather without eager task factory!");
    println!("tasks: <gather finished result=[{} x ()]>", results.len());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    asyncio::run(main_task())??;
    Ok(())
}
