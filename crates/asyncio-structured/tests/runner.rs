//! `asyncio.run` and `asyncio.Runner`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use asyncio_core::{
    EventLoop, RunError, RuntimeError, create_task, current_task, get_running_loop, yield_now,
};
use asyncio_structured::{Runner, run};

/// Tests that raise SIGINT in this process take turns: the signal reaches
/// every runner handling it, and a second one while a runner is cancelling
/// ends the process.
static SIGINT_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[path = "../../asyncio-core/tests/common/mod.rs"]
mod common;
use common::Checks;

#[test]
fn run_returns_the_main_futures_output() {
    assert_eq!(run(async { "done" }).unwrap(), "done");
}

#[test]
fn two_runs_of_one_runner_share_the_loop_and_its_state() {
    let runner = Runner::new();
    let first = runner.run(async { get_running_loop().unwrap() }).unwrap();
    let kept = Rc::new(Cell::new(0));
    let k = kept.clone();
    runner.run(async move { k.set(41) }).unwrap();
    let k = kept.clone();
    let second = runner
        .run(async move {
            k.set(k.get() + 1);
            get_running_loop().unwrap()
        })
        .unwrap();
    assert!(first.same_loop(&second));
    assert_eq!(kept.get(), 42);
    assert!(runner.get_loop().unwrap().same_loop(&first));
}

#[test]
fn tasks_left_by_one_run_keep_running_in_the_next() {
    let runner = Runner::new();
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    runner
        .run(async move {
            drop(create_task(async move {
                loop {
                    c.set(c.get() + 1);
                    yield_now().await;
                }
            }));
        })
        .unwrap();
    let before = count.get();
    runner
        .run(async {
            for _ in 0..5 {
                yield_now().await;
            }
        })
        .unwrap();
    assert!(count.get() > before);
}

#[test]
fn close_is_idempotent_and_later_runs_fail() {
    let runner = Runner::new();
    runner.run(async {}).unwrap();
    runner.close().unwrap();
    runner.close().unwrap();
    assert_eq!(
        runner.run(async {}),
        Err(RunError::Runtime(RuntimeError::Closed))
    );
    assert_eq!(runner.get_loop().unwrap_err(), RuntimeError::Closed);
}

#[test]
fn close_cancels_leftover_tasks_and_lets_their_cleanup_run() {
    struct Cleanup(Rc<RefCell<Vec<&'static str>>>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            self.0.borrow_mut().push("cleanup");
        }
    }
    let log = Rc::new(RefCell::new(Vec::new()));
    let checks = Checks::new();
    let runner = Runner::new();
    let (l, c) = (log.clone(), checks.clone());
    let lp = runner.get_loop().unwrap();
    runner
        .run(async move {
            let t = create_task(async move {
                let _c = Cleanup(l);
                std::future::pending::<()>().await;
            });
            t.add_done_callback(move |task| {
                c.check("done callback", || assert!(task.cancelled()));
            });
            yield_now().await;
        })
        .unwrap();
    assert!(log.borrow().is_empty());
    assert!(checks.names().is_empty());
    runner.close().unwrap();
    assert_eq!(*log.borrow(), ["cleanup"]);
    checks.assert_ran(&["done callback"]);
    assert!(lp.is_closed());
    assert!(lp.all_tasks().is_empty());
}

#[test]
fn run_inside_a_running_loop_is_an_error_not_a_deadlock() {
    let runner = Rc::new(Runner::new());
    let r2 = runner.clone();
    let nested_same = runner.run(async move { r2.run(async { 1 }) }).unwrap();
    assert_eq!(
        nested_same,
        Err(RunError::Runtime(RuntimeError::AlreadyRunning))
    );
    let nested_other = runner
        .run(async { Runner::new().run(async { 1 }) })
        .unwrap();
    assert_eq!(
        nested_other,
        Err(RunError::Runtime(RuntimeError::AnotherLoopRunning))
    );
    let nested_fn = runner.run(async { run(async { 1 }) }).unwrap();
    assert_eq!(
        nested_fn,
        Err(RunError::Runtime(RuntimeError::AnotherLoopRunning))
    );
}

#[test]
fn close_from_inside_the_runners_loop_is_refused() {
    let runner = Rc::new(Runner::new());
    let r2 = runner.clone();
    let r = runner.run(async move { r2.close() }).unwrap();
    assert_eq!(r, Err(RuntimeError::CloseWhileRunning));
    runner.close().unwrap();
}

#[test]
fn builder_sets_debug_and_task_factory_before_the_main_task() {
    struct Tagging;
    impl asyncio_core::TaskFactory for Tagging {
        fn create(&self, task: &asyncio_core::TaskRef) -> asyncio_core::StartMode {
            task.set_name("tagged");
            asyncio_core::StartMode::Lazy
        }
    }
    let runner = Runner::builder().debug(true).task_factory(Tagging).build();
    let name = runner
        .run(async { current_task().unwrap().name() })
        .unwrap();
    assert_eq!(name, "tagged");
    assert!(runner.get_loop().unwrap().get_debug());
}

