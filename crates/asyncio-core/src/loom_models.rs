//! loom models of the cross-thread paths (run with `ci/loom.sh`):
//! an injection racing the loop going to sleep, and a foreign wake racing a
//! cancellation.

use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use crate::reactor::Driver;
use crate::shared::{Injected, Shared};
use crate::{EventLoop, create_task, yield_now};

/// The loop decides to sleep while another thread injects work: either the
/// loop sees the work and stays awake, or the injector sees the sleeping
/// loop and wakes it. Never both miss (a lost wake-up would hang the loop).
#[test]
fn injection_racing_the_loop_going_to_sleep_is_never_lost() {
    loom::model(|| {
        let (_driver, notifier) = Driver::new().unwrap();
        let shared = Arc::new(Shared::new(notifier));
        let remote = Arc::clone(&shared);
        let t = loom::thread::spawn(move || {
            assert!(remote.inject(Injected::Call(Box::new(|| {}))));
        });
        let sleeps = shared.prepare_to_sleep();
        t.join().unwrap();
        if sleeps {
            assert!(
                shared.notifier_woken(),
                "the loop went to sleep and the injector did not wake it"
            );
        }
        assert!(!shared.injector.is_empty());
    });
}

/// A waker used on another thread while the loop cancels its task: the task
/// ends cancelled, the wake is harmless, and the loop goes on.
#[test]
fn a_foreign_wake_racing_a_cancel() {
    loom::model(|| {
        let lp = EventLoop::new();
        lp.run_until_complete(async {
            let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
            let s = Arc::clone(&slot);
            let task = create_task(poll_fn(move |cx| {
                *s.lock().unwrap() = Some(cx.waker().clone());
                Poll::<()>::Pending
            }));
            yield_now().await; // the task runs once and hands out its waker
            let waker = slot.lock().unwrap().take().unwrap();
            let t = loom::thread::spawn(move || waker.wake());
            task.cancel();
            yield_now().await; // the loop drops the task's future
            t.join().unwrap();
            yield_now().await; // and takes in the foreign wake, if it came late
            assert!(task.done() && task.cancelled());
        })
        .unwrap();
        lp.close().unwrap();
    });
}
