//! Subprocesses (asyncio's `asyncio.subprocess`): start a program with
//! [`create_subprocess_exec`] or [`create_subprocess_shell`], talk to it
//! through its pipes — a [`StreamWriter`] for its stdin, [`StreamReader`]s for
//! its stdout and stderr — and wait for it on the loop.
//!
//! ```
//! use asyncio::subprocess::{create_subprocess_exec, PIPE};
//!
//! asyncio::EventLoop::new().run_until_complete(async {
//!     let mut proc = create_subprocess_exec("echo", ["hello"]).stdout(PIPE).await?;
//!     let mut stdout = proc.stdout.take().expect("stdout is a pipe");
//!     assert_eq!(stdout.readline().await?, b"hello\n");
//!     assert_eq!(proc.wait().await?, 0);
//!     std::io::Result::Ok(())
//! }).unwrap().unwrap();
//! ```
//!
//! The child's exit is noticed by the loop's reactor: a pidfd in `epoll`
//! (Linux 5.3+), else `SIGCHLD` through the loop's signal handlers; no thread
//! and no polling. A [`Process`] dropped before its child was reaped kills the
//! child (as asyncio's transport does when closed) and reaps it, so no zombie
//! is left, also when the loop closes while children run.

mod watch;

use std::ffi::OsStr;
use std::fmt;
use std::future::IntoFuture;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::rc::Rc;
use std::task::{Context, Poll};

use asyncio_core::IoRegistration;

use crate::conn::Conn;
use crate::reader::{DEFAULT_LIMIT, StreamReader};
use crate::sock::Sock;
use crate::writer::StreamWriter;

#[doc(hidden)]
pub use watch::force_sigchld_fallback;
use watch::{Reaper, Watch};

/// Where a child's stdin, stdout or stderr goes (asyncio's `stdin=`,
/// `stdout=`, `stderr=` arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stdio {
    /// The parent's own stream (asyncio's `None`, the default).
    #[default]
    Inherit,
    /// A pipe to the parent: [`Process::stdin`], [`Process::stdout`] or
    /// [`Process::stderr`] (asyncio's `PIPE`).
    Pipe,
    /// `/dev/null` (asyncio's `DEVNULL`).
    DevNull,
    /// For stderr only: the same place as stdout (asyncio's `STDOUT`).
    Stdout,
}

/// A pipe to the parent (asyncio's `asyncio.subprocess.PIPE`).
pub const PIPE: Stdio = Stdio::Pipe;
/// `/dev/null` (asyncio's `asyncio.subprocess.DEVNULL`).
pub const DEVNULL: Stdio = Stdio::DevNull;
/// stderr into stdout (asyncio's `asyncio.subprocess.STDOUT`).
pub const STDOUT: Stdio = Stdio::Stdout;
/// The parent's own stream (asyncio's `None`).
pub const INHERIT: Stdio = Stdio::Inherit;

/// A child process could not be started (or its pipes set up). Names the
/// program; [`kind`](Self::kind) tells why (`NotFound` for a program that
/// does not exist, `PermissionDenied`, `InvalidInput` for [`STDOUT`] given
/// as stdin or stdout...).
///
/// ```
/// let err = asyncio::run(async {
///     asyncio::create_subprocess_exec("/nonexistent/program", ["x"]).spawn().unwrap_err()
/// })
/// .unwrap();
/// assert_eq!(err.program(), "/nonexistent/program");
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// ```
#[derive(Debug, thiserror::Error)]
#[error("cannot start {program:?}")]
pub struct SpawnError {
    program: String,
    #[source]
    source: io::Error,
}

impl SpawnError {
    pub(crate) fn new(program: String, source: io::Error) -> Self {
        SpawnError { program, source }
    }

