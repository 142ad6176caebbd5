//! The scenarios: what each one measures, and which workload function runs it
//! on which runtime.
//!
//! To add a scenario, push one more [`Scenario`] in [`scenarios`]: an id that
//! says what it measures, the tutorial example it mirrors (if any), one line
//! saying what one run does, the unit of one operation, how many operations a
//! run of size `n` performs, and one `.run(Runtime, closure)` per runtime. The
//! closure runs the workload once at size `n`; the harness times it. A CPython
//! side is a program in `benches/python/` named by `.python(..)`, which prints
//! its own time (see `benches/python/showdown_common.py`).

use std::rc::Rc;

use asyncio_bench::eco::*;
use asyncio_bench::net::*;
use asyncio_bench::pool::*;
use asyncio_bench::process::*;
use asyncio_bench::sync::*;
use asyncio_bench::timers::*;
use asyncio_bench::workloads::*;

/// The runtimes of the showdown. [`Runtime::name`] is the name in the table,
/// in `--only` and in the JSON lines; other tools read those names, so they
/// do not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runtime {
    /// This project's event loop.
    AsyncioRs,
    /// tokio's current-thread runtime, `tokio::spawn`.
    TokioCurrentThread,
    /// tokio's current-thread runtime inside a `LocalSet` (`!Send` tasks, as here).
    TokioLocalSet,
    /// tokio's `JoinSet` (its nearest thing to a TaskGroup), current thread.
    TokioJoinSet,
    /// tokio's work-stealing multi-thread runtime, one worker per core.
    TokioMultiThread,
    /// smol's `async_executor::LocalExecutor`.
    AsyncExecutor,
    /// No runtime at all: the least work the scenario needs (see [`FLOOR_LEGEND`]).
    Floor,
    /// CPython's asyncio (the `python3` on `PATH`).
    Cpython,
    /// CPython's asyncio on uvloop's event loop.
    CpythonUvloop,
}

impl Runtime {
    /// Every runtime, in the order the table lists them.
    pub(crate) const ALL: [Runtime; 9] = [
        Runtime::AsyncioRs,
        Runtime::TokioCurrentThread,
        Runtime::TokioLocalSet,
        Runtime::TokioJoinSet,
        Runtime::TokioMultiThread,
        Runtime::AsyncExecutor,
        Runtime::Floor,
        Runtime::Cpython,
        Runtime::CpythonUvloop,
    ];

    /// The runtime's name in the table, in `--only` and in the JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Runtime::AsyncioRs => "asyncio-rs",
            Runtime::TokioCurrentThread => "tokio-current-thread",
            Runtime::TokioLocalSet => "tokio-localset",
            Runtime::TokioJoinSet => "tokio-joinset",
            Runtime::TokioMultiThread => "tokio-multi-thread",
            Runtime::AsyncExecutor => "async-executor",
            Runtime::Floor => "floor",
            Runtime::Cpython => "cpython",
            Runtime::CpythonUvloop => "cpython-uvloop",
        }
    }

    /// Whether this is one of the CPython runtimes (run only with `--python`).
    pub(crate) fn is_python(self) -> bool {
        matches!(self, Runtime::Cpython | Runtime::CpythonUvloop)
    }
}

/// The legend printed under the table and the chart.
pub(crate) const FLOOR_LEGEND: &str = "floor = the least work a scenario needs with no runtime \
     around it: in the task scenarios, box, poll once, free a trivial future; in ex_5_2_tcp_echo, \
     a hand-written mio loop with no tasks making the same recv/send calls; in ex_5_4_http_hello, \
     hyper's connections driven by such a loop, with no runtime";

/// One run of a workload at size `n` (timed by the harness).
pub(crate) type Run = Box<dyn Fn(usize)>;

/// One scenario: a workload and the runtimes it runs on.
pub(crate) struct Scenario {
    /// The name in the table, in `--only` and in the JSON.
    pub(crate) id: &'static str,
    /// The tutorial example it mirrors (`ex_6_1`), or "".
    pub(crate) example: &'static str,
    /// What one run does, in one line.
    pub(crate) what: &'static str,
    /// One operation, singular ("task"): times are per operation.
    pub(crate) unit: &'static str,
    /// How many operations a run of size `n` performs.
    pub(crate) ops: fn(usize) -> usize,
    /// The CPython program in `benches/python/`, if there is one.
    pub(crate) python: Option<&'static str>,
    /// For a CPython program that serves (`--serve`) rather than timing
    /// itself: the Rust load generator to time against it, given its port
    /// and a number of operations.
    pub(crate) python_load: Option<fn(u16, usize)>,
    /// The Rust runtimes and their workloads.
    pub(crate) runs: Vec<(Runtime, Run)>,
    /// Each run happens in a fresh process (this binary again, with the
    /// hidden `--timed-child`), which times it and reports back: for what
    /// the state of a long-lived process could skew (start-up).
    pub(crate) fresh_process: bool,
}