#[test]
fn dropping_a_runner_closes_its_loop() {
    let lp: EventLoop;
    {
        let runner = Runner::new();
        lp = runner.get_loop().unwrap();
        runner.run(async {}).unwrap();
    }
    assert!(lp.is_closed());
}

#[test]
fn a_panicking_main_future_propagates_and_the_runner_stays_usable() {
    let runner = Runner::new();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runner.run(async { panic!("main") })
    }));
    assert!(err.is_err());
    assert_eq!(runner.run(async { 3 }).unwrap(), 3);
}

#[test]
fn run_closes_its_loop_and_cancels_leftovers() {
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let lp = run(async move {
        drop(create_task(async move {
            let _f = Flag(d);
            std::future::pending::<()>().await;
        }));
        yield_now().await;
        get_running_loop().unwrap()
    })
    .unwrap();
    assert!(dropped.get());
    assert!(lp.is_closed());
}

#[test]
#[cfg_attr(miri, ignore = "signals are not available under Miri")]
fn ctrl_c_cancels_the_main_task_of_runner_run() {
    use std::time::Duration;
    let _one_at_a_time = SIGINT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    struct Cleanup(std::rc::Rc<std::cell::Cell<bool>>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let runner = asyncio_structured::Runner::builder()
        .handle_sigint(true)
        .build();
    let cleaned = std::rc::Rc::new(std::cell::Cell::new(false));
    let c = cleaned.clone();
    let out = runner.run(async move {
        let _cleanup = Cleanup(c);
        asyncio_core::create_task(async {
            asyncio_core::sleep(Duration::from_millis(20)).await;
            signal_hook::low_level::raise(signal_hook::consts::SIGINT).unwrap();
        });
        asyncio_core::sleep(Duration::from_secs(30)).await;
        "not interrupted"
    });
    assert_eq!(out, Err(asyncio_core::RunError::Interrupted));
    assert!(
        cleaned.get(),
        "the main task's future was dropped (cancelled)"
    );
    // The runner is still usable, as asyncio's after KeyboardInterrupt.
    assert_eq!(runner.run(async { 5 }), Ok(5));
    runner.close().unwrap();
}

/// docs/semantics.md: "A second SIGINT before the run returns kills the
/// process with SIGINT, as an unhandled `KeyboardInterrupt` does." The test
/// binary runs a `Runner` in a child process whose main task ignores its
/// cancellation for a while (its destructor blocks); the first SIGINT starts
/// that cancellation, the second, sent while it runs, must kill the child.
#[test]
#[cfg_attr(miri, ignore = "Miri has neither signals nor processes")]
fn a_second_ctrl_c_while_the_main_task_is_cancelled_kills_the_process() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    use std::sync::mpsc;

    const NAME: &str = "a_second_ctrl_c_while_the_main_task_is_cancelled_kills_the_process";
    if common::child_mode(NAME) {
        /// Blocks the cancellation of the main task (its future's drop).
        struct SlowCleanup {
            finished: bool,
        }
        impl Drop for SlowCleanup {
            fn drop(&mut self) {
                if self.finished {
                    return;
                }
                println!("child: cancelling");
                // Long enough for the parent's second SIGINT, short enough to
                // end before the parent gives up on this process.
                std::thread::sleep(common::PATIENCE / 2);
                println!("child: cleanup finished");
            }
        }
        let runner = Runner::builder().handle_sigint(true).build();
        let out = runner.run(async {
            let mut cleanup = SlowCleanup { finished: false };
            println!("child: running");
            asyncio_core::sleep(common::PATIENCE / 2).await;
            cleanup.finished = true;
        });
        println!("child: run returned {out:?}");
        return;
    }

    if std::env::var("ASYNCIO_SANITIZER").as_deref() == Ok("thread") {
        // ThreadSanitizer runs a signal's handler only once the thread that
        // received it calls into the sanitizer's runtime again; in the child
        // that thread can stay blocked (a futex wait) until the main task's
        // sleep is over, so the first SIGINT is never seen in time
        // (`ci/sanitizers.sh thread` sets ASYNCIO_SANITIZER).
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
    let mut wait_for = |what: &str, child: &mut std::process::Child| loop {
        match lines.recv_timeout(common::PATIENCE) {
            // libtest's "test <name> ... " may begin the line.
            Ok(line) if line.ends_with(what) => return,
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("the child never printed {what:?}; it printed {seen:?}");
            }
        }
    };
    let sigint = |child: &std::process::Child| {
        let status = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    };
    // The main task runs, with Ctrl-C handling installed.
    wait_for("child: running", &mut child);
    sigint(&child);
    // The first SIGINT cancels the main task: its destructor runs, and the
    // process is still alive.
    wait_for("child: cancelling", &mut child);
    sigint(&child);
    let (status, rest, stderr) = common::wait_child(child);
    assert_eq!(
        status.signal(),
        Some(2),
        "killed by SIGINT; got {status}\nstdout: {seen:?} {rest}\nstderr:\n{stderr}"
    );
}

