//! Subprocesses with a protocol: asyncio's `loop.subprocess_exec`,
//! `loop.subprocess_shell`, `SubprocessProtocol` and `SubprocessTransport`
//! (CPython's `base_subprocess.py`). Each pipe is a stream transport whose
//! protocol forwards to the subprocess protocol with the pipe's number.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::rc::{Rc, Weak};
use std::task::Context;

use asyncio_core::PanicError;

use super::stream::{Role, Transport, report};
use super::{Protocol, ProtocolCell};
use crate::subprocess::{Process, SpawnError, Stdio, Subprocess};

/// The callbacks of a subprocess protocol (asyncio's
/// `asyncio.SubprocessProtocol`): `connection_made` once, then
/// `pipe_data_received(fd, data)` for what the child writes to its stdout
/// (1) or stderr (2), `pipe_connection_lost(fd, exc)` as each pipe closes,
/// `process_exited` when the child exits, and `connection_lost` once the
/// child has exited and every pipe is closed.
///
/// ```
/// use asyncio::{SubprocessProtocol, SubprocessTransport};
///
/// #[derive(Default)]
/// struct Output { out: Vec<u8>, done: bool }
/// impl SubprocessProtocol for Output {
///     fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
///         if fd == 1 { self.out.extend_from_slice(data) }
///     }
///     fn connection_lost(&mut self, _exc: Option<std::io::Error>) { self.done = true }
/// }
///
/// let (out, code) = asyncio::run(async {
///     let (t, p) = asyncio::subprocess_exec(Output::default, "echo", ["hello"])?;
///     while !p.borrow().done {
///         asyncio::sleep(std::time::Duration::from_millis(1)).await;
///     }
///     std::io::Result::Ok((p.take().out, t.get_returncode()))
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(out, b"hello\n");
/// assert_eq!(code, Some(0));
/// ```
pub trait SubprocessProtocol: 'static {
    /// The child is started; `transport` is its handle.
    fn connection_made(&mut self, transport: &SubprocessTransport) {
        let _ = transport;
    }

    /// The child wrote `data` to pipe `fd` (1 stdout, 2 stderr).
    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        let _ = (fd, data);
    }

    /// Pipe `fd` (0 stdin, 1 stdout, 2 stderr) is closed; the error if it
    /// failed.
    fn pipe_connection_lost(&mut self, fd: i32, exc: Option<io::Error>) {
        let _ = (fd, exc);
    }

    /// The child exited ([`SubprocessTransport::get_returncode`] has its code).
    fn process_exited(&mut self) {}

    /// The child exited and every pipe is closed. Called once, last.
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }

    /// The stdin pipe's buffer went above its high-water mark.
    fn pause_writing(&mut self) {}

    /// The stdin pipe's buffer went back down to its low-water mark.
    fn resume_writing(&mut self) {}
}

#[derive(Default)]
struct State {
    /// Pipes not yet closed.
    open_pipes: usize,
    exited: bool,
    /// `process_exited` is owed: the protocol was borrowed when the child
    /// was reaped.
    exit_owed: bool,
    made: bool,
    lost: bool,
    /// A task is waiting for the borrowed protocol to come back.
    retrying: bool,
}

struct Inner {
    process: RefCell<Process>,
    pipes: RefCell<[Option<Transport>; 3]>,
    proto: RefCell<Option<Rc<RefCell<dyn SubprocessProtocol>>>>,
    st: RefCell<State>,
}

/// A child process run with a protocol (asyncio's
/// `asyncio.SubprocessTransport`): its pid and return code, its pipes as
/// transports, signals, and `close`. A cheap `Clone`.
#[derive(Clone)]
pub struct SubprocessTransport {
    inner: Rc<Inner>,
}

impl fmt::Debug for SubprocessTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubprocessTransport")
            .field("pid", &self.get_pid())
            .field("returncode", &self.get_returncode())
            .finish_non_exhaustive()
    }
}

