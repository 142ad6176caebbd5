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