    /// The program that could not be started.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The kind of the OS error (`NotFound` when the program does not exist).
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

impl From<SpawnError> for io::Error {
    fn from(e: SpawnError) -> Self {
        io::Error::new(e.kind(), e)
    }
}

/// A child process about to be started: what [`create_subprocess_exec`] and
/// [`create_subprocess_shell`] return. Set its streams, then `.await` it (or
/// call [`spawn`](Self::spawn)) to get the [`Process`].
///
/// Working directory, environment and the rest come from
/// [`std::process::Command`]: build one and start it with
/// [`from_command`](Self::from_command), or adjust it with
/// [`command_mut`](Self::command_mut).
///
/// ```
/// use asyncio::subprocess::PIPE;
///
/// let out = asyncio::run(async {
///     let builder: asyncio::Subprocess = asyncio::create_subprocess_exec("echo", ["hi"]).stdout(PIPE);
///     let mut child = builder.spawn().unwrap();
///     let (stdout, _) = child.communicate(None).await.unwrap();
///     stdout.unwrap()
/// })
/// .unwrap();
/// assert_eq!(out, b"hi\n");
/// ```
pub struct Subprocess {
    command: Command,
    program: String,
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
    limit: usize,
}

impl fmt::Debug for Subprocess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subprocess")
            .field("command", &self.command)
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("limit", &self.limit)
            .finish()
    }
}

/// Starts `program` with `args`, without a shell (asyncio's
/// `create_subprocess_exec(program, *args)`). The program is looked up in
/// `PATH` if it has no `/`. Set the streams on the result, then `.await` it.
/// Without arguments, [`Subprocess::new(program)`](Subprocess::new) says it
/// more simply than an empty array (`[] as [&str; 0]`).
///
/// ```
/// use asyncio::subprocess::{create_subprocess_exec, DEVNULL};
///
/// asyncio::EventLoop::new().run_until_complete(async {
///     let mut proc = create_subprocess_exec("sh", ["-c", "exit 3"]).stdout(DEVNULL).await?;
///     assert_eq!(proc.wait().await?, 3);
///     assert_eq!(proc.returncode(), Some(3));
///
///     let err = create_subprocess_exec("no-such-program-here", [""; 0]).await.unwrap_err();
///     assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
///     assert_eq!(err.program(), "no-such-program-here");
///     std::io::Result::Ok(())
/// }).unwrap().unwrap();
/// ```
pub fn create_subprocess_exec<I, S>(program: impl AsRef<OsStr>, args: I) -> Subprocess
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command.args(args);
    Subprocess::from_command(command)
}

/// Runs `cmd` through `/bin/sh -c` (asyncio's `create_subprocess_shell`).
/// Quoting the command is the caller's job, as in asyncio.
///
/// ```
/// use asyncio::subprocess::{create_subprocess_shell, PIPE, STDOUT};
///
/// asyncio::EventLoop::new().run_until_complete(async {
///     let mut proc = create_subprocess_shell("echo out; echo err >&2")
///         .stdout(PIPE)
///         .stderr(STDOUT)
///         .await?;
///     let (out, err) = proc.communicate(None).await?;
///     assert_eq!(out.as_deref(), Some(&b"out\nerr\n"[..]));
///     assert_eq!(err, None);
///     assert_eq!(proc.returncode(), Some(0));
///     std::io::Result::Ok(())
/// }).unwrap().unwrap();
/// ```
pub fn create_subprocess_shell(cmd: impl AsRef<OsStr>) -> Subprocess {
    let mut command = Command::new("/bin/sh");
    command.arg("-c").arg(cmd);
    Subprocess::from_command(command)
}

