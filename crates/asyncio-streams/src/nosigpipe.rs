//! Writing to a pipe whose reader has gone, without SIGPIPE.
//!
//! A write to such a pipe fails with `EPIPE` and also raises SIGPIPE, whose
//! default action ends the process. Rust's `main` sets SIGPIPE to "ignore"
//! before it runs, and so does CPython; a program whose `main` is not Rust's
//! (a C host, a test harness that resets it) keeps the default. Sockets have a
//! per-call or per-socket way out (`MSG_NOSIGNAL`, which std and socket2 pass
//! to `send` on Linux and the BSDs; `SO_NOSIGPIPE`, which mio and socket2 set
//! on the sockets they make on macOS, and accepted sockets inherit); a pipe has
//! none that every Unix shares. So the write blocks SIGPIPE on this thread
//! for its duration and, if it failed with `EPIPE`, takes the SIGPIPE it
//! raised (the signal goes to the thread that wrote) off the pending set
//! before the old mask comes back: the caller sees `BrokenPipe` and nothing
//! else happens. Three extra system calls per write, on pipes only (a
//! subprocess's stdin).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

fn sigpipe_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes the set it is given; sigaddset then
    // adds a valid signal number to that initialized set.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
        set.assume_init()
    }
}

fn sigpipe_pending() -> bool {
    let mut pending = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigpending fills the set it is given; it is read only if the
    // call succeeded.
    unsafe {
        libc::sigpending(pending.as_mut_ptr()) == 0
            && libc::sigismember(pending.as_ptr(), libc::SIGPIPE) == 1
    }
}

/// `write(2)` on a pipe, with SIGPIPE neither delivered nor left pending.
pub(crate) fn write_pipe(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    let only_pipe = sigpipe_set();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: both sets are valid; the old mask is written into `old`.
    let blocked = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &only_pipe, old.as_mut_ptr()) };
    if blocked != 0 {
        return Err(io::Error::from_raw_os_error(blocked));
    }
    // SAFETY: pthread_sigmask succeeded, so it wrote the old mask.
    let old = unsafe { old.assume_init() };
    // SAFETY: `old` is an initialized set.
    let was_blocked = unsafe { libc::sigismember(&old, libc::SIGPIPE) } == 1;
    // A SIGPIPE pending from before (possible only if it was blocked
    // already) is not ours to take.
    let pending_before = was_blocked && sigpipe_pending();
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes; `fd` is a
    // descriptor the caller owns.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    let result = if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    };
    if let Err(e) = &result
        && e.raw_os_error() == Some(libc::EPIPE)
        && !pending_before
        && sigpipe_pending()
    {
        let mut sig = 0;
        // SAFETY: SIGPIPE is blocked and pending, so sigwait returns at once
        // with it, writing the number into `sig`.
        unsafe { libc::sigwait(&only_pipe, &mut sig) };
    }
    if !was_blocked {
        // SAFETY: restores the mask read above; `old` is initialized.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    }
    result
}
