//! loom models of the cross-thread paths (run with `ci/loom.sh`).
//!
//! Each model runs the real code: `Shared` (injector, sleep flag, close),
//! the task header's waker word and its wakers, the loop, the blocking pool
//! and `LoopHandle`. Under `cfg(loom)` their atomics, mutexes, condition
//! variables, the pool's threads and the loop's thread-locals are loom's
//! (`crate::sync`, `context`), so loom runs every interleaving of them up to
//! its preemption bound (`LOOM_MAX_PREEMPTIONS`). What is modelled rather
//! than run:
//!
//! - the wait in `epoll_wait`: `Driver::wait` waits on a `loom::sync::Notify`
//!   that the notifier signals (the eventfd's counter as loom sees it; loom
//!   also tries spurious returns), so a loop that sleeps and is never woken
//!   deadlocks the model, which fails it;
//! - the injector is crossbeam's `SegQueue`, whose own atomics are not loom's:
//!   each push, pop or `is_empty` is one indivisible step, and its ordering
//!   is not explored (the flags around it, `closed` and `sleeping`, and their
//!   fences are).
//!
//! The models that race a task's waker (a wake, a drop, a `to_thread` job's
//! wake) also check that no task cell leaks: they watch the cell's address
//! through this binary's allocator and assert that it was freed once the
//! loop was closed and every thread finished. Each model prints how many
//! interleavings loom ran, and fails if that is only a handful (a model that
//! no longer races anything).

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool as StdBool, AtomicUsize as StdUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::reactor::{Driver, SleepMode};
use crate::shared::{Injected, Shared};
use crate::{EventLoop, Task, TaskError, create_task, to_thread, yield_now};

mod watch {
    //! Which watched allocations were freed (see the module docs).
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    const SLOTS: usize = 16;
    static WATCHED: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
    static FREED: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];

    struct Watching;

    // SAFETY: every call is passed on to the system allocator unchanged; the
    // bookkeeping is atomic operations on statics, which never allocate.
    unsafe impl GlobalAlloc for Watching {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract is the one `System.alloc` needs.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            let addr = ptr as usize;
            for (watched, freed) in WATCHED.iter().zip(&FREED) {
                if watched
                    .compare_exchange(addr, 0, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    freed.store(true, Ordering::SeqCst);
                }
            }
            // SAFETY: `ptr` came from `System.alloc` with `layout`.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static WATCHING: Watching = Watching;

    /// Watches the live allocation at `addr` in `slot` (one slot per model:
    /// the models run in parallel).
    pub(super) fn start(slot: usize, addr: usize) {
        assert!(addr != 0);
        FREED[slot].store(false, Ordering::SeqCst);
        WATCHED[slot].store(addr, Ordering::SeqCst);
    }

    /// Whether the allocation watched in `slot` was freed since `start`,
    /// without ending the watch.
    pub(super) fn peek_freed(slot: usize) -> bool {
        FREED[slot].load(Ordering::SeqCst)
    }

    /// Whether `slot` watches `addr` (or watched it until it was freed).
    pub(super) fn watches(slot: usize, addr: usize) -> bool {
        WATCHED[slot].load(Ordering::SeqCst) == addr || FREED[slot].load(Ordering::SeqCst)
    }

    /// Whether the allocation watched in `slot` was freed since `start`.
    pub(super) fn freed(slot: usize) -> bool {
        let freed = FREED[slot].load(Ordering::SeqCst);
        WATCHED[slot].store(0, Ordering::SeqCst);
        freed
    }
}

/// Runs `f` as a loom model, then prints how many interleavings loom ran and
/// fails if they are too few to be a race.
fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let runs = Arc::new(StdUsize::new(0));
    let counter = Arc::clone(&runs);
    loom::model(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    let n = runs.load(Ordering::Relaxed);
    eprintln!("loom model {name}: {n} interleavings explored");
    assert!(
        n >= 10,
        "{name}: loom explored only {n} interleavings: the model races nothing"
    );
}

/// The watch slot of the model that checks `Shared` outlives every
/// `Shared::inject` call.
const SHARED_SLOT: usize = 12;

/// The address of the allocation behind the loop's `Arc<Shared>` (the
/// counts come first, then `Shared` at its alignment).
fn shared_allocation(lp: &EventLoop) -> usize {
    let data = Arc::as_ptr(&lp.inner.shared) as usize;
    let align = std::mem::align_of::<Shared>();
    let header = 2 * std::mem::size_of::<usize>();
    data - header.div_ceil(align) * align
}

