//! `EventLoop::run_forever` and `stop`, as asyncio's (base_events'
//! `run_forever`/`stop`/`_run_once`; test_base_events' `test_run_once`,
//! `test_run_forever_pre_stopped`,
//! `test_single_selecter_event_callback_after_stopping`; test_events'
//! `test_run_until_complete_stopped`, written anew).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use asyncio_core::{EventLoop, RunError, RuntimeError, get_running_loop, sleep};

/// The idiom asyncio's own tests use to run one turn: `loop.stop()` before
/// `loop.run_forever()`.
#[test]
fn stop_before_run_forever_makes_it_run_exactly_one_turn() {
    let lp = EventLoop::new();
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    lp.call_soon(move || c.set(c.get() + 1));
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(count.get(), 1, "the callback ready before the run ran once");
    assert!(!lp.is_running());
}

#[test]
fn callbacks_scheduled_by_the_last_turn_run_in_the_next_run() {
    let lp = EventLoop::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    let (l, lp2) = (log.clone(), lp.clone());
    lp.call_soon(move || {
        l.borrow_mut().push(1);
        let l2 = l.clone();
        let lp3 = lp2.clone();
        lp2.call_soon(move || {
            l2.borrow_mut().push(2);
            let l3 = l2.clone();
            lp3.call_soon(move || l3.borrow_mut().push(3));
        });
        lp2.stop();
    });
    lp.run_forever().unwrap();
    assert_eq!(*log.borrow(), [1], "the stop ends the run after its turn");
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(
        *log.borrow(),
        [1, 2],
        "the next (pre-stopped) run runs what the last turn scheduled, and only that"
    );
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(*log.borrow(), [1, 2, 3]);
}

/// test_single_selecter_event_callback_after_stopping: a stopped loop does
/// not run a callback twice, run after run.
#[test]
fn each_pre_stopped_run_runs_a_callback_once() {
    let lp = EventLoop::new();
    let count = Rc::new(Cell::new(0));
    for round in 1..=2 {
        let c = count.clone();
        let lp2 = lp.clone();
        lp.call_soon(move || lp2.stop());
        lp.call_soon(move || c.set(c.get() + 1));
        lp.run_forever().unwrap();
        assert_eq!(count.get(), round);
    }
}

#[test]
fn stop_from_a_task_lets_the_rest_of_its_turn_run() {
    let lp = EventLoop::new();
    let after = Rc::new(Cell::new(false));
    let a = after.clone();
    lp.create_task(async {
        get_running_loop().unwrap().stop();
    });
    // Queued behind the stopping task in the same turn.
    lp.call_soon(move || a.set(true));
    lp.run_forever().unwrap();
    assert!(after.get(), "stop waits for the end of the turn");
}

#[test]
fn a_stop_request_is_consumed_by_the_run_it_ends() {
    let lp = EventLoop::new();
    lp.stop();
    lp.run_forever().unwrap();
    // A second run must not see the first stop: it runs until the timer's.
    let fired = Rc::new(Cell::new(false));
    let (f, lp2) = (fired.clone(), lp.clone());
    lp.call_later(Duration::from_millis(5), move || {
        f.set(true);
        lp2.stop();
    });
    lp.run_forever().unwrap();
    assert!(fired.get(), "the second run lasted until its own stop");
}

#[test]
fn run_forever_keeps_tasks_running_until_stopped() {
    let lp = EventLoop::new();
    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    let task = lp.create_task(async move {
        for _ in 0..5 {
            sleep(Duration::from_millis(1)).await;
            t.set(t.get() + 1);
        }
        get_running_loop().unwrap().stop();
        "done"
    });
    lp.run_forever().unwrap();
    assert_eq!(ticks.get(), 5);
    assert!(task.done());
}

#[test]
fn stop_from_another_thread_ends_run_forever() {
    let lp = EventLoop::new();
    let handle = lp.handle();
    // A task that would run for ever keeps the loop busy with a timer.
    let spinning = lp.create_task(async {
        loop {
            sleep(Duration::from_millis(1)).await;
        }
    });
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        handle.stop()
    });
    lp.run_forever().unwrap();
    assert_eq!(stopper.join().unwrap(), Ok(()));
    assert!(!spinning.done(), "stopping the loop cancels nothing");
    spinning.cancel();
}

#[test]
fn stop_from_another_thread_wakes_a_sleeping_loop() {
    let lp = EventLoop::new();
    let handle = lp.handle();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        handle.stop()
    });
    // Nothing to do at all: the loop sleeps in the kernel until the stop.
    lp.run_forever().unwrap();
    assert_eq!(stopper.join().unwrap(), Ok(()));
}

#[test]
fn stop_through_a_handle_of_a_closed_loop_is_an_error() {
    let lp = EventLoop::new();
    let handle = lp.handle();
    lp.close().unwrap();
    assert_eq!(handle.stop(), Err(RuntimeError::Closed));
}

#[cfg(not(miri))]
#[test]
fn stop_from_a_signal_handler_ends_run_forever() {
    let lp = EventLoop::new();
    let lp2 = lp.clone();
    // SIGWINCH: ignored by default, so a stray one harms nothing.
    lp.add_signal_handler(libc::SIGWINCH, move || lp2.stop())
        .unwrap();
    let sender = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: kill(2) with this process's id and a valid signal number
        // has no memory-safety preconditions.
        unsafe { libc::kill(libc::getpid(), libc::SIGWINCH) }
    });
    lp.run_forever().unwrap();
    assert_eq!(sender.join().unwrap(), 0);
    assert!(lp.remove_signal_handler(libc::SIGWINCH).unwrap());
}

/// test_events' test_run_until_complete_stopped.
#[test]
fn stop_during_run_until_complete_returns_stopped() {
    let lp = EventLoop::new();
    let cleaned = Rc::new(Cell::new(false));
    struct Finally(Rc<Cell<bool>>);
    impl Drop for Finally {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let c = cleaned.clone();
    let out = lp.run_until_complete(async move {
        let _finally = Finally(c);
        get_running_loop().unwrap().stop();
        sleep(Duration::from_millis(100)).await;
    });
    assert!(
        matches!(out, Err(RunError::Runtime(RuntimeError::Stopped))),
        "{out:?}"
    );
    assert!(
        cleaned.get(),
        "the main future was dropped before the call returned"
    );
    // The request was consumed: the next run completes.
    assert_eq!(lp.run_until_complete(async { 7 }).unwrap(), 7);
}

#[test]
fn a_stop_before_run_until_complete_still_lets_a_quick_future_finish() {
    let lp = EventLoop::new();
    lp.stop();
    // The main task finishes in the one turn the stop allows.
    assert_eq!(lp.run_until_complete(async { 1 }).unwrap(), 1);
}

#[test]
fn run_forever_with_nothing_that_could_stop_it_is_stalled_not_hung() {
    let lp = EventLoop::new();
    assert_eq!(lp.run_forever(), Err(RuntimeError::Stalled));
    // And the loop is usable afterwards.
    lp.stop();
    lp.run_forever().unwrap();
}

#[test]
fn run_forever_inside_a_running_loop_is_refused() {
    let lp = EventLoop::new();
    let inner = lp
        .run_until_complete(async { get_running_loop().unwrap().run_forever() })
        .unwrap();
    assert_eq!(inner, Err(RuntimeError::AlreadyRunning));
}

#[test]
fn run_forever_on_a_closed_loop_is_refused() {
    let lp = EventLoop::new();
    lp.close().unwrap();
    assert_eq!(lp.run_forever(), Err(RuntimeError::Closed));
}
