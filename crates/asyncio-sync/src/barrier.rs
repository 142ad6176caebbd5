//! `Barrier`: asyncio's barrier, with draining, `reset` and `abort`.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::{BrokenBarrierError, ZeroPartiesError};
use crate::waiters::{WaitList, WakeBatch};

/// asyncio's `Barrier`: tasks wait until `parties` of them have arrived, then
/// all go on together.
///
/// Each `wait()` of a cycle returns a distinct index in `0..parties`, in order
/// of arrival (the last to arrive gets `parties - 1`). After the barrier trips
/// it *drains*: tasks that arrive before every released task has returned
/// wait for the next cycle, and join it when they run after the last one has
/// left (so a `reset()` by that last one does not break them). [`reset`](Barrier::reset) breaks the tasks waiting
/// in the current cycle with [`BrokenBarrierError`] and then starts over;
/// [`abort`](Barrier::abort) breaks them and every later `wait()` until the
/// next `reset`.
///
/// A `wait()` future dropped before the barrier trips leaves the cycle, so the
/// barrier needs one more arrival (asyncio's cancelled waiter does the same).
/// Indices are handed out when the barrier trips, so they stay distinct even
/// when a waiter leaves.
///
/// ```
/// use std::rc::Rc;
///
/// let indices = asyncio::run(async {
///     let barrier = Rc::new(asyncio::Barrier::new(3).unwrap());
///     let tasks: Vec<_> = (0..3)
///         .map(|_| {
///             let b = barrier.clone();
///             asyncio::create_task(async move { b.wait().await.unwrap() })
///         })
///         .collect();
///     let mut got = Vec::new();
///     for t in tasks {
///         got.push(t.await.unwrap());
///     }
///     got.sort();
///     got
/// })
/// .unwrap();
/// assert_eq!(indices, [0, 1, 2], "each party gets a distinct index");
/// ```
pub struct Barrier {
    parties: usize,
    state: RefCell<State>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Collecting arrivals for the next trip.
    Filling,
    /// Tripped; released tasks have not all returned yet.
    Draining,
    /// Reset while tasks were still inside; they leave broken.
    Resetting,
    /// Aborted: every wait fails until `reset`.
    Broken,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// asyncio's `_count`: tasks of the current cycle that have not returned.
    count: usize,
    /// In `Filling`, the tasks of the cycle; otherwise tasks that arrived
    /// during draining or resetting and wait for the next cycle.
    waiters: WaitList<Slot>,
    /// Tasks admitted when the last party of a cycle left, that have not run
    /// yet: the whole line, still linked, marked `Admitted`. Only the first
    /// was woken; when it runs, they all arrive, in order (see
    /// [`Barrier::admit_batch`]). Anything else that touches the barrier
    /// first wakes the rest ([`flush_admitted`]).
    admitted: usize,
    /// The node of the batch's first task (the one woken), while `admitted`.
    batch_head: usize,
}

#[derive(Debug)]
struct Slot {
    /// Filled in when the waiter is released (its index) or broken.
    outcome: Outcome,
    /// Whether this waiter is part of `count`.
    counted: bool,
}

/// A waiter's result, kept small so the line's nodes stay compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Waiting,
    Released(u32),
    Broken,
    /// Queued while the barrier drained or reset, and woken when the last
    /// party left: it joins the next cycle when it runs (asyncio's `_block`
    /// returns and the task enters only then), so a `reset()` before that
    /// does not break it.
    Admitted,
}

impl Outcome {
    fn released(index: usize) -> Outcome {
        // Indices are below `parties`, and a cycle of 4 billion tasks cannot
        // be gathered; saturate rather than wrap if it ever were.
        Outcome::Released(u32::try_from(index).unwrap_or(u32::MAX))
    }

    fn result(self) -> Result<usize, BrokenBarrierError> {
        match self {
            Outcome::Released(i) => Ok(i as usize),
            Outcome::Broken => Err(BrokenBarrierError),
            Outcome::Waiting | Outcome::Admitted => {
                unreachable!("a woken barrier waiter has an outcome")
            }
        }
    }
}

impl Barrier {
    /// Creates a barrier for `parties` tasks (asyncio's `Barrier(parties)`).
    ///
    /// # Errors
    ///
    /// [`ZeroPartiesError`] if `parties` is 0 (asyncio raises `ValueError`).
    ///
    /// ```
    /// let barrier = asyncio::Barrier::new(4).unwrap();
    /// assert_eq!(barrier.parties(), 4);
    /// assert!(asyncio::Barrier::new(0).is_err());
    /// ```
    pub fn new(parties: usize) -> Result<Self, ZeroPartiesError> {
        if parties == 0 {
            return Err(ZeroPartiesError);
        }
        Ok(Self {
            parties,
            state: RefCell::new(State {
                phase: Phase::Filling,
                count: 0,
                waiters: WaitList::new(),
                admitted: 0,
                batch_head: 0,
            }),
        })
    }

