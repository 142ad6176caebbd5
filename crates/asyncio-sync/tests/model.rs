//! Random operation sequences against `Queue` (and `Channel`, which must
//! behave as a `Queue` when used from one thread) and `Semaphore`, checked
//! against a plain sequential model after every step: order, conservation of
//! items and permits, and no lost wake-up.

mod common;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, Waker};

use asyncio_sync::{
    Channel, GetError, PutError, Queue, QueueShutDown, Semaphore, SemaphorePermit, TaskDoneError,
};
use common::{WakeCount, counting_waker, poll_with};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A future polled by hand, with a waker that counts.
struct Pending<F: ?Sized> {
    fut: Pin<Box<F>>,
    waker: Waker,
    count: Arc<WakeCount>,
    seen: usize,
}

impl<F: Future + ?Sized> Pending<F> {
    fn new(fut: Pin<Box<F>>) -> Self {
        let (waker, count) = counting_waker();
        Pending {
            fut,
            waker,
            count,
            seen: 0,
        }
    }
    fn poll(&mut self) -> Poll<F::Output> {
        self.seen = self.count.get();
        poll_with(self.fut.as_mut(), &self.waker)
    }
    fn woken(&self) -> bool {
        self.count.get() > self.seen
    }
}

#[derive(Debug, Clone)]
enum QOp {
    PutNowait,
    GetNowait,
    StartPut,
    StartGet,
    PollPut(usize),
    PollGet(usize),
    DropPut(usize),
    DropGet(usize),
    TaskDone,
    Shutdown(bool),
}

fn qop() -> impl Strategy<Value = QOp> {
    prop_oneof![
        3 => Just(QOp::PutNowait),
        3 => Just(QOp::GetNowait),
        3 => Just(QOp::StartPut),
        3 => Just(QOp::StartGet),
        3 => (0..8usize).prop_map(QOp::PollPut),
        3 => (0..8usize).prop_map(QOp::PollGet),
        1 => (0..8usize).prop_map(QOp::DropPut),
        1 => (0..8usize).prop_map(QOp::DropGet),
        2 => Just(QOp::TaskDone),
        1 => any::<bool>().prop_map(QOp::Shutdown),
    ]
}

type PutFut<'a> = dyn Future<Output = Result<(), QueueShutDown<u32>>> + 'a;
type GetFut<'a> = dyn Future<Output = Result<u32, QueueShutDown>> + 'a;

/// What the model drives: `Queue` and `Channel` have the same methods.
trait ModelQueue {
    fn new(maxsize: usize) -> Self;
    fn put_nowait(&self, item: u32) -> Result<(), PutError<u32>>;
    fn get_nowait(&self) -> Result<u32, GetError>;
    fn put(&self, item: u32) -> Pin<Box<PutFut<'_>>>;
    fn get(&self) -> Pin<Box<GetFut<'_>>>;
    fn join(&self) -> Pin<Box<dyn Future<Output = ()> + '_>>;
    fn task_done(&self) -> Result<(), TaskDoneError>;
    fn shutdown(&self, immediate: bool);
    fn qsize(&self) -> usize;
    fn full(&self) -> bool;
}

macro_rules! model_queue {
    ($Q:ident) => {
        impl ModelQueue for $Q<u32> {
            fn new(maxsize: usize) -> Self {
                $Q::new(maxsize)
            }
            fn put_nowait(&self, item: u32) -> Result<(), PutError<u32>> {
                $Q::put_nowait(self, item)
            }
            fn get_nowait(&self) -> Result<u32, GetError> {
                $Q::get_nowait(self)
            }
            fn put(&self, item: u32) -> Pin<Box<PutFut<'_>>> {
                Box::pin($Q::put(self, item))
            }
            fn get(&self) -> Pin<Box<GetFut<'_>>> {
                Box::pin($Q::get(self))
            }
            fn join(&self) -> Pin<Box<dyn Future<Output = ()> + '_>> {
                Box::pin($Q::join(self))
            }
            fn task_done(&self) -> Result<(), TaskDoneError> {
                $Q::task_done(self)
            }
            fn shutdown(&self, immediate: bool) {
                $Q::shutdown(self, immediate)
            }
            fn qsize(&self) -> usize {
                $Q::qsize(self)
            }
            fn full(&self) -> bool {
                $Q::full(self)
            }
        }
    };
}

model_queue!(Queue);
model_queue!(Channel);

