//! I/O readiness: [`IoRegistration`] for futures (edge-triggered, what the
//! streams build on) and asyncio's callback style, `add_reader`/`add_writer`.
//!
//! Both take a Unix file descriptor, so both are Unix-only; elsewhere (a
//! future Windows port) the entry table and the run loop's dispatch stay, and
//! would register sockets instead.
#![cfg_attr(not(unix), allow(dead_code))]

use std::io;
use std::rc::Rc;
use std::task::Waker;

use crate::event_loop::LoopInner;
#[cfg(unix)]
use {
    crate::error::RuntimeError,
    crate::event_loop::EventLoop,
    std::fmt,
    std::os::fd::RawFd,
    std::rc::Weak,
    std::task::{Context, Poll},
};

/// Where there are no file descriptors the table is keyed by an integer that
/// nothing registers.
#[cfg(not(unix))]
type RawFd = i32;

/// One registered file descriptor: its readiness and wakers (shared with its
/// [`IoRegistration`], which reads them without going through the loop) and
/// asyncio-style callbacks.
pub(crate) struct IoEntry {
    fd: RawFd,
    state: Rc<IoState>,
    /// `add_reader`/`add_writer` callbacks, boxed: most entries (every
    /// socket of a stream) have none, and each open connection pays for an
    /// entry.
    callbacks: Option<Box<Callbacks>>,
}

/// An entry's asyncio-style callbacks.
#[derive(Default)]
struct Callbacks {
    reader: Option<Rc<dyn Fn()>>,
    writer: Option<Rc<dyn Fn()>>,
}

/// Readiness bits of an [`IoState`].
const READ_READY: u8 = 1;
const WRITE_READY: u8 = 1 << 1;
/// The peer closed (or the fd is in error): reading returns at once from now
/// on, so `clear_readable` no longer forgets the readiness.
const READ_CLOSED: u8 = 1 << 2;
/// The same for writing.
const WRITE_CLOSED: u8 = 1 << 3;
/// The entry left the loop (removed, or the loop closed or dropped): polls
/// fail with `RuntimeError::Closed`.
const GONE: u8 = 1 << 4;

/// What an fd's entry and its registration share: the registration's hot
/// path (is it ready? clear it; park a waker) is a few loads and stores here
/// instead of reaching the entry through the loop's table. Loop thread only.
#[derive(Default)]
pub(crate) struct IoState {
    bits: std::cell::Cell<u8>,
    read_waker: std::cell::Cell<Option<Waker>>,
    write_waker: std::cell::Cell<Option<Waker>>,
}

impl IoState {
    /// Parks `waker` in `slot` unless the one there wakes the same task. The
    /// replaced waker is dropped after the slot is written (a waker's drop
    /// may re-enter; nothing is borrowed here).
    #[cfg(unix)]
    fn park(slot: &std::cell::Cell<Option<Waker>>, waker: &Waker) {
        match slot.take() {
            Some(w) if w.will_wake(waker) => slot.set(Some(w)),
            old => {
                slot.set(Some(waker.clone()));
                drop(old);
            }
        }
    }
}

/// What an event asks the loop to do.
pub(crate) enum Wakeup {
    Waker(Waker),
    Callback(Rc<dyn Fn()>, usize),
    /// The self-pipe of the loop's signal handlers is readable.
    Signals,
}

impl IoEntry {
    fn new(fd: RawFd, state: Rc<IoState>) -> Self {
        IoEntry {
            fd,
            state,
            callbacks: None,
        }
    }

    /// Records an event: readiness (and closure) bits, then the parked
    /// wakers and the callbacks into `out`, for the loop to run once the
    /// table is no longer borrowed.
    pub(crate) fn on_event(
        &mut self,
        key: usize,
        readable: bool,
        writable: bool,
        closed: (bool, bool),
        out: &mut Vec<Wakeup>,
    ) {
        let st = &self.state;
        let mut bits = st.bits.get();
        if closed.0 {
            bits |= READ_CLOSED;
        }
        if closed.1 {
            bits |= WRITE_CLOSED;
        }
        if readable {
            bits |= READ_READY;
        }
        if writable {
            bits |= WRITE_READY;
        }
        st.bits.set(bits);
        if readable {
            if let Some(w) = st.read_waker.take() {
                out.push(Wakeup::Waker(w));
            }
            if let Some(cb) = self.callbacks.as_ref().and_then(|c| c.reader.as_ref()) {
                out.push(Wakeup::Callback(cb.clone(), key));
            }
        }
        if writable {
            if let Some(w) = st.write_waker.take() {
                out.push(Wakeup::Waker(w));
            }
            if let Some(cb) = self.callbacks.as_ref().and_then(|c| c.writer.as_ref()) {
                out.push(Wakeup::Callback(cb.clone(), key));
            }
        }
    }
}

