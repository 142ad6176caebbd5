//! The instrumented factory counts how tasks started.

use asyncio_core::{EventLoop, LazyTaskFactory, create_task, yield_now};
use asyncio_factory::{InstrumentedFactory, eager_task_factory};

#[test]
fn counts_eager_finishes_and_suspensions() {
    let lp = EventLoop::new();
    let f = InstrumentedFactory::new(eager_task_factory);
    let stats = f.stats_handle();
    lp.set_task_factory(f);
    lp.run_until_complete(async {
        for _ in 0..10 {
            create_task(async {});
        }
        let waiting: Vec<_> = (0..4).map(|_| create_task(yield_now())).collect();
        for t in waiting {
            t.await.unwrap();
        }
    })
    .unwrap();
    let s = stats.get();
    assert_eq!(s.created, 15);
    assert_eq!(s.finished_eagerly, 10);
    // The main task and the four that yielded suspended.
    assert_eq!(s.suspended, 5);
    assert_eq!(s.scheduled, 0);
}

#[test]
fn counts_lazy_starts_of_a_wrapped_lazy_factory() {
    let lp = EventLoop::new();
    let f = InstrumentedFactory::new(LazyTaskFactory);
    let stats = f.stats_handle();
    lp.set_task_factory(f);
    lp.run_until_complete(async {
        create_task(async {}).await.unwrap();
    })
    .unwrap();
    let s = stats.get();
    assert_eq!((s.created, s.scheduled, s.finished_eagerly), (2, 2, 0));
}
