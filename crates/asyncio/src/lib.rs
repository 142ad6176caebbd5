//! Python's asyncio, in Rust: one event loop per thread, tasks, task factories,
//! `Runner`, and asyncio's primitives, under asyncio's own names.
//!
//! ```
//! use std::rc::Rc;
//!
//! async fn light_coro() {}
//!
//! async fn main_task() -> usize {
//!     asyncio::set_task_factory(asyncio::eager_task_factory);
//!     let tasks: Vec<_> = (0..1000).map(|_| asyncio::create_task(light_coro())).collect();
//!     let mut done = 0;
//!     for t in tasks {
//!         t.await.expect("light_coro neither panics nor is cancelled");
//!         done += 1;
//!     }
//!     done
//! }
//!
//! assert_eq!(asyncio::run(main_task()).unwrap(), 1000);
//! ```
//!
//! This crate only re-exports; each part is its own crate, usable alone.
//!
//! ## Running
//! - [`main`], [`test`]: `#[asyncio::main] async fn main()` and
//!   `#[asyncio::test] async fn …()`, each on a fresh loop (options `eager`,
//!   `debug`).
//! - [`run`], [`Runner`]: run a top-level future on a fresh loop (`asyncio.run`,
//!   `asyncio.Runner`); Ctrl-C cancels the main task and the run returns
//!   [`RunError::Interrupted`]; [`exit_interrupted`] then ends the process as
//!   Python's does (killed by SIGINT), as `#[asyncio::main]` does by itself.
//! - [`EventLoop`], [`get_running_loop`]: the loop itself, for lower-level control.
//!
//! ## Beyond one core
//! - [`LoopPool`], [`Worker`], [`PoolHandle`]: a loop per core (thread-per-core),
//!   a `!Send` future on each, `TaskGroup` semantics across loops; explicit
//!   hand-off between loops ([`PoolHandle::spawn_on`], [`PoolTask`]).
//! - [`PoolListener`], [`PoolServer`]: a server accepting on every loop
//!   (`SO_REUSEPORT`, or one acceptor handing sockets round).
//! - [`Channel`]: `Queue` between threads, with `shutdown`.
//!
//! ## Tasks
//! - [`create_task`], [`create_task_with`], [`Task`], [`TaskRef`]: start
//!   concurrent work and await, cancel or inspect it.
//! - [`current_task`], [`all_tasks`]: which task runs, which are alive.
//! - [`create_future`], [`LoopFuture`]: asyncio's `Future` object, set once
//!   and awaited by any number of tasks; [`Task::shared`] lets several tasks
//!   await one task.
//! - [`yield_now`]: `await asyncio.sleep(0)`.
//!
//! ## Time, threads and I/O
//! - [`sleep`], [`sleep_until`], [`timeout`], [`timeout_at`], [`wait_for`],
//!   [`TimeoutHandle`]: waiting, with the loop asleep in the kernel.
//! - [`EventLoop::call_later`], [`EventLoop::call_at`] ([`TimerHandle`]):
//!   callbacks at a time.
//! - [`LoopHandle`] (`call_soon_threadsafe`, `run_coroutine_threadsafe` →
//!   [`ConcurrentFuture`]): other threads hand work to the loop.
//! - [`to_thread`], [`EventLoop::run_in_executor`] ([`Blocking`]): blocking
//!   work on the default executor.
//! - [`IoRegistration`], [`EventLoop::add_reader`]: readiness of file
//!   descriptors.
//!
//! ## Streams and sockets
//! - [`open_connection`], [`open_unix_connection`]: connect, get a
//!   [`StreamReader`] and a [`StreamWriter`] (also `futures-io` traits).
//! - [`start_server`], [`start_unix_server`], [`Server`]: a task per
//!   connection; `serve_forever`, `close`, `close_clients`, `wait_closed`;
//!   [`with_state`] hands each connection a clone of shared state.
//! - [`open_connection_from_stream`], [`start_server_from_listener`]: streams
//!   and servers on sockets made elsewhere (asyncio's `sock=`).
//! - [`io`]: the `futures-io` traits the streams implement, with their
//!   `…Ext` methods; [`socket2`], whose `Socket` [`sock_connect`] takes.
//!
//! ## HTTP (the `hyper` feature, on by default)
//! - [`http`] ([`http::Http`], [`http::HttpServer`], [`http::Connector`]):
//!   hyper 1.x servers (HTTP/1.1, h2c, ALPN over TLS; a task per connection
//!   in a `TaskGroup`; graceful shutdown with a deadline) and clients; axum's
//!   `Router` is served the same way.
//! - `HyperIo`, `LoopTimer`, `LocalExecutor`: hyper's `rt` traits (I/O,
//!   timer, executor) on the loop, for hyper's own builders.
//!
//! ## tokio's world (the `tokio` feature, off by default)
//! - `compat`: await a tokio-bound future (reqwest, `tokio::time`,
//!   `tokio::sync`, drivers) from an asyncio task, through async-compat.
//! - tokio's `AsyncRead`/`AsyncWrite`/`AsyncBufRead` on [`StreamReader`]
//!   and [`StreamWriter`], for tokio-util's codecs.
//! - [`sock_recv`], [`sock_recv_into`], [`sock_sendall`], [`sock_accept`],
//!   [`sock_connect`]: `loop.sock_*` on your own non-blocking sockets;
//!   [`DatagramSocket`]: UDP.
//!
//! ## Transports and protocols
//! - [`Protocol`], [`BufferedProtocol`] (wrapped in [`Buffered`]): the
//!   callbacks asyncio's low-level layer calls (`connection_made`,
//!   `data_received`, `eof_received`, `connection_lost`, `pause_writing`,
//!   `resume_writing`); [`Transport`]: `write`, `write_eof`, `close`,
//!   `abort`, `pause_reading`, water marks, `get_extra_info`.
//! - [`create_connection`], [`create_server`], [`create_unix_connection`],
//!   [`create_unix_server`], [`connect_accepted_socket`]: the loop's
//!   functions that make them; see [`transports`].
//! - [`connect_read_pipe`], [`connect_write_pipe`]: a protocol on a pipe.
//! - [`subprocess_exec`], [`subprocess_shell`] ([`SubprocessProtocol`],
//!   [`SubprocessTransport`]): a child process with a protocol.
//! - [`create_datagram_endpoint`] ([`DatagramOptions`]): UDP with a
//!   [`DatagramProtocol`] and a [`DatagramTransport`] (`sendto`).
//!
//! ## TLS (the `tls` feature, on by default)
//! - [`ClientTls`], [`ServerTls`]: asyncio's `SSLContext`, on rustls
//!   (trusted CAs, certificates chosen by SNI, client certificates, ALPN).
//! - [`ConnectOptions::ssl`], [`ServerOptions::ssl`]: asyncio's `ssl=` on
//!   [`open_connection_with`], [`start_server_with`] and their Unix
//!   variants, with `server_hostname` and the handshake and shutdown
//!   timeouts.
//! - [`StreamWriter::start_tls`] ([`StartTlsOptions`]): upgrade a live
//!   connection (STARTTLS); [`StreamWriter::tls_info`] ([`TlsInfo`]):
//!   asyncio's `get_extra_info` for TLS; [`TlsError`], [`TlsConfigError`].
//!
//! ## Structured concurrency
//! - [`TaskGroup`], [`task_group`], [`ExceptionGroup`]: children that end
//!   together and fail together.
//! - [`gather()`], [`wait`] ([`wait_fallible`] for tasks whose `Err` is a
//!   failure), [`as_completed`], [`shield`]: wait for several
//!   futures or tasks; protect one from cancellation. [`gather!`] /
//!   [`gather_tuple`]: futures of different types into a tuple.
//!
//! ## Streams of results
//! - [`Stream`], [`StreamExt`]: what [`Queue::stream`] and [`as_completed`]
//!   return, and `next()` to take items one by one:
//!   `while let Some(item) = queue.stream().next().await { … }` (`async for`).
//!
//! ## Synchronization and queues
//! - [`Lock`], [`Event`], [`Condition`], [`Semaphore`], [`BoundedSemaphore`],
//!   [`Barrier`]: asyncio's primitives, FIFO-fair and cancellation-safe.
//! - [`Queue`], [`PriorityQueue`], [`LifoQueue`]: bounded or unbounded queues
//!   with `task_done`/`join` and `shutdown`.
//!
//! ## Context variables
//! - [`ContextVar`], [`Context`], [`copy_context`]: Python's `contextvars`,
//!   per task.
//!
//! ## Subprocesses
//! - [`create_subprocess_exec`], [`create_subprocess_shell`], [`Process`]:
//!   child processes whose pipes are streams; [`subprocess`] holds `PIPE`,
//!   `DEVNULL`, `STDOUT` (`asyncio.subprocess`).
//! - [`EventLoop::add_signal_handler`]: Unix signals handled on the loop;
//!   `signal` holds their numbers (`signal.SIGTERM`).
//!
//! ## Task factories
//! - [`set_task_factory`], [`eager_task_factory`], [`create_eager_task_factory`],
//!   [`InstrumentedFactory`]: choose how new tasks start.
//!
//! ## Errors
//! - [`CancelledError`], [`InvalidStateError`], [`RuntimeError`], [`TaskError`],
//!   [`RunError`], [`TimeoutError`]: asyncio's exceptions as Rust error types.
//! - [`QueueFull`], [`QueueEmpty`], [`QueueShutDown`], [`BrokenBarrierError`]
//!   and the other errors of the primitives; [`QueueError`], the item-less
//!   error that `?` makes of any queue error.
//! - [`IncompleteReadError`], [`LimitOverrunError`] and the other errors of
//!   the streams; [`ReadError`], the one to match on for any read.
//!
//! ## Guides
//! - [`_tutorial`]: the tutorial, twelve chapters from `run` to a loop per core, TLS and HTTP,
//!   Python beside Rust at every step (every Rust block is a doc test).
//! - [`_cheatsheet`]: Python ↔ Rust, one line per idiom.
//! - [`_semantics`]: where asyncio-rs differs from CPython's asyncio, and why.
//!
//! Where Rust cannot do what asyncio does (cancellation is `Drop`, there are no
//! exceptions), asyncio-rs does the closest thing; [`_semantics`] lists each
//! difference.