impl Drop for IoEntry {
    /// The registration (if any) sees the entry gone, and the wakers parked
    /// in it go with the entry, as they did when they lived in it: nothing
    /// but the loop's table keeps a waiting task's waker.
    fn drop(&mut self) {
        let st = &self.state;
        st.bits.set(st.bits.get() | GONE);
        // Each waker is dropped through the gate: two whose drops panic must
        // not abort the process (a second panic while the first unwinds).
        // The first panic goes on once both are dropped.
        let read = crate::gate::drop_catching(st.read_waker.take());
        let write = crate::gate::drop_catching(st.write_waker.take());
        if let Some(payload) = read.or(write) {
            std::panic::resume_unwind(payload);
        }
    }
}

#[cfg(all(unix, not(miri)))]
fn register(lp: &LoopInner, fd: RawFd, key: usize, reregister: bool) -> io::Result<()> {
    // The loop's first registration makes its poller.
    let poller = lp.poller()?;
    let poll = poller.registry();
    let mut source = mio::unix::SourceFd(&fd);
    let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
    if reregister {
        poll.registry()
            .reregister(&mut source, mio::Token(key), interest)
    } else {
        poll.registry()
            .register(&mut source, mio::Token(key), interest)
    }
}

#[cfg(any(miri, not(unix)))]
fn register(_: &LoopInner, _: RawFd, _: usize, _: bool) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        if cfg!(miri) {
            "I/O readiness is not available under Miri"
        } else {
            "file-descriptor readiness needs Unix"
        },
    ))
}

#[cfg(all(unix, not(miri)))]
fn deregister(lp: &LoopInner, fd: RawFd) {
    // A registered fd means the poller exists.
    let Ok(poller) = lp.poller() else { return };
    let poll = poller.registry();
    // The fd may already be closed (the kernel then dropped it from the epoll
    // set itself); either way it is gone, which is what was asked.
    let _ = poll.registry().deregister(&mut mio::unix::SourceFd(&fd));
}

#[cfg(any(miri, not(unix)))]
fn deregister(_: &LoopInner, _: RawFd) {}

fn add(lp: &LoopInner, fd: RawFd, state: Rc<IoState>) -> io::Result<usize> {
    let key = lp.driver.io.borrow_mut().insert(IoEntry::new(fd, state));
    if let Err(e) = register(lp, fd, key, false) {
        lp.driver.io.borrow_mut().remove(key);
        return Err(e);
    }
    Ok(key)
}

fn remove(lp: &LoopInner, key: usize) {
    let entry = lp.driver.io.borrow_mut().try_remove(key);
    if let Some(entry) = entry {
        deregister(lp, entry.fd);
        // Wakers and callbacks dropped outside the borrow, through the gate.
        lp.drop_reporting(entry);
    }
}

/// Runs an I/O callback (from `add_reader`/`add_writer`) and re-arms the
/// registration, so the callback runs again while the fd stays ready, as
/// asyncio's level-triggered callbacks do.
pub(crate) fn run_callback(lp: &LoopInner, cb: &Rc<dyn Fn()>, key: usize) {
    // A callback removed (or replaced) since its event was taken does not
    // run, as asyncio cancels the handle of a removed reader; this also
    // keeps a callback off an fd that took over its entry's key.
    let current = {
        let io = lp.driver.io.borrow();
        io.get(key)
            .and_then(|e| e.callbacks.as_ref())
            .is_some_and(|c| {
                [&c.reader, &c.writer]
                    .into_iter()
                    .flatten()
                    .any(|r| Rc::ptr_eq(r, cb))
            })
    };
    if !current {
        return;
    }
    cb();
    let fd = lp.driver.io.borrow().get(key).map(|e| e.fd);
    if let Some(fd) = fd {
        let _ = register(lp, fd, key, true);
    }
}

