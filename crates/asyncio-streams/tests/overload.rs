//! Servers under overload and faults: out of descriptors, slow and hostile
//! peers, SIGPIPE. The tests that must change process-wide state (the
//! descriptor limit, SIGPIPE's disposition) run this binary again as a child
//! and look at what the child did and how it ended.

mod common;

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use asyncio_core::EventLoop;
use asyncio_streams::subprocess::PIPE;
use asyncio_streams::{
    ReadUntilError, ServerOptions, StreamReader, StreamWriter, create_subprocess_exec,
    open_connection, open_unix_connection, start_server_with, start_unix_server,
};
use common::{nofile, open_fds, run, set_nofile, until};

/// Set in the child that a test starts: which part to play.
const ROLE: &str = "ASYNCIO_STREAMS_OVERLOAD_ROLE";

/// Runs the test `name` of this binary in a child process with `ROLE=role`.
fn child(name: &str, role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary knows its path"));
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(ROLE, role);
    cmd
}

fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

// ---------------------------------------------------------------------------
// Out of descriptors.

const EMFILE_CLIENTS: usize = 60;
/// Descriptors the server child may open beyond those it has at start-up.
const EMFILE_ROOM: usize = 16;

/// The server side, in a child whose descriptor limit leaves room for about
/// `EMFILE_ROOM` connections: it prints its port, then serves until a client
/// says "stop", and prints how many accept failures it reported.
fn emfile_server() {
    let reports = Rc::new(Cell::new(0usize));
    let emfile = Rc::new(Cell::new(false));
    let lp = EventLoop::new();
    let (r2, e2) = (reports.clone(), emfile.clone());
    lp.set_exception_handler(Some(move |ctx: &asyncio_core::ExceptionContext| {
        let msg = &ctx.message;
        if msg.contains("accept") {
            r2.set(r2.get() + 1);
            if msg.contains("Too many open files") || msg.contains("os error 24") {
                e2.set(true);
            }
        }
    }));
    let stop = Rc::new(asyncio_sync::Event::new());
    let stop2 = stop.clone();
    lp.run_until_complete(async move {
        let handler = move |mut r: StreamReader, mut w: StreamWriter| {
            let stop = stop2.clone();
            async move {
                let line = r.readline().await.unwrap_or_default();
                if line == b"stop\n" {
                    stop.set();
                }
                w.write(&line);
                let _ = w.drain().await;
                // Held until the client closes.
                let _ = r.read_to_eof().await;
                w.close();
            }
        };
        let options = ServerOptions::new().backlog(256);
        let server = start_server_with(handler, "127.0.0.1", 0, &options)
            .await
            .expect("the child binds a loopback port");
        let room = open_fds() + EMFILE_ROOM;
        assert!(set_nofile(room as libc::rlim_t), "lowering RLIMIT_NOFILE");
        println!("PORT {}", server.local_addr().unwrap().port());
        std::io::stdout().flush().unwrap();
        asyncio_core::timeout(Duration::from_secs(60), stop.wait())
            .await
            .expect("the parent says stop within 60 s");
        server.close();
    })
    .expect("the child's loop runs");
    // SAFETY: getrusage writes one rusage through a valid, exclusive pointer.
    let cpu = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u.ru_utime.tv_sec as f64
            + u.ru_stime.tv_sec as f64
            + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) as f64 / 1e6
    };
    println!(
        "REPORTS {} EMFILE {} CPU {cpu:.3}",
        reports.get(),
        emfile.get()
    );
}

