//! One workload under each task factory, with the instrumented factory's counts:
//! does the eager start help here?
//!
//! The workload: 200,000 tasks in a TaskGroup, of which every tenth suspends
//! once (as if it waited for I/O) and the rest finish at once.
//!
//! It prints each line twice: the program measures both factories, then both
//! again. The first pass pays for warming up (the allocator growing its heap,
//! the loop's caches filling), so compare the second pass's lines.

use std::time::Instant;

use asyncio::{EventLoop, InstrumentedFactory, LazyTaskFactory, TaskFactory, eager_task_factory};

const N: usize = 200_000;

async fn work(i: usize) {
    if i.is_multiple_of(10) {
        asyncio::yield_now().await;
    }
}

fn measure<F: TaskFactory>(label: &str, factory: F) {
    let factory = InstrumentedFactory::new(factory);
    let stats = factory.stats_handle();
    let lp = EventLoop::new();
    lp.set_task_factory(factory);
    let t = Instant::now();
    lp.run_until_complete(async {
        asyncio::task_group(|tg| async move {
            for i in 0..N {
                tg.create_task(work(i));
            }
            Ok::<_, asyncio::TaskError>(())
        })
        .await
        .expect("no child fails");
    })
    .expect("the loop runs");
    let took = t.elapsed();
    let s = stats.get();
    println!(
        "{label:>6}: {:>7.1} ns/task  created {:>7}  finished eagerly {:>7}  suspended {:>6}  scheduled {:>7}",
        took.as_nanos() as f64 / N as f64,
        s.created,
        s.finished_eagerly,
        s.suspended,
        s.scheduled
    );
}

fn main() {
    for pass in [
        "first pass (includes warm-up)",
        "second pass (compare these)",
    ] {
        println!("{pass}:");
        measure("lazy", LazyTaskFactory);
        measure("eager", eager_task_factory);
    }
}
