//! Unix signal handlers that run on the loop, as asyncio's
//! `loop.add_signal_handler`: no thread, the loop wakes for them.
//!
//! For each handled signal the loop registers one `signal-hook` action: it
//! sets the signal's pending flag and the loop's "a signal arrived" flag,
//! then writes to the loop's wake-up fd if the loop has one yet. On Linux
//! that fd is the eventfd the loop's poller waits on (the one other threads
//! wake it through), made at the loop's first wait in the poller, so a loop
//! that handles signals but never waits (`asyncio::run(async {})` with its
//! Ctrl-C handler) makes no fd at all; a signal that arrives before the fd is
//! published is seen by the loop's check of the flag before it sleeps.
//! Elsewhere (macOS, FreeBSD) the fd is the write end of a self-pipe whose
//! read end sits in the poller, made with the first handler. Whenever the
//! loop wakes it takes the flag and schedules the callback of every signal
//! whose pending flag it finds set (several arrivals before the loop looks
//! run the callback once, as with asyncio's wakeup fd).
//!
//! `signal-hook` keeps its own handler installed once it has been, and does not
//! run a signal's default action itself. So that a signal no loop handles any
//! more acts as it did before (Ctrl-C after `asyncio::run` ends the program),
//! the first registration of a signal whose disposition was the default also
//! installs, once per process, an action that runs the default action
//! whenever no loop listens for that signal.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;

use crate::event_loop::{EventLoop, LoopInner};

/// Why a signal handler could not be added or removed.
///
/// ```
/// let lp = asyncio::EventLoop::new();
/// assert!(matches!(
///     lp.add_signal_handler(-1, || {}),
///     Err(asyncio::SignalError::Invalid(-1))
/// ));
/// // SIGKILL (9) cannot be caught.
/// assert!(matches!(
///     lp.add_signal_handler(9, || {}),
///     Err(asyncio::SignalError::Forbidden(9))
/// ));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// Not a signal number of this platform (asyncio's `ValueError`).
    #[error("{0} is not a valid signal number")]
    Invalid(i32),
    /// A signal that cannot be caught, or that only a crash raises
    /// (SIGKILL, SIGSTOP, SIGILL, SIGFPE, SIGSEGV; asyncio's `RuntimeError`).
    #[error(
        "signal {0} cannot be handled: SIGKILL and SIGSTOP cannot be caught, and SIGILL, SIGFPE and SIGSEGV are left to the crash they report"
    )]
    Forbidden(i32),
    /// The loop is closed.
    #[error("the event loop is closed")]
    Closed,
    /// The wake-up (the poller, or a self-pipe) could not be made, or
    /// `signal-hook` refused.
    #[error("could not set up the signal handler")]
    Io(#[from] io::Error),
}

/// The signals of one loop.
#[derive(Default)]
pub(crate) struct LoopSignals {
    /// Dropped first (see `clear_signal_handlers`): no action may still use
    /// the wake-up fd when it closes.
    handlers: HashMap<i32, Handler>,
    /// What the actions share with the loop, made with the first handler.
    #[cfg(all(unix, not(miri)))]
    wake: Option<std::sync::Arc<imp::SignalWake>>,
    /// The self-pipe, where the eventfd is not available.
    #[cfg(all(unix, not(miri), not(any(target_os = "linux", target_os = "android"))))]
    pipe: Option<imp::Pipe>,
}

struct Handler {
    callback: Rc<dyn Fn()>,
    #[cfg(all(unix, not(miri)))]
    registration: imp::Registration,
}

impl LoopSignals {
    /// Whether a signal could still wake the loop.
    pub(crate) fn any(&self) -> bool {
        !self.handlers.is_empty()
    }

    /// Whether a signal arrived since the loop last took them (it then must
    /// not sleep: the signal may have come before the wake-up fd existed).
    pub(crate) fn arrived(&self) -> bool {
        #[cfg(all(unix, not(miri)))]
        return self.wake.as_ref().is_some_and(|w| w.arrived());
        #[cfg(any(miri, not(unix)))]
        return false;
    }