/// Called by `Shared::inject` after its last use of `shared` (under loom):
/// fails the model if the watched `Shared` was freed before then.
pub(crate) fn shared_used_by_inject(shared: &Shared) {
    let addr = std::ptr::from_ref(shared) as usize;
    if SHARED_WATCHED.load(Ordering::SeqCst) == addr && watch::peek_freed(SHARED_SLOT) {
        panic!("Shared was freed while Shared::inject still used it");
    }
}

/// The address of the `Shared` the model of `SHARED_SLOT` watches (0: none).
static SHARED_WATCHED: StdUsize = StdUsize::new(0);

/// What a parked task leaves behind: its waker and its cell's address.
#[derive(Default)]
struct Parked {
    waker: StdMutex<Option<Waker>>,
    cell: StdUsize,
    /// Set (on the loop's thread) to let the task finish with 7.
    finish: StdBool,
}

/// A task that parks until `parked.finish` is set, handing out a clone of
/// its waker each time it parks. Runs once before this returns.
#[allow(
    clippy::async_yields_async,
    reason = "the task's handle is handed to the model, not awaited"
)]
fn park_a_task(lp: &EventLoop) -> (Task<u32>, Arc<Parked>) {
    let parked = Arc::new(Parked::default());
    let p = Arc::clone(&parked);
    let task = lp
        .run_until_complete(async move {
            let task = create_task(poll_fn(move |cx| {
                if p.finish.load(Ordering::Relaxed) {
                    return Poll::Ready(7);
                }
                p.cell.store(cx.waker().data() as usize, Ordering::Relaxed);
                *p.waker.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            }));
            yield_now().await; // the task runs once and hands out its waker
            task
        })
        .unwrap();
    (task, parked)
}

impl Parked {
    fn take_waker(&self) -> Waker {
        self.waker.lock().unwrap().take().expect("the task parked")
    }
}

/// Two threads inject work while the loop decides to sleep, as
/// `LoopInner::idle` does (`prepare_to_sleep`, wait, `awake`), and takes in
/// what was queued: either the loop sees the work and stays awake, or an
/// injector sees the sleeping loop and wakes it the way it sleeps (only the
/// first pays for the wake-up). Never both miss: a lost wake-up deadlocks
/// the model. The loop sleeps parked (no poller: loom's `park`/`unpark`)
/// or, with `poller`, in its poller (made first, as the first I/O
/// registration makes it).
fn injection_racing_sleep(poller: bool) {
    let driver = Driver::new();
    // No loop around it: its address is never used.
    let shared = Arc::new(Shared::new(std::ptr::NonNull::dangling()));
    let mode = if poller {
        driver.poller(&shared.notifier).unwrap();
        SleepMode::Poll
    } else {
        SleepMode::Park
    };
    let injectors: Vec<_> = (0..2)
        .map(|_| {
            let remote = Arc::clone(&shared);
            loom::thread::spawn(move || {
                assert!(remote.inject(Injected::Call(Box::new(|| {}))));
            })
        })
        .collect();
    let mut taken = 0;
    while taken < 2 {
        if shared.prepare_to_sleep(mode) {
            driver.wait(mode, None, &mut Vec::new());
            shared.awake();
        }
        while shared.injector.pop().is_some() {
            taken += 1;
        }
    }
    for t in injectors {
        t.join().unwrap();
    }
}

#[test]
fn injection_racing_the_loop_going_to_sleep_is_never_lost() {
    model("injection_racing_the_loop_going_to_sleep", || {
        injection_racing_sleep(false);
    });
}

/// The same with the loop asleep in its poller.
#[test]
fn injection_racing_the_loop_going_to_sleep_in_its_poller_is_never_lost() {
    model(
        "injection_racing_the_loop_going_to_sleep_in_its_poller",
        || {
            injection_racing_sleep(true);
        },
    );
}

/// The whole loop, not only `Shared`: a `call_soon_threadsafe` from another
/// thread while the loop runs out of work and goes to sleep always runs.
#[test]
fn call_soon_threadsafe_wakes_a_sleeping_loop() {
    model("call_soon_threadsafe_wakes_a_sleeping_loop", || {
        let lp = EventLoop::new();
        let handle = lp.handle();
        let ran = Arc::new(StdBool::new(false));
        let slot: Arc<StdMutex<Option<Waker>>> = Arc::default();
        let (r, s) = (Arc::clone(&ran), Arc::clone(&slot));
        let t = loom::thread::spawn(move || {
            handle
                .call_soon_threadsafe(move || {
                    r.store(true, Ordering::Relaxed);
                    if let Some(w) = s.lock().unwrap().take() {
                        w.wake();
                    }
                })
                .unwrap();
        });
        let ran2 = Arc::clone(&ran);
        lp.run_until_complete(poll_fn(move |cx| {
            if ran2.load(Ordering::Relaxed) {
                Poll::Ready(())
            } else {
                *slot.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            }
        }))
        .unwrap();
        t.join().unwrap();
        lp.close().unwrap();
    });
}

