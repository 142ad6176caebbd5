//! Helpers shared by the integration tests of asyncio-core and
//! asyncio-structured (the latter includes this file with `#[path]`).
//!
//! - [`Checks`]: assertions made where the loop catches panics (callbacks,
//!   done callbacks, `call_soon_threadsafe`), recorded and checked after the run.
//! - [`LoopThread`]: waits, from another thread, until a loop's thread is
//!   really asleep in the kernel, instead of sleeping and hoping.
//! - [`child_mode`] / [`run_child`]: runs a scenario in a child process (the
//!   test binary itself), to see what it prints or how it dies.
#![allow(dead_code, unreachable_pub)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Outcomes of checks made inside code whose panics the loop catches and
/// reports (an `assert!` there fails nothing by itself). Each check records
/// its name and whether it passed; the test then asserts on the record with
/// [`Checks::assert_ran`], so a check that failed, or never ran, fails it.
#[derive(Clone, Default)]
pub struct Checks {
    record: Arc<Mutex<Vec<Outcome>>>,
}

/// A check's name, and its failure message if it failed.
type Outcome = (String, Result<(), String>);

impl Checks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` (which asserts) and records its outcome under `name`. Never
    /// panics itself, so the loop has nothing to catch.
    pub fn check(&self, name: impl Into<String>, f: impl FnOnce()) {
        let outcome = catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
            payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with a non-string payload".to_owned())
        });
        self.lock().push((name.into(), outcome));
    }

    /// Records that the code at `name` ran (a check with nothing to assert).
    pub fn ran(&self, name: impl Into<String>) {
        self.check(name, || {});
    }

    /// The names recorded so far, in order.
    pub fn names(&self) -> Vec<String> {
        self.lock().iter().map(|(n, _)| n.clone()).collect()
    }

    /// Asserts that exactly the checks `expected` ran, in this order, once
    /// each, and that every one passed.
    #[track_caller]
    pub fn assert_ran<S: AsRef<str>>(&self, expected: &[S]) {
        let record = self.lock();
        let failed: Vec<String> = record
            .iter()
            .filter_map(|(name, outcome)| outcome.as_ref().err().map(|e| format!("{name}: {e}")))
            .collect();
        assert!(failed.is_empty(), "checks failed: {failed:#?}");
        let ran: Vec<&str> = record.iter().map(|(n, _)| n.as_str()).collect();
        let expected: Vec<&str> = expected.iter().map(AsRef::as_ref).collect();
        assert!(
            ran == expected,
            "checks that ran: {ran:?}\nexpected:         {expected:?}"
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Outcome>> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How long a test waits for something another thread or process must do
/// before it gives up (a guard against hangs, never a timing assertion).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `cond` until it holds or [`PATIENCE`] runs out; returns whether it held.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A thread that runs a loop, as seen from other threads through `/proc`.
#[derive(Clone, Copy, Debug)]
pub struct LoopThread {
    /// The kernel's id of the thread (`None` under Miri, which has no `/proc`).
    tid: Option<u32>,
}

impl LoopThread {
    /// The calling thread.
    pub fn current() -> Self {
        if cfg!(miri) {
            return LoopThread { tid: None };
        }
        // "/proc/thread-self" links to "<pid>/task/<tid>".
        let link = std::fs::read_link("/proc/thread-self").expect("Linux /proc");
        let tid = link
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .expect("a thread id");
        LoopThread { tid: Some(tid) }
    }

    /// Whether the thread is asleep in the kernel right now (state `S`, and
    /// in an epoll wait, or a futex wait for a loop that parks because it has
    /// no poller, when the kernel shows the system call).
    pub fn is_parked(&self) -> bool {
        let Some(tid) = self.tid else {
            return true;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else {
            return false;
        };
        // The state is the first field after the command's closing parenthesis.
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next());
        if state != Some("S") {
            return false;
        }
        // epoll_wait, epoll_pwait, epoll_pwait2, futex.
        let epoll_waits: &[&str] = if cfg!(target_arch = "x86_64") {
            &["232", "281", "441", "202"]
        } else if cfg!(target_arch = "aarch64") {
            &["22", "441", "98"]
        } else {
            return true;
        };
        match std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")) {
            Ok(s) => s
                .split_whitespace()
                .next()
                .is_some_and(|n| epoll_waits.contains(&n)),
            // Not shown to us: the state has to do.
            Err(_) => true,
        }
    }

    /// Waits (at most [`PATIENCE`]) until the thread is parked in the kernel;
    /// panics if it never is. Under Miri (no `/proc`) it returns at once:
    /// callers first wait for something that proves the loop is about to
    /// wait (a waker registered), so the test still checks the wake-up.
    #[track_caller]
    pub fn wait_until_parked(&self) {
        assert!(
            eventually(|| self.is_parked()),
            "the loop's thread never went to sleep in the kernel"
        );
    }
}

/// The environment variable that puts the test binary in child mode.
pub const CHILD_ENV: &str = "ASYNCIO_RS_TEST_CHILD";

/// Whether this process is a child started by [`run_child`] for `test`.
pub fn child_mode(test: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == test)
}

/// A child process: the test binary running only the test `test` in child
/// mode (it prints to the real stdout and stderr). Stdout and stderr are piped.
/// It starts with SIGINT's default action, as a program started from a
/// terminal does, whatever this process inherited (a test run in the
/// background by a shell without job control inherits SIGINT ignored).
pub fn spawn_child(test: &str) -> std::process::Child {
    spawn_child_with_sigint(test, false)
}

/// [`spawn_child`], with SIGINT ignored in the child from its start (as under
/// `nohup`, or as a shell's background job) when `ignored`.
pub fn spawn_child_with_sigint(test: &str, ignored: bool) -> std::process::Child {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    #[cfg(all(unix, not(miri)))]
    {
        use std::os::unix::process::CommandExt;
        let action = if ignored {
            libc::SIG_IGN
        } else {
            libc::SIG_DFL
        };
        // SAFETY: between fork and exec only `signal`, which is
        // async-signal-safe, runs; it touches no memory of the parent.
        unsafe {
            cmd.pre_exec(move || {
                if libc::signal(libc::SIGINT, action) == libc::SIG_ERR {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(all(unix, not(miri))))]
    let _ = ignored;
    cmd.spawn().expect("spawn the test binary")
}

/// Waits (at most [`PATIENCE`]) for `child` to exit, killing it if it does
/// not; returns its status, stdout and stderr.
pub fn wait_child(mut child: std::process::Child) -> (std::process::ExitStatus, String, String) {
    use std::io::Read;
    // Read both pipes on threads, so a chatty child cannot block on a full pipe.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut out);
            }
            out
        })
    };
    let out = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let err = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let mut status = None;
    let exited = eventually(|| {
        status = child.try_wait().expect("wait for the child");
        status.is_some()
    });
    if !exited {
        let _ = child.kill();
        status = Some(child.wait().expect("wait for the killed child"));
    }
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        exited,
        "the child did not exit\nstdout:\n{out}\nstderr:\n{err}"
    );
    (status.unwrap(), out, err)
}

/// Runs the test `test` in a child process (see [`spawn_child`]) and waits
/// for it (see [`wait_child`]).
pub fn run_child(test: &str) -> (std::process::ExitStatus, String, String) {
    wait_child(spawn_child(test))
}