impl Scenario {
    fn new(
        id: &'static str,
        example: &'static str,
        what: &'static str,
        unit: &'static str,
    ) -> Self {
        Scenario {
            id,
            example,
            what,
            unit,
            ops: |n| n,
            python: None,
            python_load: None,
            runs: Vec::new(),
            fresh_process: false,
        }
    }

    fn fresh_process(mut self) -> Self {
        self.fresh_process = true;
        self
    }

    fn ops(mut self, ops: fn(usize) -> usize) -> Self {
        self.ops = ops;
        self
    }

    fn python(mut self, program: &'static str) -> Self {
        self.python = Some(program);
        self
    }

    fn python_server(mut self, program: &'static str, load: fn(u16, usize)) -> Self {
        self.python = Some(program);
        self.python_load = Some(load);
        self
    }

    fn run(mut self, runtime: Runtime, run: impl Fn(usize) + 'static) -> Self {
        self.runs.push((runtime, Box::new(run)));
        self
    }
}

/// The runtimes' instances, built once and shared by the scenarios (a
/// scenario's closure keeps an `Rc` of what it uses).
struct Instances {
    lazy: Rc<asyncio::EventLoop>,
    eager: Rc<asyncio::EventLoop>,
    tokio: Rc<tokio::runtime::Runtime>,
    tokio_timers: Rc<tokio::runtime::Runtime>,
    tokio_net: Rc<tokio::runtime::Runtime>,
    tokio_multi: Rc<tokio::runtime::Runtime>,
    tokio_multi_2: Rc<tokio::runtime::Runtime>,
    tokio_multi_1: Rc<tokio::runtime::Runtime>,
    executor: Rc<async_executor::LocalExecutor<'static>>,
}