impl Subprocess {
    /// A builder for `program` with no arguments yet, in the shape of
    /// [`std::process::Command`]: add them with [`arg`](Self::arg) and
    /// [`args`](Self::args), set the streams, then `.await` it. The same as
    /// `create_subprocess_exec(program, [])` without having to name the
    /// type of an empty argument list.
    ///
    /// ```
    /// use asyncio::subprocess::PIPE;
    ///
    /// let out = asyncio::run(async {
    ///     let mut child = asyncio::Subprocess::new("echo")
    ///         .arg("hello")
    ///         .args(["from", "asyncio"])
    ///         .env("LC_ALL", "C")
    ///         .stdout(PIPE)
    ///         .await?;
    ///     let (stdout, _) = child.communicate(None).await?;
    ///     std::io::Result::Ok(stdout.unwrap())
    /// })
    /// .unwrap()
    /// .unwrap();
    /// assert_eq!(out, b"hello from asyncio\n");
    ///
    /// // No arguments at all:
    /// let code = asyncio::run(async { asyncio::Subprocess::new("true").await?.wait().await })
    ///     .unwrap()
    ///     .unwrap();
    /// assert_eq!(code, 0);
    /// ```
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Subprocess::from_command(Command::new(program))
    }

    /// Adds one argument (`Command::arg`).
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    /// Adds arguments (`Command::args`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    /// Sets several environment variables of the child (`Command::envs`).
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.command.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment
    /// (`Command::env_remove`).
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.command.env_remove(key);
        self
    }

    /// Starts the child with an empty environment, apart from what
    /// [`env`](Self::env) sets afterwards (`Command::env_clear`).
    pub fn env_clear(mut self) -> Self {
        self.command.env_clear();
        self
    }

    /// Starts from a [`std::process::Command`] (with its arguments, working
    /// directory, environment...); its stdio settings are replaced by this
    /// builder's (all [`INHERIT`] unless set).
    pub fn from_command(command: Command) -> Self {
        let program = command.get_program().to_string_lossy().into_owned();
        Subprocess {
            command,
            program,
            stdin: Stdio::Inherit,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            limit: DEFAULT_LIMIT,
        }
    }

    /// The command, to set what the builder does not (working directory,
    /// environment, `process_group`...).
    pub fn command_mut(&mut self) -> &mut Command {
        &mut self.command
    }

    /// Where the child's stdin comes from ([`PIPE`], [`DEVNULL`], [`INHERIT`]).
    pub fn stdin(mut self, stdin: Stdio) -> Self {
        self.stdin = stdin;
        self
    }

    /// Where the child's stdout goes ([`PIPE`], [`DEVNULL`], [`INHERIT`]).
    pub fn stdout(mut self, stdout: Stdio) -> Self {
        self.stdout = stdout;
        self
    }

    /// Where the child's stderr goes ([`PIPE`], [`DEVNULL`], [`INHERIT`], or
    /// [`STDOUT`]: wherever stdout goes).
    pub fn stderr(mut self, stderr: Stdio) -> Self {
        self.stderr = stderr;
        self
    }

    /// The buffer limit of the stdout and stderr readers (asyncio's `limit=`,
    /// 64 KiB by default).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The working directory of the child (`Command::current_dir`).
    pub fn current_dir(mut self, dir: impl AsRef<std::path::Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Sets an environment variable of the child (`Command::env`).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Starts the child now. Must be called on a running loop (awaiting the
    /// builder calls it).
    ///
    /// # Errors
    /// [`SpawnError`] naming the program: the OS error of starting it
    /// (`NotFound`, `PermissionDenied`...), `InvalidInput` for [`STDOUT`]
    /// given as stdin or stdout, or no running loop. No child is left behind.
    pub fn spawn(self) -> Result<Process, SpawnError> {
        let program = self.program.clone();
        self.spawn_inner()
            .map_err(|source| SpawnError { program, source })
    }

    /// The program's name, for errors.
    pub(crate) fn program_name(&self) -> &str {
        &self.program
    }

    fn spawn_inner(self) -> io::Result<Process> {
        let limit = self.limit;
        let (mut process, [stdin, stdout, stderr]) = self.spawn_raw()?;
        process.stdin = stdin.map(StreamWriter::new);
        process.stdout = stdout.map(|c| StreamReader::new(c, limit));
        process.stderr = stderr.map(|c| StreamReader::new(c, limit));
        Ok(process)
    }

    /// Starts the child; its pipes come back as connections (stdin, stdout,
    /// stderr), for the streams or for pipe transports.
    pub(crate) fn spawn_raw(self) -> io::Result<(Process, [Option<Rc<Conn>>; 3])> {
        let Subprocess {
            mut command,
            stdin,
            stdout,
            stderr,
            ..
        } = self;
        if stdin == Stdio::Stdout || stdout == Stdio::Stdout {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "STDOUT is only valid as stderr",
            ));
        }
        asyncio_core::get_running_loop().map_err(io::Error::other)?;
        if watch::use_sigchld() {
            watch::prepare_sigchld()?;
        }
        command.stdin(to_std(stdin));
        // stderr=STDOUT: both go to one pipe of ours (or to wherever stdout
        // goes), which `std` cannot say by itself.
        let mut merged = None;
        if stderr == Stdio::Stdout {
            match stdout {
                Stdio::Pipe => {
                    let (r, w) = std::io::pipe()?;
                    command.stdout(w.try_clone()?);
                    command.stderr(w);
                    merged = Some(OwnedFd::from(r));
                }
                Stdio::Inherit => {
                    command.stdout(std::process::Stdio::inherit());
                    command.stderr(io::stdout().as_fd().try_clone_to_owned()?);
                }
                _ => {
                    command.stdout(std::process::Stdio::null());
                    command.stderr(std::process::Stdio::null());
                }
            }
        } else {
            command.stdout(to_std(stdout));
            command.stderr(to_std(stderr));
        }
        let mut child = command.spawn()?;
        // Our copies of a merged pipe's write end go with the command, so
        // the reader sees the end of the stream when the child is done.
        drop(command);
        let pid = child.id();
        let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        // From here a failure drops the reaper, which kills and reaps.
        let reaper = Reaper::new(child, Watch::at_spawn());
        let stdin = pipes
            .0
            .map(|p| pipe_writer(mio::unix::pipe::Sender::from(p)))
            .transpose()?;
        let stdout = match merged {
            Some(fd) => Some(pipe_reader(fd.into())?),
            None => pipes.1.map(|p| pipe_reader(p.into())).transpose()?,
        };
        let stderr = pipes.2.map(|p| pipe_reader(p.into())).transpose()?;
        let process = Process {
            stdin: None,
            stdout: None,
            stderr: None,
            pid,
            reaper,
            input_written: false,
            output: None,
        };
        Ok((process, [stdin, stdout, stderr]))
    }
}