/// A file descriptor registered with the running loop for readiness, the
/// building block of sockets and pipes (edge-triggered, through `epoll`).
///
/// `poll_readable` returns `Ready` once the fd became readable since the last
/// [`clear_readable`](Self::clear_readable); after an operation fails with
/// `WouldBlock`, call `clear_readable` and poll again. The same holds for
/// writing. Dropping the registration removes the fd from the loop; it does not
/// close the fd.
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::fd::AsRawFd;
///
/// let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// b.set_nonblocking(true).unwrap();
/// let got = asyncio::run(async move {
///     let reg = asyncio::IoRegistration::new(b.as_raw_fd())?;
///     a.write_all(b"ready")?;
///     reg.readable().await?; // the loop waits in epoll, not here
///     let mut buf = [0u8; 8];
///     let n = b.read(&mut buf)?;
///     std::io::Result::Ok(buf[..n].to_vec())
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(got, b"ready");
/// ```
#[cfg(unix)]
pub struct IoRegistration {
    lp: Weak<LoopInner>,
    key: usize,
    state: Rc<IoState>,
}

#[cfg(unix)]
impl IoRegistration {
    /// Registers `fd` (which must be in non-blocking mode and stay open while
    /// registered) with the running loop.
    ///
    /// # Errors
    /// `ErrorKind::Other` wrapping [`RuntimeError::NoRunningLoop`] outside a
    /// loop; the OS error if `epoll` refuses the fd (closed, or not pollable
    /// like a regular file); `Unsupported` under Miri.
    pub fn new(fd: RawFd) -> io::Result<Self> {
        let lp = crate::event_loop::running_inner().map_err(io::Error::other)?;
        let state = Rc::new(IoState::default());
        let key = add(&lp, fd, state.clone())?;
        Ok(IoRegistration {
            lp: Rc::downgrade(&lp),
            key,
            state,
        })
    }

    #[inline]
    fn poll_ready(&self, cx: &mut Context<'_>, read: bool) -> Poll<io::Result<()>> {
        let st = &self.state;
        let bits = st.bits.get();
        if bits & GONE != 0 {
            return Poll::Ready(Err(io::Error::other(RuntimeError::Closed)));
        }
        let (ready, slot) = if read {
            (READ_READY, &st.read_waker)
        } else {
            (WRITE_READY, &st.write_waker)
        };
        if bits & ready != 0 {
            return Poll::Ready(Ok(()));
        }
        IoState::park(slot, cx.waker());
        Poll::Pending
    }

    /// `Ready` once the fd is readable (or at end of file, or in error).
    ///
    /// # Errors
    /// If the loop closed.
    #[inline]
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(cx, true)
    }

    /// `Ready` once the fd is writable (or in error).
    ///
    /// # Errors
    /// If the loop closed.
    #[inline]
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(cx, false)
    }

    #[inline]
    fn clear(&self, read: bool) {
        let st = &self.state;
        let bits = st.bits.get();
        // Once closed, the fd stays ready (see `clear_readable`).
        let keep = if read {
            bits & READ_CLOSED == 0
        } else {
            bits & WRITE_CLOSED == 0
        };
        if keep {
            st.bits
                .set(bits & !(if read { READ_READY } else { WRITE_READY }));
        }
    }

    /// Forgets the readable state after a read returned `WouldBlock` (or
    /// after a short read, which on a stream socket shows that the kernel's
    /// buffer is drained). Once the peer closed its side or the fd is in
    /// error, the fd stays readable: reads return at once (end of file or
    /// the error), so the readiness is kept and no wake-up can be missed.
    #[inline]
    pub fn clear_readable(&self) {
        self.clear(true);
    }

    /// Forgets the writable state after a write returned `WouldBlock` (or a
    /// short write); kept once the fd is closed for writing or in error.
    #[inline]
    pub fn clear_writable(&self) {
        self.clear(false);
    }

    /// Waits until the fd is readable.
    ///
    /// # Errors
    /// If the loop closed.
    pub async fn readable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_readable(cx)).await
    }

    /// Waits until the fd is writable.
    ///
    /// # Errors
    /// If the loop closed.
    pub async fn writable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_writable(cx)).await
    }
}