/// Every scenario, in the order of the table.
pub(crate) fn scenarios() -> Vec<Scenario> {
    use Runtime::*;
    let i = Instances {
        lazy: Rc::new(asyncio::EventLoop::new()),
        eager: Rc::new(eager_loop()),
        tokio: Rc::new(tokio_rt()),
        tokio_timers: Rc::new(tokio_rt_timers()),
        tokio_net: Rc::new(tokio_rt_net()),
        tokio_multi: Rc::new(tokio_rt_multi()),
        tokio_multi_2: Rc::new(tokio_rt_multi_thread(2)),
        tokio_multi_1: Rc::new(tokio_rt_multi_thread(1)),
        executor: Rc::new(async_executor::LocalExecutor::new()),
    };
    let (l, e, t, tt, tn, tm, x) = (
        &i.lazy,
        &i.eager,
        &i.tokio,
        &i.tokio_timers,
        &i.tokio_net,
        &i.tokio_multi,
        &i.executor,
    );
    let (tm2, tm1) = (&i.tokio_multi_2, &i.tokio_multi_1);
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    let mut all = vec![
        Scenario::new(
            "ex_6_1_taskgroup_eager",
            "ex_6_1",
            "trivial tasks created in a TaskGroup under the eager task factory (each finishes inside create_task)",
            "task",
        )
        .python("ex_6_1_taskgroup_eager.py")
        .run(AsyncioRs, with(e, asyncio_taskgroup_eager))
        .run(TokioJoinSet, with(t, tokio_joinset))
        .run(AsyncExecutor, with(x, async_executor_group))
        .run(Floor, floor_box_poll),
        Scenario::new(
            "ex_6_1_taskgroup_eager_try",
            "ex_6_1",
            "ex_6_1 with try_create_task, the form that returns the group's refusal as an error (the binary has both forms, as a real program does)",
            "task",
        )
        .run(AsyncioRs, with(e, asyncio_taskgroup_eager_try))
        .run(Floor, floor_box_poll),
        Scenario::new(
            "ex_6_1_taskgroup_lazy",
            "ex_6_1",
            "ex_6_1 without the eager factory: trivial tasks in a TaskGroup, each scheduled, then run",
            "task",
        )
        .python("ex_6_1_taskgroup_lazy.py")
        // The same function as above, on a loop with the default (lazy) factory.
        .run(AsyncioRs, with(l, asyncio_taskgroup_eager))
        .run(TokioJoinSet, with(t, tokio_joinset)),
        Scenario::new(
            "ex_6_2_gather",
            "ex_6_2",
            "trivial coroutines passed to gather with the default (lazy) factory, then awaited (tokio, async-executor, which have no gather: spawned, then each awaited); a fresh loop or runtime per run, and a fresh heap",
            "task",
        )
        .python("ex_6_2_gather.py")
        .run(AsyncioRs, |n| asyncio_gather_lazy(&asyncio::EventLoop::new(), n))
        .run(TokioLocalSet, |n| tokio_local_spawn_lazy(&tokio_rt(), n))
        .run(AsyncExecutor, |n| async_executor_spawn_lazy(&async_executor::LocalExecutor::new(), n))
        .run(Floor, floor_box_poll),
        Scenario::new(
            "ex_6_2_gather_tasks",
            "ex_6_2",
            "trivial tasks created one by one with the default (lazy) factory, then the tasks themselves gathered (gather_tasks; asyncio: gather(*tasks)); as ex_6_2_gather, a fresh loop per run, and a fresh heap",
            "task",
        )
        .python("ex_6_2_gather_tasks.py")
        .run(AsyncioRs, |n| asyncio_create_then_gather_tasks(&asyncio::EventLoop::new(), n))
        .run(Floor, floor_box_poll),
        Scenario::new(
            "ex_6_2_create_task_lazy",
            "ex_6_2",
            "trivial tasks created one by one (create_task / spawn), then each awaited",
            "task",
        )
        .python("ex_6_2_create_task_lazy.py")
        .run(AsyncioRs, with(l, asyncio_spawn_lazy))
        .run(TokioCurrentThread, with(t, tokio_spawn_lazy))
        .run(TokioLocalSet, with(t, tokio_local_spawn_lazy))
        .run(TokioMultiThread, with(tm, tokio_spawn_lazy))
        .run(AsyncExecutor, with(x, async_executor_spawn_lazy)),
        Scenario::new(
            "ex_6_1_factories_suspend_once",
            "ex_6_1_factories",
            "tasks in a TaskGroup that each suspend once (eager start cannot skip the ready queue), eager factory",
            "task",
        )
        .python("ex_6_1_factories_suspend_once.py")
        .run(AsyncioRs, with(e, asyncio_taskgroup_suspend_once))
        .run(TokioJoinSet, with(t, tokio_joinset_suspend_once)),
        Scenario::new(
            "ex_6_3_current_task",
            "ex_6_3",
            "current_task() called in a loop inside one task (tokio: task::try_id())",
            "call",
        )
        .python("ex_6_3_current_task.py")
        .run(AsyncioRs, with(l, asyncio_current_task))
        .run(TokioCurrentThread, with(t, tokio_current_task_id)),
        Scenario::new(
            "ex_6_4_queue_shutdown",
            "ex_6_4, ex_5_1",
            "items from one producer task to one consumer through a Queue(maxsize=128), ended by shutdown() (tokio: mpsc channel of 128)",
            "item",
        )
        .python("ex_6_4_queue_shutdown.py")
        .run(AsyncioRs, with(l, asyncio_queue))
        .run(TokioLocalSet, with(t, tokio_mpsc_bounded)),
        Scenario::new(
            "ex_4_1_lock_contended",
            "ex_4_1",
            "1,000 tasks taking one Lock in turn, each yielding while it holds it (tokio: sync::Mutex)",
            "acquisition",
        )
        .ops(lock_ops)
        .python("ex_4_1_lock_contended.py")
        .run(AsyncioRs, with(l, |l, n| asyncio_lock(l, LOCK_TASKS, lock_times(n))))
        .run(TokioLocalSet, with(t, |t, n| tokio_mutex(t, LOCK_TASKS, lock_times(n)))),
        Scenario::new(
            "ex_4_4_barrier",
            "ex_4_4",
            "1,000 tasks meeting at a Barrier(1000) round after round (n / 10,000 rounds)",
            "wait",
        )
        .ops(barrier_ops)
        .python("ex_4_4_barrier.py")
        .run(AsyncioRs, with(l, |l, n| asyncio_barrier(l, BARRIER_PARTIES, barrier_rounds(n))))
        .run(TokioLocalSet, with(t, |t, n| tokio_barrier(t, BARRIER_PARTIES, barrier_rounds(n))))
        .run(TokioCurrentThread, with(t, |t, n| tokio_barrier_spawn(t, BARRIER_PARTIES, barrier_rounds(n)))),
        Scenario::new(
            "ex_2_4_sleepers",
            "ex_2_4",
            "tasks each sleeping a pseudo-random 0-100 ms, all awaited (a run lasts at least 100 ms)",
            "timer",
        )
        .python("ex_2_4_sleepers.py")
        .run(AsyncioRs, with(l, asyncio_sleepers))
        .run(TokioCurrentThread, with(tt, tokio_sleepers)),
        Scenario::new(
            "ex_2_4_timeout_ready",
            "ex_2_4",
            "timeout(10 s) around a future that is ready at once, one after the other",
            "timeout",
        )
        .python("ex_2_4_timeout_ready.py")
        .run(AsyncioRs, with(l, asyncio_timeout_set_cancel))
        .run(TokioCurrentThread, with(tt, tokio_timeout_set_cancel)),
        Scenario::new(
            "ex_2_4_timeout_armed",
            "ex_2_4",
            "timeout(10 s) around a future that suspends once: the timer is armed, then cancelled",
            "timeout",
        )
        .python("ex_2_4_timeout_armed.py")
        .run(AsyncioRs, with(l, asyncio_timeout_armed))
        .run(TokioCurrentThread, with(tt, tokio_timeout_armed)),
        Scenario::new(
            "ex_3_1_call_soon_threadsafe",
            "ex_3_1",
            "trivial callbacks sent to the loop from another thread (tokio: Handle::spawn), n / 10 of them; a fresh loop or runtime per run",
            "callback",
        )
        .ops(threadsafe_ops)
        .python("ex_3_1_call_soon_threadsafe.py")
        // A fresh loop (runtime) per run, as ex_6_2_gather: on the shared one
        // the row paid for freeing the task cells an earlier row left in the
        // loop's cache at its first idle (docs/performance.md).
        .run(AsyncioRs, |n| {
            asyncio_threadsafe(&asyncio::EventLoop::new(), threadsafe_ops(n));
        })
        .run(TokioCurrentThread, |n| {
            tokio_threadsafe(&tokio_rt_timers(), threadsafe_ops(n));
        }),
        Scenario::new(
            "ex_2_2_loop_startup",
            "ex_2_2",
            "a whole run(empty coroutine): loop created, run, closed (tokio: a runtime built with every driver, block_on, dropped), n / 100 times, each round in a fresh process",
            "run",
        )
        .ops(startup_ops)
        .python("ex_2_2_loop_startup.py")
        .fresh_process()
        .run(AsyncioRs, asyncio_startup)
        .run(TokioCurrentThread, tokio_startup),
        Scenario::new(
            TCP_ECHO,
            "ex_5_2, ex_5_3",
            "64-byte messages echoed over 100 loopback connections, server and clients on one thread, n / 10 messages",
            "message",
        )
        .ops(echo_ops)
        .python("ex_5_2_tcp_echo.py")
        .run(AsyncioRs, with(l, |l, n| asyncio_tcp_echo(l, echo_ops(n))))
        .run(TokioCurrentThread, with(tn, |t, n| tokio_tcp_echo(t, echo_ops(n))))
        .run(Floor, |n| floor_tcp_echo(echo_ops(n))),
        Scenario::new(
            "ex_5_4_http_hello",
            "ex_5_4",
            "hyper's hello world (CPython: a minimal asyncio server) served to a load generator on another thread over 50 keep-alive connections, n / 100 requests",
            "request",
        )
        .ops(http_ops)
        .python_server("ex_5_4_http_hello.py", http_load)
        .run(AsyncioRs, with(l, |l, n| asyncio_http_hello(l, http_ops(n))))
        .run(TokioCurrentThread, with(tn, |t, n| tokio_http_hello(t, http_ops(n))))
        .run(Floor, |n| floor_http_hello(http_ops(n))),
        Scenario::new(
            "compat_roundtrip",
            "",
            "a tokio task spawned and awaited from an asyncio task through asyncio::compat (tokio: the same spawn and await, no wrapper), n / 100 times",
            "round trip",
        )
        .ops(compat_ops)
        .run(AsyncioRs, with(l, |l, n| asyncio_compat_roundtrip(l, compat_ops(n))))
        .run(TokioCurrentThread, with(tn, |t, n| tokio_compat_roundtrip(t, compat_ops(n)))),
        Scenario::new(
            "h2_hello",
            "ex_5_4",
            "hyper's hello world over HTTP/2 (h2c), 10 connections with 10 concurrent streams each from a hyper client on another thread, n / 100 requests",
            "request",
        )
        .ops(h2_ops)
        .run(AsyncioRs, with(l, |l, n| asyncio_h2_hello(l, h2_ops(n))))
        .run(TokioCurrentThread, with(tn, |t, n| tokio_h2_hello(t, h2_ops(n)))),
        Scenario::new(
            "axum_json",
            "ex_5_7",
            "an axum route taking and returning JSON (tokio: axum::serve), POSTed over 50 keep-alive connections from another thread, n / 100 requests",
            "request",
        )
        .ops(http_ops)
        .run(AsyncioRs, with(l, |l, n| asyncio_axum_json(l, http_ops(n))))
        .run(TokioCurrentThread, with(tn, |t, n| tokio_axum_json(t, http_ops(n)))),
        Scenario::new(
            "ex_7_1_subprocess_spawn",
            "ex_7_1",
            "/bin/true children started at once, then each waited for and reaped (n / 1,000 children, at most 1,000)",
            "child",
        )
        .ops(children)
        .python("ex_7_1_subprocess_spawn.py")
        .run(AsyncioRs, with(l, |l, n| asyncio_subprocess_spawn(l, children(n))))
        .run(TokioCurrentThread, with(tn, |t, n| tokio_subprocess_spawn(t, children(n)))),
        Scenario::new(
            TCP_ECHO_MULTICORE,
            "ex_8_1",
            "ex_5_2's echo on 2 cores: a pool of 2 loops each accepting on its own SO_REUSEPORT socket, half the 100 clients on each loop (tokio: its multi-thread runtime, 2 workers), n / 10 messages",
            "message",
        )
        .ops(echo_ops)
        .run(AsyncioRs, |n| pool_tcp_echo(2, echo_ops(n), "asyncio-rs"))
        .run(TokioMultiThread, with(tm2, |t, n| tokio_tcp_echo_as(t, echo_ops(n), "tokio-multi-thread"))),
        Scenario::new(
            TCP_ECHO_MULTICORE_PINNED,
            "ex_8_1",
            "ex_8_1_tcp_echo_multicore with the 2 loops pinned to cores and each connection steered to the loop of the CPU that received it (AcceptMode::ReusePortByCpu)",
            "message",
        )
        .ops(echo_ops)
        .run(AsyncioRs, |n| pool_tcp_echo_by_cpu(2, echo_ops(n), "asyncio-rs"))
        .run(TokioMultiThread, with(tm2, |t, n| tokio_tcp_echo_as(t, echo_ops(n), "tokio-multi-thread"))),
        Scenario::new(
            TCP_ECHO_ONE_LOOP,
            "ex_8_1",
            "the scaling baseline of ex_8_1_tcp_echo_multicore: the same pool code with 1 loop (tokio: its multi-thread runtime with 1 worker), n / 10 messages",
            "message",
        )
        .ops(echo_ops)
        .run(AsyncioRs, |n| pool_tcp_echo(1, echo_ops(n), "asyncio-rs"))
        .run(TokioMultiThread, with(tm1, |t, n| tokio_tcp_echo_as(t, echo_ops(n), "tokio-multi-thread"))),
        Scenario::new(
            "ex_8_1_cross_loop_handoff",
            "ex_8_1",
            "Send jobs handed from one loop of a 2-loop pool to the other with PoolHandle::spawn_on and completed there (tokio: spawn from a task on its 2-worker multi-thread runtime)",
            "job",
        )
        .run(AsyncioRs, pool_handoff_spawn_on)
        .run(TokioMultiThread, with(tm2, tokio_mt_spawn_from_task)),
        Scenario::new(
            "ex_8_1_cross_loop_call_soon",
            "ex_8_1",
            "the raw hand-off under spawn_on: callbacks sent from one loop of a 2-loop pool to the other with call_soon_threadsafe (tokio: spawn from a task, 2 workers)",
            "job",
        )
        .run(AsyncioRs, pool_handoff_call_soon)
        .run(TokioMultiThread, with(tm2, tokio_mt_spawn_from_task)),
    ];
    #[cfg(feature = "tls")]
    all.extend(tls_scenarios(l, tn));
    all
}