/// `call_soon_threadsafe` and a foreign wake racing `close()`: the callback
/// is accepted or refused, never run after close, and dropped exactly once
/// (by close's drain, or by the injecting thread if it saw the loop close);
/// nothing stays in the injector, and the woken task's cell is freed.
#[test]
fn the_injector_racing_close_drops_each_item_exactly_once() {
    model("the_injector_racing_close", || {
        struct Counted(Arc<StdUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let lp = EventLoop::new();
        let (task, parked) = park_a_task(&lp);
        drop(task);
        let waker = parked.take_waker();
        watch::start(5, parked.cell.load(Ordering::Relaxed));
        let handle = lp.handle();
        let drops = Arc::new(StdUsize::new(0));
        let ran = Arc::new(StdBool::new(false));
        let item = Counted(Arc::clone(&drops));
        let r = Arc::clone(&ran);
        let caller = loom::thread::spawn(move || {
            let _ = handle.call_soon_threadsafe(move || {
                let _item = item;
                r.store(true, Ordering::Relaxed);
            });
        });
        let waker = loom::thread::spawn(move || waker.wake());
        lp.close().unwrap();
        caller.join().unwrap();
        waker.join().unwrap();
        assert!(lp.inner.shared.injector.is_empty(), "an item stayed behind");
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        assert!(
            !ran.load(Ordering::Relaxed),
            "a callback ran on a closed loop"
        );
        drop(lp);
        assert!(watch::freed(5), "the task's cell leaked");
    });
}

/// A foreign wake racing `close()`: whether the wake is refused, queued and
/// drained by close, or queued after close and drained by the waker itself,
/// the task's cell is freed (issue 13, item 14: a drained wake left the
/// task's `REMOTE` bit set, and the cell was never freed).
#[test]
fn a_foreign_wake_racing_close_frees_the_task() {
    model("a_foreign_wake_racing_close", || {
        let lp = EventLoop::new();
        let (task, parked) = park_a_task(&lp);
        drop(task); // detached: the loop's registry holds it
        let waker = parked.take_waker();
        watch::start(0, parked.cell.load(Ordering::Relaxed));
        let t = loom::thread::spawn(move || waker.wake());
        lp.close().unwrap();
        drop(lp);
        t.join().unwrap();
        assert!(watch::freed(0), "the task's cell leaked");
    });
}

/// A wake from another thread racing the end of the loop it wakes (issue 24,
/// finding 0): the waker's count is what keeps the loop's `Shared` alive,
/// and the loop takes the injected wake, finishes the task, closes and is
/// dropped while the waking thread may still be inside `Shared::inject`.
/// `Shared` must outlive that call: the model watches its allocation and
/// fails if it is freed before `inject` is done with it.
#[test]
fn a_foreign_wake_racing_the_loops_end_never_uses_freed_state() {
    model("a_foreign_wake_racing_the_loops_end", || {
        let lp = EventLoop::new();
        let (task, parked) = park_a_task(&lp);
        // The only counted waker: with the task's local side, it holds
        // `Shared` alive.
        let waker = parked.take_waker();
        parked.finish.store(true, Ordering::Relaxed);
        let addr = shared_allocation(&lp);
        watch::start(SHARED_SLOT, addr);
        SHARED_WATCHED.store(Arc::as_ptr(&lp.inner.shared) as usize, Ordering::SeqCst);
        let t = loom::thread::spawn(move || waker.wake());
        let out = lp.run_until_complete(task).unwrap();
        assert_eq!(out.ok(), Some(7));
        lp.close().unwrap();
        drop(lp);
        t.join().unwrap();
        assert!(watch::watches(SHARED_SLOT, addr));
        assert!(watch::freed(SHARED_SLOT), "the loop's Shared leaked");
        SHARED_WATCHED.store(0, Ordering::SeqCst);
    });
}

/// A foreign wake racing the task's completion (and the release of its
/// loop side when its handle is consumed): the task ends with its value,
/// a late wake is ignored, and the cell is freed once.
#[test]
fn a_foreign_wake_racing_completion() {
    model("a_foreign_wake_racing_completion", || {
        let lp = EventLoop::new();
        let (task, parked) = park_a_task(&lp);
        let waker = parked.take_waker();
        let local = waker.clone();
        watch::start(1, parked.cell.load(Ordering::Relaxed));
        let p = Arc::clone(&parked);
        let out = lp
            .run_until_complete(async move {
                let t = loom::thread::spawn(move || waker.wake());
                p.finish.store(true, Ordering::Relaxed);
                local.wake(); // on the loop's thread: scheduled directly
                let out = task.await;
                t.join().unwrap();
                yield_now().await; // takes in the foreign wake, if it came late
                out
            })
            .unwrap();
        assert_eq!(out.ok(), Some(7));
        lp.close().unwrap();
        drop(lp);
        assert!(watch::freed(1), "the task's cell leaked");
    });
}

/// A waker used on another thread while the loop cancels its task: the task
/// ends cancelled, the wake is harmless, the loop goes on, and the cell is
/// freed.
#[test]
fn a_foreign_wake_racing_a_cancel() {
    model("a_foreign_wake_racing_a_cancel", || {
        let lp = EventLoop::new();
        let (task, parked) = park_a_task(&lp);
        let waker = parked.take_waker();
        watch::start(2, parked.cell.load(Ordering::Relaxed));
        let cancelled = lp
            .run_until_complete(async move {
                let t = loom::thread::spawn(move || {
                    waker.wake_by_ref();
                    drop(waker);
                });
                task.cancel();
                yield_now().await; // the loop drops the task's future
                let cancelled = task.done() && task.cancelled();
                drop(task); // the loop side goes, racing the wake's count
                yield_now().await; // takes in the foreign wake, if it came
                t.join().unwrap();
                yield_now().await; // and if it came late
                cancelled
            })
            .unwrap();
        assert!(cancelled);
        lp.close().unwrap();
        drop(lp);
        assert!(watch::freed(2), "the task's cell leaked");
    });
}

/// The last waker dropped on another thread while the loop finishes the
/// task and drops its handle: whichever side goes last frees the cell.
#[test]
fn a_waker_dropped_racing_completion() {
    model("a_waker_dropped_racing_completion", || {
        let lp = EventLoop::new();
        let (task, parked) = park_a_task(&lp);
        let waker = parked.take_waker();
        let local = waker.clone();
        watch::start(3, parked.cell.load(Ordering::Relaxed));
        let p = Arc::clone(&parked);
        let out = lp
            .run_until_complete(async move {
                let t = loom::thread::spawn(move || drop(waker));
                p.finish.store(true, Ordering::Relaxed);
                local.wake();
                let out = task.await;
                t.join().unwrap();
                out
            })
            .unwrap();
        assert_eq!(out.ok(), Some(7));
        lp.close().unwrap();
        drop(lp);
        assert!(watch::freed(3), "the task's cell leaked");
    });
}

/// `to_thread`: the pool's thread stores the result and wakes the task from
/// its thread while the loop goes to sleep; the task gets the result.
#[test]
fn the_blocking_pool_hands_back_the_result() {
    model("the_blocking_pool_hands_back_the_result", || {
        let lp = EventLoop::new();
        lp.configure_default_executor(1, Duration::from_secs(3600));
        let out = lp
            .run_until_complete(async { to_thread(|| 5).await })
            .unwrap();
        assert_eq!(out.ok(), Some(5));
        lp.close().unwrap();
    });
}

/// A task cancelled while its `to_thread` job runs: the job's wake of the
/// stale waker races the cancellation and `close()` (as at the end of
/// `asyncio::run`: cancel, wait for the executor, close). The cell is freed
/// (issue 13, item 14: it leaked once per run).
#[test]
#[allow(
    clippy::async_yields_async,
    reason = "the task's handle is kept to cancel it later, not awaited"
)]
fn a_task_cancelled_while_its_job_runs_is_freed() {
    model("a_task_cancelled_while_its_job_runs", || {
        let lp = EventLoop::new();
        lp.configure_default_executor(1, Duration::from_secs(3600));
        let cell = Arc::new(StdUsize::new(0));
        let c = Arc::clone(&cell);
        let task = lp
            .run_until_complete(async move {
                let task = create_task(async move {
                    poll_fn(|cx| {
                        c.store(cx.waker().data() as usize, Ordering::Relaxed);
                        Poll::Ready(())
                    })
                    .await;
                    to_thread(|| ()).await
                });
                yield_now().await; // the task submits its job and parks (or not)
                task
            })
            .unwrap();
        watch::start(4, cell.load(Ordering::Relaxed));
        let cancelled = lp
            .run_until_complete(async move {
                task.cancel();
                yield_now().await;
                yield_now().await;
                task.done()
            })
            .unwrap();
        assert!(cancelled);
        lp.shutdown_default_executor_blocking(Duration::from_secs(3600))
            .unwrap();
        lp.close().unwrap();
        drop(lp);
        assert!(watch::freed(4), "the task's cell leaked");
    });
}