fn run_queue<Q: ModelQueue>(maxsize: usize, ops: Vec<QOp>) {
    let q = Q::new(maxsize);
    let mut model: VecDeque<u32> = VecDeque::new();
    let mut unfinished = 0usize;
    let mut shut = false;
    let mut next_id = 0u32;
    let mut putters: Vec<(u32, Pending<PutFut<'_>>)> = Vec::new();
    let mut getters: Vec<Pending<GetFut<'_>>> = Vec::new();
    let full = |len: usize| maxsize > 0 && len >= maxsize;

    for op in ops {
        match op {
            QOp::PutNowait => {
                next_id += 1;
                match q.put_nowait(next_id) {
                    Ok(()) => {
                        assert!(!shut && !full(model.len()));
                        model.push_back(next_id);
                        unfinished += 1;
                    }
                    Err(PutError::Full(_)) => assert!(!shut && full(model.len())),
                    Err(PutError::ShutDown(QueueShutDown(id))) => {
                        assert!(shut);
                        assert_eq!(id, next_id);
                    }
                }
            }
            QOp::GetNowait => match q.get_nowait() {
                Ok(id) => {
                    assert_eq!(Some(id), model.pop_front(), "FIFO");
                }
                Err(GetError::Empty(_)) => assert!(model.is_empty() && !shut),
                Err(GetError::ShutDown(_)) => assert!(model.is_empty() && shut),
            },
            QOp::StartPut => {
                next_id += 1;
                let mut p = Pending::new(q.put(next_id));
                let before = model.len();
                match p.poll() {
                    Poll::Ready(Ok(())) => {
                        model.push_back(next_id);
                        unfinished += 1;
                    }
                    Poll::Ready(Err(QueueShutDown(id))) => {
                        assert!(shut);
                        assert_eq!(id, next_id);
                    }
                    Poll::Pending => {
                        assert!(!shut && (full(before) || putters.iter().any(|_| true)));
                        putters.push((next_id, p));
                    }
                }
            }
            QOp::StartGet => {
                let mut g = Pending::new(q.get());
                match g.poll() {
                    Poll::Ready(Ok(id)) => assert_eq!(Some(id), model.pop_front()),
                    Poll::Ready(Err(_)) => assert!(shut && model.is_empty()),
                    Poll::Pending => {
                        assert!(!shut);
                        getters.push(g);
                    }
                }
            }
            QOp::PollPut(i) if !putters.is_empty() => {
                let i = i % putters.len();
                let before = model.len();
                match putters[i].1.poll() {
                    Poll::Ready(Ok(())) => {
                        let (id, _) = putters.remove(i);
                        assert!(!full(before));
                        model.push_back(id);
                        unfinished += 1;
                    }
                    Poll::Ready(Err(QueueShutDown(got))) => {
                        let (id, _) = putters.remove(i);
                        assert!(shut);
                        assert_eq!(got, id, "a refused put hands its item back");
                    }
                    Poll::Pending => assert!(!shut),
                }
            }
            QOp::PollGet(i) if !getters.is_empty() => {
                let i = i % getters.len();
                match getters[i].poll() {
                    Poll::Ready(Ok(id)) => {
                        getters.remove(i);
                        assert_eq!(Some(id), model.pop_front(), "FIFO");
                    }
                    Poll::Ready(Err(_)) => {
                        getters.remove(i);
                        assert!(shut && model.is_empty());
                    }
                    Poll::Pending => assert!(!shut),
                }
            }
            QOp::DropPut(i) if !putters.is_empty() => {
                putters.remove(i % putters.len());
            }
            QOp::DropGet(i) if !getters.is_empty() => {
                getters.remove(i % getters.len());
            }
            QOp::TaskDone => {
                let r = q.task_done();
                assert_eq!(r.is_ok(), unfinished > 0);
                unfinished = unfinished.saturating_sub(1);
            }
            QOp::Shutdown(immediate) => {
                q.shutdown(immediate);
                shut = true;
                if immediate {
                    unfinished = unfinished.saturating_sub(model.len());
                    model.clear();
                }
            }
            _ => {}
        }
        // The queue agrees with the model.
        assert_eq!(q.qsize(), model.len());
        assert_eq!(q.full(), full(model.len()));
        if maxsize > 0 {
            assert!(model.len() <= maxsize);
        }
        let join_ready = common::poll_once(q.join().as_mut()).is_ready();
        assert_eq!(join_ready, unfinished == 0);
        // No lost wake-up: enough waiters are woken for what is available.
        let woken_getters = getters.iter().filter(|g| g.woken()).count();
        let woken_putters = putters.iter().filter(|(_, p)| p.woken()).count();
        if shut {
            assert_eq!(woken_getters, getters.len(), "shutdown wakes every getter");
            assert_eq!(woken_putters, putters.len(), "shutdown wakes every putter");
        } else {
            assert!(
                woken_getters >= model.len().min(getters.len()),
                "an item waits while a getter sleeps"
            );
            let free = if maxsize == 0 {
                usize::MAX
            } else {
                maxsize - model.len()
            };
            assert!(
                woken_putters >= free.min(putters.len()),
                "a slot is free while a putter sleeps"
            );
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn queue_matches_its_model(maxsize in 0..4usize, ops in proptest::collection::vec(qop(), 0..60)) {
        run_queue::<Queue<u32>>(maxsize, ops);
    }

    #[test]
    fn channel_on_one_thread_matches_the_queue_model(maxsize in 0..4usize, ops in proptest::collection::vec(qop(), 0..60)) {
        run_queue::<Channel<u32>>(maxsize, ops);
    }
}

#[derive(Debug, Clone)]
enum SOp {
    TryAcquire(usize),
    StartAcquire(usize),
    Poll(usize),
    DropWaiter(usize),
    DropPermit(usize),
    Release,
}

fn sop() -> impl Strategy<Value = SOp> {
    prop_oneof![
        2 => (1..4usize).prop_map(SOp::TryAcquire),
        3 => (1..4usize).prop_map(SOp::StartAcquire),
        3 => (0..8usize).prop_map(SOp::Poll),
        1 => (0..8usize).prop_map(SOp::DropWaiter),
        2 => (0..8usize).prop_map(SOp::DropPermit),
        1 => Just(SOp::Release),
    ]
}

type AcqFut<'a> = dyn Future<Output = SemaphorePermit<'a>> + 'a;

fn run_semaphore(initial: usize, ops: Vec<SOp>) {
    let sem = Semaphore::new(initial);
    let mut total = initial; // permits that exist: initial plus releases
    let mut held: Vec<SemaphorePermit<'_>> = Vec::new();
    // Waiters in arrival order, with the permits each asks for.
    let mut waiters: Vec<(usize, Pending<AcqFut<'_>>)> = Vec::new();
    for op in ops {
        match op {
            SOp::TryAcquire(n) => {
                let free = sem.available_permits();
                // Waiters granted their permits still count until they run
                // (asyncio's woken waiters stay in `_waiters`).
                let nobody_waits = waiters.is_empty();
                match sem.try_acquire_many(n) {
                    Some(p) => {
                        assert!(nobody_waits && free >= n);
                        held.push(p);
                    }
                    None => assert!(!nobody_waits || free < n),
                }
            }
            SOp::StartAcquire(n) => {
                let mut w = Pending::new(Box::pin(sem.acquire_many(n)) as Pin<Box<AcqFut<'_>>>);
                match w.poll() {
                    Poll::Ready(p) => {
                        assert!(
                            waiters.is_empty(),
                            "no overtaking, not even a granted waiter"
                        );
                        held.push(p);
                    }
                    Poll::Pending => waiters.push((n, w)),
                }
            }
            SOp::Poll(i) if !waiters.is_empty() => {
                let i = i % waiters.len();
                if let Poll::Ready(p) = waiters[i].1.poll() {
                    let (n, _) = waiters.remove(i);
                    assert_eq!(p.permits(), n);
                    held.push(p);
                }
            }
            SOp::DropWaiter(i) if !waiters.is_empty() => {
                waiters.remove(i % waiters.len());
            }
            SOp::DropPermit(i) if !held.is_empty() => {
                held.remove(i % held.len());
            }
            SOp::Release => {
                sem.release();
                total += 1;
            }
            _ => {}
        }
        let held_n: usize = held.iter().map(SemaphorePermit::permits).sum();
        let granted: usize = waiters
            .iter()
            .filter(|(_, w)| w.woken())
            .map(|(n, _)| n)
            .sum();
        assert_eq!(
            sem.available_permits() + held_n + granted,
            total,
            "permits are conserved"
        );
        // Grants go in arrival order, and none is missed: a waiter that could
        // be granted sleeps only behind a granted one that has not run (which
        // lets it through when it runs or is dropped).
        if let Some(first_waiting) = waiters.iter().position(|(_, w)| !w.woken()) {
            assert!(
                waiters[first_waiting..].iter().all(|(_, w)| !w.woken()),
                "FIFO grants"
            );
            let granted_in_flight = waiters.iter().any(|(_, w)| w.woken());
            assert!(
                granted_in_flight || waiters[first_waiting].0 > sem.available_permits(),
                "a grantable waiter sleeps"
            );
        }
        assert_eq!(
            sem.locked(),
            sem.available_permits() == 0 || !waiters.is_empty(),
            "locked() is asyncio's: no free permit, or someone waits (granted or not)"
        );
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn semaphore_matches_its_model(initial in 0..4usize, ops in proptest::collection::vec(sop(), 0..60)) {
        run_semaphore(initial, ops);
    }
}

#[derive(Debug, Clone)]
enum BOp {
    Arrive,
    Poll(usize),
    Drop(usize),
    Reset,
    Abort,
}

fn bop() -> impl Strategy<Value = BOp> {
    prop_oneof![
        6 => Just(BOp::Arrive),
        4 => (0..16usize).prop_map(BOp::Poll),
        1 => (0..16usize).prop_map(BOp::Drop),
        1 => Just(BOp::Reset),
        1 => Just(BOp::Abort),
    ]
}

type WaitFut<'a> = dyn Future<Output = Result<usize, asyncio_sync::BrokenBarrierError>> + 'a;

struct Waiter<'a> {
    pending: Pending<WaitFut<'a>>,
    /// The step in which it was released or broken (its trip), once woken.
    trip: Option<usize>,
}

fn run_barrier(parties: usize, ops: Vec<BOp>) {
    let barrier = asyncio_sync::Barrier::new(parties).unwrap();
    let mut waiters: Vec<Waiter<'_>> = Vec::new();
    // Indices returned, per trip (the step that released them).
    let mut trips: std::collections::HashMap<usize, Vec<usize>> = Default::default();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            BOp::Arrive => {
                let mut w = Waiter {
                    pending: Pending::new(Box::pin(barrier.wait()) as Pin<Box<WaitFut<'_>>>),
                    trip: None,
                };
                match w.pending.poll() {
                    Poll::Ready(Ok(index)) => {
                        assert_eq!(index, parties - 1, "the last to arrive trips the barrier");
                        trips.entry(step).or_default().push(index);
                    }
                    Poll::Ready(Err(_)) => assert!(barrier.broken()),
                    Poll::Pending => waiters.push(w),
                }
            }
            BOp::Poll(i) if !waiters.is_empty() => {
                let i = i % waiters.len();
                let was_woken = waiters[i].pending.woken();
                match waiters[i].pending.poll() {
                    Poll::Ready(result) => {
                        assert!(was_woken, "ready only after a wake-up");
                        let w = waiters.remove(i);
                        if let Ok(index) = result {
                            assert!(index < parties);
                            // parties - 1 goes only to the arrival that trips
                            // (here one admitted after a drain): this step.
                            let trip = if index == parties - 1 {
                                step
                            } else {
                                w.trip.expect("woken")
                            };
                            trips.entry(trip).or_default().push(index);
                        }
                    }
                    Poll::Pending => {
                        // Only a task admitted after a drain waits again: it
                        // joins the cycle now.
                        assert!(!barrier.broken(), "a broken barrier fails at once");
                        waiters[i].trip = None;
                    }
                }
            }
            BOp::Drop(i) if !waiters.is_empty() => {
                waiters.remove(i % waiters.len());
            }
            BOp::Reset => barrier.reset(),
            BOp::Abort => barrier.abort(),
            _ => {}
        }
        for w in &mut waiters {
            if w.trip.is_none() && w.pending.woken() {
                w.trip = Some(step);
            }
        }
        assert!(
            barrier.n_waiting() < parties,
            "a full barrier trips at once"
        );
        if barrier.broken() {
            assert_eq!(barrier.n_waiting(), 0);
        }
    }
    for (step, mut indices) in trips {
        let n = indices.len();
        indices.sort_unstable();
        indices.dedup();
        assert_eq!(
            indices.len(),
            n,
            "indices of the trip at step {step} are distinct"
        );
    }
    // Nobody is stranded: aborting wakes every waiter, and each then returns.
    barrier.abort();
    for w in &mut waiters {
        assert!(
            w.pending.woken() || w.trip.is_some(),
            "abort wakes every waiter"
        );
    }
    for mut w in waiters {
        // Woken waiters of a trip return their index; the rest return the error.
        assert!(w.pending.poll().is_ready());
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn barrier_keeps_its_invariants(parties in 1..5usize, ops in proptest::collection::vec(bop(), 0..80)) {
        run_barrier(parties, ops);
    }
}