/// The TLS scenarios: asyncio-rs's TLS streams against tokio + tokio-rustls,
/// the same rustls configuration on both sides.
#[cfg(feature = "tls")]
fn tls_scenarios(l: &Rc<asyncio::EventLoop>, tn: &Rc<tokio::runtime::Runtime>) -> Vec<Scenario> {
    use Runtime::*;
    use asyncio_bench::tls::*;
    vec![
        Scenario::new(
            "tls_echo",
            "ex_5_6",
            "1 KiB messages echoed over 100 loopback TLS connections, server and clients on one thread (tokio: tokio-rustls; the same rustls config, ring, TLS 1.3), n / 10 messages",
            "message",
        )
        .ops(echo_ops)
        .run(AsyncioRs, with(l, |l, n| asyncio_tls_echo(l, echo_ops(n))))
        .run(TokioCurrentThread, with(tn, |t, n| tokio_tls_echo(t, echo_ops(n)))),
        Scenario::new(
            "tls_handshakes",
            "ex_5_6",
            "full TLS 1.3 handshakes (ECDSA P-256, no resumption): connect, handshake, one 64-byte echo, close_notify both ways; 10 clients at a time, n / 1,000 handshakes",
            "handshake",
        )
        .ops(handshake_ops)
        .run(AsyncioRs, with(l, |l, n| asyncio_tls_handshakes(l, handshake_ops(n))))
        .run(TokioCurrentThread, with(tn, |t, n| tokio_tls_handshakes(t, handshake_ops(n)))),
        Scenario::new(
            "https_hello",
            "ex_5_4, ex_5_6",
            "hyper's hello world over TLS served to a tokio-rustls load generator on another thread over 50 keep-alive connections, n / 100 requests",
            "request",
        )
        .ops(http_ops)
        .run(AsyncioRs, with(l, |l, n| asyncio_https_hello(l, http_ops(n))))
        .run(TokioCurrentThread, with(tn, |t, n| tokio_https_hello(t, http_ops(n)))),
    ]
}

