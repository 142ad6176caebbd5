//! Threads and the loop: `asyncio.to_thread` runs blocking work without
//! stopping the loop; `run_coroutine_threadsafe` lets a plain thread hand a
//! coroutine to the loop and wait for its result.
//!
//! ```python
//! def blocking_io():
//!     time.sleep(0.2)
//!     return "file contents"
//!
//! async def main():
//!     ticker = asyncio.create_task(tick())
//!     data = await asyncio.to_thread(blocking_io)   # the ticker keeps ticking
//!     loop = asyncio.get_running_loop()
//!     threading.Thread(target=lambda: print(
//!         asyncio.run_coroutine_threadsafe(compute(), loop).result())).start()
//! ```

use std::time::Duration;

fn blocking_io() -> &'static str {
    std::thread::sleep(Duration::from_millis(200)); // a slow disk, a legacy library
    "file contents"
}

async fn main_task() {
    let ticker = asyncio::create_task(async {
        let mut ticks = 0;
        loop {
            asyncio::sleep(Duration::from_millis(50)).await;
            ticks += 1;
            println!("tick {ticks} (the loop is free while the thread works)");
        }
    });
    let data = asyncio::to_thread(blocking_io)
        .await
        .expect("blocking_io does not panic");
    println!("to_thread -> {data:?}");
    ticker.cancel();

    // A plain thread sends a coroutine to this loop and blocks on its result.
    let handle = asyncio::get_running_loop()
        .expect("inside the loop")
        .handle();
    let worker = std::thread::spawn(move || {
        let answer = handle
            .run_coroutine_threadsafe(async {
                asyncio::sleep(Duration::from_millis(20)).await;
                6 * 7
            })
            .expect("the loop is open")
            .wait()
            .expect("the coroutine does not fail");
        println!(
            "thread {:?}: run_coroutine_threadsafe -> {answer}",
            std::thread::current().id()
        );
        handle
            .call_soon_threadsafe(|| println!("call_soon_threadsafe: running on the loop's thread"))
            .expect("the loop is open");
    });
    // Wait for the thread without blocking the loop: join it on the executor.
    asyncio::to_thread(move || worker.join().expect("the worker does not panic"))
        .await
        .expect("join does not panic");
    asyncio::sleep(Duration::from_millis(10)).await; // let the callback run
}

fn main() {
    asyncio::run(main_task()).expect("the example runs to completion");
}
