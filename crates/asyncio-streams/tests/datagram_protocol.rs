//! `create_datagram_endpoint` with a `DatagramProtocol`, derived from the
//! datagram tests of CPython's `test_events.py` and
//! `test_selector_events.py` (`SelectorDatagramTransportTests`).

mod common;

use std::cell::RefCell;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::rc::Rc;

use asyncio_streams::{
    DatagramError, DatagramOptions, DatagramProtocol, DatagramTransport, create_datagram_endpoint,
};
use common::{run, until};

type Log = Rc<RefCell<Vec<String>>>;

/// Records every callback; echoes datagrams if told to.
#[derive(Debug)]
struct Rec {
    log: Log,
    echo: bool,
    t: Option<DatagramTransport>,
}

impl DatagramProtocol for Rec {
    fn connection_made(&mut self, t: &DatagramTransport) {
        self.t = Some(t.clone());
        self.log.borrow_mut().push("made".into());
    }
    fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
        self.log
            .borrow_mut()
            .push(format!("data {}", String::from_utf8_lossy(data)));
        if self.echo {
            self.t.as_ref().unwrap().sendto(data, Some(addr)).unwrap();
        }
    }
    fn error_received(&mut self, exc: std::io::Error) {
        self.log
            .borrow_mut()
            .push(format!("error {:?}", exc.kind()));
    }
    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        assert!(exc.is_none());
        self.log.borrow_mut().push("lost".into());
    }
}

fn rec(log: &Log, echo: bool) -> impl FnOnce() -> Rec {
    let log = log.clone();
    move || Rec { log, echo, t: None }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn has(log: &Log, what: &str) -> bool {
    log.borrow().iter().any(|l| l == what)
}

#[test]
fn datagrams_reach_datagram_received_and_close_calls_connection_lost_once() {
    run(async {
        let (slog, clog): (Log, Log) = (Rc::default(), Rc::default());
        let (server, _) = create_datagram_endpoint(
            rec(&slog, true),
            DatagramOptions::new().local_addr(loopback()),
        )
        .unwrap();
        let to = server.sockname().unwrap();
        let (client, _) =
            create_datagram_endpoint(rec(&clog, false), DatagramOptions::new().remote_addr(to))
                .unwrap();
        assert_eq!(client.peername(), Some(to));
        assert!(client.socket().is_some());
        client.sendto(b"one", None).unwrap();
        client.sendto(b"two", Some(to)).unwrap();
        until(|| has(&clog, "data two")).await;
        assert_eq!(*slog.borrow(), ["made", "data one", "data two"]);
        assert_eq!(*clog.borrow(), ["made", "data one", "data two"]);
        client.close();
        assert!(client.is_closing());
        // Dropped after close.
        client.sendto(b"late", None).unwrap();
        until(|| has(&clog, "lost")).await;
        server.close();
        until(|| has(&slog, "lost")).await;
        for _ in 0..5 {
            asyncio_core::yield_now().await;
        }
        assert_eq!(*clog.borrow(), ["made", "data one", "data two", "lost"]);
        assert_eq!(slog.borrow().len(), 4);
        assert!(client.socket().is_none());
    });
}

#[test]
fn a_send_to_a_port_where_nothing_listens_reports_error_received_and_stays_open() {
    run(async {
        let port = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        };
        let log: Log = Rc::default();
        let (t, _) =
            create_datagram_endpoint(rec(&log, false), DatagramOptions::new().remote_addr(port))
                .unwrap();
        // Linux reports the ICMP port unreachable on the next socket call.
        for _ in 0..100 {
            t.sendto(b"anyone?", None).unwrap();
            if log.borrow().iter().any(|l| l.starts_with("error")) {
                break;
            }
            asyncio_core::sleep(std::time::Duration::from_millis(2)).await;
        }
        assert!(has(&log, "error ConnectionRefused"), "{:?}", log.borrow());
        assert!(!t.is_closing());
        t.abort();
        until(|| has(&log, "lost")).await;
    });
}

#[test]
fn sendto_checks_the_destination() {
    run(async {
        let log: Log = Rc::default();
        let remote: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let (connected, _) =
            create_datagram_endpoint(rec(&log, false), DatagramOptions::new().remote_addr(remote))
                .unwrap();
        let other: SocketAddr = "127.0.0.1:10".parse().unwrap();
        assert_eq!(
            connected.sendto(b"x", Some(other)),
            Err(DatagramError::NotTheRemoteAddress(remote))
        );
        let (unconnected, _) = create_datagram_endpoint(
            rec(&log, false),
            DatagramOptions::new().local_addr(loopback()),
        )
        .unwrap();
        assert_eq!(
            unconnected.sendto(b"x", None),
            Err(DatagramError::NoDestination)
        );
        connected.close();
        unconnected.close();
    });
}

#[test]
fn sock_is_taken_as_is_and_refused_with_an_address() {
    run(async {
        let log: Log = Rc::default();
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        let err = create_datagram_endpoint(
            rec(&log, false),
            DatagramOptions::new().sock(s).local_addr(loopback()),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr2 = s.local_addr().unwrap();
        assert_ne!(addr, addr2);
        let (t, _) =
            create_datagram_endpoint(rec(&log, false), DatagramOptions::new().sock(s)).unwrap();
        assert_eq!(t.sockname().unwrap(), addr2);
        t.close();
    });
}
