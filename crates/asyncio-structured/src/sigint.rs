//! Ctrl-C during `Runner::run`, as asyncio's Runner: the first SIGINT cancels
//! the main task; a second one, while it is being cancelled, ends the process
//! as an unhandled `KeyboardInterrupt` would (killed by SIGINT).
//!
//! The signal is caught with `signal-hook`'s iterator on a helper thread (no
//! hand-written handler); the main future is wrapped so that the helper can
//! cancel it from outside the loop through a waker.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use signal_hook::consts::SIGINT;
use signal_hook::iterator::{Handle, Signals};

#[derive(Default)]
struct Interrupt {
    requested: AtomicBool,
    count: AtomicUsize,
    waker: Mutex<Option<Waker>>,
}

/// Catches SIGINT while alive; dropping it restores the previous behaviour.
pub(crate) struct SigintGuard {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
    interrupt: Arc<Interrupt>,
}

impl SigintGuard {
    pub(crate) fn install() -> io::Result<SigintGuard> {
        let mut signals = Signals::new([SIGINT])?;
        let handle = signals.handle();
        let interrupt = Arc::new(Interrupt::default());
        let intr = Arc::clone(&interrupt);
        let thread = std::thread::Builder::new()
            .name("asyncio-sigint".into())
            .spawn(move || {
                for _ in signals.forever() {
                    if intr.count.fetch_add(1, Ordering::AcqRel) == 0 {
                        intr.requested.store(true, Ordering::Release);
                        let waker = intr
                            .waker
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .take();
                        if let Some(w) = waker {
                            w.wake();
                        }
                    } else {
                        // A second Ctrl-C while the first is being handled:
                        // die of SIGINT, as Python does on KeyboardInterrupt.
                        let _ = signal_hook::low_level::emulate_default_handler(SIGINT);
                        std::process::exit(130);
                    }
                }
            })?;
        Ok(SigintGuard {
            handle,
            thread: Some(thread),
            interrupt,
        })
    }

    /// Wraps the main future so that a SIGINT cancels (drops) it.
    pub(crate) fn wrap<F: Future>(&self, future: F) -> Interruptible<F> {
        Interruptible {
            inner: Some(Box::pin(future)),
            interrupt: Arc::clone(&self.interrupt),
        }
    }
}

impl Drop for SigintGuard {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The main future, cancelled by Ctrl-C: `Err(())` means interrupted.
pub(crate) struct Interruptible<F> {
    inner: Option<Pin<Box<F>>>,
    interrupt: Arc<Interrupt>,
}

impl<F: Future> Future for Interruptible<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        *self
            .interrupt
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        if self.interrupt.requested.load(Ordering::Acquire) {
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
            Poll::Pending => Poll::Pending,
        }
    }
}