    /// Waits until `parties` tasks wait, then returns this task's index in
    /// `0..parties` (distinct within a cycle).
    ///
    /// # Errors
    ///
    /// [`BrokenBarrierError`] if the barrier is broken when called, or is
    /// reset or aborted before this task returns.
    ///
    /// ```
    /// let barrier = asyncio::Barrier::new(1).unwrap();
    /// assert_eq!(asyncio::run(barrier.wait()).unwrap(), Ok(0));
    /// ```
    pub fn wait(&self) -> impl Future<Output = Result<usize, BrokenBarrierError>> + '_ {
        BarrierWait {
            barrier: self,
            key: None,
        }
    }

    /// Breaks the tasks waiting in the current cycle (and those released but
    /// not yet returned) with [`BrokenBarrierError`], and returns the barrier
    /// to the empty state once they have left (asyncio's `reset()`). Also
    /// mends an aborted barrier.
    ///
    /// ```
    /// let barrier = asyncio::Barrier::new(2).unwrap();
    /// barrier.abort();
    /// barrier.reset();
    /// assert!(!barrier.broken());
    /// ```
    pub fn reset(&self) {
        let mut st = self.state.borrow_mut();
        let mut batch = WakeBatch::default();
        flush_admitted(&mut st, &mut batch);
        if st.count > 0 {
            match st.phase {
                Phase::Filling => break_in_line(&mut st, &mut batch),
                Phase::Draining => break_released(&mut st),
                Phase::Resetting | Phase::Broken => {}
            }
            st.phase = Phase::Resetting;
        } else {
            st.phase = Phase::Filling;
        }
        drop(st);
        batch.wake();
    }

    /// Puts the barrier in the broken state: current waiters and every later
    /// `wait()` fail with [`BrokenBarrierError`] until [`reset`](Barrier::reset)
    /// (asyncio's `abort()`).
    ///
    /// ```
    /// let barrier = asyncio::Barrier::new(2).unwrap();
    /// barrier.abort();
    /// assert!(barrier.broken());
    /// ```
    pub fn abort(&self) {
        let mut st = self.state.borrow_mut();
        let mut batch = WakeBatch::default();
        flush_admitted(&mut st, &mut batch);
        st.phase = Phase::Broken;
        break_in_line(&mut st, &mut batch);
        break_released(&mut st);
        drop(st);
        batch.wake();
    }

    /// How many tasks the barrier waits for.
    ///
    /// ```
    /// assert_eq!(asyncio::Barrier::new(3).unwrap().parties(), 3);
    /// ```
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// How many tasks wait in the filling cycle (0 while draining, resetting
    /// or broken).
    ///
    /// ```
    /// use futures::FutureExt;
    ///
    /// let barrier = asyncio::Barrier::new(2).unwrap();
    /// let mut first = Box::pin(barrier.wait());
    /// assert!((&mut first).now_or_never().is_none());
    /// assert_eq!(barrier.n_waiting(), 1);
    /// ```
    pub fn n_waiting(&self) -> usize {
        let st = self.state.borrow();
        if st.phase == Phase::Filling {
            st.count
        } else {
            0
        }
    }

    /// Whether the barrier is broken (aborted and not reset).
    ///
    /// ```
    /// assert!(!asyncio::Barrier::new(1).unwrap().broken());
    /// ```
    pub fn broken(&self) -> bool {
        self.state.borrow().phase == Phase::Broken
    }

    /// A counted task leaves (returned or dropped): once the last one has
    /// left a draining or reset cycle, the barrier fills again, starting with
    /// the tasks that queued meanwhile.
    fn exit(&self, st: &mut State, batch: &mut WakeBatch) {
        if leave(st) {
            self.refill(st, batch);
        }
    }

    /// The last task of a draining or reset cycle has left: the barrier
    /// fills again, and the tasks that queued meanwhile are woken to join it.
    /// They count only once they run, as in asyncio, where they pass `_block`
    /// only when they next run: until then `n_waiting()` does not show them
    /// and a `reset()` (by the task that just left, say) does not break them
    /// (test_locks `test_reset_barrier_while_tasks_draining`).
    ///
    /// Woken together, they would run one after the other, each arriving in
    /// turn: so only the first is woken, and when it runs it makes them all
    /// arrive ([`admit_batch`](Self::admit_batch)), which saves every other
    /// one a wake-up and a poll per cycle. Until then they stay in line,
    /// marked `Admitted` and not counted; whatever else touches the barrier
    /// before that (a `reset()`, an `abort()`, a new arrival, a dropped
    /// waiter) first wakes the rest ([`flush_admitted`]), so that it sees
    /// what it would if each had been woken.
    fn refill(&self, st: &mut State, batch: &mut WakeBatch) {
        st.phase = Phase::Filling;
        flush_admitted(st, batch);
        let Some(first) = st.waiters.front_key() else {
            return;
        };
        let mut key = Some(first);
        while let Some(k) = key {
            st.waiters.data_mut(k).outcome = Outcome::Admitted;
            key = st.waiters.key_after(k);
        }
        st.admitted = st.waiters.len();
        st.batch_head = first;
        batch.push(st.waiters.take_waker(first));
    }

    /// The first task of an admitted batch runs: the batch arrives, in the order of the line, as its tasks
    /// would one by one. If the cycle fills, the last of them to arrive trips
    /// the barrier: it is woken first (in asyncio it goes on at once), then
    /// the batch's tasks beyond the cycle (they find it draining), then the
    /// released ones by index, as asyncio's run order would be. `key` is the
    /// polling task's node.
    fn admit_batch(
        &self,
        st: &mut State,
        key: &mut Option<usize>,
        cx: &Context<'_>,
        batch: &mut WakeBatch,
    ) -> Poll<Result<usize, BrokenBarrierError>> {
        let me = key.expect("an admitted waiter has its node");
        st.waiters.set_waker(me, cx.waker());
        let n = std::mem::take(&mut st.admitted);
        debug_assert!(st.phase == Phase::Filling && st.count + n <= st.waiters.len());
        if st.count + n < self.parties {
            let mut next = Some(st.batch_head);
            while let Some(k) = next {
                *st.waiters.data_mut(k) = Slot {
                    outcome: Outcome::Waiting,
                    counted: true,
                };
                next = st.waiters.key_after(k);
            }
            st.count += n;
            return Poll::Pending;
        }
        // The `parties`-th in line trips (those who arrived since the batch
        // was admitted are ahead of it, counted).
        let mut tripper = st.waiters.front_key().expect("the batch is in line");
        for _ in 1..self.parties {
            tripper = st.waiters.key_after(tripper).expect("the batch is in line");
        }
        let beyond = st.waiters.key_after(tripper);
        *st.waiters.data_mut(tripper) = Slot {
            outcome: Outcome::released(self.parties - 1),
            counted: true,
        };
        let tripper_waker = st.waiters.wake(tripper);
        batch.reserve(n);
        if tripper != me {
            batch.push(tripper_waker);
        }
        let mut next = beyond;
        while let Some(k) = next {
            next = st.waiters.key_after(k);
            // `outcome` stays `Admitted`, `counted` false: it arrives when it
            // runs, finding the barrier draining.
            batch.push(st.waiters.wake(k));
        }
        for index in 0..self.parties - 1 {
            let slot = st.waiters.front_mut().expect("the cycle is in line");
            *slot = Slot {
                outcome: Outcome::released(index),
                counted: true,
            };
            batch.push(st.waiters.wake_front());
        }
        st.phase = Phase::Draining;
        st.count = self.parties;
        if tripper == me {
            // It returns now, as the last to arrive does.
            st.waiters.remove(me);
            *key = None;
            self.exit(st, batch);
            return Poll::Ready(Ok(self.parties - 1));
        }
        // Released too: it returns at its turn, after the one that tripped.
        Poll::Pending
    }

    /// A task arrives (a new `wait()`, or one admitted after draining); a
    /// trip's wake-ups go into `batch`, for the caller to wake once its borrow
    /// is released.
    fn arrive(
        &self,
        st: &mut State,
        key: &mut Option<usize>,
        cx: &Context<'_>,
        batch: &mut WakeBatch,
    ) -> Poll<Result<usize, BrokenBarrierError>> {
        match st.phase {
            Phase::Broken => {
                unpark(st, key);
                Poll::Ready(Err(BrokenBarrierError))
            }
            Phase::Filling => {
                st.count += 1;
                if st.count < self.parties {
                    let slot = Slot {
                        outcome: Outcome::Waiting,
                        counted: true,
                    };
                    if st.admitted > 0 && key.is_none() {
                        // It arrives before the admitted batch has run, so
                        // ahead of it in line.
                        let head = st.batch_head;
                        *key = Some(st.waiters.push_before(head, cx.waker(), slot));
                    } else {
                        flush_admitted(st, batch);
                        park(st, key, cx, slot);
                    }
                    return Poll::Pending;
                }
                unpark(st, key);
                // The batch has not run: it will find the barrier draining
                // (woken before the released tasks, as it was before them).
                flush_admitted(st, batch);
                trip(st, batch);
                self.exit(st, batch);
                Poll::Ready(Ok(self.parties - 1))
            }
            Phase::Draining | Phase::Resetting => {
                flush_admitted(st, batch);
                let slot = Slot {
                    outcome: Outcome::Waiting,
                    counted: false,
                };
                park(st, key, cx, slot);
                Poll::Pending
            }
        }
    }
}

