//! Noticing that a child exited, through the loop's reactor, and reaping it.
//!
//! On Linux 5.3 and later a child still running when it is first waited for
//! gets a pidfd (`pidfd_open`), registered with the loop's `epoll` through
//! [`IoRegistration`]: it becomes readable when the child exits, and the child
//! is then reaped with `waitpid(pid, WNOHANG)` (`Child::try_wait`). A child
//! that already exited by then is reaped at once, without a pidfd. No thread,
//! no polling.
//!
//! Where `pidfd_open` does not exist (`ENOSYS`, older kernels, or `EPERM`
//! from a seccomp filter; and on every system but Linux: macOS, the BSDs), the
//! loop
//! handles `SIGCHLD` (`EventLoop::add_signal_handler`, once per loop) and each
//! waiting child tries `waitpid(pid, WNOHANG)` for itself whenever one arrives:
//! only our own children are reaped, never another library's.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, ExitStatus};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use asyncio_core::IoRegistration;

/// `pidfd_open` is not available (`ENOSYS`, or `EPERM` from a seccomp
/// filter): don't try again.
static NO_PIDFD: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Tests force the `SIGCHLD` fallback on their thread.
    static FORCE_SIGCHLD: Cell<bool> = const { Cell::new(false) };
    /// Tasks waiting for a child under the `SIGCHLD` fallback.
    static SIGCHLD_WAITERS: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
    /// Alive while the loop that runs our `SIGCHLD` handler keeps it.
    static SIGCHLD_HANDLER: RefCell<Weak<()>> = const { RefCell::new(Weak::new()) };
}

/// Makes the children spawned from now on, on this thread, use the `SIGCHLD`
/// fallback instead of a pidfd (for tests of the fallback).
#[doc(hidden)]
pub fn force_sigchld_fallback(on: bool) {
    FORCE_SIGCHLD.with(|f| f.set(on));
}

/// How one child's exit is noticed.
pub(super) enum Watch {
    /// Not watched yet: the first wait looks whether the child has exited
    /// already (one `waitpid`) and opens a pidfd only if it has not, so a
    /// short-lived child waited for after it ended costs no descriptor and
    /// no `epoll` registration.
    Unwatched,
    /// The registration is declared first so it leaves `epoll` before the
    /// pidfd closes.
    Pidfd {
        reg: IoRegistration,
        // Read only to signal through it, which is Linux's pidfd_send_signal.
        #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
        fd: OwnedFd,
    },
    Sigchld,
}

#[cfg(target_os = "linux")]
fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    use std::os::fd::{FromRawFd, RawFd};

    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: pidfd_open(2) takes a pid and flags and touches none of our
    // memory; it returns a new file descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: the kernel just returned this descriptor to us and nothing
    // else owns it (pidfds are always close-on-exec).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// No pidfds outside Linux: `ENOSYS` sends every child to the `SIGCHLD`
/// path, as on a Linux kernel older than 5.3.
#[cfg(not(target_os = "linux"))]
fn pidfd_open(_pid: u32) -> io::Result<OwnedFd> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// Installs the `SIGCHLD` handler on the running loop unless it has it.
/// Called before a child is spawned, so its exit cannot be missed.
pub(super) fn prepare_sigchld() -> io::Result<()> {
    if SIGCHLD_HANDLER.with(|h| h.borrow().upgrade().is_some()) {
        return Ok(());
    }
    let lp = asyncio_core::get_running_loop().map_err(io::Error::other)?;
    let token = Rc::new(());
    SIGCHLD_HANDLER.with(|h| *h.borrow_mut() = Rc::downgrade(&token));
    lp.add_signal_handler(libc::SIGCHLD, move || {
        let _alive = &token;
        let waiters = SIGCHLD_WAITERS.with(|w| std::mem::take(&mut *w.borrow_mut()));
        waiters.into_iter().for_each(Waker::wake);
    })
    .map_err(io::Error::other)
}

/// Whether children are watched through `SIGCHLD` on this thread.
pub(super) fn use_sigchld() -> bool {
    cfg!(not(target_os = "linux"))
        || FORCE_SIGCHLD.with(Cell::get)
        || NO_PIDFD.load(Ordering::Relaxed)
}

impl Watch {
    /// How a child just spawned is watched: under the `SIGCHLD` fallback the
    /// handler was installed before the spawn, so nothing is missed;
    /// otherwise its pidfd is opened when it is first waited for.
    pub(super) fn at_spawn() -> Watch {
        if use_sigchld() {
            Watch::Sigchld
        } else {
            Watch::Unwatched
        }
    }