#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

// Running
pub use asyncio_core::{EventLoop, get_running_loop};
pub use asyncio_macros::{main, test};
pub use asyncio_structured::{Runner, RunnerBuilder, exit_interrupted, run};

// Beyond one core: a loop per core, hand-off between loops
pub use asyncio_pool::{
    AcceptMode, LoopPool, PoolHandle, PoolListener, PoolServer, PoolTask, Worker, WorkerOutput,
};

// Tasks
pub use asyncio_core::{
    CallHandle, CallbackId, ExceptionContext, ExceptionHandler, FutureError, IO_POLL_INTERVAL,
    LoopFuture, MAX_EAGER_DEPTH, SharedError, SignalError, Task, TaskOptions, TaskRef, YieldNow,
    all_tasks, create_future, create_task, create_task_with, current_task,
    default_exception_handler, try_create_task, yield_now,
};

// Time, threads and I/O
pub use asyncio_core::{
    Blocking, ConcurrentFuture, Executor, ExecutorShutdown, IoRegistration, LoopHandle, Sleep,
    Timeout, TimeoutFinished, TimeoutHandle, TimerHandle, sleep, sleep_until, timeout, timeout_at,
    to_thread, wait_for,
};
pub use asyncio_structured::EXECUTOR_SHUTDOWN_TIMEOUT;