#[cfg(unix)]
impl Drop for IoRegistration {
    fn drop(&mut self) {
        if let Some(lp) = self.lp.upgrade() {
            remove(&lp, self.key);
        }
    }
}

#[cfg(unix)]
impl fmt::Debug for IoRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoRegistration")
            .field("token", &self.key)
            .finish_non_exhaustive()
    }
}

/// Callback registrations by fd: `add_reader`/`add_writer`.
#[derive(Default)]
pub(crate) struct FdCallbacks {
    keys: std::cell::RefCell<std::collections::HashMap<RawFd, usize>>,
    _not_send: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl LoopInner {
    pub(crate) fn fd_callbacks_clear(&self) {
        self.fd_callbacks.keys.borrow_mut().clear();
    }
}

#[cfg(unix)]
impl EventLoop {
    fn set_fd_callback(
        &self,
        fd: RawFd,
        callback: Option<Rc<dyn Fn()>>,
        read: bool,
    ) -> io::Result<bool> {
        let lp = &self.inner;
        if lp.closed.get() {
            return Err(io::Error::other(RuntimeError::Closed));
        }
        let existing = lp.fd_callbacks.keys.borrow().get(&fd).copied();
        let key = match (existing, &callback) {
            (Some(key), _) => key,
            (None, None) => return Ok(false),
            (None, Some(_)) => {
                let key = add(lp, fd, Rc::default())?;
                lp.fd_callbacks.keys.borrow_mut().insert(fd, key);
                key
            }
        };
        let (old, now_empty) = {
            let mut io = lp.driver.io.borrow_mut();
            let entry = &mut io[key];
            let cbs = entry.callbacks.get_or_insert_with(Box::default);
            let slot = if read {
                &mut cbs.reader
            } else {
                &mut cbs.writer
            };
            let old = std::mem::replace(slot, callback.clone());
            (old, cbs.reader.is_none() && cbs.writer.is_none())
        };
        let had = old.is_some();
        // The replaced callback may own anything (a registration of its own,
        // whose drop goes back to the table): dropped after the borrow, and
        // through the gate.
        lp.drop_reporting(old);
        if now_empty {
            lp.fd_callbacks.keys.borrow_mut().remove(&fd);
            remove(lp, key);
        } else if callback.is_some() {
            // Re-arm, so a fd that is already ready reports at once.
            register(lp, fd, key, true)?;
        }
        Ok(had)
    }

    /// Calls `callback` whenever `fd` is readable (asyncio's `add_reader`),
    /// replacing an earlier reader of the same fd. Like asyncio's, the callback
    /// runs again on each loop iteration while the fd stays readable.
    ///
    /// # Errors
    /// On a closed loop, or if `epoll` refuses the fd (closed or not pollable).
    pub fn add_reader(&self, fd: RawFd, callback: impl Fn() + 'static) -> io::Result<()> {
        self.set_fd_callback(fd, Some(Rc::new(callback)), true)
            .map(drop)
    }

    /// Calls `callback` whenever `fd` is writable (asyncio's `add_writer`).
    ///
    /// # Errors
    /// As [`add_reader`](Self::add_reader).
    pub fn add_writer(&self, fd: RawFd, callback: impl Fn() + 'static) -> io::Result<()> {
        self.set_fd_callback(fd, Some(Rc::new(callback)), false)
            .map(drop)
    }

    /// Stops watching `fd` for reading; returns whether a reader was registered
    /// (asyncio's `remove_reader`). Call it before closing the fd.
    pub fn remove_reader(&self, fd: RawFd) -> bool {
        self.set_fd_callback(fd, None, true).unwrap_or(false)
    }

    /// Stops watching `fd` for writing; returns whether a writer was registered.
    pub fn remove_writer(&self, fd: RawFd) -> bool {
        self.set_fd_callback(fd, None, false).unwrap_or(false)
    }
}
