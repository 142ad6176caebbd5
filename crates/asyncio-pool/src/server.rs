//! A TCP server on every loop of a pool: each loop accepts on its own
//! `SO_REUSEPORT` socket, or, where that option is missing, one acceptor on
//! worker 0 hands the accepted sockets round to the loops.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use asyncio_core::Task;
use asyncio_streams::{
    ConnectOptions, Server, ServerOptions, StreamReader, StreamWriter, open_connection_from_stream,
    sock_accept, start_server_from_listener,
};
use asyncio_sync::{Channel, Event};
use socket2::{Domain, Socket, Type};

use crate::handle::Worker;

/// How the loops of a pool share one listening port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcceptMode {
    /// Each loop listens on its own socket bound to the port with
    /// `SO_REUSEPORT`; the kernel spreads new connections over them.
    ReusePort,
    /// One socket, accepted on worker 0's loop; each accepted socket is sent
    /// (a `Send` std socket) to the next loop in turn and registered there.
    Handoff,
    /// `ReusePort` where the OS accepts `SO_REUSEPORT`, `Handoff` otherwise.
    Auto,
    /// `ReusePort`, and each new connection goes to the socket of the
    /// worker whose index is the number of the CPU that received it, modulo
    /// the number of workers (a classic BPF program on the group,
    /// `SO_ATTACH_REUSEPORT_CBPF`, Linux 4.6+). With
    /// [`pin_to_cores`](crate::LoopPool::pin_to_cores) and a process
    /// allowed CPUs `0..n`, a connection is served on the core that handles
    /// its packets (on loopback: the core of the connecting thread), so no
    /// connection's traffic crosses cores.
    ReusePortByCpu,
}

/// A listening address shared by every loop of a pool (`Send + Sync +
/// Clone`): bind it before [`LoopPool::run`](crate::LoopPool::run), then
/// each worker calls [`start_server`](Self::start_server) with its
/// [`Worker`].
///
/// ```
/// use asyncio_pool::{AcceptMode, LoopPool, PoolListener};
///
/// let listener = PoolListener::bind("127.0.0.1:0", 2, AcceptMode::Auto).unwrap();
/// let port = listener.local_addr().port();
/// let served = LoopPool::new().workers(2).run(|worker| {
///     let listener = listener.clone();
///     async move {
///         let me = worker.index();
///         let server = listener.start_server(&worker, move |_r, mut w: asyncio_streams::StreamWriter| async move {
///             w.write(format!("worker {me}").as_bytes());
///         }, &Default::default())?;
///         if me == 0 {
///             let (mut r, _w) = asyncio_streams::open_connection("127.0.0.1", port).await?;
///             assert!(r.read_to_eof().await?.starts_with(b"worker "));
///             worker.pool().cancel(); // stop every loop's server
///         }
///         server.serve_forever().await
///     }
/// });
/// assert!(matches!(served, Err(asyncio_pool::PoolError::Cancelled)));
/// ```
#[derive(Clone)]
pub struct PoolListener {
    inner: Arc<ListenerInner>,
}

struct ListenerInner {
    addr: SocketAddr,
    mode: AcceptMode,
    /// `ReusePort`: one socket per worker; `Handoff`: one, for worker 0.
    sockets: Mutex<Vec<Option<TcpListener>>>,
    /// `Handoff`: each worker's incoming sockets.
    inboxes: Vec<Channel<TcpStream>>,
    next: AtomicUsize,
}