/// Handshakes of one `tls_handshakes` run: a multiple of the 10 clients.
#[cfg(feature = "tls")]
fn handshake_ops(n: usize) -> usize {
    (n / 1000)
        .div_ceil(asyncio_bench::tls::HANDSHAKE_CLIENTS)
        .max(1)
        * asyncio_bench::tls::HANDSHAKE_CLIENTS
}

/// A workload closure that keeps its runtime alive.
fn with<T: ?Sized + 'static>(rt: &Rc<T>, f: fn(&T, usize)) -> impl Fn(usize) + 'static {
    let rt = rt.clone();
    move |n| f(&rt, n)
}

/// Tasks of the lock scenario.
const LOCK_TASKS: usize = 1000;
/// Acquisitions per task of the lock scenario: n / 1,000.
fn lock_times(n: usize) -> usize {
    n.div_ceil(LOCK_TASKS)
}
fn lock_ops(n: usize) -> usize {
    LOCK_TASKS * lock_times(n)
}

/// The Barrier workload: 1,000 parties, and rounds scaled so that `n` =
/// 1,000,000 gives 100 rounds.
const BARRIER_PARTIES: usize = 1000;
fn barrier_rounds(n: usize) -> usize {
    n.div_ceil(10_000)
}
fn barrier_ops(n: usize) -> usize {
    BARRIER_PARTIES * barrier_rounds(n)
}

