//! `sock_sendfile` and `sendfile`, derived from CPython's
//! `test_asyncio/test_sendfile.py`.

mod common;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Seek};
use std::rc::Rc;

use asyncio_streams::{
    Protocol, SendfileNotAvailableError, SendfileOptions, StreamReader, StreamWriter,
    connect_write_pipe, create_connection, sendfile, sock_sendfile,
};
use common::{run, serve, until};

/// A temporary file with `data`, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(tag: &str, data: &[u8]) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("asyncio-sendfile-{tag}-{}", std::process::id()));
        std::fs::write(&path, data).unwrap();
        TempFile(path)
    }
    fn open(&self) -> std::fs::File {
        std::fs::File::open(&self.0).unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 241) as u8).collect()
}

/// A server that reads everything and keeps it.
async fn sink() -> (asyncio_streams::Server, u16, Rc<RefCell<Option<Vec<u8>>>>) {
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    let (server, port) = serve(move |mut r: StreamReader, w: StreamWriter| {
        let g = g.clone();
        async move {
            let _w = w;
            *g.borrow_mut() = Some(r.read_to_eof().await.unwrap());
        }
    })
    .await;
    (server, port, got)
}

#[test]
fn sock_sendfile_sends_the_whole_file_and_leaves_the_position_at_its_end() {
    let payload = data(4 << 20);
    let file = TempFile::new("whole", &payload);
    run(async move {
        let (server, port, got) = sink().await;
        let sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_nonblocking(true).unwrap();
        let mut f = file.open();
        let sent = sock_sendfile(&sock, &f, SendfileOptions::new())
            .await
            .unwrap();
        assert_eq!(sent, payload.len() as u64);
        assert_eq!(f.stream_position().unwrap(), payload.len() as u64);
        drop(sock);
        until(|| got.borrow().is_some()).await;
        assert!(got.borrow().as_ref().unwrap() == &payload);
        server.close();
    });
}

#[test]
fn sock_sendfile_with_offset_and_count_sends_that_slice() {
    let payload = data(100_000);
    let file = TempFile::new("slice", &payload);
    run(async move {
        let (server, port, got) = sink().await;
        let sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_nonblocking(true).unwrap();
        let mut f = file.open();
        let opts = SendfileOptions::new().offset(1000).count(2000);
        assert_eq!(sock_sendfile(&sock, &f, opts).await.unwrap(), 2000);
        assert_eq!(f.stream_position().unwrap(), 3000);
        // A count past the end stops at the end.
        let opts = SendfileOptions::new().offset(99_000).count(5000);
        assert_eq!(sock_sendfile(&sock, &f, opts).await.unwrap(), 1000);
        drop(sock);
        until(|| got.borrow().is_some()).await;
        let mut want = payload[1000..3000].to_vec();
        want.extend_from_slice(&payload[99_000..]);
        assert!(*got.borrow().as_ref().unwrap() == want);
        server.close();
    });
}

#[test]
fn sock_sendfile_of_an_empty_file_sends_nothing() {
    let file = TempFile::new("empty", b"");
    run(async move {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        assert_eq!(
            sock_sendfile(&a, &file.open(), SendfileOptions::new())
                .await
                .unwrap(),
            0
        );
    });
}

#[test]
fn sock_sendfile_refuses_a_blocking_socket() {
    let file = TempFile::new("blocking", b"x");
    run(async move {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let err = sock_sendfile(&a, &file.open(), SendfileOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    });
}

struct Quiet;
impl Protocol for Quiet {}

#[test]
fn sendfile_on_a_transport_keeps_the_order_of_writes_before_and_after() {
    let payload = data(3 << 20);
    let file = TempFile::new("transport", &payload);
    run(async move {
        let (server, port, got) = sink().await;
        let (t, _p) = create_connection(|| Quiet, "127.0.0.1", port)
            .await
            .unwrap();
        t.write(b"header").unwrap();
        let f = file.open();
        let sent = sendfile(&t, &f, SendfileOptions::new()).await.unwrap();
        assert_eq!(sent, payload.len() as u64);
        t.write(b"trailer").unwrap();
        t.close();
        until(|| got.borrow().is_some()).await;
        let mut want = b"header".to_vec();
        want.extend_from_slice(&payload);
        want.extend_from_slice(b"trailer");
        assert!(*got.borrow().as_ref().unwrap() == want);
        server.close();
    });
}

#[test]
fn sendfile_on_a_pipe_falls_back_or_says_it_is_not_available() {
    let payload = data(200_000);
    let file = TempFile::new("pipe", &payload);
    let (mut reader, writer) = std::io::pipe().unwrap();
    let reading = std::thread::spawn(move || {
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        all
    });
    let size = payload.len() as u64;
    run(async move {
        let (t, _p) = connect_write_pipe(|| Quiet, writer).unwrap();
        let f = file.open();
        let err = sendfile(&t, &f, SendfileOptions::new().fallback(false))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.get_ref().unwrap().is::<SendfileNotAvailableError>());
        let sent = sendfile(&t, &f, SendfileOptions::new()).await.unwrap();
        assert_eq!(sent, size);
        t.close();
    });
    assert!(reading.join().unwrap() == payload);
}

#[test]
fn sendfile_on_a_closed_transport_is_an_error() {
    let file = TempFile::new("closed", b"data");
    run(async move {
        let (server, port, _got) = sink().await;
        let (t, _p) = create_connection(|| Quiet, "127.0.0.1", port)
            .await
            .unwrap();
        t.close();
        let err = sendfile(&t, &file.open(), SendfileOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionReset);
        server.close();
    });
}
