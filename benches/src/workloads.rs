//! The measured workloads, one function per (scenario, runtime).

use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};

/// The `light_coro` of the tutorial series' ex_6_1 and ex_6_2: an async
/// function that does nothing.
pub async fn light_coro() {}

/// The floor: box one trivial future, poll it once, free it — `n` times.
pub fn floor_box_poll(n: usize) {
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..n {
        let mut fut: std::pin::Pin<Box<dyn Future<Output = ()>>> =
            Box::pin(black_box(light_coro()));
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(()) => {}
            Poll::Pending => unreachable!("light_coro never suspends"),
        }
        drop(black_box(fut));
    }
}

/// ex_6_2's shape on asyncio-rs: create `n` tasks lazily, then await them all.
pub fn asyncio_spawn_lazy(lp: &asyncio::EventLoop, n: usize) {
    lp.run_until_complete(async move {
        let tasks: Vec<_> = (0..n).map(|_| asyncio::create_task(light_coro())).collect();
        for t in tasks {
            t.await.expect("light_coro cannot fail");
        }
    })
    .expect("the loop runs");
}

/// ex_6_2's shape on tokio's current-thread runtime with `tokio::spawn`.
pub fn tokio_spawn_lazy(rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(async move {
        let handles: Vec<_> = (0..n).map(|_| tokio::spawn(light_coro())).collect();
        for h in handles {
            h.await.expect("light_coro cannot fail");
        }
    });
}

/// ex_6_2's shape on tokio's `LocalSet` (the closest peer: `!Send` tasks).
pub fn tokio_local_spawn_lazy(rt: &tokio::runtime::Runtime, n: usize) {
    let local = tokio::task::LocalSet::new();
    local.block_on(rt, async move {
        let handles: Vec<_> = (0..n)
            .map(|_| tokio::task::spawn_local(light_coro()))
            .collect();
        for h in handles {
            h.await.expect("light_coro cannot fail");
        }
    });
}

/// ex_6_2's shape on async-executor's `LocalExecutor`.
pub fn async_executor_spawn_lazy(ex: &async_executor::LocalExecutor<'_>, n: usize) {
    futures::executor::block_on(ex.run(async {
        let tasks: Vec<_> = (0..n).map(|_| ex.spawn(light_coro())).collect();
        for t in tasks {
            t.await;
        }
    }));
}

/// `current_task()` called `n` times inside a task.
pub fn asyncio_current_task(lp: &asyncio::EventLoop, n: usize) {
    lp.run_until_complete(async move {
        for _ in 0..n {
            black_box(asyncio::current_task());
        }
    })
    .expect("the loop runs");
}

/// ex_6_1's shape on asyncio-rs: `n` trivial children of a TaskGroup under the
/// eager task factory (the loop should already have it installed).
pub fn asyncio_taskgroup_eager(lp: &asyncio::EventLoop, n: usize) {
    lp.run_until_complete(async move {
        asyncio::task_group(|tg| async move {
            for _ in 0..n {
                drop(tg.create_task(light_coro()));
            }
            Ok::<_, asyncio::TaskError>(())
        })
        .await
        .expect("no child fails");
    })
    .expect("the loop runs");
}

/// [`asyncio_taskgroup_eager`] with `try_create_task`, the form that returns
/// the group's refusal as an error: a program that has both forms (as most
/// do) must pay the same per child as one that has only `create_task`.
pub fn asyncio_taskgroup_eager_try(lp: &asyncio::EventLoop, n: usize) {
    lp.run_until_complete(async move {
        asyncio::task_group(|tg| async move {
            for _ in 0..n {
                drop(tg.try_create_task(light_coro()).expect("the group is open"));
            }
            Ok::<_, asyncio::TaskError>(())
        })
        .await
        .expect("no child fails");
    })
    .expect("the loop runs");
}

/// An event loop with the eager task factory installed.
pub fn eager_loop() -> asyncio::EventLoop {
    let lp = asyncio::EventLoop::new();
    lp.set_task_factory(asyncio::eager_task_factory);
    lp
}

