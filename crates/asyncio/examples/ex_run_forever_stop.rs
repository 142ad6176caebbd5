//! A loop driven by `run_forever` and ended by `stop`, from the three places
//! asyncio programs call it: a callback on the loop, another thread
//! (`LoopHandle::stop`, asyncio's `loop.call_soon_threadsafe(loop.stop)`) and a
//! signal handler.
//!
//! `cargo run --example ex_run_forever_stop` ends by itself: the first run is
//! stopped by a worker thread once it has handed the loop three jobs; the
//! second by SIGTERM (the program sends it to itself, as a supervisor would;
//! `kill -TERM <pid>` from another shell does the same sooner).
//!
//! The same program in Python:
//!
//! ```python
//! loop = asyncio.new_event_loop()
//! async def heartbeat():
//!     while True:
//!         print("tick")
//!         await asyncio.sleep(0.05)
//! beat = loop.create_task(heartbeat())
//! def worker():
//!     for i in range(3):
//!         time.sleep(0.03)
//!         loop.call_soon_threadsafe(print, f"job {i} from the worker thread")
//!     loop.call_soon_threadsafe(loop.stop)
//! threading.Thread(target=worker).start()
//! loop.run_forever()                      # until the worker's stop
//! loop.add_signal_handler(signal.SIGTERM, loop.stop)
//! loop.call_later(0.2, os.kill, os.getpid(), signal.SIGTERM)
//! loop.run_forever()                      # until SIGTERM
//! beat.cancel()
//! loop.stop(); loop.run_forever()         # one more turn: the cancellation
//! loop.close()
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

fn main() {
    let lp = asyncio::EventLoop::new();

    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    let beat = lp.create_task(async move {
        loop {
            t.set(t.get() + 1);
            println!("tick {}", t.get());
            asyncio::sleep(Duration::from_millis(50)).await;
        }
    });

    // 1. Stopped from another thread.
    let handle = lp.handle();
    let worker = std::thread::spawn(move || {
        for i in 0..3 {
            std::thread::sleep(Duration::from_millis(30));
            handle
                .call_soon_threadsafe(move || println!("job {i} from the worker thread"))
                .expect("the loop is open");
        }
        handle.stop().expect("the loop is open");
    });
    lp.run_forever()
        .expect("the worker's stop ends the first run");
    worker.join().expect("the worker thread ends");
    println!("first run stopped by the worker thread");

    // 2. Stopped by a signal: the handler runs on the loop, like a callback.
    let stopper = lp.clone();
    lp.add_signal_handler(libc::SIGTERM, move || {
        println!("SIGTERM: stopping the loop");
        stopper.stop();
    })
    .expect("SIGTERM can be handled");
    lp.call_later(Duration::from_millis(200), || {
        // SAFETY: kill(2) with this process's id and a valid signal number
        // has no memory-safety preconditions.
        unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    });
    lp.run_forever().expect("SIGTERM ends the second run");
    lp.remove_signal_handler(libc::SIGTERM)
        .expect("SIGTERM's handler was installed");

    // 3. One more turn, pre-stopped (asyncio's idiom): the heartbeat's
    // cancellation runs in it.
    beat.cancel();
    lp.stop();
    lp.run_forever().expect("a pre-stopped run makes one turn");
    assert!(beat.done());
    println!("{} ticks over both runs, bye", ticks.get());
    lp.close().expect("the loop is not running");
}