/// Runs `program` with `args` (no shell) and `protocol_factory()`'s
/// protocol on it, with stdin, stdout and stderr all pipes (asyncio's
/// `loop.subprocess_exec` with its defaults). Use
/// [`subprocess_exec_with`] to choose where each stream goes.
///
/// # Errors
/// [`SpawnError`] naming the program (`NotFound`...), or no running loop.
pub fn subprocess_exec<P, I, S>(
    protocol_factory: impl FnOnce() -> P,
    program: impl AsRef<OsStr>,
    args: I,
) -> Result<(SubprocessTransport, ProtocolCell<P>), SpawnError>
where
    P: SubprocessProtocol,
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let builder = Subprocess::new(program)
        .args(args)
        .stdin(Stdio::Pipe)
        .stdout(Stdio::Pipe)
        .stderr(Stdio::Pipe);
    subprocess_exec_with(protocol_factory, builder)
}

/// Runs `cmd` through `/bin/sh -c` with the protocol, all three streams
/// pipes (asyncio's `loop.subprocess_shell`).
///
/// # Errors
/// As [`subprocess_exec`].
pub fn subprocess_shell<P: SubprocessProtocol>(
    protocol_factory: impl FnOnce() -> P,
    cmd: impl AsRef<OsStr>,
) -> Result<(SubprocessTransport, ProtocolCell<P>), SpawnError> {
    let builder = crate::subprocess::create_subprocess_shell(cmd)
        .stdin(Stdio::Pipe)
        .stdout(Stdio::Pipe)
        .stderr(Stdio::Pipe);
    subprocess_exec_with(protocol_factory, builder)
}

/// Starts the child `builder` describes (its streams, environment,
/// directory) with the protocol. A stream that is not a pipe has no pipe
/// transport.
///
/// # Errors
/// As [`subprocess_exec`].
pub fn subprocess_exec_with<P: SubprocessProtocol>(
    protocol_factory: impl FnOnce() -> P,
    builder: Subprocess,
) -> Result<(SubprocessTransport, ProtocolCell<P>), SpawnError> {
    let program = builder.program_name().to_owned();
    let err = |source| SpawnError::new(program.clone(), source);
    let (process, conns) = builder.spawn_raw().map_err(&err)?;
    let proto = Rc::new(RefCell::new(protocol_factory()));
    let inner = Rc::new(Inner {
        process: RefCell::new(process),
        pipes: RefCell::new([None, None, None]),
        proto: RefCell::new(Some(proto.clone() as Rc<RefCell<dyn SubprocessProtocol>>)),
        st: RefCell::new(State::default()),
    });
    // The pipes' transports first, reading paused, so that connection_made
    // can reach them and no data comes before it.
    for (fd, conn) in conns.into_iter().enumerate() {
        let Some(conn) = conn else { continue };
        let role = if fd == 0 {
            Role::WritePipe
        } else {
            Role::ReadPipe
        };
        let adapter: Rc<RefCell<dyn Protocol>> = Rc::new(RefCell::new(PipeProto {
            fd: fd as i32,
            owner: Rc::downgrade(&inner),
            ended: false,
        }));
        inner.st.borrow_mut().open_pipes += 1;
        let t = Transport::start(conn, adapter, role).map_err(&err)?;
        inner.pipes.borrow_mut()[fd] = Some(t);
    }
    let transport = SubprocessTransport {
        inner: inner.clone(),
    };
    inner.st.borrow_mut().made = true;
    if let Err(e) = inner.call(|p| p.connection_made(&transport)) {
        report("protocol.connection_made() failed", Some(e));
    }
    for t in inner.pipes.borrow().iter().flatten() {
        t.resume_reading();
    }
    let guard = Guard {
        inner: inner.clone(),
        finished: false,
    };
    let watch = asyncio_core::try_create_task(async move {
        let mut guard = guard;
        let code = std::future::poll_fn(|cx: &mut Context<'_>| {
            guard.inner.process.borrow_mut().poll_wait(cx)
        })
        .await;
        guard.finished = true;
        guard.inner.on_exit(code.is_ok());
    });
    watch.map_err(|e| err(io::Error::other(e)))?;
    Ok((transport, proto))
}

