//! Runs every scenario on asyncio-rs and on its peers in one process, alternating
//! runtimes round by round, and prints a table of medians plus one JSON object
//! per line (`{"scenario":..,"runtime":..,"ns_per_op":..}`), so ratios can be
//! read off a single run.
//!
//! ```text
//! cargo run --release -p asyncio-bench --bin showdown -- [--rounds 7] [--n 1000000] [--only SUBSTRING]
//! ```
//!
//! `--only scenario/runtime` keeps exactly that pair (to measure one runtime's
//! peak memory with `/usr/bin/time -v`); `--only WORD` keeps the pairs whose
//! name contains WORD.

use std::time::Instant;

use asyncio_bench::net::*;
use asyncio_bench::pool::*;
use asyncio_bench::process::*;
use asyncio_bench::sync::*;
use asyncio_bench::timers::*;
use asyncio_bench::workloads::*;

/// One measured workload: runs itself `n` times over.
type Run = Box<dyn Fn(usize)>;

struct Entry {
    scenario: &'static str,
    runtime: &'static str,
    /// How many operations `run(n)` performs (ns/op divides by this).
    ops: fn(usize) -> usize,
    run: Run,
}

/// The shape of the issue's Barrier workload: 1,000 parties, and rounds scaled
/// so that `n` = 1,000,000 gives its 100 rounds.
const BARRIER_PARTIES: usize = 1000;
fn barrier_rounds(n: usize) -> usize {
    n.div_ceil(10_000)
}
fn barrier_ops(n: usize) -> usize {
    BARRIER_PARTIES * barrier_rounds(n)
}