    /// Takes the "a signal arrived" flag.
    fn take_arrived(&self) -> bool {
        #[cfg(all(unix, not(miri)))]
        return self.wake.as_ref().is_some_and(|w| w.take());
        #[cfg(any(miri, not(unix)))]
        return false;
    }

    /// Hands the poller's eventfd to the signal actions (Linux), once the
    /// loop made its poller.
    #[cfg(all(unix, not(miri)))]
    pub(crate) fn publish(&self, poll_wake: Option<&crate::reactor::PollWake>) {
        if let (Some(wake), Some(fd)) = (&self.wake, poll_wake.and_then(|w| w.signal_fd())) {
            wake.publish(fd);
        }
    }
}

/// Checks a signal number as asyncio's `_check_signal` does.
fn check(signum: i32) -> Result<(), SignalError> {
    #[cfg(all(unix, not(miri)))]
    let valid = (1..imp::NSIG).contains(&signum);
    #[cfg(any(miri, not(unix)))]
    let valid = (1..65).contains(&signum);
    if !valid {
        return Err(SignalError::Invalid(signum));
    }
    #[cfg(all(unix, not(miri)))]
    if signal_hook::consts::FORBIDDEN.contains(&signum) {
        return Err(SignalError::Forbidden(signum));
    }
    Ok(())
}

impl EventLoop {
    /// Runs `callback` on the loop whenever the signal `signum` arrives, as
    /// asyncio's `loop.add_signal_handler` (Unix). A handler already set for
    /// `signum` is replaced. The callback runs like a `call_soon` callback: on
    /// the loop's thread, its panic reported to the exception handler. The
    /// loop waits for signals in `epoll`, with no thread of its own.
    ///
    /// Several arrivals of one signal before the loop looks run the callback
    /// once. While a loop handles a signal, the signal's previous action does
    /// not run (Ctrl-C does not end the program); once no loop handles it any
    /// more, a signal whose action was the default gets it back.
    ///
    /// Unlike CPython's, any thread's loop may handle signals (Linux does not
    /// tie signal handling to the main thread); the process's signal is
    /// delivered to every loop that handles it.
    ///
    /// # Errors
    /// [`SignalError::Invalid`] for a number that is no signal,
    /// [`SignalError::Forbidden`] for SIGKILL, SIGSTOP and the crash signals,
    /// [`SignalError::Closed`] on a closed loop, [`SignalError::Io`] if the
    /// wake-up cannot be set up (the self-pipe of macOS and FreeBSD; on
    /// Linux the handler wakes the loop's own eventfd, and a loop that has no
    /// descriptor left to make it takes the handler all the same and looks at
    /// its signal flags every few milliseconds), and of kind `Unsupported` under Miri and off
    /// Unix (asyncio's `add_signal_handler` is Unix-only too).
    ///
    /// ```
    /// # #[cfg(all(unix, not(miri)))] {
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    ///
    /// let lp = asyncio::EventLoop::new();
    /// let got = Rc::new(Cell::new(false));
    /// let g = got.clone();
    /// lp.add_signal_handler(libc::SIGUSR2, move || g.set(true)).unwrap();
    /// let seen = got.clone();
    /// lp.run_until_complete(async move {
    ///     // SAFETY: raise(3) has no memory-safety preconditions.
    ///     unsafe { libc::raise(libc::SIGUSR2) };
    ///     while !seen.get() {
    ///         asyncio::sleep(std::time::Duration::from_millis(1)).await;
    ///     }
    /// })
    /// .unwrap();
    /// assert!(lp.remove_signal_handler(libc::SIGUSR2).unwrap());
    /// # }
    /// ```
    pub fn add_signal_handler(
        &self,
        signum: i32,
        callback: impl Fn() + 'static,
    ) -> Result<(), SignalError> {
        check(signum)?;
        if self.inner.closed.get() {
            return Err(SignalError::Closed);
        }
        self.inner.add_signal_handler(signum, Rc::new(callback))
    }

    /// Removes the handler of `signum`, as asyncio's
    /// `loop.remove_signal_handler`: `Ok(true)` if there was one,
    /// `Ok(false)` if not.
    ///
    /// # Errors
    /// [`SignalError::Invalid`] / [`SignalError::Forbidden`] as
    /// [`add_signal_handler`](Self::add_signal_handler).
    pub fn remove_signal_handler(&self, signum: i32) -> Result<bool, SignalError> {
        check(signum)?;
        let removed = self.inner.signals.borrow_mut().handlers.remove(&signum);
        // Dropped outside the borrow: the callback's captures are user values.
        Ok(removed.is_some())
    }
}