/// Callbacks of one `call_soon_threadsafe` run.
fn threadsafe_ops(n: usize) -> usize {
    (n / 10).max(1)
}

/// ex_2_2 on asyncio-rs: `startup_ops(n)` whole `asyncio::run(async {})`.
fn asyncio_startup(n: usize) {
    for _ in 0..startup_ops(n) {
        asyncio::run(async {}).expect("an empty run succeeds");
    }
}

/// ex_2_2 on tokio: a current-thread runtime with every driver built,
/// `block_on(async {})`, dropped, `startup_ops(n)` times.
fn tokio_startup(n: usize) {
    for _ in 0..startup_ops(n) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(async {});
    }
}

/// The workload of a fresh-process scenario's runtime, for the child that
/// runs it (without building every other scenario's runtimes).
pub(crate) fn fresh_process_workload(scenario: &str, runtime: &str) -> Option<fn(usize)> {
    match (scenario, runtime) {
        ("ex_2_2_loop_startup", "asyncio-rs") => Some(asyncio_startup),
        ("ex_2_2_loop_startup", "tokio-current-thread") => Some(tokio_startup),
        _ => None,
    }
}

/// Runs of one loop start-up measurement: 10,000 for the default n.
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

/// Round trips of one `compat_roundtrip` run.
fn compat_ops(n: usize) -> usize {
    (n / 100).max(1)
}

