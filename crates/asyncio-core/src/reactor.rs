//! Where the loop waits when nothing is ready.
//!
//! A loop starts with no poller and no file descriptor at all: until it
//! needs one, it waits by parking its thread (a futex on Linux) with the next
//! timer as the timeout, and another thread wakes it by unparking it. The
//! first I/O registration, or the first wait of a loop that handles signals,
//! makes the poller (`epoll` through `mio`) and its wake-up (an eventfd on
//! Linux, `mio::Waker` elsewhere); from then on the loop waits in the poller
//! and other threads wake it through that. `asyncio::run(async {})` thus
//! makes no file descriptor and no system call for its loop.
//!
//! Under Miri, which cannot run `epoll`, the loop always parks and I/O
//! registration is unavailable.

use std::cell::RefCell;
#[cfg(not(miri))]
use std::io;
use std::time::Duration;

use slab::Slab;

use crate::io::{IoEntry, Wakeup};

/// How the loop sleeps: told to other threads through `Shared::sleeping`, so
/// that an injection wakes it the right way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SleepMode {
    /// Parked, no poller: wake with `unpark`.
    Park,
    /// In the poller's wait: wake through its wake-up fd.
    Poll,
}

/// Wakes the loop's thread out of its wait; `Send + Sync`, kept in `Shared`.
pub(crate) struct Notifier {
    /// The loop's own thread, unparked when it sleeps without a poller.
    thread: crate::sync::Thread,
    /// The poller's wake-up, published once the loop made its poller (on
    /// its own thread, before it first sleeps in it).
    #[cfg(not(miri))]
    poll_wake: std::sync::OnceLock<PollWake>,
    /// Under loom: the eventfd's counter as the models see it (a wake is
    /// kept until the next wait consumes it); the poller's wait waits on it.
    #[cfg(loom)]
    eventfd: std::sync::Arc<loom::sync::Notify>,
}

/// The poller's wake-up: an eventfd on Linux (a signal handler may write to
/// it too, see `signals`), `mio::Waker` elsewhere.
#[cfg(not(miri))]
pub(crate) enum PollWake {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    EventFd(std::fs::File),
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    Mio(mio::Waker),
}

#[cfg(not(miri))]
impl PollWake {
    /// The fd a signal handler writes 8 bytes to, where there is one.
    #[cfg(unix)]
    pub(crate) fn signal_fd(&self) -> Option<std::os::fd::RawFd> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            PollWake::EventFd(f) => Some(std::os::fd::AsRawFd::as_raw_fd(f)),
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            PollWake::Mio(_) => None,
        }
    }

    fn wake(&self) {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            PollWake::EventFd(f) => {
                use std::io::Write;
                // The counter cannot fill up (it would take 2^64 wakes), and
                // a write that fails leaves it non-zero: the loop wakes anyway.
                let _ = (&*f).write(&1u64.to_ne_bytes());
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            PollWake::Mio(w) => {
                // A failure means the wake-up is already pending.
                // gate-exempt: mio's waker, not user code.
                let _ = w.wake();
            }
        }
    }
}

impl Notifier {
    /// The notifier of a loop made on this thread.
    pub(crate) fn new() -> Notifier {
        Notifier {
            thread: crate::sync::current_thread(),
            #[cfg(not(miri))]
            poll_wake: std::sync::OnceLock::new(),
            #[cfg(loom)]
            eventfd: std::sync::Arc::new(loom::sync::Notify::new()),
        }
    }

    /// Wakes the loop, which sleeps (or is about to) in `mode`.
    pub(crate) fn wake(&self, mode: SleepMode) {
        match mode {
            SleepMode::Park => self.thread.unpark(),
            SleepMode::Poll => {
                #[cfg(loom)]
                self.eventfd.notify();
                #[cfg(not(miri))]
                match self.poll_wake.get() {
                    // gate-exempt: the loop's own wake-up fd, not user code.
                    Some(w) => w.wake(),
                    // Cannot happen (the loop publishes its wake-up before it
                    // first sleeps in the poller); unparking is harmless.
                    None => self.thread.unpark(),
                }
                #[cfg(miri)]
                self.thread.unpark();
            }
        }
    }