/// Wakes the tasks of an admitted batch that have not run yet (see
/// [`Barrier::refill`]): each arrives when it runs, as in asyncio. The first
/// was woken already.
fn flush_admitted(st: &mut State, batch: &mut WakeBatch) {
    if st.admitted == 0 {
        return;
    }
    batch.reserve(std::mem::take(&mut st.admitted));
    // The batch is the back of the line: those who arrived since are ahead.
    let mut next = Some(st.batch_head);
    while let Some(k) = next {
        next = st.waiters.key_after(k);
        batch.push(st.waiters.wake(k));
    }
}

/// Puts an arriving waiter in line: an admitted one (it has a key) in its
/// own node again, a new one in a new node.
fn park(st: &mut State, key: &mut Option<usize>, cx: &Context<'_>, slot: Slot) {
    match *key {
        Some(k) => st.waiters.requeue_back(k, cx.waker(), slot),
        None => *key = Some(st.waiters.push_back(cx.waker(), slot)),
    }
}

/// An arriving waiter that returns at once gives its node back, if it had
/// one (it was admitted).
fn unpark(st: &mut State, key: &mut Option<usize>) {
    if let Some(k) = key.take() {
        st.waiters.remove(k);
    }
}

/// A counted task leaves (returned or dropped); true if it was the last of a
/// draining or reset cycle, so the next cycle must be filled.
#[inline]
fn leave(st: &mut State) -> bool {
    st.count -= 1;
    st.count == 0 && matches!(st.phase, Phase::Draining | Phase::Resetting)
}

