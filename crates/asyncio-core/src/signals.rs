//! Unix signal handlers that run on the loop, as asyncio's
//! `loop.add_signal_handler`: no thread, the reactor wakes for them.
//!
//! For each handled signal the loop registers two `signal-hook` actions: one
//! sets the signal's pending flag, the next writes a byte to the loop's
//! self-pipe, whose read end sits in the loop's `epoll` set. When the pipe is
//! readable the loop drains it and schedules the callback of every signal
//! whose flag it finds set (several arrivals before the loop looks run the
//! callback once, as with asyncio's wakeup fd).
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
    /// The self-pipe could not be made or registered, or `signal-hook` refused.
    #[error("could not set up the signal handler")]
    Io(#[from] io::Error),
}

/// The signals of one loop.
#[derive(Default)]
pub(crate) struct LoopSignals {
    #[cfg(all(unix, not(miri)))]
    pipe: Option<imp::Pipe>,
    handlers: HashMap<i32, Handler>,
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
    /// self-pipe cannot be set up, and of kind `Unsupported` under Miri and off
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
        let mut signals = self.signals.borrow_mut();
        if signals.pipe.is_none() {
            signals.pipe = Some(imp::Pipe::new(&self.driver)?);
        }
        let pipe = signals.pipe.as_ref().expect("made above");
        let registration = imp::Registration::new(signum, pipe)?;
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

    /// The self-pipe was readable: schedule the callbacks of the signals
    /// that arrived.
    pub(crate) fn dispatch_signals(&self) {
        let due: Vec<Rc<dyn Fn()>> = {
            let signals = self.signals.borrow();
            #[cfg(all(unix, not(miri)))]
            if let Some(pipe) = &signals.pipe {
                pipe.drain();
            }
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
        for (_, handler) in signals.handlers {
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
    use std::io::{self, Read};
    use std::os::fd::{AsRawFd, IntoRawFd};
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use signal_hook::SigId;

    use crate::reactor::Driver;

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
        match current_action(signum) {
            Ok(libc::SIG_DFL) => true,
            Ok(libc::SIG_IGN) | Err(_) => false,
            // A handler: ours (signal-hook's, installed over the default)
            // counts as the default, anyone else's does not.
            Ok(_) => before == Before::Default,
        }
    }

    /// The loop's self-pipe: the read end is in its `epoll` set.
    pub(super) struct Pipe {
        read: UnixStream,
        write: UnixStream,
    }

    impl Pipe {
        pub(super) fn new(driver: &Driver) -> io::Result<Pipe> {
            let (read, write) = UnixStream::pair()?;
            read.set_nonblocking(true)?;
            write.set_nonblocking(true)?;
            driver.register_signal_pipe(read.as_raw_fd())?;
            Ok(Pipe { read, write })
        }

        /// Reads everything the signal actions wrote (the registration is
        /// edge-triggered: the next write must find the pipe empty).
        pub(super) fn drain(&self) {
            let mut buf = [0u8; 64];
            // Bounded by what is there: a read returns WouldBlock when empty.
            while let Ok(n) = (&self.read).read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
        }
    }

    /// One signal's registration on one loop: its pending flag, and the two
    /// `signal-hook` actions (set the flag, then wake the pipe).
    pub(super) struct Registration {
        signum: i32,
        pending: Arc<AtomicBool>,
        flag_id: SigId,
        wake_id: SigId,
    }

    impl Registration {
        pub(super) fn new(signum: i32, pipe: &Pipe) -> io::Result<Registration> {
            ensure_fallback(signum)?;
            let pending = Arc::new(AtomicBool::new(false));
            // Listening before the actions exist: a signal arriving in
            // between finds a listener and does not run the default action.
            LISTENERS[signum as usize].fetch_add(1, Ordering::SeqCst);
            let registered = (|| {
                let flag_id = signal_hook::flag::register(signum, Arc::clone(&pending))?;
                let wake_fd = match pipe.write.try_clone() {
                    Ok(fd) => fd,
                    Err(e) => {
                        signal_hook::low_level::unregister(flag_id);
                        return Err(e);
                    }
                };
                // `register_raw` owns the fd from here and closes it when
                // the action is unregistered.
                match signal_hook::low_level::pipe::register_raw(signum, wake_fd.into_raw_fd()) {
                    Ok(wake_id) => Ok((flag_id, wake_id)),
                    Err(e) => {
                        signal_hook::low_level::unregister(flag_id);
                        Err(e)
                    }
                }
            })();
            match registered {
                Ok((flag_id, wake_id)) => Ok(Registration {
                    signum,
                    pending,
                    flag_id,
                    wake_id,
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
            signal_hook::low_level::unregister(self.wake_id);
            signal_hook::low_level::unregister(self.flag_id);
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
