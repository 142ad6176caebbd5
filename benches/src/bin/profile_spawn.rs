//! Runs one workload repeatedly, for `perf record` / callgrind, or a quick look.
//!
//! `profile_spawn WORKLOAD [N] [ROUNDS]` with WORKLOAD one of `lazy`, `gather`,
//! `gather_tasks` (create_task, then gather the tasks), `taskgroup`, `taskgroup_try` (the same with `try_create_task`), `eager_plain` (eager `create_task` + drop, no group), `floor`,
//! `tokio`, `tokio_local`, `joinset`, `async_executor`, `barrier` (ex_4_4: 1,000 parties, n / 10,000 rounds), `idle_conns` (n idle connections, as the showdown's idle_conns_memory; under dhat or massif), `loop_new` (`EventLoop::new()` and drop), `run_empty` (`asyncio::run(async {})`).

use asyncio_bench::workloads::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "lazy".into());
    let n: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let lp = asyncio::EventLoop::new();
    let eager = eager_loop();
    let rt = tokio_rt();
    let ex = async_executor::LocalExecutor::new();
    for _ in 0..5 {
        let t = std::time::Instant::now();
        for _ in 0..rounds {
            match which.as_str() {
                "lazy" => asyncio_spawn_lazy(&lp, n),
                "gather" => asyncio_gather_lazy(&lp, n),
                "gather_tasks" => asyncio_create_then_gather_tasks(&lp, n),
                "taskgroup" => asyncio_taskgroup_eager(&eager, n),
                "taskgroup_try" => asyncio_taskgroup_eager_try(&eager, n),
                "joinset" => tokio_joinset(&rt, n),
                "floor" => floor_box_poll(n),
                "eager_plain" => eager
                    .run_until_complete(async move {
                        for _ in 0..n {
                            drop(asyncio::create_task(light_coro()));
                        }
                    })
                    .unwrap(),
                "loop_new" => {
                    for _ in 0..n {
                        drop(std::hint::black_box(asyncio::EventLoop::new()));
                    }
                }
                "run_empty" => {
                    for _ in 0..n {
                        asyncio::run(async {}).unwrap();
                    }
                }
                "barrier" => asyncio_bench::sync::asyncio_barrier(&lp, 1000, n.div_ceil(10_000)),
                "idle_conns" => {
                    let per = asyncio_bench::net::asyncio_idle_bytes_per_conn(n);
                    eprintln!("idle_conns: {per} B per connection");
                }
                "tokio" => tokio_spawn_lazy(&rt, n),
                "tokio_local" => tokio_local_spawn_lazy(&rt, n),
                "async_executor" => async_executor_spawn_lazy(&ex, n),
                other => panic!("unknown workload {other}"),
            }
        }
        let per = t.elapsed().as_nanos() as f64 / (n * rounds) as f64;
        eprintln!("{which}: {per:.1} ns/task");
    }
}