/// Releases the counted waiters at the front of the line, indices in order.
fn trip(st: &mut State, batch: &mut WakeBatch) {
    batch.reserve(st.waiters.len());
    let mut index = 0;
    while let Some(slot) = st.waiters.front_mut() {
        if !slot.counted {
            break;
        }
        slot.outcome = Outcome::released(index);
        index += 1;
        batch.push(st.waiters.wake_front());
    }
    st.phase = Phase::Draining;
}

fn break_in_line(st: &mut State, batch: &mut WakeBatch) {
    while let Some(slot) = st.waiters.front_mut() {
        slot.outcome = Outcome::Broken;
        batch.push(st.waiters.wake_front());
    }
}

/// Released tasks that have not returned yet see the reset or abort, as the
/// ones in asyncio that have not re-checked the state yet.
fn break_released(st: &mut State) {
    for slot in st.waiters.woken_data_mut() {
        // An admitted waiter has not joined any cycle: it checks the
        // barrier's state when it runs, as a new arrival.
        if matches!(slot.outcome, Outcome::Released(_)) {
            slot.outcome = Outcome::Broken;
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("phase", &st.phase)
            .field("count", &st.count)
            .finish()
    }
}

struct BarrierWait<'a> {
    barrier: &'a Barrier,
    key: Option<usize>,
}

impl Future for BarrierWait<'_> {
    type Output = Result<usize, BrokenBarrierError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let barrier = self.barrier;
        let mut st = barrier.state.borrow_mut();
        if let Some(key) = self.key {
            if st.waiters.is_linked(key) {
                if st.admitted > 0 && st.batch_head == key {
                    // The first of the admitted batch, the one that was
                    // woken, runs: the batch arrives. (The others wait for
                    // that, also when polled before it.)
                    let mut batch = WakeBatch::default();
                    let out = barrier.admit_batch(&mut st, &mut self.key, cx, &mut batch);
                    drop(st);
                    batch.wake();
                    return out;
                }
                st.waiters.set_waker(key, cx.waker());
                return Poll::Pending;
            }
            if st.waiters.data(key).outcome != Outcome::Admitted {
                let slot = st.waiters.remove(key);
                self.key = None;
                // The common case wakes nobody: no batch to build or to wake.
                if slot.counted && leave(&mut st) {
                    let mut batch = WakeBatch::default();
                    barrier.refill(&mut st, &mut batch);
                    drop(st);
                    batch.wake();
                }
                return Poll::Ready(slot.outcome.result());
            }
            // Admitted after the last draining party left: arrive now, in
            // the node it has (`arrive` parks it there again or removes it).
        }
        let mut batch = WakeBatch::default();
        let out = barrier.arrive(&mut st, &mut self.key, cx, &mut batch);
        drop(st);
        batch.wake();
        out
    }
}

impl Drop for BarrierWait<'_> {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut st = self.barrier.state.borrow_mut();
        let mut batch = WakeBatch::default();
        // A task of the admitted batch leaves before it ran: the others
        // arrive as they would have, each when it runs.
        flush_admitted(&mut st, &mut batch);
        let slot = st.waiters.remove(key);
        if slot.counted && leave(&mut st) {
            self.barrier.refill(&mut st, &mut batch);
        }
        drop(st);
        batch.wake();
    }
}
