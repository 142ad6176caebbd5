//! ex_6_4 of the asyncio 3.12/3.13 tutorial series this project follows:
//! `Queue.shutdown()` (Python 3.13). A `put` after `shutdown()` fails with
//! `QueueShutDown`.
//!
//! ```python
//! async def main():
//!     queue = asyncio.Queue()
//!     await queue.put(1)
//!     queue.shutdown()
//!     await queue.put(2)      # raises asyncio.QueueShutDown
//!
//! asyncio.run(main())
//! ```
//!
//! Python raises; here `put` returns `Err(QueueShutDown(2))`, handing the
//! item back. The item put before the shutdown can still be taken.

async fn main_task() -> Result<(), asyncio::QueueShutDown<i32>> {
    let queue = asyncio::Queue::new(0);
    queue.put(1).await?;
    queue.shutdown(false);
    let refused = queue.put(2).await;
    println!("put(2) after shutdown(): {refused:?}");
    println!(
        "get() still hands out what was left: {:?}",
        queue.get().await
    );
    println!("then get() fails too: {:?}", queue.get().await);
    refused
}

fn main() {
    match asyncio::run(main_task()).expect("the loop runs") {
        Ok(()) => unreachable!("a shut-down queue refuses items"),
        Err(err) => println!("error: {err} (the item {} came back)", err.0),
    }
}
