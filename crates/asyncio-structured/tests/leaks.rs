//! `asyncio::run` leaves nothing behind (issue 13, item 14): a task that was
//! cancelled at the end of `run` while it awaited `to_thread` is freed when
//! the loop closes, though the job wakes it from the executor's thread after
//! the loop stopped. The task's cell is watched through the allocator
//! (asyncio-core's `tests/common/freed.rs`); under Miri and LeakSanitizer a
//! leak fails the run as well.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, mpsc};
use std::task::Poll;
use std::time::Duration;

use asyncio_core::{create_task, to_thread, yield_now};
use asyncio_structured::run;

#[path = "../../asyncio-core/tests/common/freed.rs"]
mod freed;
use freed::Watch;

/// Sends on its channel when dropped (the task's future is dropped by its
/// cancellation).
struct OnDrop(mpsc::Sender<()>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

// The executor's wake can reach the loop before it stops (then nothing
// leaked even before the fix); over several runs some land after it.
const RUNS: usize = if cfg!(miri) { 2 } else { 10 };

#[test]
fn run_frees_a_task_cancelled_while_awaiting_to_thread() {
    let mut leaked = 0;
    for _ in 0..RUNS {
        // Set by the task while its cell is surely alive.
        let watch: Arc<Mutex<Option<Watch>>> = Arc::default();
        let w = Arc::clone(&watch);
        let (dropped_tx, dropped_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        run(async move {
            // Detached: `run`'s end cancels it while the job still runs.
            drop(create_task(async move {
                let _guard = OnDrop(dropped_tx);
                poll_fn(|cx| {
                    *w.lock().unwrap() = Some(Watch::new(0, cx.waker().data() as usize));
                    Poll::Ready(())
                })
                .await;
                to_thread(move || {
                    started_tx.send(()).unwrap();
                    // The job ends (and wakes the task) once the task's
                    // future was dropped by its cancellation.
                    let _ = dropped_rx.recv_timeout(Duration::from_secs(60));
                })
                .await
            }));
            yield_now().await;
            started_rx.recv().unwrap();
        })
        .unwrap();
        let watch = watch.lock().unwrap().take().expect("the task ran");
        if !watch.freed() {
            leaked += 1;
        }
    }
    assert_eq!(leaked, 0, "task cells outlived their runs");
}