// Streams and sockets
pub use asyncio_streams::{
    AddrInfo, AddrInfoHints, AddressFamily, ConnectOptions, DEFAULT_BACKLOG, DEFAULT_LIMIT,
    DatagramSocket, Lines, SendfileNotAvailableError, SendfileOptions, Server, ServerOptions,
    StaggeredOutcome, StreamAddr, StreamReader, StreamWriter, getaddrinfo, getaddrinfo_with,
    getnameinfo, open_connection, open_connection_from_stream, open_connection_with,
    open_unix_connection, open_unix_connection_from_stream, open_unix_connection_with, sendfile,
    sock_accept, sock_connect, sock_connect_host, sock_recv, sock_recv_into, sock_recvfrom,
    sock_recvfrom_into, sock_sendall, sock_sendfile, sock_sendto, staggered_race, start_server,
    start_server_from_listener, start_server_with, start_unix_server,
    start_unix_server_from_listener, start_unix_server_with, with_state,
};

// Transports and protocols
pub use asyncio_streams::transports;
pub use asyncio_streams::{
    Buffered, BufferedProtocol, DatagramOptions, DatagramProtocol, DatagramTransport, ExtraInfo,
    Protocol, ProtocolCell, SubprocessProtocol, SubprocessTransport, Transport,
    connect_accepted_socket, connect_read_pipe, connect_write_pipe, create_connection,
    create_connection_with, create_datagram_endpoint, create_server, create_server_from_listener,
    create_server_with, create_unix_connection, create_unix_connection_with, create_unix_server,
    create_unix_server_from_listener, create_unix_server_with, subprocess_exec,
    subprocess_exec_with, subprocess_shell,
};

