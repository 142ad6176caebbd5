//! Where the loop waits when nothing is ready: in `epoll` (through `mio`) until
//! the next timer, an I/O event, or a wake from another thread.
//!
//! Under Miri, which cannot run `epoll`, the loop parks its thread instead (with
//! the next timer as the timeout) and I/O registration is unavailable.

use std::cell::RefCell;
use std::io;
use std::time::Duration;

use slab::Slab;

use crate::io::{IoEntry, Wakeup};

/// Wakes the loop's thread out of its wait; `Send + Sync`, kept in `Shared`.
pub(crate) struct Notifier {
    /// Under loom: the eventfd's counter as the models see it (a wake is
    /// kept until the next wait consumes it); `Driver::wait` waits on it.
    #[cfg(loom)]
    eventfd: std::sync::Arc<loom::sync::Notify>,
    #[cfg(not(miri))]
    waker: mio::Waker,
    #[cfg(miri)]
    thread: std::thread::Thread,
}

impl Notifier {
    pub(crate) fn wake(&self) {
        #[cfg(loom)]
        self.eventfd.notify();
        #[cfg(not(miri))]
        {
            // A failed write to the eventfd means it is already signalled (its
            // counter is full), so the loop wakes anyway.
            // gate-exempt: mio's waker (an eventfd write), not user code.
            let _ = self.waker.wake();
        }
        #[cfg(miri)]
        self.thread.unpark();
    }
}

#[cfg(not(miri))]
const WAKER_TOKEN: mio::Token = mio::Token(usize::MAX);
/// The read end of the loop's signal self-pipe (see `signals`).
#[cfg(not(miri))]
pub(crate) const SIGNAL_TOKEN: mio::Token = mio::Token(usize::MAX - 1);

/// The loop's poller and its I/O registrations. Loop thread only.
pub(crate) struct Driver {
    /// Under loom: what `wait` waits on instead of `epoll_wait` (a real
    /// blocking call would stop every thread of a model).
    #[cfg(loom)]
    eventfd: std::sync::Arc<loom::sync::Notify>,
    #[cfg(not(miri))]
    poll: RefCell<mio::Poll>,
    #[cfg(not(miri))]
    events: RefCell<mio::Events>,
    /// I/O registrations; the slab key is the mio token.
    pub(crate) io: RefCell<Slab<IoEntry>>,
}

impl Driver {
    /// A new poller and the notifier that interrupts its waits.
    pub(crate) fn new() -> io::Result<(Driver, Notifier)> {
        #[cfg(not(miri))]
        {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
            #[cfg(loom)]
            let eventfd = std::sync::Arc::new(loom::sync::Notify::new());
            Ok((
                Driver {
                    #[cfg(loom)]
                    eventfd: std::sync::Arc::clone(&eventfd),
                    poll: RefCell::new(poll),
                    events: RefCell::new(mio::Events::with_capacity(256)),
                    io: RefCell::new(Slab::new()),
                },
                Notifier {
                    #[cfg(loom)]
                    eventfd,
                    waker,
                },
            ))
        }
        #[cfg(miri)]
        {
            Ok((
                Driver {
                    io: RefCell::new(Slab::new()),
                },
                Notifier {
                    thread: std::thread::current(),
                },
            ))
        }
    }

    /// Waits until an event, a wake-up, or `timeout` (`None`: no timeout); what
    /// the I/O events ask for is appended to `out`.
    pub(crate) fn wait(&self, timeout: Option<Duration>, out: &mut Vec<Wakeup>) {
        // Under loom the blocking part of the wait is modelled: without a
        // timeout it waits until the notifier was woken (consuming that, as
        // reading the eventfd does; loom also tries spurious returns); with
        // one it returns at once (no model uses timers). A loop that sleeps
        // and is never woken deadlocks the model: a lost wake-up fails it.
        // Then epoll is only polled.
        #[cfg(loom)]
        let timeout = {
            if timeout.is_none() {
                self.eventfd.wait();
            }
            Some(Duration::ZERO)
        };
        #[cfg(not(miri))]
        {
            let mut events = self.events.borrow_mut();
            match self.poll.borrow_mut().poll(&mut events, timeout) {
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
        #[cfg(miri)]
        let _ = out;
        #[cfg(miri)]
        match timeout {
            Some(t) => std::thread::park_timeout(t),
            None => std::thread::park(),
        }
    }

    #[cfg(all(unix, not(miri)))]
    pub(crate) fn registry(&self) -> std::cell::Ref<'_, mio::Poll> {
        self.poll.borrow()
    }

    /// Puts the read end of the loop's signal self-pipe in the `epoll` set.
    #[cfg(all(unix, not(miri)))]
    pub(crate) fn register_signal_pipe(&self, fd: std::os::fd::RawFd) -> io::Result<()> {
        self.poll.borrow().registry().register(
            &mut mio::unix::SourceFd(&fd),
            SIGNAL_TOKEN,
            mio::Interest::READABLE,
        )
    }

    /// Whether any I/O source is registered (the loop may still be woken by it).
    pub(crate) fn has_io(&self) -> bool {
        !self.io.borrow().is_empty()
    }
}
