//! Shared helpers: every test runs on a fresh loop under a time bound, so a
//! bug shows as a failure, never as a hang.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::Duration;

use asyncio_core::EventLoop;
use asyncio_streams::{Server, StreamReader, StreamWriter, start_server};

/// Runs `fut` on a new loop; fails the test if it takes over 30 s (300 s
/// under a sanitizer, `ASYNCIO_SANITIZER`, whose instrumented build runs the
/// bulk transfers of some tests ten times slower or more).
pub fn run<F>(fut: F) -> F::Output
where
    F: Future + 'static,
    F::Output: 'static,
{
    let bound = if std::env::var_os("ASYNCIO_SANITIZER").is_some() {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(30)
    };
    let lp = EventLoop::new();
    lp.run_until_complete(asyncio_core::timeout(bound, fut))
        .expect("the loop runs the test")
        .expect("the test finished within its time bound")
}

/// A server on a free loopback port, and that port.
pub async fn serve<F, Fut>(cb: F) -> (Server, u16)
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future + 'static,
{
    let server = start_server(cb, "127.0.0.1", 0)
        .await
        .expect("binding a free loopback port succeeds");
    let port = server
        .local_addr()
        .expect("a TCP server has an address")
        .port();
    (server, port)
}

/// An echo handler: each line back until EOF.
pub async fn echo(mut r: StreamReader, mut w: StreamWriter) {
    while let Ok(line) = r.readline().await {
        if line.is_empty() {
            break;
        }
        w.write(&line);
        if w.drain().await.is_err() {
            break;
        }
    }
    w.close();
    let _ = w.wait_closed().await;
}

/// Waits (yielding, bounded in count) until `cond` holds.
pub async fn until(mut cond: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        asyncio_core::sleep(Duration::from_millis(1)).await;
    }
    panic!("condition not reached within 10,000 turns");
}

/// The limits of open descriptors (soft and hard).
pub fn nofile() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid, exclusive pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim
}

/// Sets the soft limit of open descriptors (raising the hard one if it must).
pub fn set_nofile(soft: libc::rlim_t) -> bool {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: nofile().rlim_max.max(soft),
    };
    // SAFETY: setrlimit reads one rlimit through a valid pointer.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 }
}

/// How many descriptors this process has open (portable: asks each number).
pub fn open_fds() -> usize {
    let top = nofile().rlim_cur.min(1 << 16) as libc::c_int;
    // SAFETY: F_GETFD only reads the flags of a descriptor number, open or not.
    (0..top)
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .count()
}

/// Resident memory of this process, where `/proc` tells it (Linux).
pub fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * usize::try_from(page).ok()?)
}