/// Whether `signum` still has the action the process got by default, as far
/// as asyncio-rs can tell: `SIG_DFL`, or the loops' own handler installed over
/// `SIG_DFL`. An ignored signal (a program started by `nohup`, or in the
/// background by a shell without job control, ignores SIGINT) or someone
/// else's handler gives `false`, as does an invalid number, Miri and a
/// platform without Unix signals.
///
/// `Runner` asks this before catching Ctrl-C by default, as asyncio's Runner
/// catches it only while SIGINT's handler is Python's default one.
#[doc(hidden)]
pub fn signal_action_is_default(signum: i32) -> bool {
    if check(signum).is_err() {
        return false;
    }
    #[cfg(all(unix, not(miri)))]
    return imp::action_is_default(signum);
    #[cfg(any(miri, not(unix)))]
    return false;
}

impl LoopInner {
    #[cfg(all(unix, not(miri)))]
    fn add_signal_handler(&self, signum: i32, callback: Rc<dyn Fn()>) -> Result<(), SignalError> {
        // Where signals write to a self-pipe, it goes in the poller, made now.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        if self.signals.borrow().pipe.is_none() {
            let pipe = imp::Pipe::new(self.poller()?)?;
            let mut signals = self.signals.borrow_mut();
            let wake = std::sync::Arc::new(imp::SignalWake::new());
            wake.publish(pipe.write_fd());
            signals.wake = Some(wake);
            signals.pipe = Some(pipe);
        }
        let mut signals = self.signals.borrow_mut();
        if signals.wake.is_none() {
            signals.wake = Some(std::sync::Arc::new(imp::SignalWake::new()));
            // A loop that already has its poller hands its eventfd over now.
            signals.publish(self.shared.notifier.poll_wake());
        }
        let wake = signals.wake.as_ref().expect("made above");
        let registration = imp::Registration::new(signum, wake)?;
        let old = signals.handlers.insert(
            signum,
            Handler {
                callback,
                registration,
            },
        );
        drop(signals);
        // The replaced handler (and its callback's captures) go here.
        drop(old);
        Ok(())
    }

    #[cfg(any(miri, not(unix)))]
    fn add_signal_handler(&self, _: i32, _: Rc<dyn Fn()>) -> Result<(), SignalError> {
        Err(SignalError::Io(io::Error::new(
            io::ErrorKind::Unsupported,
            if cfg!(miri) {
                "signals are not available under Miri"
            } else {
                "signal handlers need Unix (asyncio's add_signal_handler is Unix-only too)"
            },
        )))
    }

    /// The self-pipe was readable: empty it (the signals themselves are
    /// taken by `take_signals`).
    pub(crate) fn drain_signal_pipe(&self) {
        #[cfg(all(unix, not(miri), not(any(target_os = "linux", target_os = "android"))))]
        if let Some(pipe) = &self.signals.borrow().pipe {
            pipe.drain();
        }
    }

    /// After a wait: if a signal arrived, schedule the callbacks of the
    /// signals that did.
    pub(crate) fn take_signals(&self) {
        let arrived = self.signals.borrow().take_arrived();
        if arrived {
            self.dispatch_signals();
        }
    }

    /// Schedules the callbacks of the signals that arrived.
    fn dispatch_signals(&self) {
        let due: Vec<Rc<dyn Fn()>> = {
            let signals = self.signals.borrow();
            signals
                .handlers
                .values()
                .filter(|h| h.arrived())
                .map(|h| Rc::clone(&h.callback))
                .collect()
        };
        for callback in due {
            self.call_soon_boxed(Box::new(move || callback()));
        }
    }

    /// Removes every handler (the loop closes).
    pub(crate) fn clear_signal_handlers(&self) {
        let signals = std::mem::take(&mut *self.signals.borrow_mut());
        let LoopSignals { handlers, .. } = signals;
        // Each handler's action is unregistered as it drops, before the
        // self-pipe (dropped at the end of this scope) closes.
        for (_, handler) in handlers {
            self.drop_reporting(handler);
        }
    }
}