/// Requests of one `h2_hello` run: a multiple of the 100 concurrent streams.
fn h2_ops(n: usize) -> usize {
    h2_total((n / 100).max(1))
}

/// Children of one subprocess run: n / 1,000, between 10 and [`CHILDREN`].
fn children(n: usize) -> usize {
    (n / 1000).clamp(10, CHILDREN)
}

/// The echo scenario (its latency percentiles are printed under it).
pub(crate) const TCP_ECHO: &str = "ex_5_2_tcp_echo";
/// The echo on a pool of 2 loops against tokio's multi-thread runtime.
pub(crate) const TCP_ECHO_MULTICORE: &str = "ex_8_1_tcp_echo_multicore";
/// The same with the loops pinned and connections steered by CPU.
pub(crate) const TCP_ECHO_MULTICORE_PINNED: &str = "ex_8_1_tcp_echo_multicore_pinned";
/// The same pool code with 1 loop: the scaling baseline.
pub(crate) const TCP_ECHO_ONE_LOOP: &str = "ex_8_1_tcp_echo_one_loop";
/// The scenarios whose latency percentiles are printed under them.
pub(crate) const ECHO_SCENARIOS: [&str; 4] = [
    TCP_ECHO,
    TCP_ECHO_MULTICORE,
    TCP_ECHO_MULTICORE_PINNED,
    TCP_ECHO_ONE_LOOP,
];

/// A memory scenario, measured apart: each runtime once, in a fresh process
/// (this binary again, with the hidden `--memory-child`), as resident growth
/// per operation.
pub(crate) struct MemoryScenario {
    /// The name in the table, in `--only` and in the JSON.
    pub(crate) id: &'static str,
    /// The tutorial example it mirrors.
    pub(crate) example: &'static str,
    /// What is measured, in one line.
    pub(crate) what: &'static str,
    /// One operation, singular.
    pub(crate) unit: &'static str,
    /// Its runtimes.
    pub(crate) runtimes: &'static [Runtime],
    /// Measures one runtime's bytes per operation for `n` operations (in the
    /// child process); `None` for a runtime it does not have.
    pub(crate) measure: fn(&str, usize) -> Option<f64>,
}

/// Server bytes per idle connection.
pub(crate) const IDLE_CONNS: &str = "idle_conns_memory";
/// Resident bytes per task of ex_6_2.
pub(crate) const TASK_MEMORY: &str = "ex_6_2_task_memory";

/// Server bytes per idle TLS connection.
pub(crate) const IDLE_TLS_CONNS: &str = "idle_tls_conns_memory";

/// The memory scenarios, in the order of the table.
pub(crate) static MEMORY_SCENARIOS: &[MemoryScenario] = &[
    MemoryScenario {
        id: TASK_MEMORY,
        example: "ex_6_2",
        what: "resident memory per task while n trivial tasks are alive at once: ex_6_2's gather (tokio, async-executor: n tasks spawned, then awaited); peak RSS growth over the run, each runtime in a fresh process",
        unit: "task",
        runtimes: &[
            Runtime::AsyncioRs,
            Runtime::TokioCurrentThread,
            Runtime::TokioLocalSet,
            Runtime::AsyncExecutor,
        ],
        measure: task_bytes_per_task,
    },
    MemoryScenario {
        id: IDLE_CONNS,
        example: "ex_5_2",
        what: "server memory (RSS growth) per idle connection, each handler waiting in readline; each runtime in a fresh process",
        unit: "connection",
        runtimes: &[Runtime::AsyncioRs, Runtime::TokioCurrentThread],
        measure: idle_bytes_per_conn,
    },
    #[cfg(feature = "tls")]
    MemoryScenario {
        id: IDLE_TLS_CONNS,
        example: "ex_5_6",
        what: "server memory (RSS growth) per idle TLS connection past its handshake, each handler waiting in readline (tokio: tokio-rustls, the same rustls config); each runtime in a fresh process",
        unit: "connection",
        runtimes: &[Runtime::AsyncioRs, Runtime::TokioCurrentThread],
        measure: idle_tls_bytes_per_conn,
    },
];