impl SubprocessTransport {
    /// The child's process id (asyncio's `get_pid`).
    pub fn get_pid(&self) -> u32 {
        self.inner.process.borrow().pid()
    }

    /// The child's exit code once it exited, minus the signal that ended it
    /// (asyncio's `get_returncode`).
    pub fn get_returncode(&self) -> Option<i32> {
        self.inner.process.borrow().returncode()
    }

    /// The transport of pipe `fd` (0 stdin, 1 stdout, 2 stderr), if that
    /// stream is a pipe (asyncio's `get_pipe_transport`).
    pub fn get_pipe_transport(&self, fd: i32) -> Option<Transport> {
        let i = usize::try_from(fd).ok()?;
        self.inner.pipes.borrow().get(i).cloned().flatten()
    }

    /// Sends `signal` to the child (asyncio's `send_signal`).
    ///
    /// # Errors
    /// `NotFound` (asyncio's `ProcessLookupError`) once the child is
    /// reaped; the OS's error.
    pub fn send_signal(&self, signal: i32) -> io::Result<()> {
        self.inner.process.borrow_mut().send_signal(signal)
    }

    /// Sends SIGTERM (asyncio's `terminate`).
    ///
    /// # Errors
    /// As [`send_signal`](Self::send_signal).
    pub fn terminate(&self) -> io::Result<()> {
        self.send_signal(libc::SIGTERM)
    }

    /// Sends SIGKILL (asyncio's `kill`).
    ///
    /// # Errors
    /// As [`send_signal`](Self::send_signal).
    pub fn kill(&self) -> io::Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    /// Closes every pipe and kills the child if it is still running
    /// (asyncio's `close`); `connection_lost` follows once it is reaped.
    pub fn close(&self) {
        let pipes: Vec<Transport> = self
            .inner
            .pipes
            .borrow()
            .iter()
            .flatten()
            .cloned()
            .collect();
        for t in pipes {
            t.close();
        }
        if self.get_returncode().is_none() {
            let _ = self.kill();
        }
    }

    /// Whether `close` was called or the child is done.
    pub fn is_closing(&self) -> bool {
        self.inner.st.borrow().lost
            || self
                .inner
                .pipes
                .borrow()
                .iter()
                .flatten()
                .all(Transport::is_closing)
                && self.get_returncode().is_some()
    }
}

impl Inner {
    fn call<R>(
        &self,
        f: impl FnOnce(&mut dyn SubprocessProtocol) -> R,
    ) -> Result<Option<R>, PanicError> {
        let Some(p) = self.proto.borrow().clone() else {
            return Ok(None);
        };
        let Ok(mut guard) = p.try_borrow_mut() else {
            return Ok(None);
        };
        let proto: &mut dyn SubprocessProtocol = &mut *guard;
        asyncio_core::call_user(move || f(proto)).map(Some)
    }

    fn on_exit(self: &Rc<Self>, reaped: bool) {
        {
            let mut st = self.st.borrow_mut();
            st.exited = true;
            st.exit_owed = reaped;
        }
        self.try_finish();
    }

    /// Whether the protocol is borrowed right now (held across an await).
    fn proto_busy(&self) -> bool {
        self.proto
            .borrow()
            .as_ref()
            .is_some_and(|p| p.try_borrow_mut().is_err())
    }

    fn on_pipe_lost(self: &Rc<Self>, fd: i32, exc: Option<io::Error>) {
        {
            let mut st = self.st.borrow_mut();
            st.open_pipes = st.open_pipes.saturating_sub(1);
        }
        if let Err(e) = self.call(move |p| p.pipe_connection_lost(fd, exc)) {
            report("protocol.pipe_connection_lost() failed", Some(e));
        }
        self.try_finish();
    }