impl Handler {
    fn arrived(&self) -> bool {
        #[cfg(all(unix, not(miri)))]
        return self.registration.take_pending();
        #[cfg(any(miri, not(unix)))]
        return false;
    }
}

/// Keeps `RefCell` out of the loop's field list.
pub(crate) type SignalsCell = RefCell<LoopSignals>;

#[cfg(all(unix, not(miri)))]
mod imp {
    use std::io;
    use std::os::fd::RawFd;
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

    use signal_hook::SigId;

    /// One past the largest signal number (Linux: 64 + 1).
    pub(super) const NSIG: i32 = 65;

    /// How many loop handlers each signal has in the whole process.
    static LISTENERS: [AtomicUsize; NSIG as usize] = [const { AtomicUsize::new(0) }; NSIG as usize];

    /// What each signal's action was when a loop first took it over.
    #[derive(Clone, Copy, PartialEq)]
    enum Before {
        /// No loop has handled it yet in this process.
        Untouched,
        /// It was the default action: the default-restoring action is in.
        Default,
        /// It was ignored or someone else's handler.
        Other,
    }

    /// Per signal, what its action was before the loops' (see [`Before`]).
    static FALLBACK: Mutex<[Before; NSIG as usize]> =
        Mutex::new([Before::Untouched; NSIG as usize]);