#[test]
fn accept_out_of_descriptors_pauses_instead_of_spinning_and_serves_again_once_they_free_up() {
    const NAME: &str =
        "accept_out_of_descriptors_pauses_instead_of_spinning_and_serves_again_once_they_free_up";
    if role().as_deref() == Some("emfile-server") {
        return emfile_server();
    }
    let mut server = child(NAME, "emfile-server")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the test binary can run itself");
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut lines = Vec::new();
    let port: u16 = loop {
        let mut line = String::new();
        assert_ne!(
            out.read_line(&mut line).unwrap(),
            0,
            "the child ended early"
        );
        // libtest's "test name ... " may start the line.
        if let Some((_, p)) = line.split_once("PORT ") {
            break p.trim().parse().unwrap();
        }
        lines.push(line);
    };
    let wall = std::time::Instant::now();
    // A storm: far more connections than the server has descriptors for.
    // The kernel completes each handshake (backlog 256); the server accepts
    // what its limit allows, then hits EMFILE.
    let mut conns: Vec<TcpStream> = (0..EMFILE_CLIENTS)
        .map(|i| {
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            c.write_all(format!("client {i}\n").as_bytes()).unwrap();
            c
        })
        .collect();
    // Each reply read, that connection closes and frees a descriptor of the
    // server's; the ones past the limit are served after a pause.
    for (i, c) in conns.iter_mut().enumerate() {
        let mut reply = vec![0; format!("client {i}\n").len()];
        c.read_exact(&mut reply)
            .unwrap_or_else(|e| panic!("client {i} got no reply: {e}"));
        assert_eq!(reply, format!("client {i}\n").as_bytes());
        c.shutdown(std::net::Shutdown::Both).unwrap();
    }
    drop(conns);
    let wall = wall.elapsed();
    let mut stop = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stop.write_all(b"stop\n").unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = server.wait().unwrap();
    assert!(status.success(), "the server process died: {status}");
    let summary = rest
        .lines()
        .find_map(|l| l.split_once("REPORTS ").map(|(_, s)| s))
        .unwrap_or_else(|| panic!("no summary from the child: {lines:?} {rest}"));
    eprintln!("EMFILE storm of {EMFILE_CLIENTS} connections, served in {wall:?}: {summary}");
    let fields: Vec<&str> = summary.split_whitespace().collect();
    let reports: usize = fields[0].parse().unwrap();
    assert_eq!(fields[2], "true", "the server did run out of descriptors");
    // A server that retried at once would report thousands of failures per
    // second; asyncio's pause allows about one a second per listener.
    assert!(
        (1..=30).contains(&reports),
        "{reports} accept failures reported: the server spun on EMFILE"
    );
}

// ---------------------------------------------------------------------------
// SIGPIPE.

