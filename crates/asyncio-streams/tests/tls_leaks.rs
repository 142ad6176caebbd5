//! A TLS server goes on serving good clients through many bad ones, and
//! gives back every file descriptor (and, in the stress run, its memory).
//! The tests of this binary count the process's descriptors, so they run
//! one at a time.

mod common;
mod tls_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

use asyncio_streams::{
    ClientTls, ConnectOptions, ServerOptions, StreamReader, StreamWriter, open_connection_with,
    start_server_with,
};
use common::run;
use tls_support::{Ca, blocking_client, open_fds, pki};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One round of `n` bad clients of each kind, from a plain thread.
fn bad_clients(port: u16, n: usize, good_tls: &ClientTls, stranger: &ClientTls) {
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    };
    let finish = |mut s: TcpStream| {
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    };
    for i in 0..n {
        // Connects and leaves at once.
        drop(connect());
        // Speaks plaintext HTTP to the TLS port.
        let mut s = connect();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        finish(s);
        // A record header with a bogus length, then garbage.
        let mut s = connect();
        let _ = s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, (i % 256) as u8]);
        drop(s);
        // Half a ClientHello, then gone (a truncated record).
        let s = connect();
        let mut tls = blocking_client(good_tls, s.try_clone().unwrap(), "localhost");
        let mut hello = Vec::new();
        tls.conn.write_tls(&mut hello).unwrap();
        let mut s = s;
        let _ = s.write_all(&hello[..hello.len() / 2]);
        drop(s);
        // A client that does not trust the server's CA: fails with an alert.
        let s = connect();
        let mut tls = blocking_client(stranger, s, "localhost");
        let _ = tls.write_all(b"x");
        let _ = tls.flush();
    }
    // Clients that stall in silence, all at once: the handshake timeout
    // closes them.
    let stalled: Vec<TcpStream> = (0..n.min(200)).map(|_| connect()).collect();
    for s in stalled {
        finish(s);
    }
}

fn check_server_survives(rounds: usize, n: usize) -> Vec<usize> {
    let p = pki();
    let stranger = ClientTls::builder()
        .add_root_pem(Ca::new("stranger").pem())
        .build()
        .unwrap();
    run(async move {
        let opts = ServerOptions::new()
            .ssl(p.server)
            .ssl_handshake_timeout(Duration::from_millis(100));
        let server = start_server_with(
            |mut r: StreamReader, mut w: StreamWriter| async move {
                while let Ok(line) = r.readline().await {
                    if line.is_empty() {
                        break;
                    }
                    w.write(&line);
                }
            },
            "127.0.0.1",
            0,
            &opts,
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let good_opts = ConnectOptions::new()
            .ssl(p.client.clone())
            .server_hostname("localhost");
        let good = async |opts: &ConnectOptions| {
            let (mut r, mut w) = open_connection_with("127.0.0.1", port, opts).await.unwrap();
            w.write(b"good client\n");
            assert_eq!(r.readline().await.unwrap(), b"good client\n");
            w.close();
            w.wait_closed().await.unwrap();
        };
        // Warm up: the executor's threads and the first connection's
        // allocations are not leaks.
        good(&good_opts).await;
        let settle = async || {
            for _ in 0..200 {
                if server.active_connections() == 0 {
                    break;
                }
                asyncio_core::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(
                server.active_connections(),
                0,
                "every connection was released"
            );
        };
        settle().await;
        let fds = open_fds();
        let mut rss = Vec::new();
        for _ in 0..rounds {
            let (tls, stranger) = (p.client.clone(), stranger.clone());
            let bad = asyncio_core::to_thread(move || bad_clients(port, n, &tls, &stranger));
            // Good clients are served while the bad ones come and go.
            let goods = async {
                for _ in 0..10 {
                    good(&good_opts).await;
                }
            };
            let (bad, ()) = futures::join!(bad, goods);
            bad.unwrap();
            settle().await;
            assert_eq!(open_fds(), fds, "no file descriptor leaked");
            rss.push(rss_kib());
        }
        server.close();
        server.wait_closed().await;
        rss
    })
}

fn rss_kib() -> usize {
    // SAFETY: malloc_trim only returns free heap memory to the system.
    // (glibc only; this test reads /proc, so it runs on Linux.)
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0)
    };
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

#[test]
fn a_tls_server_serves_good_clients_through_bad_ones_and_leaks_no_fd() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    check_server_survives(1, 20);
}

#[test]
#[ignore = "heavy: thousands of bad TLS clients (ci/stress.sh)"]
fn a_tls_server_survives_a_thousand_bad_clients_of_each_kind_with_no_leak() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rss = check_server_survives(3, 1000);
    eprintln!("RSS after each round of 5,200 bad clients: {rss:?} KiB");
    // The first round grows the allocator's pools; later rounds must not
    // keep growing.
    let growth = rss[2].saturating_sub(rss[1]);
    assert!(
        growth < 4096,
        "memory kept growing: RSS per round {rss:?} KiB"
    );
}
