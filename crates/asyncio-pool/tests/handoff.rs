//! Hand-off between the loops of a pool: `spawn_on`, `spawn` on the less
//! loaded loop, the loops' `LoopHandle`s, and hand-offs to a closed loop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use asyncio_core::{RuntimeError, TaskError};
use asyncio_pool::{LoopPool, PoolHandle, PoolTask};
use asyncio_sync::Channel;

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_owned()
}

#[test]
fn spawn_on_runs_the_job_on_the_chosen_loop_and_returns_its_value() {
    let out = LoopPool::new()
        .workers(2)
        .run(|w| async move {
            let other = 1 - w.index();
            let job = w.pool().spawn_on(other, async { thread_name() }).unwrap();
            job.await
        })
        .unwrap();
    assert_eq!(out, ["asyncio-pool-1", "asyncio-pool-0"]);
}

#[test]
fn spawn_picks_the_less_loaded_loop() {
    let out = LoopPool::new()
        .workers(2)
        .run(|w| async move {
            if w.index() == 1 {
                return Ok(Vec::new());
            }
            let pool = w.pool();
            let release = Channel::<()>::new(0);
            // Five unfinished jobs on loop 0...
            let mut held = Vec::new();
            for _ in 0..5 {
                let r = release.clone();
                held.push(pool.spawn_on(0, async move { r.get().await.ok() }).unwrap());
            }
            assert_eq!(pool.load(0), 5);
            // ...so the next four go to loop 1 (its load stays below 5).
            let mut placed = Vec::new();
            for _ in 0..4 {
                let r = release.clone();
                placed.push(
                    pool.spawn(async move {
                        let name = thread_name();
                        let _ = r.get().await;
                        name
                    })
                    .unwrap(),
                );
            }
            release.shutdown(false);
            let mut names = Vec::new();
            for p in placed {
                names.push(p.await?);
            }
            for h in held {
                h.await?;
            }
            Ok::<_, TaskError>(names)
        })
        .unwrap();
    assert_eq!(out[0], vec!["asyncio-pool-1"; 4]);
}

#[test]
fn loop_handles_reach_the_other_loops_and_next_handle_goes_round() {
    let out = LoopPool::new()
        .workers(2)
        .run(|w| async move {
            if w.index() == 1 {
                return Ok(String::new());
            }
            let pool = w.pool();
            let order: Vec<usize> = (0..4).map(|_| pool.next_handle().0).collect();
            assert_eq!(order, [0, 1, 0, 1]);
            let tx = Channel::new(1);
            let t = tx.clone();
            pool.handle(1)
                .call_soon_threadsafe(move || t.put_nowait(thread_name()).unwrap())
                .unwrap();
            let called = tx.get().await.unwrap();
            let ran = pool
                .handle(1)
                .run_coroutine_threadsafe(async { thread_name() })
                .unwrap()
                .await?;
            assert_eq!(called, ran);
            Ok::<_, TaskError>(ran)
        })
        .unwrap();
    assert_eq!(out[0], "asyncio-pool-1");
}

#[test]
fn a_hand_off_to_a_loop_that_closed_gives_the_job_back() {
    let kept: Arc<Mutex<Option<PoolHandle>>> = Arc::default();
    let k = kept.clone();
    LoopPool::new()
        .workers(2)
        .run(move |w| {
            *k.lock().unwrap() = Some(w.pool().clone());
            async {}
        })
        .unwrap();
    let pool = kept.lock().unwrap().take().unwrap();
    let err = pool.spawn_on(1, async { 42 }).unwrap_err();
    assert_eq!(err.worker, 1);
    assert!(err.to_string().contains("closed"), "{err}");
    // The job is intact: it can still be run elsewhere.
    assert_eq!(asyncio_structured::run(err.job).unwrap(), 42);
    assert!(pool.spawn(async {}).is_err());
    assert_eq!(
        pool.handle(0).call_soon_threadsafe(|| {}),
        Err(RuntimeError::Closed)
    );
}

#[test]
fn a_worker_that_finished_still_runs_jobs_handed_to_it_until_the_pool_ends() {
    let out = LoopPool::new()
        .workers(2)
        .run(|w| async move {
            if w.index() == 0 {
                return Ok(None);
            }
            // Worker 0's main task is over (or about to be); its loop is not.
            asyncio_core::sleep(Duration::from_millis(5)).await;
            let job = w.pool().spawn_on(0, async { thread_name() }).unwrap();
            Ok::<_, TaskError>(Some(job.await?))
        })
        .unwrap();
    assert_eq!(out, [None, Some("asyncio-pool-0".to_owned())]);
}

#[test]
fn a_job_whose_loop_closes_before_it_finishes_fails_visibly_as_cancelled() {
    let started = Channel::<()>::new(0);
    let kept: Arc<Mutex<Option<PoolTask<u8>>>> = Arc::default();
    let k = kept.clone();
    LoopPool::new()
        .workers(2)
        .run(|w| {
            let (started, k) = (started.clone(), k.clone());
            async move {
                if w.index() == 0 {
                    return;
                }
                // Taken in by loop 0, never finished there.
                let s = started.clone();
                let job = w
                    .pool()
                    .spawn_on(0, async move {
                        s.put_nowait(()).unwrap();
                        std::future::pending::<u8>().await
                    })
                    .unwrap();
                started.get().await.unwrap();
                *k.lock().unwrap() = Some(job);
            }
        })
        .unwrap();
    let job = kept.lock().unwrap().take().unwrap();
    assert!(job.done());
    let outcome = asyncio_structured::run(job).unwrap();
    assert!(
        matches!(outcome, Err(TaskError::Cancelled(_))),
        "{outcome:?}"
    );
}

#[test]
fn a_panicking_job_gives_its_panic_to_the_awaiter() {
    let out = LoopPool::new()
        .workers(2)
        .run(|w| async move {
            if w.index() == 1 {
                return Ok(String::new());
            }
            let job = w
                .pool()
                .spawn_on(1, async { panic!("job exploded") })
                .unwrap();
            match job.await {
                Err(TaskError::Panicked(p)) => Ok(p.message().to_owned()),
                other => Err(format!("expected a panic, got {other:?}")),
            }
        })
        .unwrap();
    assert_eq!(out[0], "job exploded");
}

#[test]
#[should_panic(expected = "worker index 5 is out of range: the pool has 2 workers")]
fn a_worker_index_out_of_range_panics_with_the_pool_size() {
    let kept: Arc<Mutex<Option<PoolHandle>>> = Arc::default();
    let k = kept.clone();
    LoopPool::new()
        .workers(2)
        .run(move |w| {
            *k.lock().unwrap() = Some(w.pool().clone());
            async {}
        })
        .unwrap();
    let pool = kept.lock().unwrap().take().unwrap();
    let _ = pool.handle(5);
}
