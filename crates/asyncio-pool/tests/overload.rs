//! A pool's server out of descriptors: in both accept modes, accepting
//! pauses instead of spinning, no loop dies, and every client is served once
//! descriptors free up. The server runs in a child process (this test binary
//! again) whose `RLIMIT_NOFILE` is lowered.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use asyncio_pool::{AcceptMode, LoopPool, PoolListener};
use asyncio_streams::{ServerOptions, StreamReader, StreamWriter};
use asyncio_sync::Channel;

const ROLE: &str = "ASYNCIO_POOL_OVERLOAD_ROLE";
const CLIENTS: usize = 60;
/// Descriptors the child may open beyond those its two loops hold.
const ROOM: usize = 16;

fn nofile() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid, exclusive pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim
}

fn open_fds() -> usize {
    let top = nofile().rlim_cur.min(1 << 16) as libc::c_int;
    // SAFETY: F_GETFD only reads the flags of a descriptor number, open or not.
    (0..top)
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .count()
}

fn lower_nofile_to(soft: usize) {
    let lim = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: nofile().rlim_max,
    };
    // SAFETY: setrlimit reads one rlimit through a valid pointer.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

/// The child: a two-loop pool serving with `mode`; each handler echoes a
/// line and holds the connection until the client closes; "stop" ends the
/// pool. Prints the port, then the number of accept failures reported.
fn server(mode: AcceptMode) {
    let listener = PoolListener::bind("127.0.0.1:0", 2, mode).unwrap();
    let port = listener.local_addr().port();
    let reports = Arc::new(AtomicUsize::new(0));
    let emfile = Arc::new(AtomicUsize::new(0));
    let stop = Channel::<()>::new(0);
    let started = Arc::new(std::sync::Barrier::new(2));
    LoopPool::new()
        .workers(2)
        .run(|w| {
            let (listener, stop, started) = (listener.clone(), stop.clone(), started.clone());
            let (reports, emfile) = (reports.clone(), emfile.clone());
            async move {
                asyncio_core::get_running_loop()
                    .unwrap()
                    .set_exception_handler(Some(move |ctx: &asyncio_core::ExceptionContext| {
                        if ctx.message.contains("accept") {
                            reports.fetch_add(1, Ordering::Relaxed);
                            if ctx.message.contains("os error 24") {
                                emfile.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }));
                let stop_cb = stop.clone();
                let server = listener.start_server(
                    &w,
                    move |mut r: StreamReader, mut w: StreamWriter| {
                        let stop = stop_cb.clone();
                        async move {
                            let line = r.readline().await.unwrap_or_default();
                            if line == b"stop\n" {
                                stop.shutdown(false);
                            }
                            w.write(&line);
                            let _ = w.drain().await;
                            let _ = r.read_to_eof().await;
                        }
                    },
                    &ServerOptions::new(),
                )?;
                // Both loops and servers exist before the limit comes down.
                started.wait();
                if w.index() == 0 {
                    lower_nofile_to(open_fds() + ROOM);
                    println!("PORT {port}");
                    std::io::stdout().flush().unwrap();
                }
                let _ = asyncio_core::timeout(Duration::from_secs(60), stop.get()).await;
                server.close();
                std::io::Result::Ok(())
            }
        })
        .expect("no worker fails");
    println!(
        "REPORTS {} EMFILE {}",
        reports.load(Ordering::Relaxed),
        emfile.load(Ordering::Relaxed)
    );
}

/// Runs the storm against a child serving in `mode`; the child's reports.
fn storm(name: &str, mode: &str) -> (usize, usize) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(ROLE, mode)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the test binary can run itself");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let port: u16 = loop {
        let mut line = String::new();
        assert_ne!(
            out.read_line(&mut line).unwrap(),
            0,
            "the child ended early"
        );
        if let Some((_, p)) = line.split_once("PORT ") {
            break p.trim().parse().unwrap();
        }
    };
    let mut conns: Vec<TcpStream> = (0..CLIENTS)
        .map(|i| {
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            c.write_all(format!("client {i}\n").as_bytes()).unwrap();
            c
        })
        .collect();
    // In ReusePort mode the two sockets' queues are served independently,
    // so replies are read in any order: poll them round by round.
    let mut pending: Vec<usize> = (0..CLIENTS).collect();
    for _ in 0..200 {
        if pending.is_empty() {
            break;
        }
        pending.retain(|&i| {
            let c = &mut conns[i];
            c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let want = format!("client {i}\n");
            let mut reply = vec![0; want.len()];
            match c.read_exact(&mut reply) {
                Ok(()) => {
                    assert_eq!(reply, want.as_bytes());
                    c.shutdown(std::net::Shutdown::Both).unwrap();
                    false
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    true
                }
                Err(e) => panic!("client {i}: {e}"),
            }
        });
    }
    assert!(pending.is_empty(), "clients never served: {pending:?}");
    drop(conns);
    let mut stop = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stop.write_all(b"stop\n").unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "the pool's process died: {status}");
    let summary = rest
        .lines()
        .find_map(|l| l.split_once("REPORTS ").map(|(_, s)| s.to_owned()))
        .unwrap_or_else(|| panic!("no summary from the child: {rest}"));
    eprintln!("{mode}: {CLIENTS} clients served; accept failures: {summary}");
    let n: Vec<usize> = summary
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1])
}

fn role() -> Option<AcceptMode> {
    match std::env::var(ROLE).ok()?.as_str() {
        "handoff" => Some(AcceptMode::Handoff),
        "reuseport" => Some(AcceptMode::ReusePort),
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_pool_accepting_by_hand_off_pauses_when_out_of_descriptors_and_serves_again() {
    if let Some(mode) = role() {
        return server(mode);
    }
    let (reports, emfile) = storm(
        "a_pool_accepting_by_hand_off_pauses_when_out_of_descriptors_and_serves_again",
        "handoff",
    );
    assert!(emfile >= 1, "the pool did run out of descriptors");
    assert!(
        reports <= 30,
        "{reports} accept failures: the acceptor spun"
    );
}

#[test]
fn a_pool_accepting_on_reuse_port_sockets_pauses_when_out_of_descriptors_and_serves_again() {
    if let Some(mode) = role() {
        return server(mode);
    }
    let (reports, emfile) = storm(
        "a_pool_accepting_on_reuse_port_sockets_pauses_when_out_of_descriptors_and_serves_again",
        "reuseport",
    );
    assert!(emfile >= 1, "the pool did run out of descriptors");
    assert!(reports <= 60, "{reports} accept failures: an acceptor spun");
}
