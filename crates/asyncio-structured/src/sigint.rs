//! Ctrl-C during `Runner::run`, as asyncio's Runner: the first SIGINT cancels
//! the main task; a second one, while it is being cancelled, ends the process
//! as an unhandled `KeyboardInterrupt` would (killed by SIGINT).
//!
//! The first SIGINT reaches the loop through its own signal handling
//! (`EventLoop::add_signal_handler`: its action writes to the loop's wake-up
//! fd, made only if the loop ever waits; no thread), and its handler cancels the main future, which is wrapped for
//! that. The second must work even while the loop is stuck in a destructor of
//! that cancellation, so it is decided in the signal handler itself: a flag the
//! first SIGINT sets arms `signal-hook`'s conditional default action. When the
//! run returns, both go, and a SIGINT no loop handles acts as before the run
//! (the default action ends the program).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll, Waker};

use asyncio_core::{EventLoop, SignalError};
use signal_hook::SigId;
use signal_hook::consts::SIGINT;

/// Ends the process the way Python ends one that Ctrl-C interrupted: killed by
/// SIGINT, so a shell sees status 130 and a supervisor sees "interrupted"
/// rather than a failure.
///
/// Python's `asyncio.run` turns Ctrl-C into `KeyboardInterrupt`; when nothing
/// catches it, the interpreter restores SIGINT's default action and sends
/// itself SIGINT. This does the same, after flushing stdout and stderr: call
/// it once [`Runner::run`](crate::Runner::run) or [`run`](crate::run)
/// returned [`RunError::Interrupted`](asyncio_core::RunError::Interrupted)
/// and the runner is closed (its cleanup done). `#[asyncio::main]` calls it
/// for you. Should the signal not end the process (it cannot, unless
/// something else catches SIGINT again in between), it exits with status 130.
///
/// ```no_run
/// let out = asyncio::run(async {
///     asyncio::sleep(std::time::Duration::from_secs(3600)).await;
/// });
/// match out {
///     Ok(()) => {}
///     Err(asyncio::RunError::Interrupted) => asyncio::exit_interrupted(),
///     Err(e) => panic!("{e}"),
/// }
/// ```
pub fn exit_interrupted() -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // Resets SIGINT to its default action, unblocks it and raises it on this
    // thread: the default action ends the whole process.
    let _ = signal_hook::low_level::emulate_default_handler(SIGINT);
    std::process::exit(128 + SIGINT)
}

#[derive(Default)]
struct Interrupt {
    requested: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

/// Catches SIGINT on the loop while alive; dropping it gives SIGINT back.
pub(crate) struct SigintGuard {
    lp: EventLoop,
    interrupt: Rc<Interrupt>,
    /// The second SIGINT's conditional default action, then the flag the
    /// first one sets (in that order, so the first does not trigger it).
    armed: [SigId; 2],
}

impl SigintGuard {
    pub(crate) fn install(lp: &EventLoop) -> Result<SigintGuard, SignalError> {
        let interrupt = Rc::new(Interrupt::default());
        let intr = Rc::clone(&interrupt);
        lp.add_signal_handler(SIGINT, move || {
            intr.requested.set(true);
            if let Some(w) = intr.waker.take() {
                w.wake();
            }
        })?;
        let seen = Arc::new(AtomicBool::new(false));
        let armed = signal_hook::flag::register_conditional_default(SIGINT, Arc::clone(&seen))
            .and_then(|kill| match signal_hook::flag::register(SIGINT, seen) {
                Ok(flag) => Ok([kill, flag]),
                Err(e) => {
                    signal_hook::low_level::unregister(kill);
                    Err(e)
                }
            });
        match armed {
            Ok(armed) => Ok(SigintGuard {
                lp: lp.clone(),
                interrupt,
                armed,
            }),
            Err(e) => {
                let _ = lp.remove_signal_handler(SIGINT);
                Err(e.into())
            }
        }
    }

    /// Wraps the main future so that a SIGINT cancels (drops) it.
    pub(crate) fn wrap<F: Future>(&self, future: F) -> Interruptible<F> {
        Interruptible {
            inner: Some(Box::pin(future)),
            interrupt: Rc::clone(&self.interrupt),
        }
    }
}

impl Drop for SigintGuard {
    fn drop(&mut self) {
        for id in self.armed {
            signal_hook::low_level::unregister(id);
        }
        let _ = self.lp.remove_signal_handler(SIGINT);
    }
}

/// The main future, cancelled by Ctrl-C: `Err(())` means interrupted.
pub(crate) struct Interruptible<F> {
    inner: Option<Pin<Box<F>>>,
    interrupt: Rc<Interrupt>,
}

impl<F: Future> Future for Interruptible<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.interrupt.requested.get() {
            // Cancel the main task: drop its future (its destructors run here).
            self.inner = None;
            return Poll::Ready(Err(()));
        }
        let inner = self
            .inner
            .as_mut()
            .expect("the main future is polled after it finished");
        match inner.as_mut().poll(cx) {
            Poll::Ready(out) => {
                self.inner = None;
                Poll::Ready(Ok(out))
            }
            Poll::Pending => {
                self.interrupt.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}