/// `run_coroutine_threadsafe` from another thread, which then blocks in
/// `wait()`: the coroutine runs on the loop and its output comes back.
#[test]
fn run_coroutine_threadsafe_hands_back_the_output() {
    model("run_coroutine_threadsafe_hands_back_the_output", || {
        let lp = EventLoop::new();
        let handle = lp.handle();
        let finished = Arc::new(StdBool::new(false));
        let slot: Arc<StdMutex<Option<Waker>>> = Arc::default();
        let (f, s) = (Arc::clone(&finished), Arc::clone(&slot));
        let t = loom::thread::spawn(move || {
            let out = handle.run_coroutine_threadsafe(async { 3 }).unwrap().wait();
            // Tell the loop's main future that we are done.
            handle
                .call_soon_threadsafe(move || {
                    f.store(true, Ordering::Relaxed);
                    if let Some(w) = s.lock().unwrap().take() {
                        w.wake();
                    }
                })
                .unwrap();
            out
        });
        let f2 = Arc::clone(&finished);
        lp.run_until_complete(poll_fn(move |cx| {
            if f2.load(Ordering::Relaxed) {
                Poll::Ready(())
            } else {
                *slot.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            }
        }))
        .unwrap();
        assert_eq!(t.join().unwrap().ok(), Some(3));
        lp.close().unwrap();
    });
}