    /// The poller's wake-up, once there is a poller.
    #[cfg(all(unix, not(miri)))]
    pub(crate) fn poll_wake(&self) -> Option<&PollWake> {
        self.poll_wake.get()
    }
}

#[cfg(not(miri))]
const WAKER_TOKEN: mio::Token = mio::Token(usize::MAX);
/// The read end of the signal self-pipe, where signals do not write to the
/// eventfd (see `signals`).
#[cfg(not(miri))]
pub(crate) const SIGNAL_TOKEN: mio::Token = mio::Token(usize::MAX - 1);

/// The poller, made on first need.
#[cfg(not(miri))]
pub(crate) struct Poller {
    poll: RefCell<mio::Poll>,
    events: RefCell<mio::Events>,
    #[cfg(loom)]
    eventfd: std::sync::Arc<loom::sync::Notify>,
}

/// The loop's poller (once made) and its I/O registrations. Loop thread only.
pub(crate) struct Driver {
    #[cfg(not(miri))]
    poller: std::cell::OnceCell<Poller>,
    /// I/O registrations; the slab key is the mio token.
    pub(crate) io: RefCell<Slab<IoEntry>>,
}

impl Driver {
    /// A driver with no poller yet: no system call.
    pub(crate) fn new() -> Driver {
        Driver {
            #[cfg(not(miri))]
            poller: std::cell::OnceCell::new(),
            io: RefCell::new(Slab::new()),
        }
    }

    /// Whether the poller exists.
    pub(crate) fn has_poller(&self) -> bool {
        #[cfg(not(miri))]
        return self.poller.get().is_some();
        #[cfg(miri)]
        return false;
    }

    /// The poller, made now if there is none yet, with its wake-up published
    /// in `notifier` before this returns.
    #[cfg(not(miri))]
    pub(crate) fn poller(&self, notifier: &Notifier) -> io::Result<&Poller> {
        if let Some(p) = self.poller.get() {
            return Ok(p);
        }
        let poll = mio::Poll::new()?;
        let wake = Self::make_wake(&poll)?;
        let poller = Poller {
            poll: RefCell::new(poll),
            events: RefCell::new(mio::Events::with_capacity(256)),
            #[cfg(loom)]
            eventfd: std::sync::Arc::clone(&notifier.eventfd),
        };
        // Published before any sleep in the poller: a thread that sees the
        // loop sleeping there finds it (see `Shared::inject`).
        if notifier.poll_wake.set(wake).is_err() {
            unreachable!("a loop makes its poller once");
        }
        Ok(self.poller.get_or_init(|| poller))
    }

