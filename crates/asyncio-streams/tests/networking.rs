//! asyncio's networking odds and ends (issue 27 item 3): `async for line in
//! reader`, ... Each test is one guarantee, derived from CPython's
//! `test_streams.py`, `test_sock_lowlevel.py`, `test_staggered.py`.

mod common;

use std::time::Duration;

use asyncio_streams::{ReadUntilError, StreamWriter, open_connection};
use common::{run, serve};
use futures::StreamExt;

#[test]
fn lines_yield_each_line_and_end_at_eof_keeping_a_last_line_without_newline() {
    run(async {
        let (server, port) = serve(|_r, mut w: StreamWriter| async move {
            w.write(b"a\nbb\n\nccc");
        })
        .await;
        let (mut r, _w) = open_connection("127.0.0.1", port).await.unwrap();
        let lines: Vec<_> = r.lines().map(Result::unwrap).collect().await;
        assert_eq!(lines, [&b"a\n"[..], b"bb\n", b"\n", b"ccc"]);
        server.close();
    });
}

#[test]
fn a_line_over_the_limit_is_an_error_item_and_the_lines_go_on_after_it() {
    run(async {
        let (server, port) = serve(|_r, mut w: StreamWriter| async move {
            w.write(&[b'x'; 100]);
            w.write(b"\nshort\n");
        })
        .await;
        let opts = asyncio_streams::ConnectOptions::new().limit(10);
        let (mut r, _w) = asyncio_streams::open_connection_with("127.0.0.1", port, &opts)
            .await
            .unwrap();
        let items: Vec<_> = r.lines().collect().await;
        assert!(
            matches!(items[0], Err(ReadUntilError::LimitOverrun(_))),
            "{items:?}"
        );
        assert_eq!(items.last().unwrap().as_deref().unwrap(), b"short\n");
        server.close();
    });
}

#[test]
fn dropping_the_lines_in_the_middle_of_a_line_loses_nothing() {
    run(async {
        let (server, port) = serve(|_r, mut w: StreamWriter| async move {
            w.write(b"hal");
            let _ = w.drain().await;
            asyncio_core::sleep(Duration::from_millis(50)).await;
            w.write(b"f\n");
        })
        .await;
        let (mut r, _w) = open_connection("127.0.0.1", port).await.unwrap();
        let cut = asyncio_core::timeout(Duration::from_millis(10), r.lines().next()).await;
        assert!(cut.is_err(), "the line is not complete yet");
        assert_eq!(r.lines().next().await.unwrap().unwrap(), b"half\n");
        server.close();
    });
}

fn udp_pair() -> (std::net::UdpSocket, std::net::UdpSocket) {
    let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

#[test]
fn sock_sendto_and_sock_recvfrom_carry_datagrams_with_their_sender() {
    run(async {
        let (a, b) = udp_pair();
        let b_addr = b.local_addr().unwrap();
        // The receiver waits first: the datagram wakes it.
        let receiver = asyncio_core::create_task(async move {
            let got = asyncio_streams::sock_recvfrom(&b, 100).await.unwrap();
            (got, b)
        });
        asyncio_core::yield_now().await;
        let sent = asyncio_streams::sock_sendto(&a, b"first", b_addr)
            .await
            .unwrap();
        assert_eq!(sent, 5);
        let ((data, from), b) = receiver.await.unwrap();
        assert_eq!(data, b"first");
        assert_eq!(from.as_socket(), Some(a.local_addr().unwrap()));
        // A datagram longer than the buffer is cut to it.
        asyncio_streams::sock_sendto(&a, b"0123456789", b_addr)
            .await
            .unwrap();
        let mut buf = [0u8; 4];
        let (n, _) = asyncio_streams::sock_recvfrom_into(&b, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"0123");
    });
}

#[test]
fn sock_recvfrom_works_on_unix_datagram_sockets() {
    run(async {
        let dir = std::env::temp_dir();
        let pa = dir.join(format!("asyncio-dgram-a-{}", std::process::id()));
        let pb = dir.join(format!("asyncio-dgram-b-{}", std::process::id()));
        let _ = std::fs::remove_file(&pa);
        let _ = std::fs::remove_file(&pb);
        let a = std::os::unix::net::UnixDatagram::bind(&pa).unwrap();
        let b = std::os::unix::net::UnixDatagram::bind(&pb).unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let to = socket2::SockAddr::unix(&pb).unwrap();
        asyncio_streams::sock_sendto(&a, b"over unix", to)
            .await
            .unwrap();
        let (data, from) = asyncio_streams::sock_recvfrom(&b, 64).await.unwrap();
        assert_eq!(data, b"over unix");
        assert_eq!(from.as_pathname(), Some(pa.as_path()));
        let _ = std::fs::remove_file(&pa);
        let _ = std::fs::remove_file(&pb);
    });
}

#[test]
fn the_datagram_calls_refuse_a_blocking_socket() {
    run(async {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = s.local_addr().unwrap();
        let err = asyncio_streams::sock_sendto(&s, b"x", to)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        let err = asyncio_streams::sock_recvfrom(&s, 1).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    });
}

#[test]
fn sock_connect_host_resolves_the_name_for_the_sockets_family() {
    run(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_nonblocking(true).unwrap();
        asyncio_streams::sock_connect_host(&sock, "localhost", port)
            .await
            .unwrap();
        assert_eq!(
            sock.peer_addr().unwrap().as_socket(),
            Some(listener.local_addr().unwrap())
        );
        // An IPv6 socket and an IPv4-only name: no address to try.
        let v6 = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).unwrap();
        v6.set_nonblocking(true).unwrap();
        let err = asyncio_streams::sock_connect_host(&v6, "127.0.0.1", port)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    });
}

