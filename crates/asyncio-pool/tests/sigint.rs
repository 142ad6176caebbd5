//! Ctrl-C during `LoopPool::run`: caught once for the pool, every worker's
//! main task cancelled, `run` returns `Interrupted`. The pool runs in a
//! child process (this test binary), which the test sends SIGINT.

#[path = "../../asyncio-core/tests/common/mod.rs"]
mod common;

use std::io::BufRead;
use std::sync::mpsc;

use asyncio_pool::{LoopPool, PoolError};

#[test]
#[cfg_attr(miri, ignore = "Miri has neither signals nor processes")]
fn ctrl_c_during_a_pool_run_cancels_every_worker_and_run_returns_interrupted() {
    const NAME: &str = "ctrl_c_during_a_pool_run_cancels_every_worker_and_run_returns_interrupted";
    if common::child_mode(NAME) {
        struct Cancelled(usize);
        impl Drop for Cancelled {
            fn drop(&mut self) {
                println!("child: worker {} cancelled", self.0);
            }
        }
        let out = LoopPool::new()
            .workers(2)
            .handle_sigint(true)
            .run(|w| async move {
                let _guard = Cancelled(w.index());
                println!("child: worker {} running", w.index());
                std::future::pending::<()>().await;
            });
        println!(
            "child: run returned {}",
            if matches!(out, Err(PoolError::Interrupted)) {
                "Interrupted".to_owned()
            } else {
                format!("{out:?}")
            }
        );
        return;
    }
    if std::env::var("ASYNCIO_SANITIZER").as_deref() == Ok("thread") {
        // ThreadSanitizer runs a signal's handler only once the thread that
        // received it calls into the sanitizer's runtime again; the child's
        // loop thread can stay blocked in `epoll_wait` past the test's bound
        // (as for asyncio-structured's runner test; see docs/testing.md).
        eprintln!("skipped under ThreadSanitizer: it delays SIGINT past the test");
        return;
    }

    let mut child = common::spawn_child(NAME);
    let stdout = child.stdout.take().unwrap();
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
    let mut running = 0;
    while running < 2 {
        match lines.recv_timeout(common::PATIENCE) {
            Ok(line) => {
                if line.contains("child: worker") && line.ends_with("running") {
                    running += 1;
                }
                seen.push(line);
            }
            Err(_) => {
                let _ = child.kill();
                panic!("the workers never started; the child printed {seen:?}");
            }
        }
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let (status, _rest, stderr) = common::wait_child(child);
    // The child has exited: its stdout is at its end, and the reader thread
    // stops after the last line.
    let rest: Vec<String> = lines.iter().collect();
    let all = [seen, rest].concat().join("\n");
    assert!(
        status.success(),
        "the child exited with {status}\n{all}\n{stderr}"
    );
    for i in 0..2 {
        assert!(
            all.contains(&format!("child: worker {i} cancelled")),
            "{all}"
        );
    }
    assert!(all.contains("child: run returned Interrupted"), "{all}");
}