/// `socket2`, whose `Socket` [`sock_connect`] takes (a socket not yet
/// connected), so a user of the facade needs no dependency of their own.
pub use asyncio_streams::socket2;

/// The I/O traits the streams implement (`futures-io`'s), with
/// futures-lite's `…Ext` methods to call them: `read`, `read_exact`,
/// `write_all`, `read_line`... Generic code over connections names these.
///
/// ```
/// use asyncio::io::{AsyncBufReadExt, AsyncWriteExt};
///
/// asyncio::run(async {
///     let server = asyncio::start_server(
///         |_r: asyncio::StreamReader, mut w: asyncio::StreamWriter| async move {
///             w.write_all(b"hi\n").await.unwrap();
///         },
///         "127.0.0.1",
///         0,
///     )
///     .await
///     .unwrap();
///     let (mut r, _w) = asyncio::open_connection("127.0.0.1", server.local_addr().unwrap().port())
///         .await
///         .unwrap();
///     let mut line = String::new();
///     r.read_line(&mut line).await.unwrap();
///     assert_eq!(line, "hi\n");
/// })
/// .unwrap();
/// ```
pub mod io {
    pub use futures_io::{AsyncBufRead, AsyncRead, AsyncSeek, AsyncWrite};
    pub use futures_lite::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
}

/// Unix signal numbers, as Python's `signal` module names them, for
/// [`EventLoop::add_signal_handler`] (the C library's values).
///
/// ```
/// # #[cfg(unix)]
/// asyncio::run(async {
///     let lp = asyncio::get_running_loop().unwrap();
///     lp.add_signal_handler(asyncio::signal::SIGUSR2, || {}).unwrap();
///     assert!(lp.remove_signal_handler(asyncio::signal::SIGUSR2).unwrap());
/// })
/// .unwrap();
/// ```
#[cfg(unix)]
pub mod signal {
    pub use libc::{
        SIGALRM, SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2,
        SIGWINCH,
    };
}

// HTTP with hyper 1.x (feature `hyper`)
#[cfg(feature = "hyper")]
pub use asyncio_hyper as http;
#[cfg(feature = "hyper")]
pub use asyncio_streams::{HyperIo, LocalExecutor, LoopTimer};