/// In a child with SIGPIPE at its default action (death), as in a process
/// whose `main` is not Rust's: writes to a TCP peer, a Unix-socket peer and a
/// child process that have all gone, and prints what each write returned.
fn sigpipe_writer() {
    // SAFETY: restoring SIGPIPE's default action touches no memory of ours;
    // nothing else in this child handles SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let path = std::env::temp_dir().join(format!("asyncio-sigpipe-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let path2 = path.clone();
    run(async move {
        // TCP: the peer closes at once; the server keeps writing.
        let (tx, rx) = (
            Rc::new(Cell::new(None::<std::io::ErrorKind>)),
            Rc::new(asyncio_sync::Event::new()),
        );
        let (tx2, rx2) = (tx.clone(), rx.clone());
        let tcp = asyncio_streams::start_server(
            move |_r: StreamReader, mut w: StreamWriter| {
                let (tx, rx) = (tx2.clone(), rx2.clone());
                async move {
                    tx.set(Some(write_until_error(&mut w).await));
                    rx.set();
                }
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let port = tcp.local_addr().unwrap().port();
        drop(open_connection("127.0.0.1", port).await.unwrap());
        rx.wait().await;
        println!("TCP {:?}", tx.get().unwrap());

        // A Unix socket, the same way.
        let (utx, urx) = (
            Rc::new(Cell::new(None::<std::io::ErrorKind>)),
            Rc::new(asyncio_sync::Event::new()),
        );
        let (utx2, urx2) = (utx.clone(), urx.clone());
        let unix = start_unix_server(
            move |_r: StreamReader, mut w: StreamWriter| {
                let (tx, rx) = (utx2.clone(), urx2.clone());
                async move {
                    tx.set(Some(write_until_error(&mut w).await));
                    rx.set();
                }
            },
            &path2,
        )
        .await
        .unwrap();
        drop(open_unix_connection(&path2).await.unwrap());
        urx.wait().await;
        println!("UNIX {:?}", utx.get().unwrap());
        unix.close();

        // A child's stdin after the child exited without reading it.
        let mut p = create_subprocess_exec("true", [""; 0])
            .stdin(PIPE)
            .await
            .unwrap();
        assert_eq!(p.wait().await.unwrap(), 0);
        let mut stdin = p.stdin.take().unwrap();
        println!("PIPE {:?}", write_until_error(&mut stdin).await);
    });
    let _ = std::fs::remove_file(&path);
    println!("SURVIVED");
}

/// Writes until the connection fails; the error's kind. Bounded: a
/// connection whose peer is gone fails within a few megabytes.
async fn write_until_error(w: &mut StreamWriter) -> std::io::ErrorKind {
    let chunk = vec![7u8; 64 * 1024];
    for _ in 0..10_000 {
        w.write(&chunk);
        if let Err(e) = w.drain().await {
            return e.kind();
        }
        asyncio_core::sleep(Duration::from_millis(1)).await;
    }
    panic!("640 MB written to a peer that is gone, and no error");
}

#[test]
fn writing_to_a_peer_that_is_gone_never_kills_the_process_even_with_sigpipe_at_its_default() {
    const NAME: &str =
        "writing_to_a_peer_that_is_gone_never_kills_the_process_even_with_sigpipe_at_its_default";
    if role().as_deref() == Some("sigpipe") {
        return sigpipe_writer();
    }
    let out = child(NAME, "sigpipe")
        .stderr(Stdio::inherit())
        .output()
        .expect("the test binary can run itself");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child died ({}); it printed: {stdout}",
        out.status
    );
    for what in ["TCP ", "UNIX ", "PIPE "] {
        let line = stdout
            .lines()
            .find_map(|l| l.split_once(what).map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("no {what}line in {stdout}"));
        assert!(
            line.contains("BrokenPipe") || line.contains("ConnectionReset"),
            "a write to a peer that is gone fails with EPIPE or ECONNRESET: {line}"
        );
    }
    assert!(stdout.contains("SURVIVED"));
}

// ---------------------------------------------------------------------------
// Slow and hostile peers.

const CROWD: usize = 1_000;

/// Raises the descriptor limit for a crowd of loopback connections (both
/// ends are in this process); false when the hard limit is too low.
fn room_for_crowd() -> bool {
    let want = (2 * CROWD + 1024) as libc::rlim_t;
    nofile().rlim_cur >= want || set_nofile(want)
}

/// A good client's requests, each answered by the line handler below; the
/// slowest round trip. The requests go
/// `gap` apart.
async fn good_client(port: u16, requests: usize, gap: Duration) -> Duration {
    let (mut r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
    let mut worst = Duration::ZERO;
    for i in 0..requests {
        let t = std::time::Instant::now();
        let line = format!("request {i}\n");
        w.write(line.as_bytes());
        w.drain().await.unwrap();
        assert_eq!(r.readline().await.unwrap(), line.as_bytes());
        worst = worst.max(t.elapsed());
        asyncio_core::sleep(gap).await;
    }
    worst
}

#[test]
fn a_thousand_slowloris_clients_stay_within_the_limit_and_a_good_client_is_still_served() {
    const LIMIT: usize = 1024;
    if !room_for_crowd() {
        eprintln!("SKIPPED: RLIMIT_NOFILE cannot be raised for {CROWD} connections");
        return;
    }
    run(async {
        let overruns = Rc::new(Cell::new(0usize));
        let seen = overruns.clone();
        // An echo of lines: a line longer than the limit is an error, and the
        // handler drops such a client.
        let handler = move |mut r: StreamReader, mut w: StreamWriter| {
            let seen = seen.clone();
            async move {
                loop {
                    match r.readline().await {
                        Ok(line) if line.is_empty() => break,
                        Ok(line) => {
                            w.write(&line);
                            if w.drain().await.is_err() {
                                break;
                            }
                        }
                        Err(ReadUntilError::LimitOverrun(_)) => {
                            seen.set(seen.get() + 1);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                w.abort();
            }
        };
        let options = ServerOptions::new().limit(LIMIT).backlog(2048);
        let server = start_server_with(handler, "127.0.0.1", 0, &options)
            .await
            .unwrap();
        let port = server.local_addr().unwrap().port();
        // A thousand clients, each trickling one byte of a line that never
        // ends every 100 ms until the good client is done, then sending twice
        // the limit in one go.
        let good_done = Rc::new(asyncio_sync::Event::new());
        let trickling = Rc::new(Cell::new(0usize));
        let slow: Vec<_> = (0..CROWD)
            .map(|_| {
                let (good_done, trickling) = (good_done.clone(), trickling.clone());
                asyncio_core::create_task(async move {
                    let (_r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
                    trickling.set(trickling.get() + 1);
                    for _ in 0..600 {
                        if good_done.is_set() {
                            break;
                        }
                        w.write(b"x");
                        w.drain().await.unwrap();
                        asyncio_core::sleep(Duration::from_millis(100)).await;
                    }
                    assert!(good_done.is_set(), "the good client finished within 60 s");
                    w.write(&[b'x'; 2 * LIMIT]);
                    let _ = w.drain().await;
                })
            })
            .collect();
        until(|| server.active_connections() == CROWD && trickling.get() == CROWD).await;
        // While the crowd trickles (about ten bytes from each), a good
        // client is answered.
        let worst = good_client(port, 100, Duration::from_millis(10)).await;
        good_done.set();
        eprintln!(
            "{CROWD} slowloris clients: the good client's slowest of 100 round trips took {worst:?}"
        );
        // Each slow client's line hits the limit: the server drops it rather
        // than buffer more than the limit.
        until(|| overruns.get() == CROWD).await;
        for t in slow {
            t.await.unwrap();
        }
        until(|| server.active_connections() == 0).await;
        server.close();
    });
}

#[test]
fn a_thousand_clients_that_never_read_stay_within_the_high_water_mark_and_a_good_client_is_still_served()
 {
    const CHUNK: usize = 16 * 1024;
    const REPLY: usize = 4 * 1024 * 1024;
    if !room_for_crowd() {
        eprintln!("SKIPPED: RLIMIT_NOFILE cannot be raised for {CROWD} connections");
        return;
    }
    run(async {
        let max_buffered = Rc::new(Cell::new(0usize));
        let blocked = Rc::new(Cell::new(0usize));
        let (m, b) = (max_buffered.clone(), blocked.clone());
        // "big\n" asks for 4 MiB; any other line is echoed.
        let handler = move |mut r: StreamReader, mut w: StreamWriter| {
            let (m, b) = (m.clone(), b.clone());
            async move {
                while let Ok(line) = r.readline().await {
                    if line.is_empty() {
                        break;
                    }
                    if line == b"big\n" {
                        let chunk = vec![1u8; CHUNK];
                        let mut counted = false;
                        for _ in 0..REPLY / CHUNK {
                            w.write(&chunk);
                            m.set(m.get().max(w.write_buffer_size()));
                            if w.write_buffer_size() > w.write_buffer_limits().0 && !counted {
                                counted = true;
                                b.set(b.get() + 1);
                            }
                            if w.drain().await.is_err() {
                                return;
                            }
                        }
                    } else {
                        w.write(&line);
                        if w.drain().await.is_err() {
                            return;
                        }
                    }
                }
            }
        };
        let options = ServerOptions::new().backlog(2048);
        let server = start_server_with(handler, "127.0.0.1", 0, &options)
            .await
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let mut hostile = Vec::new();
        for _ in 0..CROWD {
            let (r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
            w.write(b"big\n");
            w.drain().await.unwrap();
            hostile.push((r, w));
        }
        // Every handler ends up parked in drain() above its high-water mark.
        until(|| blocked.get() == CROWD).await;
        let worst = good_client(port, 100, Duration::ZERO).await;
        eprintln!(
            "{CROWD} clients that never read: the good client's slowest of 100 round trips took {worst:?}; \
             largest server write buffer {} bytes",
            max_buffered.get()
        );
        assert!(
            max_buffered.get() <= 64 * 1024 + CHUNK,
            "a server write buffer grew to {} bytes",
            max_buffered.get()
        );
        drop(hostile);
        until(|| server.active_connections() == 0).await;
        server.close();
    });
}

// ---------------------------------------------------------------------------
// The backlog.

#[test]
fn the_default_backlog_queues_a_burst_of_a_thousand_connects_before_any_is_accepted() {
    const BURST: usize = 1_000;
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok());
    if somaxconn.is_none_or(|n| n < BURST) {
        eprintln!("SKIPPED: the kernel's somaxconn ({somaxconn:?}) caps the backlog below {BURST}");
        return;
    }
    if nofile().rlim_cur < 2 * BURST as libc::rlim_t {
        assert!(set_nofile(4096), "RLIMIT_NOFILE can be raised to 4096");
    }
    run(async {
        // Nothing is accepted: every connect must find room in the queue.
        let options = ServerOptions::new().start_serving(false);
        let server = start_server_with(|_r, _w| async {}, "127.0.0.1", 0, &options)
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        // A connect that finds the queue full has its SYN dropped and waits
        // for retransmits that find it full again: it times out.
        let conns: Vec<_> = (0..BURST)
            .map(|i| {
                TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    .unwrap_or_else(|e| panic!("connect {i} of the burst failed: {e}"))
            })
            .collect();
        assert_eq!(conns.len(), BURST);
        server.close();
    });
}
