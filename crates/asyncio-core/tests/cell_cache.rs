//! The loop reuses the memory of finished task cells; that must never change
//! what tasks see.

use asyncio_core::{EventLoop, create_task, yield_now};

/// Futures of several sizes, so cells of different classes interleave.
async fn sized<const N: usize>(seed: u8) -> u64 {
    let buf = [seed; N];
    yield_now().await;
    buf.iter().map(|&b| u64::from(b)).sum()
}

// Miri runs this a few hundred times slower.
const ROUNDS: u8 = if cfg!(miri) { 3 } else { 20 };
const PER: usize = if cfg!(miri) { 5 } else { 50 };

fn churn(lp: &EventLoop) {
    let out = lp
        .run_until_complete(async {
            let mut total = 0;
            for round in 0..ROUNDS {
                let a: Vec<_> = (0..PER).map(|_| create_task(sized::<8>(round))).collect();
                let b: Vec<_> = (0..PER).map(|_| create_task(sized::<200>(round))).collect();
                for t in a.into_iter().chain(b) {
                    total += t.await.unwrap();
                }
            }
            total
        })
        .unwrap();
    let per = PER as u64;
    let expected: u64 = (0..u64::from(ROUNDS))
        .map(|r| per * (8 * r) + per * (200 * r))
        .sum();
    assert_eq!(out, expected);
}

#[test]
fn reused_cells_give_every_task_its_own_state() {
    let lp = EventLoop::new();
    churn(&lp);
    churn(&lp);
}

#[test]
fn a_zero_cache_limit_turns_reuse_off_and_tasks_still_run() {
    let lp = EventLoop::new();
    lp.set_task_cache_limit(0);
    churn(&lp);
}

#[test]
fn lowering_the_limit_after_use_frees_cached_cells() {
    let lp = EventLoop::new();
    churn(&lp);
    lp.set_task_cache_limit(1024);
    churn(&lp);
    lp.close().unwrap();
}

/// Each live or cached cell holds the loop: these end with no cell anywhere,
/// which Miri's leak checker (ci/miri.sh) verifies down to the last count.
#[test]
fn cached_cells_and_tasks_outliving_their_loop_let_it_go() {
    let lp = EventLoop::new();
    let (finished, pending) = lp
        .run_until_complete(async {
            let finished: Vec<_> = (0..PER).map(|i| create_task(async move { i })).collect();
            yield_now().await;
            // Finished and freed: their cells go to the cache.
            for t in (0..PER).map(|_| create_task(sized::<8>(1))) {
                t.await.unwrap();
            }
            let pending: Vec<_> = (0..PER).map(|_| create_task(sized::<200>(2))).collect();
            (finished, pending)
        })
        .unwrap();
    lp.set_task_cache_limit(64);
    let handle = lp.clone();
    drop(lp);
    handle.close().unwrap(); // the pending tasks are cancelled
    assert!(pending.iter().all(|t| t.cancelled()));
    // A closed loop caches nothing, whatever the limit says.
    handle.set_task_cache_limit(1 << 20);
    drop(pending);
    drop(handle);
    for (i, mut t) in finished.into_iter().enumerate() {
        assert_eq!(t.try_result().unwrap(), Ok(i));
    }
}

/// `close` shuts the cache before it drops anything users gave the loop, so
/// a destructor panicking there leaves no cached cell holding the loop alive
/// (Miri's leak checker verifies it).
#[test]
fn a_destructor_panicking_in_close_still_lets_the_loop_go() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("a timer callback's capture panics when dropped");
        }
    }
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        for t in (0..PER).map(|_| create_task(sized::<8>(1))) {
            t.await.unwrap();
        }
    })
    .unwrap();
    let capture = PanicOnDrop;
    drop(lp.call_later(std::time::Duration::from_secs(3600), move || drop(capture)));
    let closed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.close()));
    assert!(closed.is_err(), "the destructor's panic comes out of close");
    assert!(lp.is_closed());
    drop(lp);
}
