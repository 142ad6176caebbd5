//! Subprocesses: spawning, pipes as streams, reaping through the reactor, and
//! the faults of issue 15 ("Bad input and faults").

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use asyncio_core::EventLoop;
use asyncio_streams::subprocess::{
    DEVNULL, PIPE, Process, STDOUT, create_subprocess_exec, create_subprocess_shell,
    force_sigchld_fallback,
};
use common::run;

/// Whether `pid` is no longer a child of ours waiting to be reaped: either
/// reaped already (`waitpid` says `ECHILD`), or never ours.
fn reaped(pid: u32) -> bool {
    let mut status = 0;
    // SAFETY: waitpid(2) writes only the status integer we pass.
    let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD)
}

/// Whether a process with this pid exists at all (zombie included).
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The children this thread started that are not reaped yet (zombies
/// included), from `/proc/thread-self/children`.
fn my_children() -> Vec<u32> {
    let tid = std::fs::read_link("/proc/thread-self").expect("/proc is mounted");
    let path = std::path::Path::new("/proc").join(tid).join("children");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().expect("pids are numbers"))
        .collect()
}

#[test]
fn stdout_is_read_line_by_line_while_the_child_runs() {
    let (first, rest, code) = run(async {
        // The child prints a line, then waits for stdin: the line can only be
        // read while it still runs.
        let mut p = create_subprocess_shell("echo first; read x; echo \"got $x\"")
            .stdin(PIPE)
            .stdout(PIPE)
            .await
            .unwrap();
        let mut out = p.stdout.take().unwrap();
        let first = out.readline().await.unwrap();
        let running = p.returncode().is_none();
        let mut stdin = p.stdin.take().unwrap();
        stdin.write(b"42\n");
        stdin.drain().await.unwrap();
        let rest = out.read_to_eof().await.unwrap();
        (first, (rest, running), p.wait().await.unwrap())
    });
    assert_eq!(first, b"first\n");
    assert_eq!(rest.0, b"got 42\n");
    assert!(rest.1, "the first line came while the child ran");
    assert_eq!(code, 0);
}

#[test]
fn a_program_that_does_not_exist_is_a_typed_error_naming_it_and_leaves_no_child() {
    let err = run(async {
        create_subprocess_exec("/no/such/asyncio-rs-program", ["x"])
            .stdout(PIPE)
            .await
            .unwrap_err()
    });
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(err.program(), "/no/such/asyncio-rs-program");
    assert!(err.to_string().contains("/no/such/asyncio-rs-program"));
    assert_eq!(
        my_children(),
        Vec::<u32>::new(),
        "no child (or zombie) left"
    );
}

