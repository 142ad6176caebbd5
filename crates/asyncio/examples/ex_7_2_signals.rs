//! A server-like loop that shuts down cleanly on SIGTERM, through
//! `EventLoop::add_signal_handler` (asyncio's `loop.add_signal_handler`).
//!
//! It "serves" (a worker task ticks) until SIGTERM arrives; so that
//! `cargo run --example ex_7_2_signals` ends by itself, it sends itself
//! SIGTERM after half a second with `kill -TERM <own pid>` run as a
//! subprocess. Run it and press nothing, or `kill -TERM` it from another
//! shell sooner.
//!
//! The same program in Python:
//!
//! ```python
//! async def main():
//!     stop = asyncio.Event()
//!     loop = asyncio.get_running_loop()
//!     loop.add_signal_handler(signal.SIGTERM, stop.set)
//!     async def worker():
//!         while True:
//!             print("serving...")
//!             await asyncio.sleep(0.1)
//!     async with asyncio.TaskGroup() as tg:
//!         task = tg.create_task(worker())
//!         await stop.wait()
//!         print("SIGTERM: shutting down")
//!         task.cancel()
//! ```

use std::rc::Rc;
use std::time::Duration;

async fn main_task() -> std::io::Result<u32> {
    let stop = Rc::new(asyncio::Event::new());
    let lp = asyncio::get_running_loop().expect("inside asyncio::run");
    let s = stop.clone();
    lp.add_signal_handler(asyncio::signal::SIGTERM, move || s.set())
        .map_err(std::io::Error::other)?;

    let ticks = Rc::new(std::cell::Cell::new(0u32));
    let t = ticks.clone();
    let worker = asyncio::create_task(async move {
        loop {
            t.set(t.get() + 1);
            println!("serving... ({})", t.get());
            asyncio::sleep(Duration::from_millis(100)).await;
        }
    });

    // Bounded: SIGTERM ourselves after a while, as a supervisor would.
    let pid = std::process::id().to_string();
    let _killer = asyncio::create_task(async move {
        asyncio::sleep(Duration::from_millis(500)).await;
        let mut kill = asyncio::create_subprocess_exec("kill", ["-TERM", pid.as_str()]).await?;
        kill.wait().await
    });

    stop.wait().await;
    println!("SIGTERM: shutting down cleanly");
    worker.cancel();
    let _ = worker.await; // ends Cancelled
    lp.remove_signal_handler(asyncio::signal::SIGTERM)
        .map_err(std::io::Error::other)?;
    Ok(ticks.get())
}

fn main() -> std::io::Result<()> {
    let ticks = asyncio::run(main_task()).expect("the main task runs to its end")?;
    println!("served {ticks} ticks, bye");
    Ok(())
}