fn entries() -> Vec<Entry> {
    let lp = std::rc::Rc::new(asyncio::EventLoop::new());
    let eager = std::rc::Rc::new(eager_loop());
    let rt = std::rc::Rc::new(tokio_rt());
    let ex = std::rc::Rc::new(async_executor::LocalExecutor::new());
    let mut v: Vec<Entry> = Vec::new();
    let mut add = |scenario, runtime, run: Box<dyn Fn(usize)>| {
        v.push(Entry {
            scenario,
            runtime,
            ops: |n| n,
            run,
        })
    };

    // The seed's ex_6_1: a million trivial tasks in a TaskGroup, eager.
    add(
        "taskgroup_eager",
        "floor_box_poll",
        Box::new(floor_box_poll),
    );
    let e = eager.clone();
    add(
        "taskgroup_eager",
        "asyncio",
        Box::new(move |n| asyncio_taskgroup_eager(&e, n)),
    );
    let r = rt.clone();
    add(
        "taskgroup_eager",
        "tokio_joinset",
        Box::new(move |n| tokio_joinset(&r, n)),
    );
    let x = ex.clone();
    add(
        "taskgroup_eager",
        "async_executor",
        Box::new(move |n| async_executor_group(&x, n)),
    );

    // The seed's ex_6_2: a million trivial tasks created lazily, then awaited.
    let l = lp.clone();
    add(
        "spawn_lazy",
        "asyncio",
        Box::new(move |n| asyncio_spawn_lazy(&l, n)),
    );
    let l = lp.clone();
    add(
        "spawn_lazy",
        "asyncio_gather",
        Box::new(move |n| asyncio_gather_lazy(&l, n)),
    );
    let l = lp.clone();
    add(
        "spawn_lazy",
        "asyncio_gather_tasks",
        Box::new(move |n| asyncio_create_then_gather_tasks(&l, n)),
    );
    let r = rt.clone();
    add(
        "spawn_lazy",
        "tokio_current_thread",
        Box::new(move |n| tokio_spawn_lazy(&r, n)),
    );
    let r = rt.clone();
    add(
        "spawn_lazy",
        "tokio_local_set",
        Box::new(move |n| tokio_local_spawn_lazy(&r, n)),
    );
    let x = ex.clone();
    add(
        "spawn_lazy",
        "async_executor",
        Box::new(move |n| async_executor_spawn_lazy(&x, n)),
    );

    // Children that suspend once: the eager start saves nothing, and must not cost.
    let l = lp.clone();
    add(
        "suspend_once",
        "asyncio",
        Box::new(move |n| asyncio_taskgroup_suspend_once(&l, n)),
    );
    let e = eager.clone();
    add(
        "suspend_once",
        "asyncio_eager",
        Box::new(move |n| asyncio_taskgroup_suspend_once(&e, n)),
    );

    // The seed's ex_6_3: current_task() in a loop.
    let l = lp.clone();
    add(
        "current_task",
        "asyncio",
        Box::new(move |n| asyncio_current_task(&l, n)),
    );
    let r = rt.clone();
    add(
        "current_task",
        "tokio_try_id",
        Box::new(move |n| tokio_current_task_id(&r, n)),
    );
    // Synchronization: a bounded queue (128) from one producer to one consumer,
    // and 1,000 tasks taking a contended Lock n / 1,000 times each (ns per item
    // or acquisition); the Barrier follows below.
    let l = lp.clone();
    add(
        "queue_128",
        "asyncio",
        Box::new(move |n| asyncio_queue(&l, n)),
    );
    let r = rt.clone();
    add(
        "queue_128",
        "tokio_mpsc",
        Box::new(move |n| tokio_mpsc_bounded(&r, n)),
    );
    let l = lp.clone();
    add(
        "lock_1000",
        "asyncio",
        Box::new(move |n| asyncio_lock(&l, 1000, n.div_ceil(1000))),
    );
    let r = rt.clone();
    add(
        "lock_1000",
        "tokio_mutex",
        Box::new(move |n| tokio_mutex(&r, 1000, n.div_ceil(1000))),
    );
    // Timers: n tasks each sleeping a pseudo-random 0-100 ms (ns per timer);
    // and n / 10 callbacks sent from another thread (ns per call).
    let rt_timers = std::rc::Rc::new(tokio_rt_timers());
    let l = lp.clone();
    add(
        "timers",
        "asyncio",
        Box::new(move |n| asyncio_sleepers(&l, n)),
    );
    let r = rt_timers.clone();
    add("timers", "tokio", Box::new(move |n| tokio_sleepers(&r, n)));
    let l = lp.clone();
    v.push(Entry {
        scenario: "threadsafe",
        runtime: "asyncio",
        ops: |n| n / 10,
        run: Box::new(move |n| asyncio_threadsafe(&l, n / 10)),
    });
    let r = rt_timers.clone();
    v.push(Entry {
        scenario: "threadsafe",
        runtime: "tokio_handle_spawn",
        ops: |n| n / 10,
        run: Box::new(move |n| tokio_threadsafe(&r, n / 10)),
    });
    timeout_scenarios(&mut v, &lp, &rt_timers);
    // Start-up (issue 14): a whole `asyncio::run(async {})` against tokio's
    // current-thread `Runtime` built, blocked on and dropped (ns per run).
    v.push(Entry {
        scenario: "loop_startup",
        runtime: "asyncio",
        ops: startup_ops,
        run: Box::new(|n| {
            for _ in 0..startup_ops(n) {
                asyncio::run(async {}).expect("an empty run succeeds");
            }
        }),
    });
    v.push(Entry {
        scenario: "loop_startup",
        runtime: "tokio_current_thread",
        ops: startup_ops,
        run: Box::new(|n| {
            for _ in 0..startup_ops(n) {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime");
                rt.block_on(async {});
            }
        }),
    });
    // The Barrier's ns/op is per `wait()`: 1,000 parties × n / 10,000 rounds.
    let l = lp.clone();
    let r = rt.clone();
    let r2 = rt.clone();
    let barrier: [(&'static str, Run); 3] = [
        (
            "asyncio",
            Box::new(move |n| asyncio_barrier(&l, BARRIER_PARTIES, barrier_rounds(n))),
        ),
        (
            "tokio",
            Box::new(move |n| tokio_barrier(&r, BARRIER_PARTIES, barrier_rounds(n))),
        ),
        (
            "tokio_spawn",
            Box::new(move |n| tokio_barrier_spawn(&r2, BARRIER_PARTIES, barrier_rounds(n))),
        ),
    ];
    for (runtime, run) in barrier {
        v.push(Entry {
            scenario: "barrier_1000x100",
            runtime,
            ops: barrier_ops,
            run,
        });
    }
    // Streams on loopback: n / 10 echoed 64-byte messages over 100 connections
    // (ns per message, all on one thread), and n / 100 hyper requests from a
    // load generator on another thread (ns per request).
    let rt_net = std::rc::Rc::new(tokio_rt_net());
    let l = lp.clone();
    v.push(Entry {
        scenario: "tcp_echo",
        runtime: "asyncio",
        ops: echo_ops,
        run: Box::new(move |n| asyncio_tcp_echo(&l, echo_ops(n))),
    });
    let r = rt_net.clone();
    v.push(Entry {
        scenario: "tcp_echo",
        runtime: "tokio_current_thread",
        ops: echo_ops,
        run: Box::new(move |n| tokio_tcp_echo(&r, echo_ops(n))),
    });
    let l = lp.clone();
    v.push(Entry {
        scenario: "http_hello",
        runtime: "asyncio",
        ops: http_ops,
        run: Box::new(move |n| asyncio_http_hello(&l, http_ops(n))),
    });
    let r = rt_net.clone();
    v.push(Entry {
        scenario: "http_hello",
        runtime: "tokio_current_thread",
        ops: http_ops,
        run: Box::new(move |n| tokio_http_hello(&r, http_ops(n))),
    });
    // Subprocesses: CHILDREN `/bin/true` started at once, then each waited
    // for and reaped (ns per child; independent of `n`).
    let l = lp.clone();
    v.push(Entry {
        scenario: "subprocess_spawn",
        runtime: "asyncio",
        ops: |_| CHILDREN,
        run: Box::new(move |_| asyncio_subprocess_spawn(&l, CHILDREN)),
    });
    let r = rt_net.clone();
    v.push(Entry {
        scenario: "subprocess_spawn",
        runtime: "tokio_current_thread",
        ops: |_| CHILDREN,
        run: Box::new(move |_| tokio_subprocess_spawn(&r, CHILDREN)),
    });
    // Beyond one core (issue 18): tcp_echo's workload on a pool of 2 loops
    // against tokio's multi-thread runtime with 2 workers, and on a pool of
    // 1 loop (the scaling); n jobs handed from one loop to another against
    // tokio's spawn from a task (ns per job).
    let rt_mt = std::rc::Rc::new(tokio_rt_multi_thread(2));
    let multicore: [(&'static str, &'static str, Run); 8] = [
        ("tcp_echo_multicore", "asyncio", {
            Box::new(|n| pool_tcp_echo(2, echo_ops(n), "multicore:asyncio_pool_2"))
        }),
        ("tcp_echo_multicore", "asyncio_pinned_by_cpu", {
            Box::new(|n| pool_tcp_echo_by_cpu(2, echo_ops(n), "multicore:asyncio_pool_2_by_cpu"))
        }),
        ("tcp_echo_multicore", "tokio_multi_thread", {
            let r = rt_mt.clone();
            Box::new(move |n| tokio_tcp_echo_as(&r, echo_ops(n), "multicore:tokio_multi_thread_2"))
        }),
        ("tcp_echo_scaling", "asyncio", {
            Box::new(|n| pool_tcp_echo(2, echo_ops(n), "scaling:asyncio_pool_2"))
        }),
        ("tcp_echo_scaling", "asyncio_1_loop", {
            Box::new(|n| pool_tcp_echo(1, echo_ops(n), "scaling:asyncio_pool_1"))
        }),
        (
            "cross_loop_handoff",
            "asyncio",
            Box::new(pool_handoff_spawn_on),
        ),
        (
            "cross_loop_handoff",
            "asyncio_call_soon",
            Box::new(pool_handoff_call_soon),
        ),
        ("cross_loop_handoff", "tokio_multi_thread", {
            let r = rt_mt.clone();
            Box::new(move |n| tokio_mt_spawn_from_task(&r, n))
        }),
    ];
    for (scenario, runtime, run) in multicore {
        let ops = if scenario == "cross_loop_handoff" {
            |n| n
        } else {
            echo_ops
        };
        v.push(Entry {
            scenario,
            runtime,
            ops,
            run,
        });
    }
    v
}

/// Runs of one `loop_startup` measurement: 10,000 for the default n.
fn startup_ops(n: usize) -> usize {
    (n / 100).max(1)
}

/// Messages of one `tcp_echo` run: a multiple of the 100 connections.
fn echo_ops(n: usize) -> usize {
    (n / 10).div_ceil(ECHO_CONNS).max(1) * ECHO_CONNS
}

/// Requests of one `http_hello` run: a multiple of the 50 connections.
fn http_ops(n: usize) -> usize {
    (n / 100).div_ceil(HTTP_CONNS).max(1) * HTTP_CONNS
}

/// Idle connections held for the memory report: 10,000, or fewer if the
/// process may not open twice as many descriptors (both ends are here).
fn idle_conns_count() -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|x| x.starts_with("Max open files"))
                .and_then(|x| {
                    x.split_whitespace()
                        .nth(3)
                        .and_then(|v| v.parse::<usize>().ok())
                })
        })
        .unwrap_or(1024);
    10_000.min(limit.saturating_sub(256) / 2)
}

