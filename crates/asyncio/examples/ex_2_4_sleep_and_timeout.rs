//! `asyncio.sleep` and `asyncio.timeout` (Python 3.11+).
//!
//! Three tasks sleep concurrently: together they take the time of the longest,
//! not the sum. Then a timeout fires around work that takes too long, and
//! `wait_for` does the same in asyncio's older spelling.
//!
//! ```python
//! async def nap(name, seconds):
//!     await asyncio.sleep(seconds)
//!     return name
//!
//! async def main():
//!     t0 = time.perf_counter()
//!     async with asyncio.TaskGroup() as tg:
//!         for name, s in [("short", 0.1), ("medium", 0.2), ("long", 0.3)]:
//!             tg.create_task(nap(name, s))
//!     print(f"three naps took {time.perf_counter() - t0:.2f}s")
//!     try:
//!         async with asyncio.timeout(0.05):
//!             await asyncio.sleep(10)
//!     except TimeoutError:
//!         print("timed out")
//! ```

use std::time::{Duration, Instant};

async fn nap(name: &'static str, ms: u64) -> &'static str {
    asyncio::sleep(Duration::from_millis(ms)).await;
    println!("{name} nap over after {ms} ms");
    name
}

async fn main_task() {
    let t0 = Instant::now();
    asyncio::task_group(|tg| async move {
        for (name, ms) in [("short", 100), ("medium", 200), ("long", 300)] {
            tg.create_task(async move {
                nap(name, ms).await;
            });
        }
        Ok::<_, asyncio::TaskError>(())
    })
    .await
    .expect("naps do not fail");
    println!(
        "three naps (100, 200, 300 ms) took {:.2} s in all",
        t0.elapsed().as_secs_f64()
    );

    let t0 = Instant::now();
    match asyncio::timeout(
        Duration::from_millis(50),
        asyncio::sleep(Duration::from_secs(10)),
    )
    .await
    {
        Ok(()) => println!("the long sleep finished?!"),
        Err(err) => println!(
            "timeout(50 ms): {err} after {} ms",
            t0.elapsed().as_millis()
        ),
    }

    // wait_for: the same, asyncio's older spelling; a ready result wins even
    // with a zero timeout.
    let quick = asyncio::wait_for(async { "ready" }, Duration::ZERO).await;
    println!("wait_for(ready, 0) -> {quick:?}");

    // A timeout whose deadline moves: asyncio's Timeout.reschedule().
    let work = asyncio::timeout(
        Duration::from_millis(20),
        asyncio::sleep(Duration::from_millis(60)),
    );
    work.handle()
        .reschedule(Some(Instant::now() + Duration::from_millis(200)))
        .expect("the timeout has not started, let alone expired");
    println!("rescheduled timeout -> {:?}", work.await);
}

fn main() {
    asyncio::run(main_task()).expect("the example runs to completion");
}
