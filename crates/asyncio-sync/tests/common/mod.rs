//! Runs one scenario on two executors: asyncio-rs's loop and `futures`'
//! `LocalPool`, to show the primitives depend on no runtime.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::future::{FutureExt, LocalBoxFuture, RemoteHandle};
use futures::task::LocalSpawnExt;

/// What a scenario may ask of its executor: spawn a task and get a handle to
/// its output.
#[derive(Clone)]
pub struct Rt {
    spawn: Rc<dyn Fn(LocalBoxFuture<'static, ()>)>,
}

impl Rt {
    /// Spawns `fut`; awaiting the handle gives its output, dropping the
    /// handle cancels it.
    pub fn spawn<T: 'static>(&self, fut: impl Future<Output = T> + 'static) -> RemoteHandle<T> {
        let (remote, handle) = fut.remote_handle();
        (self.spawn)(remote.boxed_local());
        handle
    }
}

/// Runs `scenario` as the main future of a fresh asyncio-rs loop.
pub fn on_asyncio<F, Fut>(scenario: F)
where
    F: FnOnce(Rt) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let lp = asyncio_core::EventLoop::new();
    let rt = Rt {
        spawn: Rc::new(|fut| {
            asyncio_core::create_task(fut);
        }),
    };
    lp.run_until_complete(scenario(rt))
        .expect("the scenario completes");
    lp.close().expect("the loop closes");
}

/// Runs `scenario` on `futures::executor::LocalPool`.
pub fn on_local_pool<F, Fut>(scenario: F)
where
    F: FnOnce(Rt) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let mut pool = futures::executor::LocalPool::new();
    let spawner = pool.spawner();
    let rt = Rt {
        spawn: Rc::new(move |fut| spawner.spawn_local(fut).expect("the pool is alive")),
    };
    pool.run_until(scenario(rt));
}

/// Declares `$name` as a module with one test per executor.
#[macro_export]
macro_rules! on_both {
    ($(#[$meta:meta])* $name:ident, $scenario:expr) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn on_asyncio() {
                $crate::common::on_asyncio($scenario);
            }
            #[test]
            fn on_local_pool() {
                $crate::common::on_local_pool($scenario);
            }
        }
    };
}

/// Gives other tasks one turn, on any executor (asyncio's `sleep(0)`).
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Gives other tasks `n` turns.
pub async fn settle(n: usize) {
    for _ in 0..n {
        yield_now().await;
    }
}

/// Polls `fut` once with a waker that does nothing.
pub fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// Counts the wakes of the waker [`counting_waker`] returns.
pub struct WakeCount(AtomicUsize);

impl WakeCount {
    /// How many times the waker was woken.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waker that counts its wakes, for tests that poll by hand.
pub fn counting_waker() -> (Waker, Arc<WakeCount>) {
    let count = Arc::new(WakeCount(AtomicUsize::new(0)));
    (Waker::from(count.clone()), count)
}

/// Polls `fut` once with `waker`.
pub fn poll_with<F: Future + ?Sized>(fut: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}