/// Measures one runtime's bytes per idle TLS connection (in the child process).
#[cfg(feature = "tls")]
fn idle_tls_bytes_per_conn(runtime: &str, conns: usize) -> Option<f64> {
    match runtime {
        "asyncio-rs" => Some(asyncio_bench::tls::asyncio_idle_tls_bytes_per_conn(conns) as f64),
        "tokio-current-thread" => {
            Some(asyncio_bench::tls::tokio_idle_tls_bytes_per_conn(conns) as f64)
        }
        _ => None,
    }
}

/// Measures one runtime's bytes per idle connection (in the child process).
fn idle_bytes_per_conn(runtime: &str, conns: usize) -> Option<f64> {
    match runtime {
        "asyncio-rs" => Some(asyncio_idle_bytes_per_conn(conns) as f64),
        "tokio-current-thread" => Some(tokio_idle_bytes_per_conn(conns) as f64),
        _ => None,
    }
}

/// Measures one runtime's peak resident bytes per task over one run of its
/// ex_6_2 workload with `n` tasks (in the child process).
fn task_bytes_per_task(runtime: &str, n: usize) -> Option<f64> {
    let run: Box<dyn Fn()> = match runtime {
        "asyncio-rs" => {
            let lp = asyncio::EventLoop::new();
            Box::new(move || asyncio_gather_lazy(&lp, n))
        }
        "tokio-current-thread" => {
            let rt = tokio_rt();
            Box::new(move || tokio_spawn_lazy(&rt, n))
        }
        "tokio-localset" => {
            let rt = tokio_rt();
            Box::new(move || tokio_local_spawn_lazy(&rt, n))
        }
        "async-executor" => {
            let ex = async_executor::LocalExecutor::new();
            Box::new(move || async_executor_spawn_lazy(&ex, n))
        }
        _ => return None,
    };
    let before = proc_status_kib("VmRSS:")?;
    run();
    let peak = proc_status_kib("VmHWM:")?;
    Some(peak.saturating_sub(before) as f64 * 1024.0 / n as f64)
}

/// A `kB` field of `/proc/self/status`.
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The memory scenario called `id`, if it is one.
pub(crate) fn memory_scenario(id: &str) -> Option<&'static MemoryScenario> {
    MEMORY_SCENARIOS.iter().find(|m| m.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_names_are_the_ones_other_tools_read() {
        let names: Vec<&str> = Runtime::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(
            names,
            [
                "asyncio-rs",
                "tokio-current-thread",
                "tokio-localset",
                "tokio-joinset",
                "tokio-multi-thread",
                "async-executor",
                "floor",
                "cpython",
                "cpython-uvloop"
            ]
        );
    }

    #[test]
    fn every_runtime_of_a_fresh_process_scenario_has_a_child_workload() {
        for s in scenarios().iter().filter(|s| s.fresh_process) {
            for (rt, _) in &s.runs {
                assert!(
                    fresh_process_workload(s.id, rt.name()).is_some(),
                    "{}/{} would have no workload in its child",
                    s.id,
                    rt.name()
                );
            }
        }
    }

    #[test]
    fn scenarios_are_unique_compare_with_asyncio_rs_and_name_real_python_programs() {
        let all = scenarios();
        let mut ids: Vec<&str> = all.iter().map(|s| s.id).collect();
        ids.extend(MEMORY_SCENARIOS.iter().map(|m| m.id));
        let before = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), before, "two scenarios share an id");
        for s in &all {
            assert!(
                s.runs.iter().any(|(r, _)| *r == Runtime::AsyncioRs),
                "{} has no asyncio-rs row to compare with",
                s.id
            );
            assert!(
                s.runs.iter().all(|(r, _)| !r.is_python()),
                "{}: CPython rows come from .python(..), not .run(..)",
                s.id
            );
            if let Some(p) = s.python {
                let path = crate::python::programs_dir().join(p);
                assert!(
                    path.is_file(),
                    "{} names {} which is missing",
                    s.id,
                    path.display()
                );
            }
        }
    }
}