/// ex_6_2's shape through `gather`, as the tutorial series' ex_6_2 writes it.
pub fn asyncio_gather_lazy(lp: &asyncio::EventLoop, n: usize) {
    lp.run_until_complete(async move {
        let coros: Vec<_> = (0..n).map(|_| light_coro()).collect();
        asyncio::gather(coros)
            .await
            .expect("light_coro cannot fail");
    })
    .expect("the loop runs");
}

/// ex_6_2's other shape: `create_task` `n` times, then gather the tasks
/// themselves (`gather_tasks`, asyncio's `gather(*tasks)`).
pub fn asyncio_create_then_gather_tasks(lp: &asyncio::EventLoop, n: usize) {
    lp.run_until_complete(async move {
        let tasks: Vec<_> = (0..n).map(|_| asyncio::create_task(light_coro())).collect();
        asyncio::gather_tasks(tasks)
            .await
            .expect("light_coro cannot fail");
    })
    .expect("the loop runs");
}

/// ex_6_1's shape on tokio: `n` trivial tasks in a `JoinSet` on a current-thread
/// runtime, all joined.
pub fn tokio_joinset(rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(async move {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            set.spawn(light_coro());
        }
        while let Some(r) = set.join_next().await {
            r.expect("light_coro cannot fail");
        }
    });
}

/// ex_6_1's shape on async-executor's `LocalExecutor` (it has no task group:
/// spawn, keep the handles, await them all).
pub fn async_executor_group(ex: &async_executor::LocalExecutor<'_>, n: usize) {
    async_executor_spawn_lazy(ex, n);
}

/// The nearest tokio has to `current_task()`: `tokio::task::try_id()`, `n`
/// times inside a task.
pub fn tokio_current_task_id(rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(async move {
        tokio::spawn(async move {
            for _ in 0..n {
                black_box(tokio::task::try_id());
            }
        })
        .await
        .expect("the loop cannot fail");
    });
}

/// A coroutine that suspends once (as if it waited for I/O), then finishes.
pub async fn suspend_once() {
    asyncio::yield_now().await;
}

/// `n` tasks that each suspend once, in a TaskGroup, on `lp` (eager or lazy,
/// as its factory says): where the eager start cannot skip the ready queue.
pub fn asyncio_taskgroup_suspend_once(lp: &asyncio::EventLoop, n: usize) {
    lp.run_until_complete(async move {
        asyncio::task_group(|tg| async move {
            for _ in 0..n {
                drop(tg.create_task(suspend_once()));
            }
            Ok::<_, asyncio::TaskError>(())
        })
        .await
        .expect("no child fails");
    })
    .expect("the loop runs");
}

/// [`asyncio_taskgroup_suspend_once`]'s shape on tokio: `n` children in a
/// `JoinSet` that each suspend once (waking themselves, as
/// [`crate::timers::PendingOnce`] does on every runtime), all joined.
pub fn tokio_joinset_suspend_once(rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(async move {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            set.spawn(crate::timers::PendingOnce::default());
        }
        while let Some(r) = set.join_next().await {
            r.expect("PendingOnce cannot fail");
        }
    });
}

/// A multi-thread tokio runtime with one worker per core (work stealing):
/// what most tokio programs use.
pub fn tokio_rt_multi() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .build()
        .expect("a multi-thread runtime builds")
}

/// A current-thread tokio runtime.
pub fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_runs_to_completion() {
        floor_box_poll(10);
        let lp = asyncio::EventLoop::new();
        asyncio_spawn_lazy(&lp, 100);
        asyncio_current_task(&lp, 100);
        let rt = tokio_rt();
        tokio_spawn_lazy(&rt, 100);
        tokio_local_spawn_lazy(&rt, 100);
        async_executor_spawn_lazy(&async_executor::LocalExecutor::new(), 100);
        asyncio_taskgroup_eager(&eager_loop(), 100);
        asyncio_taskgroup_eager_try(&eager_loop(), 100);
        asyncio_gather_lazy(&lp, 100);
        asyncio_create_then_gather_tasks(&lp, 100);
        tokio_joinset(&rt, 100);
        tokio_current_task_id(&rt, 100);
        asyncio_taskgroup_suspend_once(&lp, 100);
        tokio_joinset_suspend_once(&rt, 100);
        tokio_spawn_lazy(&tokio_rt_multi(), 100);
    }
}
