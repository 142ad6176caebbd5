//! `subprocess_exec`/`subprocess_shell` with a `SubprocessProtocol`,
//! derived from CPython's `test_subprocess.py` (`SubprocessMixin` with
//! protocols) and the subprocess tests of `test_events.py`.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use asyncio_streams::subprocess::{DEVNULL, PIPE, Subprocess};
use asyncio_streams::{
    SubprocessProtocol, SubprocessTransport, subprocess_exec, subprocess_exec_with,
    subprocess_shell,
};
use common::{run, until};

#[derive(Default, Debug)]
struct Rec {
    log: Vec<String>,
    out: [Vec<u8>; 3],
    t: Option<SubprocessTransport>,
    send: Option<&'static [u8]>,
}

impl SubprocessProtocol for Rec {
    fn connection_made(&mut self, t: &SubprocessTransport) {
        self.log.push("made".into());
        self.t = Some(t.clone());
        if let Some(data) = self.send {
            let stdin = t.get_pipe_transport(0).expect("stdin is a pipe");
            stdin.write(data).unwrap();
            stdin.write_eof().unwrap();
        }
    }
    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        self.out[fd as usize].extend_from_slice(data);
    }
    fn pipe_connection_lost(&mut self, fd: i32, exc: Option<std::io::Error>) {
        assert!(exc.is_none(), "{exc:?}");
        self.log.push(format!("pipe {fd} lost"));
    }
    fn process_exited(&mut self) {
        self.log.push("exited".into());
    }
    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        assert!(exc.is_none());
        self.log.push("lost".into());
    }
}

fn done(p: &Rc<RefCell<Rec>>) -> bool {
    p.borrow().log.last().is_some_and(|l| l == "lost")
}

#[test]
fn output_comes_by_pipe_and_connection_lost_comes_last_after_exit_and_every_pipe() {
    run(async {
        let (t, p) = subprocess_shell(Rec::default, "echo out; echo err >&2; exit 7").unwrap();
        assert!(t.get_pid() > 0);
        until(|| done(&p)).await;
        let rec = p.borrow();
        assert_eq!(rec.out[1], b"out\n");
        assert_eq!(rec.out[2], b"err\n");
        assert_eq!(rec.log[0], "made");
        assert_eq!(rec.log.last().unwrap(), "lost");
        for what in ["pipe 0 lost", "pipe 1 lost", "pipe 2 lost", "exited"] {
            assert_eq!(
                rec.log.iter().filter(|l| *l == what).count(),
                1,
                "{:?}",
                rec.log
            );
        }
        assert_eq!(rec.log.len(), 6);
        assert_eq!(t.get_returncode(), Some(7));
    });
}

#[test]
fn stdin_written_from_connection_made_reaches_the_child() {
    run(async {
        let (t, p) = subprocess_exec(
            || Rec {
                send: Some(b"through cat\n"),
                ..Rec::default()
            },
            "cat",
            [""; 0],
        )
        .unwrap();
        until(|| done(&p)).await;
        assert_eq!(p.borrow().out[1], b"through cat\n");
        assert_eq!(t.get_returncode(), Some(0));
    });
}

#[test]
fn kill_ends_the_child_with_minus_sigkill_and_close_is_idempotent() {
    run(async {
        let (t, p) = subprocess_exec(Rec::default, "sleep", ["30"]).unwrap();
        t.kill().unwrap();
        until(|| done(&p)).await;
        assert_eq!(t.get_returncode(), Some(-9));
        assert!(t.is_closing());
        // Once reaped, a signal is refused.
        assert_eq!(
            t.send_signal(15).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
        t.close();
        t.close();
    });
}

#[test]
fn close_kills_a_running_child_and_connection_lost_follows() {
    run(async {
        let (t, p) = subprocess_exec(Rec::default, "sleep", ["30"]).unwrap();
        t.close();
        until(|| done(&p)).await;
        assert_eq!(t.get_returncode(), Some(-9));
    });
}

#[test]
fn streams_that_are_not_pipes_have_no_pipe_transport() {
    run(async {
        let builder = Subprocess::new("true")
            .stdin(DEVNULL)
            .stdout(PIPE)
            .stderr(DEVNULL);
        let (t, p) = subprocess_exec_with(Rec::default, builder).unwrap();
        assert!(t.get_pipe_transport(0).is_none());
        assert!(t.get_pipe_transport(1).is_some());
        assert!(t.get_pipe_transport(2).is_none());
        assert!(t.get_pipe_transport(7).is_none());
        until(|| done(&p)).await;
        assert_eq!(
            p.borrow()
                .log
                .iter()
                .filter(|l| l.starts_with("pipe"))
                .count(),
            1
        );
    });
}

#[test]
fn a_missing_program_is_a_spawn_error_naming_it() {
    run(async {
        let err = subprocess_exec(Rec::default, "no-such-program-here", [""; 0]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(err.program(), "no-such-program-here");
    });
}