impl IntoFuture for Subprocess {
    type Output = Result<Process, SpawnError>;
    type IntoFuture = std::future::Ready<Result<Process, SpawnError>>;

    /// Starts the child (see [`spawn`](Subprocess::spawn)); starting does not
    /// wait, as the fork and exec happen at once.
    fn into_future(self) -> Self::IntoFuture {
        std::future::ready(self.spawn())
    }
}

fn to_std(s: Stdio) -> std::process::Stdio {
    match s {
        Stdio::Inherit | Stdio::Stdout => std::process::Stdio::inherit(),
        Stdio::Pipe => std::process::Stdio::piped(),
        Stdio::DevNull => std::process::Stdio::null(),
    }
}

fn pipe_reader(p: mio::unix::pipe::Receiver) -> io::Result<Rc<Conn>> {
    p.set_nonblocking(true)?;
    let sock = Sock::PipeRead(p);
    let reg = IoRegistration::new(sock.fd())?;
    Ok(Conn::new(sock, reg))
}

fn pipe_writer(p: mio::unix::pipe::Sender) -> io::Result<Rc<Conn>> {
    p.set_nonblocking(true)?;
    let sock = Sock::PipeWrite(p);
    let reg = IoRegistration::new(sock.fd())?;
    Ok(Conn::new(sock, reg))
}

/// A running (or finished) child process (asyncio's `Process`).
///
/// Its pipes, for the streams set to [`PIPE`], are public fields to `take()`:
/// `stdin` is a [`StreamWriter`] (close it, or drop it, to send end of file),
/// `stdout` and `stderr` are [`StreamReader`]s.
///
/// Dropping a `Process` whose child has not been reaped kills the child
/// (SIGKILL, as asyncio's transport does when it is closed with the child
/// still running) and reaps it on the loop, or right there if no loop runs:
/// no zombie is left. Call [`wait`](Self::wait) first to let it finish.
///
/// ```
/// let code = asyncio::run(async {
///     let mut child: asyncio::Process = asyncio::create_subprocess_shell("exit 3").spawn().unwrap();
///     child.wait().await.unwrap()
/// })
/// .unwrap();
/// assert_eq!(code, 3);
/// ```
pub struct Process {
    /// The child's stdin, if it is a [`PIPE`].
    pub stdin: Option<StreamWriter>,
    /// The child's stdout, if it is a [`PIPE`] (with stderr too under
    /// `stderr(STDOUT)`).
    pub stdout: Option<StreamReader>,
    /// The child's stderr, if it is a [`PIPE`].
    pub stderr: Option<StreamReader>,
    pid: u32,
    reaper: Reaper,
    /// Whether a `communicate` already handed its input to the stdin writer
    /// (a retried `communicate` must not write it twice).
    input_written: bool,
    /// The output a `communicate` read to the end, kept while it waits for
    /// the child (a retry returns it).
    output: Option<CommunicateOutput>,
}