    /// The signal's current action as `sigaction` reports it.
    fn current_action(signum: i32) -> io::Result<libc::sighandler_t> {
        // SAFETY: a zeroed `sigaction` is a valid out-parameter; passing a
        // null new action only reads the current one.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signum, std::ptr::null(), &mut old) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(old.sa_sigaction)
        }
    }

    /// See [`super::signal_action_is_default`].
    pub(super) fn action_is_default(signum: i32) -> bool {
        let before = FALLBACK.lock().unwrap_or_else(|e| e.into_inner())[signum as usize];
        if before == Before::Default {
            // The loops' handler went in over the default action, and
            // signal-hook keeps it installed: asked again (each
            // `asyncio::run` asks), the answer is the same without a system
            // call. As with Python's `signal.getsignal`, a disposition
            // changed behind signal-hook's back (raw `sigaction`) is not seen.
            return true;
        }
        match current_action(signum) {
            Ok(libc::SIG_DFL) => true,
            Ok(libc::SIG_IGN) | Err(_) => false,
            // A handler: ours (signal-hook's, installed over the default)
            // counts as the default, anyone else's does not.
            Ok(_) => before == Before::Default,
        }
    }

    /// What a loop's signal actions share with it.
    pub(super) struct SignalWake {
        /// A signal arrived since the loop last looked.
        arrived: AtomicBool,
        /// The fd the actions write to (-1 until there is one): the
        /// poller's eventfd, or the self-pipe's write end. It stays open
        /// while any action can run (see `LoopSignals`).
        fd: AtomicI32,
    }

    impl SignalWake {
        pub(super) fn new() -> SignalWake {
            SignalWake {
                arrived: AtomicBool::new(false),
                fd: AtomicI32::new(-1),
            }
        }

        /// From now on the actions write to `fd`.
        pub(super) fn publish(&self, fd: RawFd) {
            // SeqCst, with the action's: either the action sees the fd and
            // writes to it, or the loop, which checks `arrived` after this
            // and before it sleeps, sees the signal.
            self.fd.store(fd, Ordering::SeqCst);
        }

        pub(super) fn arrived(&self) -> bool {
            self.arrived.load(Ordering::SeqCst)
        }

        pub(super) fn take(&self) -> bool {
            self.arrived.swap(false, Ordering::SeqCst)
        }

        /// In the signal handler: only atomics and write(2), which are
        /// async-signal-safe (signal-hook keeps `errno`).
        fn raise(&self) {
            self.arrived.store(true, Ordering::SeqCst);
            let fd = self.fd.load(Ordering::SeqCst);
            if fd >= 0 {
                // Eight bytes: an eventfd takes nothing else (a pipe takes
                // them as well).
                let one = 1u64.to_ne_bytes();
                // SAFETY: `one` is valid for reads of its 8 bytes; `fd` stays
                // open while this action can run (it is unregistered first).
                // A failed write (a full pipe) leaves the loop woken anyway.
                let _ = unsafe { libc::write(fd, one.as_ptr().cast(), one.len()) };
            }
        }
    }

    /// A self-pipe whose read end is in the poller (where the actions cannot
    /// write to the poller's eventfd).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) struct Pipe {
        read: std::os::unix::net::UnixStream,
        write: std::os::unix::net::UnixStream,
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    impl Pipe {
        pub(super) fn new(poller: &crate::reactor::Poller) -> io::Result<Pipe> {
            use std::os::fd::AsRawFd;
            let (read, write) = std::os::unix::net::UnixStream::pair()?;
            read.set_nonblocking(true)?;
            write.set_nonblocking(true)?;
            poller.register_signal_pipe(read.as_raw_fd())?;
            Ok(Pipe { read, write })
        }

        pub(super) fn write_fd(&self) -> RawFd {
            use std::os::fd::AsRawFd;
            self.write.as_raw_fd()
        }

        /// Reads everything the signal actions wrote (the registration is
        /// edge-triggered: the next write must find the pipe empty).
        pub(super) fn drain(&self) {
            use std::io::Read;
            let mut buf = [0u8; 64];
            // Bounded by what is there: a read returns WouldBlock when empty.
            while let Ok(n) = (&self.read).read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
        }
    }

    /// One signal's registration on one loop: its pending flag and its
    /// `signal-hook` action.
    pub(super) struct Registration {
        signum: i32,
        pending: Arc<AtomicBool>,
        id: SigId,
    }

    impl Registration {
        pub(super) fn new(signum: i32, wake: &Arc<SignalWake>) -> io::Result<Registration> {
            ensure_fallback(signum)?;
            let pending = Arc::new(AtomicBool::new(false));
            // Listening before the action exists: a signal arriving in
            // between finds a listener and does not run the default action.
            LISTENERS[signum as usize].fetch_add(1, Ordering::SeqCst);
            let (p, w) = (Arc::clone(&pending), Arc::clone(wake));
            let action = move || {
                p.store(true, Ordering::SeqCst);
                w.raise();
            };
            // SAFETY: the action only stores to atomics and calls write(2)
            // (`SignalWake::raise`), all async-signal-safe, as a signal
            // handler must be.
            match unsafe { signal_hook::low_level::register(signum, action) } {
                Ok(id) => Ok(Registration {
                    signum,
                    pending,
                    id,
                }),
                Err(e) => {
                    LISTENERS[signum as usize].fetch_sub(1, Ordering::SeqCst);
                    Err(e)
                }
            }
        }

        pub(super) fn take_pending(&self) -> bool {
            self.pending.swap(false, Ordering::AcqRel)
        }
    }

    impl Drop for Registration {
        fn drop(&mut self) {
            // Returns once no handler runs the action any more
            // (signal-hook's registry waits for them).
            signal_hook::low_level::unregister(self.id);
            LISTENERS[self.signum as usize].fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Before `signal-hook` first takes over `signum` in this process: if the
    /// signal's action is the default one, add an action that runs it
    /// whenever no loop listens.
    fn ensure_fallback(signum: i32) -> io::Result<()> {
        let mut before = FALLBACK.lock().unwrap_or_else(|e| e.into_inner());
        if before[signum as usize] != Before::Untouched {
            return Ok(());
        }
        let was = if current_action(signum)? == libc::SIG_DFL {
            let action = move || {
                if LISTENERS[signum as usize].load(Ordering::SeqCst) == 0 {
                    // Async-signal-safe: it resets the disposition and
                    // re-raises (or does nothing for an ignored default).
                    let _ = signal_hook::low_level::emulate_default_handler(signum);
                }
            };
            // SAFETY: the action only reads an atomic and calls an
            // async-signal-safe function, as a signal handler must.
            unsafe { signal_hook::low_level::register(signum, action) }?;
            Before::Default
        } else {
            Before::Other
        };
        before[signum as usize] = was;
        Ok(())
    }
}