/// tokio-bound futures inside asyncio tasks (feature `tokio`).
///
/// Many crates — reqwest, database drivers, tonic, redis — are written
/// against tokio and panic with "there is no reactor running" elsewhere.
/// Wrap such a future in [`Compat`](compat::Compat) (`fut.compat()`, from
/// [`CompatExt`](compat::CompatExt)) and await it from an asyncio task:
/// the wrapper enters a tokio runtime for each poll (and for the drop), so
/// the future finds tokio's reactor and timer there. A call that looks for
/// the runtime at once (`tokio::time::sleep(d)` itself, `Client::new` of
/// some crates) must be made inside the wrapped block:
/// `async { tokio::time::sleep(d).await }.compat()`.
///
/// ```
/// use std::time::Duration;
/// use asyncio::compat::CompatExt;
///
/// asyncio::run(async {
///     // tokio's own sleep, inside an asyncio task.
///     async { tokio::time::sleep(Duration::from_millis(1)).await }.compat().await;
///     let (tx, mut rx) = tokio::sync::mpsc::channel(1);
///     asyncio::create_task(async move { tx.send(42).await.unwrap() });
///     assert_eq!(rx.recv().compat().await, Some(42));
/// })
/// .unwrap();
/// ```
///
/// **The cost.** The tokio runtime is started on first use and lives for
/// the process: one extra thread (async-compat's, named `async-compat/tokio-*`),
/// which drives tokio's I/O and timers. A wrapped future is polled on the
/// asyncio task as any future, but when it waits on tokio's reactor or timer,
/// its wake-up comes from that thread, so it crosses threads (the loop's
/// injector and a wake of its poller): a few microseconds per wake-up rather
/// than a loop-local wake. `compat_roundtrip` in the showdown measures a
/// wrapped future that completes at once. Futures that need only
/// `tokio::sync` (channels, `Notify`) need no wrapper at all: they wake
/// through the waker they are given.
///
/// Cancelling the asyncio task drops the wrapped future, as it drops any
/// future; async-compat drops it inside the tokio runtime's context, so
/// its destructors may reach tokio (a `JoinHandle`, a timer entry).
///
/// Use asyncio-rs's own streams, timers and `http` module when you can;
/// reach for `compat` for crates that leave you no choice.
#[cfg(feature = "tokio")]
pub mod compat {
    pub use async_compat::{Compat, CompatExt};
}
// TLS
#[cfg(feature = "tls")]
pub use asyncio_streams::{
    ClientTls, ClientTlsBuilder, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, ServerTls,
    ServerTlsBuilder, StartTlsOptions, TlsConfigError, TlsContext, TlsError, TlsInfo, pki_types,
    rustls, start_tls,
};

// Subprocesses
pub use asyncio_streams::subprocess;
pub use asyncio_streams::subprocess::{
    Process, SpawnError, Subprocess, create_subprocess_exec, create_subprocess_shell,
};

// Structured concurrency
pub use asyncio_structured::{
    AsCompleted, BoxError, ChildFailure, EmptyWaitError, ExceptionGroup, Gather, GatherAll,
    GatherTuple, IntoTasks, Join, ReturnWhen, Scope, Shield, TaskGroup, TaskGroupError,
    TaskGroupHandle, TaskTuple, Wait, WaitResult, as_completed, gather, gather_tasks, gather_tuple,
    shield, task_group, wait, wait_fallible,
};

// Streams of results
/// An asynchronous sequence of values, `async for`'s iterable
/// (`futures_core::Stream`): [`Queue::stream`] and [`as_completed`] return one.
///
/// ```
/// use asyncio::StreamExt;
///
/// asyncio::run(async {
///     let queue = asyncio::Queue::new(0);
///     for i in 1..=3 {
///         queue.put_nowait(i).unwrap();
///     }
///     queue.shutdown(false);
///     let mut total = 0;
///     while let Some(item) = queue.stream().next().await {
///         total += item;
///     }
///     assert_eq!(total, 6);
/// })
/// .unwrap();
/// ```
pub use futures_core::Stream;
/// `next()` and the other combinators of `futures-lite` on any [`Stream`].
///
/// ```
/// use asyncio::StreamExt;
///
/// let order = asyncio::run(async {
///     let slow = asyncio::create_task(async {
///         asyncio::sleep(std::time::Duration::from_millis(20)).await;
///         "slow"
///     });
///     let fast = asyncio::create_task(async { "fast" });
///     let mut done = asyncio::as_completed(vec![slow, fast]);
///     let mut order = Vec::new();
///     while let Some(task) = done.next().await {
///         order.push(task.await.unwrap());
///     }
///     order
/// })
/// .unwrap();
/// assert_eq!(order, ["fast", "slow"]);
/// ```
pub use futures_lite::StreamExt;