/// test_runners' `test_run_keeps_context`: every run of one runner uses the
/// runner's context, so a variable the main task set in one run is what the
/// next run reads.
#[test]
fn runs_of_one_runner_share_one_context() {
    let var = asyncio_core::ContextVar::<u32>::new("value");
    let runner = Runner::new();
    let v = var.clone();
    assert_eq!(runner.run(async move { v.get() }).unwrap(), None);
    let v = var.clone();
    runner.run(async move { drop(v.set(1)) }).unwrap();
    let v = var.clone();
    runner
        .run(async move {
            assert_eq!(v.get(), Some(1));
            drop(v.set(2));
        })
        .unwrap();
    let v = var.clone();
    assert_eq!(runner.run(async move { v.get() }).unwrap(), Some(2));
    // The thread's own context never saw any of it.
    assert_eq!(var.get(), None);
    // Nor does another runner.
    let v = var.clone();
    assert_eq!(Runner::new().run(async move { v.get() }).unwrap(), None);
}

/// issue 15: after `run` returns, SIGINT has its previous action back: a
/// process that ran a `Runner` with Ctrl-C handling and then waits dies of
/// the SIGINT (before, signal-hook's handler stayed, and Ctrl-C did nothing).
#[test]
#[cfg_attr(miri, ignore = "Miri has neither signals nor processes")]
fn ctrl_c_after_run_returned_ends_the_process() {
    use std::os::unix::process::ExitStatusExt;
    const NAME: &str = "ctrl_c_after_run_returned_ends_the_process";
    if common::child_mode(NAME) {
        let runner = Runner::builder().handle_sigint(true).build();
        runner.run(async {}).unwrap();
        runner.close().unwrap();
        println!("child: ready");
        std::thread::sleep(common::PATIENCE / 2);
        println!("child: survived");
        return;
    }
    let mut child = common::spawn_child(NAME);
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(n > 0, "the child ended before it was ready");
        if line.trim_end().ends_with("child: ready") {
            break;
        }
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let (status, rest, stderr) = common::wait_child(child);
    assert_eq!(
        status.signal(),
        Some(2),
        "killed by SIGINT; got {status}\nstdout: {rest}\nstderr:\n{stderr}"
    );
}

/// issue 15: each of two runs in a row handles its own Ctrl-C.
#[test]
#[cfg_attr(miri, ignore = "Miri has no signals")]
fn two_runs_in_a_row_each_handle_ctrl_c() {
    use std::time::Duration;
    let _one_at_a_time = SIGINT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let runner = Runner::builder().handle_sigint(true).build();
    for _ in 0..2 {
        let out = runner.run(async {
            asyncio_core::create_task(async {
                asyncio_core::sleep(Duration::from_millis(5)).await;
                signal_hook::low_level::raise(signal_hook::consts::SIGINT).unwrap();
            });
            asyncio_core::sleep(Duration::from_secs(30)).await;
        });
        assert_eq!(out, Err(RunError::Interrupted));
    }
    runner.close().unwrap();
}

/// issue 15: `Runner::run` with Ctrl-C handling starts no thread (the signal
/// reaches the loop through its epoll set). Counted in a child process, where
/// no other test starts threads meanwhile.
#[test]
#[cfg_attr(miri, ignore = "Miri has no /proc")]
fn run_with_ctrl_c_handling_starts_no_thread() {
    const NAME: &str = "run_with_ctrl_c_handling_starts_no_thread";
    fn threads() -> usize {
        std::fs::read_dir("/proc/self/task").unwrap().count()
    }
    if common::child_mode(NAME) {
        let before = threads();
        let runner = Runner::builder().handle_sigint(true).build();
        let during = runner.run(async { threads() }).unwrap();
        runner.close().unwrap();
        println!("threads: {before} {during}");
        return;
    }
    let (status, out, err) = common::run_child(NAME);
    assert!(status.success(), "{out}\n{err}");
    let line = out
        .lines()
        .find_map(|l| l.split("threads: ").nth(1))
        .unwrap_or_else(|| panic!("no count in {out}"));
    let counts: Vec<usize> = line.split(' ').map(|n| n.trim().parse().unwrap()).collect();
    assert_eq!(counts[0], counts[1], "threads before and during run");
}