    /// `connection_lost` once the child exited and every pipe closed.
    fn try_finish(self: &Rc<Self>) {
        if self.proto_busy() {
            // The protocol is borrowed: nothing owed to it may be skipped
            // (a borrow held across an await ends at a later turn).
            self.retry_later();
            return;
        }
        if std::mem::take(&mut self.st.borrow_mut().exit_owed)
            && let Err(e) = self.call(|p| p.process_exited())
        {
            report("protocol.process_exited() failed", Some(e));
        }
        {
            let st = self.st.borrow();
            if st.lost || !st.exited || st.open_pipes > 0 || !st.made {
                return;
            }
        }
        if self.proto_busy() {
            self.retry_later();
            return;
        }
        self.st.borrow_mut().lost = true;
        if let Err(e) = self.call(|p| p.connection_lost(None)) {
            report("protocol.connection_lost() failed", Some(e));
        }
        self.release();
    }

    /// Comes back to `try_finish` once the protocol is free (one task at a
    /// time; it ends with the loop, as every task does).
    fn retry_later(self: &Rc<Self>) {
        if std::mem::replace(&mut self.st.borrow_mut().retrying, true) {
            return;
        }
        let me = Rc::clone(self);
        let spawned = asyncio_core::try_create_task(async move {
            while me.proto_busy() {
                asyncio_core::sleep(std::time::Duration::from_millis(1)).await;
            }
            me.st.borrow_mut().retrying = false;
            me.try_finish();
        });
        if spawned.is_err() {
            self.st.borrow_mut().retrying = false;
        }
    }

    /// Lets the protocol and the pipes go (they hold the transport).
    fn release(&self) {
        let proto = self.proto.borrow_mut().take();
        if let Some(p) = proto {
            let _ = asyncio_core::call_user(move || drop(p));
        }
        let pipes = std::mem::take(&mut *self.pipes.borrow_mut());
        drop(pipes);
    }
}

/// A pipe's protocol: forwards to the subprocess protocol with the pipe's
/// number. A panic of the subprocess protocol's `pipe_data_received` goes
/// on to the pipe's transport, which treats it as its own protocol's fatal
/// error (as asyncio does), so `pipe_connection_lost` gets it.
struct PipeProto {
    fd: i32,
    owner: Weak<Inner>,
    /// `connection_lost` came: dropping it is the pipe's normal end.
    ended: bool,
}

impl Drop for PipeProto {
    /// A pipe protocol dropped without `connection_lost` (the loop dropped
    /// its transport's driver): nothing will finish the subprocess
    /// transport, so it lets its protocol go.
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if let Some(owner) = self.owner.upgrade()
            && !std::mem::replace(&mut owner.st.borrow_mut().lost, true)
        {
            owner.release();
        }
    }
}

impl PipeProto {
    fn with(&self, f: impl FnOnce(&mut dyn SubprocessProtocol)) {
        let Some(owner) = self.owner.upgrade() else {
            return;
        };
        let Some(p) = owner.proto.borrow().clone() else {
            return;
        };
        let Ok(mut guard) = p.try_borrow_mut() else {
            return;
        };
        f(&mut *guard);
    }
}

impl Protocol for PipeProto {
    fn connection_made(&mut self, transport: &Transport) {
        // Nothing is read before the subprocess protocol's connection_made
        // (paused here, before the pipe's driver can run).
        if self.fd != 0 {
            transport.pause_reading();
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        let fd = self.fd;
        self.with(|p| p.pipe_data_received(fd, data));
    }

    fn eof_received(&mut self) -> bool {
        false
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.ended = true;
        if let Some(owner) = self.owner.upgrade() {
            owner.on_pipe_lost(self.fd, exc);
        }
    }

    fn pause_writing(&mut self) {
        self.with(|p| p.pause_writing());
    }

    fn resume_writing(&mut self) {
        self.with(|p| p.resume_writing());
    }
}

/// Lets the protocol go if the watch task is dropped first (the loop
/// closed).
struct Guard {
    inner: Rc<Inner>,
    /// The child was seen to exit: the pipes' ends finish the rest.
    finished: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.finished || std::mem::replace(&mut self.inner.st.borrow_mut().lost, true) {
            return;
        }
        self.inner.release();
    }
}