// Synchronization and queues
pub use asyncio_sync::{
    Barrier, BoundedSemaphore, Channel, Condition, Event, LifoQueue, Lock, LockGuard,
    PriorityQueue, Queue, Semaphore, SemaphorePermit,
};

// Context variables
pub use asyncio_core::{Context, ContextError, ContextVar, Token, copy_context};

// Task factories
pub use asyncio_core::{LazyTaskFactory, StartMode, TaskFactory, set_task_factory};
pub use asyncio_factory::{
    EagerTaskFactory, EagerTaskFactoryWith, FactoryStats, InstrumentedFactory, StatsHandle,
    create_eager_task_factory, eager_task_factory,
};

// Errors
pub use asyncio_core::{
    CancelledError, InvalidStateError, PanicError, RunError, RuntimeError, TaskError, TimeoutError,
};
pub use asyncio_pool::{HandoffError, PoolError, WorkerError, WorkerErrors, WorkerFailure};
pub use asyncio_streams::{
    BlockingSocketError, ConnectErrors, DatagramError, IncompleteReadError, LimitOverrunError,
    ReadError, ReadExactlyError, ReadUntilError, ServerStateError, TransportError,
    WriteBufferLimitsError, WriterClosedError,
};
pub use asyncio_sync::{
    BrokenBarrierError, GetError, PutError, QueueEmpty, QueueError, QueueFull, QueueShutDown,
    ReleaseError, TaskDoneError, ZeroPartiesError,
};

// The documents of the repository's `docs/`, carried in rustdoc (as clap
// carries its tutorial) so docs.rs shows them beside the API they teach. Their
// Rust blocks are doc tests: `cargo test` compiles and runs every one.

#[doc = include_str!("../docs/tutorial/README.md")]
///
/// The chapters, in order (the links above point into the repository; here
/// each chapter is a module below):
pub mod _tutorial {
    #[doc = include_str!("../docs/tutorial/01-run-and-runner.md")]
    pub mod ch01_run_and_runner {}
    #[doc = include_str!("../docs/tutorial/02-tasks-and-taskgroup.md")]
    pub mod ch02_tasks_and_taskgroup {}
    #[doc = include_str!("../docs/tutorial/03-eager-task-factory.md")]
    pub mod ch03_eager_task_factory {}
    #[doc = include_str!("../docs/tutorial/04-current-task.md")]
    pub mod ch04_current_task {}
    #[doc = include_str!("../docs/tutorial/05-context-variables.md")]
    pub mod ch05_context_variables {}
    #[doc = include_str!("../docs/tutorial/06-synchronization-and-queues.md")]
    pub mod ch06_synchronization_and_queues {}
    #[doc = include_str!("../docs/tutorial/07-time-and-threads.md")]
    pub mod ch07_time_and_threads {}
    #[doc = include_str!("../docs/tutorial/08-streams.md")]
    pub mod ch08_streams {}
    #[doc = include_str!("../docs/tutorial/09-subprocesses-and-signals.md")]
    pub mod ch09_subprocesses_and_signals {}
    #[doc = include_str!("../docs/tutorial/10-loop-per-core.md")]
    pub mod ch10_loop_per_core {}
    #[cfg(feature = "tls")]
    #[doc = include_str!("../docs/tutorial/11-tls.md")]
    pub mod ch11_tls {}
    #[cfg(all(feature = "hyper", feature = "tokio"))]
    #[doc = include_str!("../docs/tutorial/12-http-and-the-ecosystem.md")]
    pub mod ch12_http_and_the_ecosystem {}
}

#[doc = include_str!("../docs/cheatsheet.md")]
pub mod _cheatsheet {}

#[doc = include_str!("../docs/semantics.md")]
pub mod _semantics {}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