#[test]
fn stdout_as_stdin_is_an_invalid_input_error() {
    let err =
        run(async { create_subprocess_exec("true", [""; 0]).stdout(STDOUT).await }).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn writing_to_a_child_that_stopped_reading_is_a_broken_pipe_error_on_drain() {
    let (eof_first, drained, code) = run(async {
        // The child closes its stdout at once, reads 10 bytes of stdin and
        // exits, closing the pipe we write to.
        let mut p = create_subprocess_shell("exec 1>&-; head -c 10 >/dev/null; exit 7")
            .stdin(PIPE)
            .stdout(PIPE)
            .await
            .unwrap();
        let mut out = p.stdout.take().unwrap();
        let eof_first = out.read_to_eof().await.unwrap().is_empty();
        let mut stdin = p.stdin.take().unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        // Bounded: the pipe breaks long before 1 GiB.
        let mut drained = Ok(());
        for _ in 0..16 * 1024 {
            stdin.write(&chunk);
            drained = stdin.drain().await;
            if drained.is_err() {
                break;
            }
        }
        (eof_first, drained, p.wait().await.unwrap())
    });
    assert!(eof_first, "the child's stdout ended before we wrote");
    let e = drained.expect_err("writing into a closed pipe fails");
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    assert_eq!(code, 7);
}

#[test]
fn a_child_killed_while_we_read_gives_eof_and_minus_nine() {
    let (line, after, code, rc) = run(async {
        let mut p = create_subprocess_shell("echo ready; exec sleep 30")
            .stdout(PIPE)
            .await
            .unwrap();
        let mut out = p.stdout.take().unwrap();
        let line = out.readline().await.unwrap();
        let reading = asyncio_core::create_task(async move { out.read_to_eof().await });
        // Let the reader wait on the pipe first.
        asyncio_core::sleep(Duration::from_millis(20)).await;
        p.kill().unwrap();
        let after = reading.await.unwrap().unwrap();
        let code = p.wait().await.unwrap();
        (line, after, code, p.returncode())
    });
    assert_eq!(line, b"ready\n");
    assert!(after.is_empty(), "EOF once the child died");
    assert_eq!(code, -9);
    assert_eq!(rc, Some(-9));
}

#[test]
fn terminate_gives_minus_fifteen_and_signals_after_reaping_are_not_found() {
    let (code, late) = run(async {
        let mut p = create_subprocess_exec("sleep", ["30"]).await.unwrap();
        p.terminate().unwrap();
        let code = p.wait().await.unwrap();
        (code, p.send_signal(libc::SIGTERM).unwrap_err().kind())
    });
    assert_eq!(code, -15);
    assert_eq!(late, std::io::ErrorKind::NotFound);
}

#[test]
fn a_signal_after_an_outside_reaper_took_the_child_is_refused_through_the_pidfd() {
    // Issue 24, finding 6: once someone else reaped the child (a
    // `waitpid(-1)` elsewhere in the program), its pid may name another
    // process. `send_signal` signals through the pidfd it holds, which still
    // names the dead child, and reports it gone: never a `kill(pid)` that
    // could reach whoever has the pid now.
    let late = run(async {
        let mut p = create_subprocess_exec("sleep", ["30"]).await.unwrap();
        // Waiting once opens the pidfd (the child is still running).
        let waited = asyncio_core::wait_for(Box::pin(p.wait()), Duration::from_millis(20)).await;
        assert!(waited.is_err(), "sleep 30 is still running");
        let pid = libc::pid_t::try_from(p.pid()).unwrap();
        // The outside reaper: kill the child and reap it behind our back.
        // SAFETY: plain system calls on our own child's pid.
        unsafe {
            assert_eq!(libc::kill(pid, libc::SIGKILL), 0);
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        }
        p.send_signal(libc::SIGTERM).unwrap_err().kind()
    });
    assert_eq!(late, std::io::ErrorKind::NotFound);
}

#[test]
fn communicate_moves_ten_mebibytes_each_way_through_cat() {
    let input: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let expected = input.clone();
    let (out, err, rc) = run(async move {
        let mut p = create_subprocess_exec("cat", [""; 0])
            .stdin(PIPE)
            .stdout(PIPE)
            .stderr(PIPE)
            .await
            .unwrap();
        let (out, err) = p.communicate(Some(&input)).await.unwrap();
        (out, err, p.returncode())
    });
    assert_eq!(out.as_deref().map(<[u8]>::len), Some(expected.len()));
    assert!(out.unwrap() == expected, "cat gave back what it was given");
    assert_eq!(err, Some(Vec::new()));
    assert_eq!(rc, Some(0));
}

/// subprocess's `communicate`: "Catching this exception and retrying
/// communication will not lose any output." A `communicate` cut short by a
/// timeout leaves the pipes and what they delivered with the process; the
/// retry returns all of the output and the input is not written twice.
#[test]
fn communicate_cut_short_by_a_timeout_can_be_retried_without_losing_output() {
    let dir = std::env::temp_dir().join(format!("asyncio-communicate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("first-written");
    let _ = std::fs::remove_file(&marker);
    let script = format!(
        "trap 'echo second; exit 0' USR1; read line; echo \"first $line\"; echo err >&2; \
         touch {}; while :; do sleep 0.01; done",
        marker.display()
    );
    let (out, err, rc) = run(async move {
        let mut p = create_subprocess_shell(script)
            .stdin(PIPE)
            .stdout(PIPE)
            .stderr(PIPE)
            .await
            .unwrap();
        // The child never ends by itself: the first call must time out.
        let first =
            asyncio_core::wait_for(p.communicate(Some(b"input\n")), Duration::from_millis(50))
                .await;
        assert!(first.is_err(), "the child was still running");
        // Wait (bounded) until the child wrote its first line and set its
        // trap, then let it finish.
        for _ in 0..3000 {
            if marker.exists() {
                break;
            }
            asyncio_core::sleep(Duration::from_millis(10)).await;
        }
        assert!(marker.exists(), "the child never wrote its first line");
        p.send_signal(libc::SIGUSR1).unwrap();
        let (out, err) = p
            .communicate(Some(b"input\n"))
            .await
            .expect("the retry completes");
        (out, err, p.returncode())
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        String::from_utf8_lossy(out.as_deref().unwrap()),
        "first input\nsecond\n",
        "the output before the timeout is kept, and the input was written once"
    );
    assert_eq!(err.as_deref(), Some(&b"err\n"[..]));
    assert_eq!(rc, Some(0));
}

/// The same when one pipe reached its end before the timeout and the other
/// did not: the finished one's bytes are not lost with the cut-short call.
#[test]
fn communicate_keeps_a_pipe_that_ended_before_the_timeout() {
    let dir = std::env::temp_dir().join(format!("asyncio-communicate-eof-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("stdout-closed");
    let _ = std::fs::remove_file(&marker);
    let script = format!(
        "trap 'echo bye >&2; exit 0' USR1; echo out; exec 1>&-; touch {}; \
         while :; do sleep 0.01; done",
        marker.display()
    );
    let (out, err) = run(async move {
        let mut p = create_subprocess_shell(script)
            .stdout(PIPE)
            .stderr(PIPE)
            .await
            .unwrap();
        for _ in 0..3000 {
            if marker.exists() {
                break;
            }
            asyncio_core::sleep(Duration::from_millis(10)).await;
        }
        assert!(marker.exists(), "the child never closed its stdout");
        // stdout is at its end; stderr stays open: the call times out.
        let first = asyncio_core::wait_for(p.communicate(None), Duration::from_millis(50)).await;
        assert!(first.is_err(), "the child was still running");
        p.send_signal(libc::SIGUSR1).unwrap();
        p.communicate(None).await.expect("the retry completes")
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.as_deref(), Some(&b"out\n"[..]));
    assert_eq!(err.as_deref(), Some(&b"bye\n"[..]));
}

#[test]
fn subprocess_new_is_a_command_shaped_builder_with_no_arguments_to_start() {
    let (out, rc) = run(async {
        let mut p = asyncio_streams::subprocess::Subprocess::new("sh")
            .arg("-c")
            .args(["echo \"$GREETING $0 $1\"", "a", "b"])
            .env_clear()
            .envs([("GREETING", "hi"), ("PATH", "/usr/bin:/bin")])
            .stdout(PIPE)
            .await
            .unwrap();
        let (out, _) = p.communicate(None).await.unwrap();
        let mut bare = asyncio_streams::subprocess::Subprocess::new("true")
            .await
            .unwrap();
        assert_eq!(bare.wait().await.unwrap(), 0);
        (out, p.returncode())
    });
    assert_eq!(out.as_deref(), Some(&b"hi a b\n"[..]));
    assert_eq!(rc, Some(0));
}

#[test]
fn communicate_ignores_a_child_that_exits_without_reading() {
    let (out, rc) = run(async {
        let mut p = create_subprocess_shell("echo bye")
            .stdin(PIPE)
            .stdout(PIPE)
            .await
            .unwrap();
        let (out, _) = p.communicate(Some(&vec![0; 1 << 20])).await.unwrap();
        (out, p.returncode())
    });
    assert_eq!(out.as_deref(), Some(&b"bye\n"[..]));
    assert_eq!(rc, Some(0));
}

fn two_hundred_children_started_at_once_are_all_reaped() {
    let pids = run(async {
        let mut tasks = Vec::new();
        for i in 0..200 {
            let p = create_subprocess_exec("sh", ["-c", &format!("exit {}", i % 7)])
                .stdin(DEVNULL)
                .await
                .unwrap();
            tasks.push(asyncio_core::create_task(async move {
                let mut p = p;
                (p.pid(), p.wait().await.unwrap())
            }));
        }
        let mut pids = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            let (pid, code) = t.await.unwrap();
            assert_eq!(code, (i % 7) as i32);
            pids.push(pid);
        }
        pids
    });
    assert_eq!(pids.len(), 200);
    for pid in pids {
        assert!(reaped(pid), "child {pid} was reaped");
    }
    assert_eq!(my_children(), Vec::<u32>::new(), "no zombie left");
}

#[test]
fn two_hundred_concurrent_children_are_all_reaped_through_pidfds() {
    two_hundred_children_started_at_once_are_all_reaped();
}

#[test]
fn two_hundred_concurrent_children_are_all_reaped_through_sigchld() {
    force_sigchld_fallback(true);
    two_hundred_children_started_at_once_are_all_reaped();
    force_sigchld_fallback(false);
}

#[test]
fn a_cancelled_wait_can_be_awaited_again_and_gets_the_returncode() {
    let (first, code) = run(async {
        // cat exits when its stdin closes: the test decides when.
        let mut p = create_subprocess_exec("cat", [""; 0])
            .stdin(PIPE)
            .stdout(DEVNULL)
            .await
            .unwrap();
        let first = asyncio_core::timeout(Duration::from_millis(20), p.wait())
            .await
            .is_err();
        p.stdin.take().unwrap().close();
        (first, p.wait().await.unwrap())
    });
    assert!(first, "the first wait timed out (was cancelled)");
    assert_eq!(code, 0);
}

#[test]
fn a_dropped_process_is_killed_and_reaped_by_the_loop() {
    let pid = run(async {
        let p = create_subprocess_exec("sleep", ["30"]).await.unwrap();
        let pid = p.pid();
        drop(p);
        // Bounded by the test's time limit; the child dies at once from SIGKILL.
        while exists(pid) {
            asyncio_core::sleep(Duration::from_millis(1)).await;
        }
        pid
    });
    assert!(!exists(pid));
}

#[test]
fn closing_the_loop_while_children_run_kills_and_reaps_them() {
    let lp = EventLoop::new();
    let pids = Rc::new(RefCell::new(Vec::new()));
    let seen = pids.clone();
    let kept: Rc<RefCell<Option<Process>>> = Rc::default();
    let keep = kept.clone();
    lp.run_until_complete(async move {
        // One child waited on by a task that the close will cancel...
        let mut p = create_subprocess_exec("sleep", ["30"]).await.unwrap();
        seen.borrow_mut().push(p.pid());
        drop(asyncio_core::create_task(async move {
            let _ = p.wait().await;
        }));
        // ... and one held outside the loop, dropped after the close.
        let q = create_subprocess_exec("sleep", ["30"]).await.unwrap();
        seen.borrow_mut().push(q.pid());
        *keep.borrow_mut() = Some(q);
        asyncio_core::sleep(Duration::from_millis(10)).await;
    })
    .unwrap();
    lp.close().unwrap();
    let first = pids.borrow()[0];
    assert!(
        reaped(first),
        "the waited child was killed and reaped at close"
    );
    assert!(!exists(first));
    let outside = kept.borrow_mut().take().unwrap();
    let second = outside.pid();
    assert!(outside.returncode().is_none());
    drop(outside);
    assert!(
        reaped(second),
        "a process dropped after the close is reaped too"
    );
    assert!(!exists(second));
}

#[test]
fn the_sigchld_fallback_delivers_exit_codes_on_each_new_loop() {
    force_sigchld_fallback(true);
    // Two loops one after the other on this thread: the second installs its
    // own SIGCHLD handler (the first one's went with its loop).
    let codes: Vec<_> = (0..2)
        .map(|_| {
            run(async {
                let mut a = create_subprocess_exec("sh", ["-c", "exit 5"])
                    .await
                    .unwrap();
                let mut b = create_subprocess_exec("sleep", ["30"]).await.unwrap();
                let pid = b.pid();
                // b's wait starts while it runs: only the SIGCHLD of the kill
                // below can end it.
                let waiting = asyncio_core::create_task(async move { b.wait().await.unwrap() });
                asyncio_core::sleep(Duration::from_millis(20)).await;
                // SAFETY: kill(2) touches no memory; pid is our unreaped child.
                assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
                (a.wait().await.unwrap(), waiting.await.unwrap())
            })
        })
        .collect();
    force_sigchld_fallback(false);
    assert_eq!(codes, [(5, -9), (5, -9)]);
}

#[test]
fn stderr_can_be_piped_apart_and_the_environment_set() {
    let (out, err) = run(async {
        let mut p = create_subprocess_shell("echo \"$GREETING\"; echo oops >&2; pwd >&2")
            .env("GREETING", "hi")
            .current_dir("/")
            .stdout(PIPE)
            .stderr(PIPE)
            .await
            .unwrap();
        p.communicate(None).await.unwrap()
    });
    assert_eq!(out.as_deref(), Some(&b"hi\n"[..]));
    assert_eq!(err.as_deref(), Some(&b"oops\n/\n"[..]));
}

/// Waits (bounded) until `pid` is a zombie: exited, not yet reaped.
fn wait_until_zombie(pid: u32) {
    let stat = format!("/proc/{pid}/stat");
    for _ in 0..500 {
        let s = std::fs::read_to_string(&stat).expect("the child is not reaped yet");
        // The state follows the command name in parentheses.
        if s.rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("child {pid} did not exit within 5 s");
}

#[test]
fn a_child_that_exited_before_the_first_wait_gives_its_code_and_is_reaped() {
    run(async {
        let mut p = create_subprocess_shell("exit 3").spawn().unwrap();
        let pid = p.pid();
        // Blocking the loop on purpose: the child must be gone before `wait`.
        wait_until_zombie(pid);
        assert_eq!(p.returncode(), None, "not reaped until waited for");
        assert_eq!(p.wait().await.unwrap(), 3);
        assert!(reaped(pid));
    });
}

#[test]
fn a_child_still_running_at_the_first_wait_is_reaped_when_it_exits() {
    run(async {
        let mut p = create_subprocess_shell("sleep 0.2; exit 4")
            .spawn()
            .unwrap();
        let pid = p.pid();
        assert!(exists(pid));
        assert_eq!(p.wait().await.unwrap(), 4);
        assert!(reaped(pid));
    });
}