/// What `communicate` returns: stdout and stderr, each if it is a pipe.
type CommunicateOutput = (Option<Vec<u8>>, Option<Vec<u8>>);

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid)
            .field("returncode", &self.returncode())
            .finish_non_exhaustive()
    }
}

/// asyncio's `returncode`: the exit code, or minus the signal that ended it.
fn returncode(s: ExitStatus) -> i32 {
    match (s.code(), s.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => -sig,
        (None, None) => i32::MIN,
    }
}

impl Process {
    /// The child's process id (asyncio's `pid`).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit code once the child is reaped, `None` before (asyncio's
    /// `returncode`); minus the signal number if a signal ended it (`-9` after
    /// [`kill`](Self::kill)). Set by [`wait`](Self::wait) and
    /// [`communicate`](Self::communicate); it does not check the child.
    pub fn returncode(&self) -> Option<i32> {
        self.reaper.status().map(returncode)
    }

    /// The full exit status once the child is reaped.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.reaper.status()
    }

    /// Waits for the child to exit, reaps it and returns its
    /// [`returncode`](Self::returncode) (asyncio's `wait`). Cancel-safe: a
    /// `wait` dropped before the end loses nothing, the next one gets the code.
    ///
    /// As in asyncio, waiting while the child writes to a [`PIPE`] that nobody
    /// reads can deadlock once the pipe is full: read it, or use
    /// [`communicate`](Self::communicate).
    ///
    /// # Errors
    /// If the loop closed, or `waitpid` failed.
    pub async fn wait(&mut self) -> io::Result<i32> {
        std::future::poll_fn(|cx| self.poll_wait(cx)).await
    }

    /// [`wait`](Self::wait) as a poll, for a task that holds the process
    /// behind a `RefCell` (the subprocess transport).
    pub(crate) fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<i32>> {
        self.reaper.poll_exit(cx).map_ok(returncode)
    }

    /// Writes `input` (if any) to stdin and closes it, reads stdout and stderr
    /// to their end, and waits for the child (asyncio's `communicate`). The
    /// three go on at once, so neither side blocks the other however much
    /// flows each way. Returns `(stdout, stderr)`, each `None` unless that
    /// stream is a [`PIPE`] (it is then taken from the process).
    ///
    /// A child that exits without reading all of `input` is not an error
    /// (asyncio ignores `BrokenPipeError` here too). `input` with no stdin
    /// pipe is ignored.
    ///
    /// Cancel-safe, so it can be retried, as `subprocess`'s `communicate`
    /// after `TimeoutExpired`: a call cut short (by [`timeout`], `wait_for`,
    /// a cancelled task) leaves the pipes with the process and what they had
    /// already delivered in their buffers; the next call returns all of the
    /// output, none lost. The first call hands `input` to stdin; a retry does
    /// not write it again (pass the same or `None`).
    ///
    /// [`timeout`]: asyncio_core::timeout
    ///
    /// ```
    /// use std::time::Duration;
    /// use asyncio::subprocess::PIPE;
    ///
    /// let out = asyncio::run(async {
    ///     let mut child = asyncio::create_subprocess_shell("echo early; sleep 0.2; echo late")
    ///         .stdout(PIPE)
    ///         .await?;
    ///     // Cut short by the timeout, most likely after "early" came.
    ///     let first = asyncio::wait_for(child.communicate(None), Duration::from_millis(50)).await;
    ///     if first.is_ok() {
    ///         return Ok(b"early\nlate\n".to_vec()); // a very slow machine
    ///     }
    ///     // The retry returns everything the child wrote.
    ///     let (stdout, _) = child.communicate(None).await?;
    ///     std::io::Result::Ok(stdout.unwrap())
    /// })
    /// .unwrap()
    /// .unwrap();
    /// assert_eq!(out, b"early\nlate\n");
    /// ```
    ///
    /// # Errors
    /// A read error, or the loop closed.
    pub async fn communicate(&mut self, input: Option<&[u8]>) -> io::Result<CommunicateOutput> {
        if self.output.is_none() {
            let Process {
                stdin,
                stdout,
                stderr,
                input_written,
                ..
            } = self;
            let feed = async move {
                if let Some(w) = stdin.as_mut() {
                    if !*input_written {
                        *input_written = true;
                        if let Some(data) = input {
                            w.write(data);
                        }
                    }
                    if let Err(e) = w.drain().await {
                        return ignore_broken(e);
                    }
                    w.close();
                    if let Err(e) = w.wait_closed().await {
                        return ignore_broken(e);
                    }
                }
                Ok(())
            };
            // The readers keep every byte buffered until both reached their
            // end, and stay in the process until then: nothing is lost if
            // this future is dropped half-way.
            let out = async {
                match stdout.as_mut() {
                    Some(r) => r.fill_to_eof().await,
                    None => Ok(()),
                }
            };
            let err = async {
                match stderr.as_mut() {
                    Some(r) => r.fill_to_eof().await,
                    None => Ok(()),
                }
            };
            let (fed, out, err) = join3(feed, out, err).await;
            self.stdin = None;
            fed?;
            out?;
            err?;
            // Both at their end: the output moves to the process, where it
            // waits for the child's exit (a `wait` cut short keeps it too).
            let out = self.stdout.take().map(|mut r| r.take_all());
            let err = self.stderr.take().map(|mut r| r.take_all());
            self.output = Some((out, err));
        }
        self.wait().await?;
        Ok(self.output.take().expect("collected above"))
    }

    /// Sends `signal` to the child (asyncio's `send_signal`).
    ///
    /// # Errors
    /// `NotFound` (asyncio's `ProcessLookupError`) once the child is reaped;
    /// the OS error of `kill(2)` otherwise (`InvalidInput` for a bad number).
    pub fn send_signal(&mut self, signal: i32) -> io::Result<()> {
        // A reaped pid may already name another process: never signal it.
        let Some(pid) = self.reaper.live_pid() else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the process has exited and been reaped",
            ));
        };
        // With a pidfd open, signal through it: a pid that someone else
        // reaped (`try_wait` then fails with ECHILD and no status is
        // recorded) may already name another process; the pidfd cannot.
        // (Linux only; elsewhere there are no pidfds.)
        #[cfg(target_os = "linux")]
        if let Some(fd) = self.reaper.pidfd() {
            // SAFETY: pidfd_send_signal(2) takes a descriptor we own, a
            // signal number, a null `siginfo` and flags; it touches none of
            // our memory.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd,
                    signal,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
            if rc == -1 {
                let err = io::Error::last_os_error();
                return Err(if err.raw_os_error() == Some(libc::ESRCH) {
                    io::Error::new(io::ErrorKind::NotFound, "the process has exited")
                } else {
                    err
                });
            }
            return Ok(());
        }
        let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
        // SAFETY: kill(2) takes two integers and touches none of our memory;
        // the pid is our unreaped child, so it names no other process.
        if unsafe { libc::kill(pid, signal) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sends SIGTERM (asyncio's `terminate`).
    ///
    /// # Errors
    /// As [`send_signal`](Self::send_signal).
    pub fn terminate(&mut self) -> io::Result<()> {
        self.send_signal(libc::SIGTERM)
    }

    /// Sends SIGKILL (asyncio's `kill`); [`wait`](Self::wait) then returns
    /// `-9`.
    ///
    /// # Errors
    /// As [`send_signal`](Self::send_signal).
    pub fn kill(&mut self) -> io::Result<()> {
        self.send_signal(libc::SIGKILL)
    }
}

fn ignore_broken(e: io::Error) -> io::Result<()> {
    match e.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Ok(()),
        _ => Err(e),
    }
}

/// Polls three futures together until all are done.
async fn join3<A, B, C>(
    a: impl Future<Output = A>,
    b: impl Future<Output = B>,
    c: impl Future<Output = C>,
) -> (A, B, C) {
    use std::pin::pin;
    use std::task::Poll;
    let (mut a, mut b, mut c) = (pin!(a), pin!(b), pin!(c));
    let (mut ra, mut rb, mut rc) = (None, None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        if rc.is_none()
            && let Poll::Ready(v) = c.as_mut().poll(cx)
        {
            rc = Some(v);
        }
        if ra.is_some() && rb.is_some() && rc.is_some() {
            Poll::Ready((
                ra.take().expect("checked"),
                rb.take().expect("checked"),
                rc.take().expect("checked"),
            ))
        } else {
            Poll::Pending
        }
    })
    .await
}
