//! User executors (`run_in_executor_on`, `set_default_executor`) and the
//! awaitable `shutdown_default_executor` (test_base_events'
//! `test_run_in_executor*`, `test_set_default_executor*`,
//! `test_shutdown_default_executor*`, written anew).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use asyncio_core::{
    EventLoop, Executor, RuntimeError, TimeoutError, get_running_loop, to_thread, yield_now,
};

/// Runs each job on a thread of its own, named, and records what the loop
/// asked of it.
#[derive(Default)]
struct Recording {
    jobs: AtomicUsize,
    shutdowns: Mutex<Vec<bool>>,
    refuse: AtomicBool,
}

impl Executor for Recording {
    fn execute(&self, job: Box<dyn FnOnce() + Send>) -> Result<(), RuntimeError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(RuntimeError::ExecutorUnavailable);
        }
        self.jobs.fetch_add(1, Ordering::SeqCst);
        std::thread::Builder::new()
            .name("recording-executor".into())
            .spawn(job)
            .map(drop)
            .map_err(|_| RuntimeError::ExecutorUnavailable)
    }

    fn shutdown(&self, wait: bool) {
        self.shutdowns.lock().unwrap().push(wait);
    }
}

fn thread_name() -> Option<String> {
    std::thread::current().name().map(str::to_owned)
}

/// Waits (bounded) for `flag` on a plain thread.
fn wait_for_flag(flag: &AtomicBool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !flag.load(Ordering::SeqCst) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

#[test]
fn run_in_executor_on_runs_the_function_on_the_executor_given() {
    let executor = Recording::default();
    let lp = EventLoop::new();
    let name = lp
        .run_until_complete(async {
            let lp = get_running_loop().unwrap();
            lp.run_in_executor_on(&executor, thread_name)
                .unwrap()
                .await
                .unwrap()
        })
        .unwrap();
    assert_eq!(name.as_deref(), Some("recording-executor"));
    assert_eq!(executor.jobs.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panic_on_a_user_executor_comes_back_as_an_error() {
    let executor = Recording::default();
    let lp = EventLoop::new();
    let out = lp
        .run_until_complete(async {
            let lp = get_running_loop().unwrap();
            lp.run_in_executor_on(&executor, || -> u8 { panic!("job broke") })
                .unwrap()
                .await
        })
        .unwrap();
    assert_eq!(out.unwrap_err().message(), "job broke");
}

#[test]
fn an_executor_that_refuses_gives_its_error_and_a_closed_loop_refuses_first() {
    let executor = Recording::default();
    executor.refuse.store(true, Ordering::SeqCst);
    let lp = EventLoop::new();
    assert_eq!(
        lp.run_in_executor_on(&executor, || ()).unwrap_err(),
        RuntimeError::ExecutorUnavailable
    );
    executor.refuse.store(false, Ordering::SeqCst);
    lp.close().unwrap();
    assert_eq!(
        lp.run_in_executor_on(&executor, || ()).unwrap_err(),
        RuntimeError::Closed
    );
    assert_eq!(executor.jobs.load(Ordering::SeqCst), 0);
}

#[test]
fn set_default_executor_is_what_run_in_executor_and_to_thread_use() {
    let executor = Arc::new(Recording::default());
    let lp = EventLoop::new();
    lp.set_default_executor(executor.clone());
    let names = lp
        .run_until_complete(async {
            let a = to_thread(thread_name).await.unwrap();
            let lp = get_running_loop().unwrap();
            let b = lp.run_in_executor(thread_name).unwrap().await.unwrap();
            (a, b)
        })
        .unwrap();
    assert_eq!(names.0.as_deref(), Some("recording-executor"));
    assert_eq!(names.1.as_deref(), Some("recording-executor"));
    assert_eq!(executor.jobs.load(Ordering::SeqCst), 2);
    assert_eq!(
        lp.default_executor_threads(),
        0,
        "the built-in pool never started"
    );
    lp.close().unwrap();
    assert_eq!(
        *executor.shutdowns.lock().unwrap(),
        [false],
        "close shuts it down without waiting"
    );
}

/// The shutdown waits for the jobs on a thread of its own: the loop keeps
/// running tasks meanwhile. Here the job can only finish once a task on the
/// loop has run after the shutdown began, so a shutdown that blocked the
/// loop's thread would never see it finish (the job gives up after 10 s).
#[test]
fn shutdown_default_executor_lets_the_loop_run_while_it_waits() {
    let lp = EventLoop::new();
    let released = Arc::new(AtomicBool::new(false));
    let r = released.clone();
    let (job_saw_release, shutdown) = lp
        .run_until_complete(async move {
            let lp = get_running_loop().unwrap();
            let job = to_thread(move || wait_for_flag(&r));
            let shutdown = lp.shutdown_default_executor(Duration::from_secs(30));
            let r2 = released.clone();
            let releaser = asyncio_core::create_task(async move {
                yield_now().await;
                r2.store(true, Ordering::SeqCst);
            });
            let shutdown = shutdown.await;
            releaser.await.unwrap();
            (job.await.unwrap(), shutdown)
        })
        .unwrap();
    assert!(
        job_saw_release,
        "a task ran on the loop while the shutdown waited"
    );
    assert_eq!(shutdown, Ok(()));
}

#[test]
fn shutdown_default_executor_times_out_and_leaves_the_jobs_running() {
    let lp = EventLoop::new();
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    let out = lp
        .run_until_complete(async move {
            let lp = get_running_loop().unwrap();
            let job = to_thread(move || wait_for_flag(&r));
            let out = lp.shutdown_default_executor(Duration::from_millis(5)).await;
            release.store(true, Ordering::SeqCst);
            // The job goes on after the timeout, and still reports.
            (out, job.await.unwrap())
        })
        .unwrap();
    assert_eq!(out, (Err(TimeoutError), true));
}

#[test]
fn after_shutdown_default_executor_new_work_is_refused() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let lp = get_running_loop().unwrap();
        // Nothing started yet: done at once, and refused from now on.
        lp.shutdown_default_executor(Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(
            lp.run_in_executor(|| ()).unwrap_err(),
            RuntimeError::ExecutorUnavailable
        );
    })
    .unwrap();
    let lp = EventLoop::new();
    let executor = Arc::new(Recording::default());
    lp.set_default_executor(executor.clone());
    lp.run_until_complete(async {
        let lp = get_running_loop().unwrap();
        lp.shutdown_default_executor(Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(
            lp.run_in_executor(|| ()).unwrap_err(),
            RuntimeError::ExecutorUnavailable
        );
    })
    .unwrap();
    assert_eq!(
        *executor.shutdowns.lock().unwrap(),
        [true],
        "shut down with wait, on a thread of its own"
    );
}
