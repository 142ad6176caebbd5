//! Beyond one core: a pool of asyncio-rs loops against tokio's multi-thread
//! (work-stealing) runtime.
//!
//! - `tcp_echo_multicore`: `tcp_echo`'s workload (100 connections, 64-byte
//!   messages) on a [`LoopPool`](asyncio::LoopPool) of 2 loops, each
//!   accepting on its own `SO_REUSEPORT` socket, against tokio's
//!   multi-thread runtime with 2 workers. The load generator runs inside
//!   the runtime under test, as in `tcp_echo`: each loop runs half the
//!   clients (tokio spawns them on its workers); a client's connection may
//!   land on either loop's socket.
//! - `tcp_echo_scaling`: the same on a pool of 1 loop and of 2 loops.
//! - `cross_loop_handoff`: jobs (a `Send` future that counts) handed from
//!   one loop to another and completed, against tokio's multi-thread
//!   `spawn` from a task.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::net::{ECHO_CONNS, asyncio_echo, asyncio_echo_client, percentiles, record};

/// tokio's multi-thread runtime with `workers` worker threads, I/O and time.
pub fn tokio_rt_multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_io()
        .enable_time()
        .build()
        .expect("a multi-thread runtime builds")
}

/// `tcp_echo` on a pool of `loops` loops: `total` messages over
/// [`ECHO_CONNS`] connections, the clients spread over the loops, each loop
/// serving on its own `SO_REUSEPORT` socket. Latencies are recorded under
/// `label`.
pub fn pool_tcp_echo(loops: usize, total: usize, label: &'static str) {
    pool_tcp_echo_with(loops, total, label, asyncio::AcceptMode::ReusePort, false);
}

/// [`pool_tcp_echo`] with the loops pinned to cores and each connection
/// served on the loop of the core that opened it
/// ([`AcceptMode::ReusePortByCpu`](asyncio::AcceptMode::ReusePortByCpu)).
pub fn pool_tcp_echo_by_cpu(loops: usize, total: usize, label: &'static str) {
    pool_tcp_echo_with(
        loops,
        total,
        label,
        asyncio::AcceptMode::ReusePortByCpu,
        true,
    );
}

fn pool_tcp_echo_with(
    loops: usize,
    total: usize,
    label: &'static str,
    mode: asyncio::AcceptMode,
    pin: bool,
) {
    let per = total.div_ceil(ECHO_CONNS);
    let listener = asyncio::PoolListener::bind("127.0.0.1:0", loops, mode)
        .expect("loopback SO_REUSEPORT sockets bind");
    let port = listener.local_addr().port();
    let stop = asyncio::Channel::<()>::new(0);
    let finished = Arc::new(AtomicUsize::new(0));
    let lats = asyncio::LoopPool::new()
        .workers(loops)
        .pin_to_cores(pin)
        .handle_sigint(false)
        .run(|worker| {
            let (listener, stop, finished) = (listener.clone(), stop.clone(), finished.clone());
            async move {
                let server =
                    listener.start_server(&worker, asyncio_echo, &asyncio::ServerOptions::new())?;
                // This loop's share of the clients.
                let mine = (worker.index()..ECHO_CONNS).step_by(loops).count();
                let clients: Vec<_> = (0..mine)
                    .map(|_| asyncio::create_task(asyncio_echo_client(port, per)))
                    .collect();
                let mut lats = Vec::with_capacity(per * mine);
                for c in clients {
                    lats.extend(c.await.expect("a client neither panics nor is cancelled"));
                }
                // Serve the other loops' clients until every loop is done.
                if finished.fetch_add(1, Ordering::AcqRel) + 1 == loops {
                    stop.shutdown(false);
                }
                let _ = stop.get().await;
                server.close();
                std::io::Result::Ok(lats)
            }
        })
        .expect("the pool's echo run succeeds");
    record(label, percentiles(lats.into_iter().flatten().collect()));
}

/// Jobs of the current `cross_loop_handoff` run that have run; the jobs
/// reach it through a static so that a job carries no reference count (the
/// same for both runtimes).
static RAN: AtomicUsize = AtomicUsize::new(0);
/// How many jobs the current run hands over.
static JOBS: AtomicUsize = AtomicUsize::new(0);
/// Closed by the last job of an asyncio run.
static DONE: Mutex<Option<asyncio::Channel<()>>> = Mutex::new(None);

/// One job: count, and tell the waiter when it is the last.
fn job() -> bool {
    RAN.fetch_add(1, Ordering::Relaxed) + 1 == JOBS.load(Ordering::Relaxed)
}

fn asyncio_job() {
    if job()
        && let Some(done) = &*DONE.lock().unwrap_or_else(|e| e.into_inner())
    {
        done.shutdown(false);
    }
}

/// `cross_loop_handoff` on a pool of 2 loops: loop 0 hands `n` jobs to loop
/// 1 with `PoolHandle::spawn_on` (the `PoolTask`s dropped: detached) and
/// waits until the last one has run.
pub fn pool_handoff_spawn_on(n: usize) {
    handoff(n, |pool| {
        drop(pool.spawn_on(1, async { asyncio_job() }).ok());
    });
}

/// `cross_loop_handoff` with `LoopHandle::call_soon_threadsafe`: each job a
/// `Send` closure run as a callback on loop 1 (no task).
pub fn pool_handoff_call_soon(n: usize) {
    handoff(n, |pool| {
        pool.handle(1)
            .call_soon_threadsafe(asyncio_job)
            .expect("loop 1 is open while the pool runs");
    });
}

fn handoff(n: usize, send: fn(&asyncio::PoolHandle)) {
    if n == 0 {
        return;
    }
    let done = asyncio::Channel::<()>::new(0);
    RAN.store(0, Ordering::Relaxed);
    JOBS.store(n, Ordering::Relaxed);
    *DONE.lock().unwrap_or_else(|e| e.into_inner()) = Some(done.clone());
    asyncio::LoopPool::new()
        .workers(2)
        .handle_sigint(false)
        .run(|worker| {
            let done = done.clone();
            async move {
                if worker.index() != 0 {
                    // Loop 1 runs the jobs handed to it until the pool ends.
                    return;
                }
                for _ in 0..n {
                    send(worker.pool());
                }
                let _ = done.get().await;
            }
        })
        .expect("the hand-off run succeeds");
    assert_eq!(RAN.load(Ordering::Relaxed), n);
}

/// `cross_loop_handoff` on tokio's multi-thread runtime: one task spawns `n`
/// tasks (`tokio::spawn` from a task) and the runtime's workers run them.
pub fn tokio_mt_spawn_from_task(rt: &tokio::runtime::Runtime, n: usize) {
    if n == 0 {
        return;
    }
    static NOTIFY: tokio::sync::Notify = tokio::sync::Notify::const_new();
    RAN.store(0, Ordering::Relaxed);
    JOBS.store(n, Ordering::Relaxed);
    rt.block_on(async move {
        let notified = NOTIFY.notified();
        tokio::spawn(async move {
            for _ in 0..n {
                tokio::spawn(async {
                    if job() {
                        NOTIFY.notify_one();
                    }
                });
            }
        });
        notified.await;
    });
    assert_eq!(RAN.load(Ordering::Relaxed), n);
}
