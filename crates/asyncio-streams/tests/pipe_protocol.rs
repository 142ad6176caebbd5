//! `connect_read_pipe` and `connect_write_pipe`, derived from CPython's
//! `test_unix_events.py` (`UnixReadPipeTransportTests`,
//! `UnixWritePipeTransportTests`) and the pipe tests of `test_events.py`.

mod common;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;

use asyncio_streams::{Protocol, Transport, TransportError, connect_read_pipe, connect_write_pipe};
use common::{run, until};

type Log = Rc<RefCell<Vec<String>>>;

#[derive(Debug)]
struct Rec {
    log: Log,
    keep_open: bool,
}

impl Protocol for Rec {
    fn connection_made(&mut self, _t: &Transport) {
        self.log.borrow_mut().push("made".into());
    }
    fn data_received(&mut self, data: &[u8]) {
        self.log
            .borrow_mut()
            .push(format!("data {}", String::from_utf8_lossy(data)));
    }
    fn eof_received(&mut self) -> bool {
        self.log.borrow_mut().push("eof".into());
        self.keep_open
    }
    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        self.log.borrow_mut().push(match exc {
            None => "lost".into(),
            Some(e) => format!("lost {:?}", e.kind()),
        });
    }
}

fn rec(log: &Log, keep_open: bool) -> impl FnOnce() -> Rec {
    let log = log.clone();
    move || Rec { log, keep_open }
}

fn last_is(log: &Log, what: &str) -> bool {
    log.borrow().last().is_some_and(|l| l == what)
}

#[test]
fn a_read_pipe_delivers_data_then_eof_then_connection_lost() {
    run(async {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let log: Log = Rc::default();
        let (t, _p) = connect_read_pipe(rec(&log, false), reader).unwrap();
        assert!(t.is_reading());
        assert_eq!(t.write(b"x"), Err(TransportError::NotWritable));
        writer.write_all(b"through the pipe").unwrap();
        drop(writer);
        until(|| last_is(&log, "lost")).await;
        assert_eq!(
            *log.borrow(),
            ["made", "data through the pipe", "eof", "lost"]
        );
        assert!(t.is_closing());
    });
}

#[test]
fn a_read_pipe_closes_after_eof_even_if_eof_received_returns_true() {
    run(async {
        let (reader, writer) = std::io::pipe().unwrap();
        let log: Log = Rc::default();
        let (t, _p) = connect_read_pipe(rec(&log, true), reader).unwrap();
        drop(writer);
        until(|| last_is(&log, "lost")).await;
        assert_eq!(*log.borrow(), ["made", "eof", "lost"]);
        assert!(t.is_closing());
    });
}

#[test]
fn a_write_pipe_sends_everything_and_write_eof_closes_it() {
    let (mut reader, writer) = std::io::pipe().unwrap();
    // The reader is a thread of its own: the pipe holds only 64 KiB.
    let got = std::thread::spawn(move || {
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        all
    });
    let payload: Vec<u8> = (0..1 << 20).map(|i| (i % 249) as u8).collect();
    let p = payload.clone();
    let log = run(async move {
        let log: Log = Rc::default();
        let (t, _p) = connect_write_pipe(rec(&log, false), writer).unwrap();
        assert!(!t.is_reading());
        assert!(t.get_extra_info("pipe").is_some());
        assert!(t.get_extra_info("peername").is_none());
        t.write(&p).unwrap();
        t.write_eof().unwrap();
        until(|| last_is(&log, "lost")).await;
        log.take()
    });
    assert_eq!(log, ["made", "lost"]);
    assert!(got.join().unwrap() == payload);
}

#[test]
fn writing_to_a_pipe_whose_reader_is_gone_calls_connection_lost_with_broken_pipe() {
    run(async {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let log: Log = Rc::default();
        let (t, _p) = connect_write_pipe(rec(&log, false), writer).unwrap();
        t.write(b"nobody reads this").unwrap();
        until(|| log.borrow().len() == 2).await;
        assert_eq!(*log.borrow(), ["made", "lost BrokenPipe"]);
    });
}

#[test]
fn a_regular_file_is_refused() {
    run(async {
        let path = std::env::temp_dir().join(format!("asyncio-pipe-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let log: Log = Rc::default();
        let err = connect_read_pipe(rec(&log, false), file).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let _ = std::fs::remove_file(&path);
        assert!(log.borrow().is_empty(), "no protocol was made");
    });
}

#[test]
fn an_idle_write_pipe_sees_its_reader_go_and_calls_connection_lost_none() {
    run(async {
        let (reader, writer) = std::io::pipe().unwrap();
        let log: Log = Rc::default();
        let (t, _p) = connect_write_pipe(rec(&log, false), writer).unwrap();
        t.write(b"read me").unwrap();
        asyncio_core::yield_now().await;
        assert_eq!(t.get_write_buffer_size(), 0);
        drop(reader);
        until(|| log.borrow().len() == 2).await;
        assert_eq!(*log.borrow(), ["made", "lost"]);
        assert!(t.is_closing());
    });
}