/// Timeouts set and cancelled (issue 14): `timeout(10 s, ready)` a million
/// times, and the same around a future that suspends once, so that the timer
/// is really armed and then cancelled (ns per timeout).
fn timeout_scenarios(
    v: &mut Vec<Entry>,
    lp: &std::rc::Rc<asyncio::EventLoop>,
    rt: &std::rc::Rc<tokio::runtime::Runtime>,
) {
    let runs: [(&'static str, &'static str, Run); 4] = [
        ("timeout_set_cancel", "asyncio", {
            let l = lp.clone();
            Box::new(move |n| asyncio_timeout_set_cancel(&l, n))
        }),
        ("timeout_set_cancel", "tokio", {
            let r = rt.clone();
            Box::new(move |n| tokio_timeout_set_cancel(&r, n))
        }),
        ("timeout_armed", "asyncio", {
            let l = lp.clone();
            Box::new(move |n| asyncio_timeout_armed(&l, n))
        }),
        ("timeout_armed", "tokio", {
            let r = rt.clone();
            Box::new(move |n| tokio_timeout_armed(&r, n))
        }),
    ];
    for (scenario, runtime, run) in runs {
        v.push(Entry {
            scenario,
            runtime,
            ops: |n| n,
            run,
        });
    }
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn main() {
    let mut rounds = 7usize;
    let mut n = 1_000_000usize;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--rounds N")
            }
            "--n" => n = args.next().and_then(|s| s.parse().ok()).expect("--n N"),
            "--only" => only = Some(args.next().expect("--only SUBSTRING")),
            // Internal: one idle-connection memory measurement in a fresh process.
            "--idle-conns-child" => {
                let runtime = args.next().expect("--idle-conns-child RUNTIME N");
                let conns: usize = args.next().and_then(|s| s.parse().ok()).expect("N");
                let per = match runtime.as_str() {
                    "asyncio" => asyncio_idle_bytes_per_conn(conns),
                    _ => tokio_idle_bytes_per_conn(conns),
                };
                println!("{per}");
                return;
            }
            other => panic!("unknown argument {other}; see the doc comment of showdown.rs"),
        }
    }
    let entries: Vec<Entry> = entries()
        .into_iter()
        .filter(|e| {
            only.as_ref().is_none_or(|o| {
                let name = format!("{}/{}", e.scenario, e.runtime);
                if o.contains('/') {
                    name == *o
                } else {
                    name.contains(o.as_str())
                }
            })
        })
        .collect();
    // Warm up once each (page faults, caches, lazily started threads).
    for e in &entries {
        (e.run)(n / 10);
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); entries.len()];
    for _ in 0..rounds {
        for (i, e) in entries.iter().enumerate() {
            let t = Instant::now();
            (e.run)(n);
            samples[i].push(t.elapsed().as_nanos() as f64 / (e.ops)(n) as f64);
        }
    }
    let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    println!(
        "{:<18} {:<22} {:>12} {:>16}",
        "scenario", "runtime", "ns/op", "vs asyncio"
    );
    for (i, e) in entries.iter().enumerate() {
        let ours = entries
            .iter()
            .position(|o| o.scenario == e.scenario && o.runtime == "asyncio")
            .map(|j| medians[j]);
        let ratio = ours.map_or_else(String::new, |o| format!("{:.2}x", medians[i] / o));
        println!(
            "{:<18} {:<22} {:>12.1} {:>16}",
            e.scenario, e.runtime, medians[i], ratio
        );
    }
    for (i, e) in entries.iter().enumerate() {
        println!(
            "{{\"scenario\":\"{}\",\"runtime\":\"{}\",\"ns_per_op\":{:.2},\"n\":{},\"rounds\":{}}}",
            e.scenario, e.runtime, medians[i], n, rounds
        );
    }
    latency_report(rounds);
    if only
        .as_ref()
        .is_none_or(|o| "idle_conns".contains(o.as_str()) || o.contains("idle_conns"))
    {
        idle_memory_report();
    }
}