    #[cfg(all(not(miri), any(target_os = "linux", target_os = "android")))]
    fn make_wake(poll: &mio::Poll) -> io::Result<PollWake> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        // SAFETY: eventfd(2) takes no pointers; the flags are valid.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd(2) and nothing else owns it.
        let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        // Edge-triggered (mio registers so): each write is an event, and the
        // counter is never read.
        poll.registry().register(
            &mut mio::unix::SourceFd(&file.as_raw_fd()),
            WAKER_TOKEN,
            mio::Interest::READABLE,
        )?;
        Ok(PollWake::EventFd(file))
    }

    #[cfg(all(not(miri), not(any(target_os = "linux", target_os = "android"))))]
    fn make_wake(poll: &mio::Poll) -> io::Result<PollWake> {
        Ok(PollWake::Mio(mio::Waker::new(
            poll.registry(),
            WAKER_TOKEN,
        )?))
    }

    /// Waits until an event, a wake-up, or `timeout` (`None`: no timeout); what
    /// the I/O events ask for is appended to `out`. In `SleepMode::Park` the
    /// thread parks (no poller); in `SleepMode::Poll` it waits in the poller,
    /// which must exist.
    pub(crate) fn wait(&self, mode: SleepMode, timeout: Option<Duration>, out: &mut Vec<Wakeup>) {
        match mode {
            SleepMode::Park => park(timeout),
            #[cfg(not(miri))]
            SleepMode::Poll => {
                let poller = self
                    .poller
                    .get()
                    .expect("the loop sleeps in its poller only once it made it");
                self.poll(poller, timeout, out);
            }
            #[cfg(miri)]
            SleepMode::Poll => park(timeout),
        }
        // Under Miri there are no I/O events to report.
        #[cfg(miri)]
        let _ = out;
    }

    /// Looks at I/O without waiting, if there is a poller.
    pub(crate) fn poll_now(&self, out: &mut Vec<Wakeup>) {
        #[cfg(not(miri))]
        if let Some(poller) = self.poller.get() {
            self.poll(poller, Some(Duration::ZERO), out);
        }
        #[cfg(miri)]
        let _ = out;
    }

    #[cfg(not(miri))]
    fn poll(&self, poller: &Poller, timeout: Option<Duration>, out: &mut Vec<Wakeup>) {
        // Under loom the blocking part of the wait is modelled: without a
        // timeout it waits until the notifier was woken (consuming that, as
        // reading the eventfd does; loom also tries spurious returns); with
        // one it returns at once (no model uses timers). A loop that sleeps
        // and is never woken deadlocks the model: a lost wake-up fails it.
        // Then epoll is only polled.
        #[cfg(loom)]
        let timeout = {
            if timeout.is_none() {
                poller.eventfd.wait();
            }
            Some(Duration::ZERO)
        };
        let mut events = poller.events.borrow_mut();
        match poller.poll.borrow_mut().poll(&mut events, timeout) {
            Ok(()) => {}
            // A signal interrupted the wait: the loop simply looks again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return,
            Err(e) => panic!("the event loop's epoll_wait failed: {e}"),
        }
        let mut io = self.io.borrow_mut();
        for event in events.iter() {
            let token = event.token();
            if token == WAKER_TOKEN {
                continue;
            }
            if token == SIGNAL_TOKEN {
                out.push(Wakeup::Signals);
                continue;
            }
            if let Some(entry) = io.get_mut(token.0) {
                entry.on_event(
                    token.0,
                    event.is_readable() || event.is_read_closed() || event.is_error(),
                    event.is_writable() || event.is_write_closed() || event.is_error(),
                    (
                        event.is_read_closed() || event.is_error(),
                        event.is_write_closed() || event.is_error(),
                    ),
                    out,
                );
            }
        }
    }

    /// Whether any I/O source is registered (the loop may still be woken by it).
    pub(crate) fn has_io(&self) -> bool {
        !self.io.borrow().is_empty()
    }
}

#[cfg(not(miri))]
impl Poller {
    #[cfg(unix)]
    pub(crate) fn registry(&self) -> std::cell::Ref<'_, mio::Poll> {
        self.poll.borrow()
    }

    /// Puts the read end of a signal self-pipe in the poller's set.
    #[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
    pub(crate) fn register_signal_pipe(&self, fd: std::os::fd::RawFd) -> io::Result<()> {
        self.poll.borrow().registry().register(
            &mut mio::unix::SourceFd(&fd),
            SIGNAL_TOKEN,
            mio::Interest::READABLE,
        )
    }
}

/// Parks the loop's thread until unparked or `timeout` passes (either may
/// also end spuriously: the loop then looks again).
fn park(timeout: Option<Duration>) {
    #[cfg(loom)]
    {
        // No model uses timers: a wait with a timeout returns at once.
        if timeout.is_none() {
            loom::thread::park();
        }
    }
    #[cfg(not(loom))]
    match timeout {
        Some(t) => std::thread::park_timeout(t),
        None => std::thread::park(),
    }
}
