//! Millions of tasks with random yields, panics and cancels; afterwards every
//! task is accounted for and the memory is back to its baseline.
//!
//! Ignored by default (run it from `ci/stress.sh`). It owns its process: the
//! global allocator below counts live bytes for the whole binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicIsize, Ordering};

use asyncio_core::{EventLoop, ExceptionContext, TaskError, create_task, yield_now};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[derive(Default)]
struct Tally {
    ok: Cell<u64>,
    panicked: Cell<u64>,
    cancelled: Cell<u64>,
}

fn storm(tasks: u64, seed: u64) -> (u64, u64, u64) {
    let lp = EventLoop::new();
    lp.set_exception_handler(Some(|_: &ExceptionContext| {}));
    let tally = Rc::new(Tally::default());
    let t = tally.clone();
    lp.run_until_complete(async move {
        let mut rng = Rng(seed);
        let mut handles = Vec::with_capacity(1024);
        for i in 0..tasks {
            let r = rng.next();
            let yields = (r % 4) as usize;
            let panics = r.is_multiple_of(17);
            let handle = create_task(async move {
                for _ in 0..yields {
                    yield_now().await;
                }
                if panics {
                    panic!("task {i} panics");
                }
                i
            });
            if (r >> 8).is_multiple_of(13) {
                handle.cancel();
            }
            handles.push(handle);
            if handles.len() == 1024 || i + 1 == tasks {
                for h in handles.drain(..) {
                    match h.await {
                        Ok(_) => t.ok.set(t.ok.get() + 1),
                        Err(TaskError::Panicked(_)) => t.panicked.set(t.panicked.get() + 1),
                        Err(TaskError::Cancelled(_)) => t.cancelled.set(t.cancelled.get() + 1),
                    }
                }
            }
        }
        assert!(
            asyncio_core::all_tasks().unwrap().len() == 1,
            "only main is left"
        );
    })
    .unwrap();
    lp.close().unwrap();
    (tally.ok.get(), tally.panicked.get(), tally.cancelled.get())
}

#[test]
#[ignore = "stress: millions of tasks; run from ci/stress.sh"]
fn millions_of_tasks_with_random_panics_and_cancels_are_all_accounted_for_and_freed() {
    // The panics are intended: keep the panic hook quiet.
    std::panic::set_hook(Box::new(|_| {}));
    // Warm up once so one-time allocations (thread-locals, panic machinery) are
    // part of the baseline.
    let _ = storm(10_000, 1);
    let baseline = LIVE.load(Ordering::Relaxed);
    let n = 2_000_000;
    let (ok, panicked, cancelled) = storm(n, 0x9E37_79B9_7F4A_7C15);
    assert_eq!(ok + panicked + cancelled, n);
    assert!(panicked > 0 && cancelled > 0 && ok > 0);
    let after = LIVE.load(Ordering::Relaxed);
    assert!(
        (after - baseline).abs() < 64 * 1024,
        "memory did not return to its baseline: {baseline} bytes before, {after} after"
    );
}