impl PoolListener {
    /// Binds `addr` for a pool of `workers` loops (port 0 picks a free
    /// port, the same for every loop). `SO_REUSEADDR` is set, as asyncio does.
    ///
    /// # Errors
    /// The resolver's or the OS's error; `InvalidInput` for `workers == 0`;
    /// `Unsupported` for [`AcceptMode::ReusePort`] where the OS refuses
    /// `SO_REUSEPORT`.
    pub fn bind(addr: impl ToSocketAddrs, workers: usize, mode: AcceptMode) -> io::Result<Self> {
        if workers == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a PoolListener needs at least one worker",
            ));
        }
        let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the address resolved to nothing")
        })?;
        let (mode, sockets) = match mode {
            AcceptMode::Handoff => (AcceptMode::Handoff, vec![listen(addr, false)?]),
            AcceptMode::ReusePort => (AcceptMode::ReusePort, reuse_port_sockets(addr, workers)?),
            AcceptMode::ReusePortByCpu => {
                let sockets = reuse_port_sockets(addr, workers)?;
                steer_by_cpu(&sockets[0], workers)?;
                (AcceptMode::ReusePortByCpu, sockets)
            }
            AcceptMode::Auto => match reuse_port_sockets(addr, workers) {
                Ok(s) => (AcceptMode::ReusePort, s),
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    (AcceptMode::Handoff, vec![listen(addr, false)?])
                }
                Err(e) => return Err(e),
            },
        };
        let addr = sockets[0].local_addr()?;
        let inboxes = if mode == AcceptMode::Handoff {
            (0..workers).map(|_| Channel::new(0)).collect()
        } else {
            Vec::new()
        };
        Ok(PoolListener {
            inner: Arc::new(ListenerInner {
                addr,
                mode,
                sockets: Mutex::new(sockets.into_iter().map(Some).collect()),
                inboxes,
                next: AtomicUsize::new(0),
            }),
        })
    }

    /// The bound address (with the port picked, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// How the loops share the port: `ReusePort`, `ReusePortByCpu` or
    /// `Handoff` (never `Auto`).
    pub fn mode(&self) -> AcceptMode {
        self.inner.mode
    }

    fn workers(&self) -> usize {
        match self.inner.mode {
            AcceptMode::Handoff => self.inner.inboxes.len(),
            _ => self
                .inner
                .sockets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len(),
        }
    }

    /// Starts serving on the calling worker's loop: `client_connected_cb`
    /// runs as a task on this loop for each connection this loop gets (as
    /// [`start_server`](asyncio_streams::start_server)'s callback). Call it
    /// once on each worker; in `Handoff` mode worker 0 also accepts for
    /// everyone, so its server must run for any loop to get connections.
    ///
    /// # Errors
    /// `InvalidInput` if the worker's pool does not have the number of
    /// workers the listener was bound for, `AlreadyExists` if this worker
    /// already started its server; the OS's error; `Other` outside a loop.
    pub fn start_server<F, Fut>(
        &self,
        worker: &Worker,
        client_connected_cb: F,
        options: &ServerOptions,
    ) -> io::Result<PoolServer>
    where
        F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
        Fut: Future + 'static,
    {
        let n = self.workers();
        let i = worker.index();
        if worker.workers() != n {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the PoolListener was bound for {n} workers but the pool has {}",
                    worker.workers()
                ),
            ));
        }
        let taken = || {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("worker {i} already started its server on this PoolListener"),
            )
        };
        let mine = |slot: usize| -> Option<TcpListener> {
            self.inner
                .sockets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(slot)
                .and_then(Option::take)
        };
        if self.inner.mode != AcceptMode::Handoff {
            let sock = mine(i).ok_or_else(taken)?;
            let server = start_server_from_listener(client_connected_cb, sock, options)?;
            return Ok(PoolServer {
                kind: Kind::Own(server),
            });
        }
        let inbox = self.inner.inboxes[i].clone();
        let acceptor = if i == 0 {
            let sock = mine(0).ok_or_else(taken)?;
            sock.set_nonblocking(true)?;
            let inner = Arc::clone(&self.inner);
            Some(asyncio_core::try_create_task(accept(inner, sock)).map_err(io::Error::other)?)
        } else {
            None
        };
        let stopped = Rc::new(Event::new());
        let connect = ConnectOptions::new()
            .limit(options.get_limit())
            .nodelay(options.get_nodelay());
        let dispatch = asyncio_core::try_create_task(dispatch(
            inbox.clone(),
            client_connected_cb,
            connect,
            Rc::clone(&stopped),
        ))
        .map_err(io::Error::other)?;
        Ok(PoolServer {
            kind: Kind::Handoff(Rc::new(HandoffServer {
                inbox,
                addr: self.inner.addr,
                tasks: RefCell::new([Some(dispatch), acceptor].into_iter().flatten().collect()),
                stopped,
                all: if i == 0 {
                    self.inner.inboxes.clone()
                } else {
                    Vec::new()
                },
            })),
        })
    }
}

impl fmt::Debug for PoolListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolListener")
            .field("addr", &self.inner.addr)
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

fn listen(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    if reuse_port {
        sock.set_reuse_port(true).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOPROTOOPT) || e.raw_os_error() == Some(libc::EINVAL)
            {
                io::Error::new(io::ErrorKind::Unsupported, e)
            } else {
                e
            }
        })?;
    }
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    Ok(sock.into())
}

/// Attaches to `sock`'s `SO_REUSEPORT` group a program that picks, for
/// each new connection, the socket at index `cpu % workers`.
#[cfg(target_os = "linux")]
fn steer_by_cpu(sock: &TcpListener, workers: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    let insn = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let workers = u32::try_from(workers)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many workers"))?;
    let mut program = [
        // A = the number of the CPU handling the packet
        insn(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            (libc::SKF_AD_OFF + libc::SKF_AD_CPU) as u32,
        ),
        // A = A % workers
        insn(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K, workers),
        // the socket at index A
        insn(libc::BPF_RET | libc::BPF_A, 0),
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `program`, which outlives the call (the
    // kernel copies the program); the length passed is `fprog`'s size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&raw const fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Steering by CPU is only implemented for Linux.
#[cfg(not(target_os = "linux"))]
fn steer_by_cpu(_sock: &TcpListener, _workers: usize) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "AcceptMode::ReusePortByCpu needs Linux's SO_ATTACH_REUSEPORT_CBPF",
    ))
}