/// `ConcurrentFuture::cancel` from another thread racing the coroutine's
/// completion on the loop: the outcome is the value or `Cancelled`, and the
/// waiting thread always gets it.
#[test]
fn run_coroutine_threadsafe_cancel_racing_completion() {
    model("run_coroutine_threadsafe_cancel_racing_completion", || {
        let lp = EventLoop::new();
        let handle = lp.handle();
        let finished = Arc::new(StdBool::new(false));
        let slot: Arc<StdMutex<Option<Waker>>> = Arc::default();
        let (f, s) = (Arc::clone(&finished), Arc::clone(&slot));
        let t = loom::thread::spawn(move || {
            let cf = handle
                .run_coroutine_threadsafe(async {
                    yield_now().await;
                    3
                })
                .unwrap();
            cf.cancel();
            let out = cf.wait();
            handle
                .call_soon_threadsafe(move || {
                    f.store(true, Ordering::Relaxed);
                    if let Some(w) = s.lock().unwrap().take() {
                        w.wake();
                    }
                })
                .unwrap();
            out
        });
        let f2 = Arc::clone(&finished);
        lp.run_until_complete(poll_fn(move |cx| {
            if f2.load(Ordering::Relaxed) {
                Poll::Ready(())
            } else {
                *slot.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            }
        }))
        .unwrap();
        match t.join().unwrap() {
            Ok(3) | Err(TaskError::Cancelled(_)) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
        lp.close().unwrap();
    });
}

/// review29: the loop sleeps parked once (no poller), then makes its poller
/// (as its first I/O registration, or its first wait with a signal handler,
/// would) and sleeps in it, while two threads inject: an injector that saw
/// the loop parked must not leave it asleep in the poller, nor one that saw
/// it in the poller find no wake-up published.
#[test]
fn r29_injection_racing_the_loop_switching_from_park_to_poll_is_never_lost() {
    model("r29_injection_racing_park_then_poll", || {
        let driver = Driver::new();
        let shared = Arc::new(Shared::new(std::ptr::NonNull::dangling()));
        let injectors: Vec<_> = (0..2)
            .map(|_| {
                let remote = Arc::clone(&shared);
                loom::thread::spawn(move || {
                    assert!(remote.inject(Injected::Call(Box::new(|| {}))));
                })
            })
            .collect();
        let mut taken = 0;
        let mut turns = 0;
        while taken < 2 {
            let mode = if turns == 0 {
                SleepMode::Park
            } else {
                driver.poller(&shared.notifier).unwrap();
                SleepMode::Poll
            };
            turns += 1;
            if shared.prepare_to_sleep(mode) {
                driver.wait(mode, None, &mut Vec::new());
                shared.awake();
            }
            while shared.injector.pop().is_some() {
                taken += 1;
            }
        }
        for t in injectors {
            t.join().unwrap();
        }
    });
}
