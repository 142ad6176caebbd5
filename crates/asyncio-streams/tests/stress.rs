//! Heavy tests, kept out of `cargo test` with `#[ignore]`; `ci/stress.sh` runs
//! them.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use asyncio_streams::{
    ServerOptions, StreamReader, StreamWriter, open_connection, start_server_with,
};
use common::run;

/// Raises the soft (and if needed the hard) limit of open files to `want`;
/// false if the process may not.
fn raise_nofile(want: libc::rlim_t) -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid, exclusive pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return false;
    }
    if lim.rlim_cur >= want {
        return true;
    }
    let new = libc::rlimit {
        rlim_cur: want,
        rlim_max: lim.rlim_max.max(want),
    };
    // SAFETY: setrlimit reads one rlimit through a valid pointer.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 }
}

fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

const N: usize = 10_000;
const CLIENT_ENV: &str = "ASYNCIO_STREAMS_STRESS_CLIENT_PORT";

/// The client side, in a child process (this same test binary) so that each
/// process needs only N descriptors: N connections that each echo one line,
/// then wait for the server to close them.
fn clients(port: u16) {
    assert!(
        raise_nofile(N as libc::rlim_t + 1024),
        "the client process cannot open {N} descriptors"
    );
    run(async move {
        let connected = Rc::new(Cell::new(0usize));
        let tasks: Vec<_> = (0..N)
            .map(|i| {
                let connected = connected.clone();
                asyncio_core::create_task(async move {
                    let (mut r, mut w) = open_connection("127.0.0.1", port).await?;
                    let line = format!("client {i}\n");
                    w.write(line.as_bytes());
                    assert_eq!(r.readline().await?, line.as_bytes());
                    connected.set(connected.get() + 1);
                    // Held open until the server closes it.
                    assert_eq!(r.read_to_eof().await?, b"");
                    std::io::Result::Ok(())
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(connected.get(), N);
    });
}

#[test]
#[ignore = "heavy: 10,000 concurrent loopback connections (ci/stress.sh)"]
fn ten_thousand_concurrent_loopback_connections_are_all_served() {
    if let Ok(port) = std::env::var(CLIENT_ENV) {
        return clients(port.parse().expect("the parent passes a port"));
    }
    if !raise_nofile(N as libc::rlim_t + 1024) {
        eprintln!(
            "SKIPPED ten_thousand_concurrent_loopback_connections: RLIMIT_NOFILE cannot be raised to {}",
            N + 1024
        );
        return;
    }
    run(async {
        let options = ServerOptions::new().backlog(4096);
        let served = Rc::new(Cell::new(0usize));
        let counter = served.clone();
        let handler = move |mut r: StreamReader, mut w: StreamWriter| {
            let counter = counter.clone();
            async move {
                let line = r.readline().await.unwrap_or_default();
                w.write(&line);
                if w.drain().await.is_ok() {
                    counter.set(counter.get() + 1);
                }
                // Held open until the server closes its clients.
                let _ = r.read_to_eof().await;
            }
        };
        let server = start_server_with(handler, "127.0.0.1", 0, &options)
            .await
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let before = rss_bytes();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "ten_thousand_concurrent_loopback_connections_are_all_served",
                "--nocapture",
            ])
            .env(CLIENT_ENV, port.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the test binary can run itself");
        let mut turns = 0;
        while served.get() < N {
            turns += 1;
            assert!(
                turns < 60_000,
                "only {} connections served after 60 s",
                served.get()
            );
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the client process ended early: {status}");
            }
            asyncio_core::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(server.active_connections(), N);
        if let (Some(a), Some(b)) = (before, rss_bytes()) {
            eprintln!(
                "{N} open server connections: {} bytes of server RSS per connection",
                b.saturating_sub(a) / N
            );
        }
        server.close();
        server.close_clients();
        server.wait_closed().await;
        let status = asyncio_core::to_thread(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "the client process failed: {status}");
    });
}