/// `workers` sockets on one port; the first picks the port if `addr`'s is 0.
fn reuse_port_sockets(addr: SocketAddr, workers: usize) -> io::Result<Vec<TcpListener>> {
    let first = listen(addr, true)?;
    let addr = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..workers {
        all.push(listen(addr, true)?);
    }
    Ok(all)
}

/// Worker 0's acceptor in `Handoff` mode: each accepted socket goes to the
/// next loop's inbox in turn (its own included).
async fn accept(inner: Arc<ListenerInner>, listener: TcpListener) {
    let n = inner.inboxes.len();
    loop {
        let conn = match sock_accept(&listener).await {
            Ok((conn, _peer)) => conn,
            Err(e) => {
                // Out of file descriptors and the like: as asyncio (and
                // `start_server`), report it and stop accepting for a second.
                if let Ok(lp) = asyncio_core::get_running_loop() {
                    lp.call_exception_handler(&asyncio_core::ExceptionContext::new(format!(
                        "socket.accept() failed: {e}; pausing for 1 second"
                    )));
                }
                asyncio_core::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let to = inner.next.fetch_add(1, Ordering::Relaxed) % n;
        // A loop whose server closed refuses it: try the others.
        let mut conn = Some(conn);
        for k in 0..n {
            let Some(c) = conn.take() else { break };
            if let Err(e) = inner.inboxes[(to + k) % n].put_nowait(c) {
                conn = Some(e.into_inner());
            }
        }
    }
}

/// Each loop's side: registers the sockets it is handed and runs the
/// callback for each.
async fn dispatch<F, Fut>(
    inbox: Channel<TcpStream>,
    cb: F,
    options: ConnectOptions,
    stopped: Rc<Event>,
) where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future + 'static,
{
    struct SetOnDrop(Rc<Event>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.set();
        }
    }
    let _stopped = SetOnDrop(stopped);
    while let Ok(conn) = inbox.get().await {
        let Ok((r, w)) = open_connection_from_stream(conn, &options) else {
            continue;
        };
        let fut = cb(r, w);
        // Detached, as start_server's callback tasks.
        drop(asyncio_core::try_create_task(async move {
            fut.await;
        }));
    }
}

/// One worker's server from [`PoolListener::start_server`].
pub struct PoolServer {
    kind: Kind,
}

enum Kind {
    Own(Server),
    Handoff(Rc<HandoffServer>),
}

struct HandoffServer {
    inbox: Channel<TcpStream>,
    addr: SocketAddr,
    tasks: RefCell<Vec<Task<()>>>,
    stopped: Rc<Event>,
    /// Worker 0 (the acceptor): every inbox, shut when it closes.
    all: Vec<Channel<TcpStream>>,
}

impl HandoffServer {
    fn close(&self) {
        self.inbox.shutdown(true);
        for other in &self.all {
            other.shutdown(false);
        }
        for task in self.tasks.borrow().iter() {
            task.cancel();
        }
    }
}

impl PoolServer {
    /// The address served.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.kind {
            Kind::Own(s) => s.local_addr(),
            Kind::Handoff(h) => Some(h.addr),
        }
    }

    /// Serves until [`close`](Self::close) (or until the task awaiting it is
    /// cancelled, which closes the server), as `Server::serve_forever`.
    ///
    /// # Errors
    /// As [`Server::serve_forever`].
    pub async fn serve_forever(&self) -> io::Result<()> {
        match &self.kind {
            Kind::Own(s) => s.serve_forever().await,
            Kind::Handoff(h) => {
                struct CloseOnDrop<'a>(&'a HandoffServer);
                impl Drop for CloseOnDrop<'_> {
                    fn drop(&mut self) {
                        self.0.close();
                    }
                }
                let _close = CloseOnDrop(h);
                h.stopped.wait().await;
                Ok(())
            }
        }
    }

    /// Stops accepting. In `Handoff` mode, closing worker 0's server (the
    /// acceptor) stops the other loops' servers too; closing another
    /// worker's drops the connections handed to it and not yet taken in.
    pub fn close(&self) {
        match &self.kind {
            Kind::Own(s) => s.close(),
            Kind::Handoff(h) => h.close(),
        }
    }

    /// The underlying `Server`, in `ReusePort` mode.
    pub fn server(&self) -> Option<&Server> {
        match &self.kind {
            Kind::Own(s) => Some(s),
            Kind::Handoff(_) => None,
        }
    }
}

impl fmt::Debug for PoolServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolServer")
            .field("addr", &self.local_addr())
            .field(
                "mode",
                &match self.kind {
                    Kind::Own(_) => "one socket per loop",
                    Kind::Handoff(_) => "hand-off",
                },
            )
            .finish()
    }
}