    /// Starts watching a child that has not exited yet (or not been reaped).
    fn new(pid: u32) -> io::Result<Watch> {
        if use_sigchld() {
            prepare_sigchld()?;
            return Ok(Watch::Sigchld);
        }
        match pidfd_open(pid) {
            Ok(fd) => {
                let reg = IoRegistration::new(fd.as_raw_fd())?;
                Ok(Watch::Pidfd { reg, fd })
            }
            // ENOSYS: a kernel before 5.3; EPERM: a seccomp filter that
            // refuses system calls it does not know (older container runtimes).
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                NO_PIDFD.store(true, Ordering::Relaxed);
                prepare_sigchld()?;
                Ok(Watch::Sigchld)
            }
            Err(e) => Err(e),
        }
    }
}

/// A child and how to notice its exit; kills and reaps the child if dropped
/// before it was reaped.
pub(super) struct Reaper {
    /// Taken only by `drop`, to hand it to a clean-up task.
    child: Option<Child>,
    watch: Option<Watch>,
    status: Option<ExitStatus>,
    /// This reaper already belongs to a clean-up task: if it is dropped
    /// unfinished (the loop closed), it waits for the killed child itself.
    handed_off: bool,
}

impl Reaper {
    pub(super) fn new(child: Child, watch: Watch) -> Reaper {
        Reaper {
            child: Some(child),
            watch: Some(watch),
            status: None,
            handed_off: false,
        }
    }

    fn child(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("a reaper holds its child until it is dropped")
    }

    /// Ready with the exit status once the child has exited and is reaped.
    pub(super) fn poll_exit(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        if let Some(s) = self.status {
            return Poll::Ready(Ok(s));
        }
        if matches!(self.watch, Some(Watch::Unwatched)) {
            if let Some(s) = self.child().try_wait()? {
                return Poll::Ready(Ok(self.reaped(s)));
            }
            // Still running: from now on the reactor tells when it ends. (A
            // fallback to `SIGCHLD` decided only now installs the handler
            // first; the `try_wait` below catches an exit before it.)
            let pid = self.child().id();
            self.watch = Some(Watch::new(pid)?);
        }
        match &self.watch {
            Some(Watch::Pidfd { reg, .. }) => {
                std::task::ready!(reg.poll_readable(cx))?;
                if let Some(s) = self.child().try_wait()? {
                    return Poll::Ready(Ok(self.reaped(s)));
                }
                // Readable but not yet waitable (the kernel reports the exit
                // a moment before the status is there): the readiness stays
                // set, so come back at the next turn of the loop.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(Watch::Sigchld | Watch::Unwatched) | None => {
                // Registered before checking: a SIGCHLD that comes after the
                // check wakes us.
                SIGCHLD_WAITERS.with(|w| {
                    let mut w = w.borrow_mut();
                    if !w.iter().any(|x| x.will_wake(cx.waker())) {
                        w.push(cx.waker().clone());
                    }
                });
                match self.child().try_wait()? {
                    Some(s) => Poll::Ready(Ok(self.reaped(s))),
                    None => Poll::Pending,
                }
            }
        }
    }

    fn reaped(&mut self, s: ExitStatus) -> ExitStatus {
        self.status = Some(s);
        self.watch = None;
        s
    }

    /// The exit status, once reaped.
    pub(super) fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// The child's pid while it is not reaped (after that the number may
    /// belong to another process).
    pub(super) fn live_pid(&mut self) -> Option<u32> {
        let id = self.child().id();
        self.status.is_none().then_some(id)
    }

    /// The child's pidfd, while one is open: it names this process for as
    /// long as it is open, even once the process was reaped by someone else
    /// and its pid reused.
    #[cfg(target_os = "linux")]
    pub(super) fn pidfd(&self) -> Option<std::os::fd::RawFd> {
        match &self.watch {
            Some(Watch::Pidfd { fd, .. }) => Some(fd.as_raw_fd()),
            _ => None,
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.status.is_some() || matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        // asyncio's transport kills a child that is still running when it is
        // closed (or garbage-collected); the child is then reaped so that
        // no zombie is left.
        let _ = child.kill();
        if !self.handed_off
            && let Some(watch) = self.watch.take()
        {
            let mut rest = Reaper {
                child: Some(child),
                watch: Some(watch),
                status: None,
                handed_off: true,
            };
            // The task waits on the reactor; if the loop cannot take it (not
            // running, or closed) the future is dropped unpolled and `rest`
            // waits for the killed child itself, just below.
            let _ = asyncio_core::try_create_task(async move {
                let _ = std::future::poll_fn(|cx| rest.poll_exit(cx)).await;
            });
            return;
        }
        // Nowhere to wait but here; the child was sent SIGKILL, so this is
        // short.
        let _ = child.wait();
    }
}