/// p50/p99 of the `tcp_echo` round trips: the median over rounds of each
/// run's percentile (warm-up runs excluded).
fn latency_report(rounds: usize) {
    let all = take_latencies();
    let mut runtimes: Vec<&str> = all.iter().map(|(r, _)| *r).collect();
    runtimes.dedup();
    runtimes.sort_unstable();
    runtimes.dedup();
    for rt in runtimes {
        let runs: Vec<_> = all
            .iter()
            .filter(|(r, _)| *r == rt)
            .map(|(_, p)| *p)
            .collect();
        let measured = &runs[runs.len().saturating_sub(rounds)..];
        let mut p50: Vec<f64> = measured.iter().map(|p| p.p50_ns as f64).collect();
        let mut p99: Vec<f64> = measured.iter().map(|p| p.p99_ns as f64).collect();
        let (p50, p99) = (median(&mut p50), median(&mut p99));
        println!(
            "tcp_echo latency   {rt:<22} p50 {:>8.1} us  p99 {:>8.1} us",
            p50 / 1e3,
            p99 / 1e3
        );
        println!(
            "{{\"scenario\":\"tcp_echo\",\"runtime\":\"{rt}\",\"p50_ns\":{p50:.0},\"p99_ns\":{p99:.0}}}"
        );
    }
}

/// Server bytes per idle connection, each runtime in a fresh process.
fn idle_memory_report() {
    let conns = idle_conns_count();
    let exe = std::env::current_exe().expect("the showdown knows its path");
    for runtime in ["asyncio", "tokio_current_thread"] {
        let out = std::process::Command::new(&exe)
            .args(["--idle-conns-child", runtime, &conns.to_string()])
            .output()
            .expect("the showdown can run itself");
        let per = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        println!("idle_conns ({conns})  {runtime:<22} {per:>8} bytes of server RSS per connection");
        println!(
            "{{\"scenario\":\"idle_conns\",\"runtime\":\"{runtime}\",\"connections\":{conns},\"bytes_per_conn\":{per}}}"
        );
    }
}