#[test]
fn getaddrinfo_with_applies_family_type_and_flags() {
    run(async {
        use asyncio_streams::{AddrInfoHints, AddressFamily, getaddrinfo_with};
        let hints = AddrInfoHints::new()
            .family(AddressFamily::Inet)
            .socktype(socket2::Type::STREAM)
            .flags(libc::AI_NUMERICHOST);
        let found = getaddrinfo_with(Some("127.0.0.1"), Some("8080"), hints)
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(found[0].socktype, socket2::Type::STREAM);
        assert_eq!(found[0].protocol, socket2::Protocol::TCP);
        // AI_NUMERICHOST refuses a name.
        assert!(
            getaddrinfo_with(Some("localhost"), Some("1"), hints)
                .await
                .is_err()
        );
        // The family filters.
        let v6 = AddrInfoHints::new()
            .family(AddressFamily::Inet6)
            .flags(libc::AI_NUMERICHOST);
        assert!(getaddrinfo_with(Some("127.0.0.1"), None, v6).await.is_err());
        // No host and AI_PASSIVE: the wildcard to bind on.
        let passive = AddrInfoHints::new()
            .family(AddressFamily::Inet)
            .socktype(socket2::Type::STREAM)
            .flags(libc::AI_PASSIVE);
        let any = getaddrinfo_with(None, Some("0"), passive).await.unwrap();
        assert!(any.iter().all(|a| a.addr.ip().is_unspecified()));
        // Neither host nor port: refused before the resolver.
        let err = getaddrinfo_with(None, None, AddrInfoHints::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    });
}

#[test]
fn getnameinfo_gives_host_and_service() {
    run(async {
        let (host, serv) = asyncio_streams::getnameinfo(
            "[::1]:443".parse().unwrap(),
            libc::NI_NUMERICHOST | libc::NI_NUMERICSERV,
        )
        .await
        .unwrap();
        assert_eq!((host.as_str(), serv.as_str()), ("::1", "443"));
    });
}

#[test]
fn unix_sockets_made_elsewhere_serve_and_connect_and_the_file_goes_on_close() {
    let path = std::env::temp_dir().join(format!("asyncio-sock-eq-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let p = path.clone();
    run(async move {
        let opts = asyncio_streams::ServerOptions::new();
        let server = asyncio_streams::start_unix_server_from_listener(
            |mut r: asyncio_streams::StreamReader, mut w: StreamWriter| async move {
                let line = r.readline().await.unwrap();
                w.write(&line);
            },
            listener,
            &opts,
        )
        .unwrap();
        let stream = std::os::unix::net::UnixStream::connect(&p).unwrap();
        let (mut r, mut w) = asyncio_streams::open_unix_connection_from_stream(
            stream,
            &asyncio_streams::ConnectOptions::new(),
        )
        .unwrap();
        w.write(b"over a socket made elsewhere\n");
        assert_eq!(
            r.readline().await.unwrap(),
            b"over a socket made elsewhere\n"
        );
        server.close();
        server.wait_closed().await;
    });
    assert!(!path.exists(), "cleanup_socket removed the file");
}

#[test]
fn a_protocol_server_runs_on_a_tcp_listener_made_elsewhere() {
    struct Bye;
    impl asyncio_streams::Protocol for Bye {
        fn connection_made(&mut self, t: &asyncio_streams::Transport) {
            t.write(b"bye").unwrap();
            t.close();
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    run(async move {
        let server = asyncio_streams::create_server_from_listener(
            || Bye,
            listener,
            &asyncio_streams::ServerOptions::new(),
        )
        .unwrap();
        let (mut r, _w) = open_connection("127.0.0.1", port).await.unwrap();
        assert_eq!(r.read_to_eof().await.unwrap(), b"bye");
        server.close();
    });
}
