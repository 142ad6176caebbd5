//! asyncio's loop.sock_* calls and UDP.

mod common;

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};

use asyncio_streams::{
    BlockingSocketError, DatagramSocket, sock_accept, sock_connect, sock_recv, sock_recv_into,
    sock_sendall,
};
use common::run;
use socket2::{Domain, Socket, Type};

#[test]
fn sock_calls_echo_a_large_message_without_blocking_the_loop() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = asyncio_core::create_task(async move {
            let (conn, _) = sock_accept(&listener).await.unwrap();
            let mut buf = vec![0; 64 * 1024];
            let mut total = 0;
            loop {
                let n = sock_recv_into(&conn, &mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                sock_sendall(&conn, &buf[..n]).await.unwrap();
                total += n;
            }
            total
        });
        let client = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        client.set_nonblocking(true).unwrap();
        sock_connect(&client, addr).await.unwrap();
        let client: TcpStream = client.into();
        let data: Vec<u8> = (0..4_000_000u32).map(|i| i as u8).collect();
        // Send and receive concurrently: 4 MB is more than the socket buffers.
        let c2 = client.try_clone().unwrap();
        let d2 = data.clone();
        let sender = asyncio_core::create_task(async move {
            sock_sendall(&c2, &d2).await.unwrap();
            c2.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        loop {
            let chunk = sock_recv(&client, 100_000).await.unwrap();
            if chunk.is_empty() {
                break;
            }
            got.extend_from_slice(&chunk);
        }
        sender.await.unwrap();
        assert_eq!(server.await.unwrap(), data.len());
        assert!(got == data, "the echo differs");
    });
}

#[test]
fn sock_calls_reject_blocking_sockets() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = sock_accept(&listener).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.get_ref().unwrap().is::<BlockingSocketError>());
    });
}

#[test]
fn sock_connect_refused_is_a_typed_error() {
    run(async {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        sock.set_nonblocking(true).unwrap();
        let err = sock_connect(&sock, ([127, 0, 0, 1], port).into())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    });
}

#[test]
fn udp_connected_send_and_recv() {
    run(async {
        let a = DatagramSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = DatagramSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b_addr = b.local_addr().unwrap();
        a.connect(b_addr).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        let receiver = asyncio_core::create_task(async move {
            let mut buf = [0; 64];
            let n = b.recv(&mut buf).await.unwrap();
            b.send(&buf[..n]).await.unwrap();
        });
        a.send(b"datagram").await.unwrap();
        let mut buf = [0; 64];
        let n = a.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"datagram");
        receiver.await.unwrap();
        assert_eq!(a.peer_addr().unwrap(), b_addr);
    });
}

#[test]
fn udp_second_concurrent_receiver_gets_an_error_not_a_hang() {
    run(async {
        let a = std::rc::Rc::new(DatagramSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap());
        let a2 = a.clone();
        let first = asyncio_core::create_task(async move {
            let mut buf = [0; 8];
            a2.recv_from(&mut buf).await.map(|(n, _)| n)
        });
        asyncio_core::yield_now().await; // the first receiver is waiting
        let mut buf = [0; 8];
        let err = a.recv_from(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResourceBusy);
        let sender = DatagramSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        sender.send_to(b"x", a.local_addr().unwrap()).await.unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
    });
}
