//! Ctrl-C under `#[asyncio::main]` and `Runner` ends a program as it ends
//! Python's `asyncio.run(main())`: the main task is cancelled, the loop's
//! cleanup runs, and the process dies of SIGINT (status 130 in a shell),
//! unless `main` asked to see `RunError::Interrupted` itself.
//!
//! Each test runs its program in a child process (this test binary, in child
//! mode) and sends it a real SIGINT from outside, as a terminal does.

#![cfg(unix)]

use std::io::BufRead;
use std::os::unix::process::ExitStatusExt;
use std::sync::mpsc;
use std::time::Duration;

#[path = "../../asyncio-core/tests/common/mod.rs"]
mod common;

/// Prints when dropped: shows that a destructor (asyncio's `finally`) ran.
struct Cleanup(&'static str);

impl Drop for Cleanup {
    fn drop(&mut self) {
        println!("child: {} cleaned up", self.0);
    }
}

/// The program's `main`: a task left running, then a long sleep.
#[asyncio::main]
async fn sleeping_main() {
    let leftover = asyncio::create_task(async {
        let _c = Cleanup("leftover task");
        asyncio::sleep(Duration::from_secs(3600)).await;
    });
    drop(leftover); // detached: only the loop's close cancels it
    let _c = Cleanup("main task");
    println!("child: running");
    asyncio::sleep(common::PATIENCE).await;
}

/// A `main` that runs for a moment, then returns.
#[asyncio::main]
async fn briefly_sleeping_main() {
    let _c = Cleanup("main task");
    println!("child: running");
    asyncio::sleep(Duration::from_millis(500)).await;
    println!("child: main finished its work");
}

/// The same, with `main` taking the `RunError` itself.
#[asyncio::main(return_run_error)]
async fn sleeping_main_returning_the_run_error() -> Result<(), asyncio::RunError> {
    let _c = Cleanup("main task");
    println!("child: running");
    asyncio::sleep(common::PATIENCE).await;
    Ok(())
}

/// Runs `f` as a program's `main` would: on a thread named `main`, where a
/// `Runner` handles Ctrl-C by default (libtest runs a test on a thread named
/// after the test).
fn as_program_main(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name("main".into())
        .spawn(f)
        .expect("start the main thread of the child")
        .join()
        .expect("the child's main returned");
}

/// Starts the child for `test` (SIGINT at its default action), waits until it
/// printed `child: running`, sends it SIGINT, and returns its exit status and
/// everything it printed.
fn interrupt_child(test: &str) -> (std::process::ExitStatus, String, String) {
    interrupt_child_with_sigint(test, false)
}

/// [`interrupt_child`], the child starting with SIGINT ignored if `ignored`.
fn interrupt_child_with_sigint(
    test: &str,
    ignored: bool,
) -> (std::process::ExitStatus, String, String) {
    let mut child = common::spawn_child_with_sigint(test, ignored);
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(common::PATIENCE) {
            // libtest's "test <name> ... " may begin the line.
            Ok(line) if line.ends_with("child: running") => break,
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("the child never printed that it runs; it printed {seen:?}");
            }
        }
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let (status, _, stderr) = common::wait_child(child);
    // The rest of stdout went to the line reader.
    let mut rest = String::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        rest.push_str(&line);
        rest.push('\n');
    }
    (status, rest, stderr)
}

#[test]
#[cfg_attr(miri, ignore = "Miri has neither signals nor processes")]
fn ctrl_c_under_asyncio_main_runs_the_cleanup_then_dies_of_sigint() {
    const NAME: &str = "ctrl_c_under_asyncio_main_runs_the_cleanup_then_dies_of_sigint";
    if common::child_mode(NAME) {
        as_program_main(sleeping_main);
        println!("child: main returned");
        return;
    }
    let (status, stdout, stderr) = interrupt_child(NAME);
    let report = format!("status {status}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(status.signal(), Some(2), "killed by SIGINT: {report}");
    assert!(
        stdout.contains("child: main task cleaned up"),
        "the main task was cancelled: {report}"
    );
    assert!(
        stdout.contains("child: leftover task cleaned up"),
        "closing the loop cancelled the task left: {report}"
    );
    assert!(!stdout.contains("main returned"), "{report}");
    assert!(!stderr.contains("panicked"), "no panic: {report}");
}

#[test]
#[cfg_attr(miri, ignore = "Miri has neither signals nor processes")]
fn ctrl_c_under_asyncio_main_with_return_run_error_hands_main_interrupted() {
    const NAME: &str = "ctrl_c_under_asyncio_main_with_return_run_error_hands_main_interrupted";
    if common::child_mode(NAME) {
        as_program_main(|| {
            let out = sleeping_main_returning_the_run_error();
            println!("child: main returned {out:?}");
        });
        return;
    }
    let (status, stdout, stderr) = interrupt_child(NAME);
    let report = format!("status {status}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(status.success(), "the program went on: {report}");
    assert!(stdout.contains("child: main task cleaned up"), "{report}");
    assert!(
        stdout.contains("child: main returned Err(Interrupted)"),
        "{report}"
    );
}

#[test]
#[cfg_attr(miri, ignore = "Miri has neither signals nor processes")]
fn exit_interrupted_after_an_interrupted_runner_run_dies_of_sigint() {
    const NAME: &str = "exit_interrupted_after_an_interrupted_runner_run_dies_of_sigint";
    if common::child_mode(NAME) {
        let runner = asyncio::Runner::builder().handle_sigint(true).build();
        let out = runner.run(async {
            let _c = Cleanup("main task");
            println!("child: running");
            asyncio::sleep(common::PATIENCE).await;
        });
        runner.close().unwrap();
        println!("child: run returned {out:?}");
        if let Err(asyncio::RunError::Interrupted) = out {
            asyncio::exit_interrupted();
        }
        return;
    }
    let (status, stdout, stderr) = interrupt_child(NAME);
    let report = format!("status {status}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(status.signal(), Some(2), "killed by SIGINT: {report}");
    assert!(
        stdout.contains("child: run returned Err(Interrupted)"),
        "printed before exit_interrupted, and flushed: {report}"
    );
}

/// asyncio's Runner catches Ctrl-C only while SIGINT's handler is the default
/// one: a program started with SIGINT ignored (by `nohup`, or in the
/// background by a shell without job control) is not interrupted by it. Before,
/// `#[asyncio::main]` caught SIGINT anyway, cancelled `main` and died of it.
#[test]
#[cfg_attr(miri, ignore = "Miri has neither signals nor processes")]
fn a_program_started_with_sigint_ignored_is_not_interrupted_by_it() {
    const NAME: &str = "a_program_started_with_sigint_ignored_is_not_interrupted_by_it";
    if common::child_mode(NAME) {
        as_program_main(briefly_sleeping_main);
        println!("child: main returned");
        return;
    }
    let (status, stdout, stderr) = interrupt_child_with_sigint(NAME, true);
    let report = format!("status {status}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(status.success(), "SIGINT stayed ignored: {report}");
    assert!(
        stdout.contains("child: main finished its work"),
        "main was not cancelled: {report}"
    );
    assert!(stdout.contains("child: main returned"), "{report}");
}
