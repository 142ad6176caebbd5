//! A hierarchical timing wheel: insert, cancel and expiry in O(1) amortised.
//!
//! Time is counted in ticks of one millisecond since the wheel's origin. A
//! deadline is rounded *up* to its tick, so nothing fires before its deadline
//! and anything fires at most about a tick late. The wheel has [`LEVELS`]
//! levels of 64 slots; a slot of level `l` spans `64^l` ticks, so level 0
//! holds the next 64 ms tick by tick and level 6 reaches 139 years ahead.
//! Which level a timer goes to is the highest 6-bit digit in which its tick
//! differs from `elapsed` (the last tick processed), the scheme tokio and
//! Linux use: a timer's slot never wraps around its level, and when time
//! reaches a slot of a higher level its timers move down (cascade) to finer
//! levels, each at most once per level. Deadlines past the top level wait in
//! an overflow list that is sorted back in when time reaches their range.
//!
//! Each level keeps a bitmap of its occupied slots, so the next expiry is a
//! `trailing_zeros` per level. Timers live in one slab; each slot is a
//! doubly linked list threaded through slab keys (no pointers, no unsafe), so
//! cancelling unlinks in O(1) and frees the slab slot at once.
//!
//! Order: timers fire by (deadline, insertion). Slots are processed in tick
//! order, and the timers of one level-0 slot (one tick) are sorted by
//! (deadline, sequence number) before they are handed out.

use std::time::{Duration, Instant};

use slab::Slab;

/// Bits of a tick per level: 64 slots.
const BITS: u32 = 6;
const SLOTS: usize = 1 << BITS;
/// Levels: 7 × 6 = 42 bits of milliseconds, about 139 years.
const LEVELS: usize = 7;
const WHEEL_BITS: u32 = BITS * LEVELS as u32;
/// The list of timers already due (tick at or before `elapsed`).
const DUE: u16 = (LEVELS * SLOTS) as u16;
/// The list of timers past the top level.
const OVERFLOW: u16 = DUE + 1;
const LISTS: usize = LEVELS * SLOTS + 2;
const NIL: u32 = u32::MAX;
/// Ticks are clamped here, far beyond any `Instant` a program can reach.
const MAX_TICK: u64 = u64::MAX >> 2;

/// Names one timer: its slab key, and a sequence number that tells it from a
/// later timer reusing the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey {
    pub(crate) key: u32,
    pub(crate) seq: u64,
}

struct Node<T> {
    deadline: Instant,
    seq: u64,
    tick: u64,
    prev: u32,
    next: u32,
    list: u16,
    value: T,
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
};

/// The wheel, holding a `T` per timer (the loop's: a waker or a callback).
pub(crate) struct Wheel<T> {
    origin: Instant,
    /// Every tick up to and including this one has been processed.
    elapsed: u64,
    nodes: Slab<Node<T>>,
    lists: Box<[List; LISTS]>,
    occupied: [u64; LEVELS],
    next_seq: u64,
    /// A lower bound of the next tick at which something is due; lets
    /// [`poll`](Self::poll) return at once between expiries.
    next_tick: u64,
    /// Scratch space to sort one slot's timers.
    batch: Vec<(Instant, u64, u32)>,
}

impl<T> Wheel<T> {
    pub(crate) fn new(origin: Instant) -> Self {
        Wheel {
            origin,
            elapsed: 0,
            nodes: Slab::new(),
            lists: Box::new([EMPTY; LISTS]),
            occupied: [0; LEVELS],
            next_seq: 0,
            next_tick: MAX_TICK,
            batch: Vec::new(),
        }
    }

    /// How many timers are pending.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The first tick at or after `deadline` (rounded up: never early).
    fn tick_ceil(&self, deadline: Instant) -> u64 {
        let d = deadline.saturating_duration_since(self.origin);
        let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
        u64::try_from(ms).unwrap_or(MAX_TICK).min(MAX_TICK)
    }

    /// The last tick reached at `now` (rounded down).
    fn tick_floor(&self, now: Instant) -> u64 {
        let ms = now.saturating_duration_since(self.origin).as_millis();
        u64::try_from(ms).unwrap_or(MAX_TICK).min(MAX_TICK)
    }

    /// The instant a tick begins; `None` past what `Instant` can hold.
    fn instant_of(&self, tick: u64) -> Option<Instant> {
        self.origin.checked_add(Duration::from_millis(tick))
    }

    /// The list a timer due at `tick` belongs to, seen from `elapsed`.
    fn list_for(&self, tick: u64) -> u16 {
        if tick <= self.elapsed {
            return DUE;
        }
        let differ = (self.elapsed ^ tick) | (SLOTS as u64 - 1);
        let level = (63 - differ.leading_zeros()) / BITS;
        if level as usize >= LEVELS {
            return OVERFLOW;
        }
        let slot = (tick >> (level * BITS)) as usize & (SLOTS - 1);
        (level as usize * SLOTS + slot) as u16
    }

    /// The first tick of the slot `list`, or of the next overflow range, or
    /// `elapsed` for the due list: when that list must be looked at.
    fn list_start(&self, list: u16) -> u64 {
        match list {
            DUE => self.elapsed,
            OVERFLOW => self.overflow_start(),
            _ => {
                let level = u32::from(list) / SLOTS as u32;
                let slot = u64::from(list) % SLOTS as u64;
                let shift = level * BITS;
                let level_base = self.elapsed & !((1u64 << (shift + BITS)) - 1);
                level_base + (slot << shift)
            }
        }
    }

    /// Where the next range of the overflow list begins.
    fn overflow_start(&self) -> u64 {
        ((self.elapsed >> WHEEL_BITS) + 1)
            .checked_shl(WHEEL_BITS)
            .unwrap_or(MAX_TICK)
            .min(MAX_TICK)
    }

    fn push_back(&mut self, list: u16, key: u32) {
        let l = &mut self.lists[usize::from(list)];
        let tail = l.tail;
        if tail == NIL {
            l.head = key;
        }
        l.tail = key;
        if tail != NIL {
            self.nodes[tail as usize].next = key;
        }
        let node = &mut self.nodes[key as usize];
        node.prev = tail;
        node.next = NIL;
        node.list = list;
        if list < DUE {
            self.occupied[usize::from(list) / SLOTS] |= 1 << (usize::from(list) % SLOTS);
        }
        let start = self.list_start(list);
        self.next_tick = self.next_tick.min(start);
    }

    fn unlink(&mut self, key: u32) {
        let node = &self.nodes[key as usize];
        let (prev, next, list) = (node.prev, node.next, node.list);
        if prev == NIL {
            self.lists[usize::from(list)].head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[usize::from(list)].tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        if list < DUE && self.lists[usize::from(list)].head == NIL {
            self.occupied[usize::from(list) / SLOTS] &= !(1 << (usize::from(list) % SLOTS));
        }
    }

    /// Detaches a whole list; returns its first key (the rest follow `next`).
    fn take_list(&mut self, list: u16) -> u32 {
        let head = std::mem::replace(&mut self.lists[usize::from(list)], EMPTY).head;
        if list < DUE {
            self.occupied[usize::from(list) / SLOTS] &= !(1 << (usize::from(list) % SLOTS));
        }
        head
    }

    /// Adds a timer due at `deadline`. One already due fires at the next
    /// [`poll`](Self::poll) whose `now` has reached its tick.
    pub(crate) fn insert(&mut self, deadline: Instant, value: T) -> TimerKey {
        let seq = self.next_seq;
        self.next_seq += 1;
        let tick = self.tick_ceil(deadline);
        let key = self.nodes.insert(Node {
            deadline,
            seq,
            tick,
            prev: NIL,
            next: NIL,
            list: DUE,
            value,
        });
        let key = u32::try_from(key)
            .ok()
            .filter(|&k| k != NIL)
            .expect("fewer than 4 billion timers are pending");
        let list = self.list_for(tick);
        self.push_back(list, key);
        TimerKey { key, seq }
    }

    /// The pending timer `k`, if it has not fired or been removed.
    #[inline]
    pub(crate) fn get_mut(&mut self, k: TimerKey) -> Option<&mut T> {
        match self.nodes.get_mut(k.key as usize) {
            Some(n) if n.seq == k.seq => Some(&mut n.value),
            _ => None,
        }
    }

    /// Cancels the timer `k` if it is still pending, freeing its slot.
    pub(crate) fn remove(&mut self, k: TimerKey) -> Option<T> {
        match self.nodes.get(k.key as usize) {
            Some(n) if n.seq == k.seq => {}
            _ => return None,
        }
        self.unlink(k.key);
        Some(self.nodes.remove(k.key as usize).value)
    }

    /// The earliest occupied slot: `(list, first tick)`. The lowest occupied
    /// level holds it: a level's timers all lie before the slots of the
    /// levels above, which begin past the level's whole range.
    fn next_slot(&self) -> Option<(u16, u64)> {
        let level = self.occupied.iter().position(|&o| o != 0)?;
        let slot = self.occupied[level].trailing_zeros() as usize;
        let list = (level * SLOTS + slot) as u16;
        Some((list, self.list_start(list)))
    }

    /// The tick at which the wheel must next be polled, if anything is pending.
    fn next_due_tick(&self) -> Option<u64> {
        if self.lists[usize::from(DUE)].head != NIL {
            return Some(self.elapsed);
        }
        if let Some((_, start)) = self.next_slot() {
            return Some(start);
        }
        (self.lists[usize::from(OVERFLOW)].head != NIL).then(|| self.overflow_start())
    }

    /// When the loop must next look at its timers (maybe before the first
    /// deadline: a slot of a higher level is due when its timers cascade).
    /// `None`: nothing pending, or nothing before the end of `Instant`.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.instant_of(self.next_due_tick()?)
    }

    /// Whether [`poll`](Self::poll) at `now` could have something to do: one
    /// comparison with a cached bound between expiries.
    #[inline]
    pub(crate) fn may_be_due(&self, now: Instant) -> bool {
        self.tick_floor(now) >= self.next_tick
    }

    /// Moves time to `now` and appends every timer due by then to `out`, in
    /// (deadline, insertion) order. Timers inserted afterwards, even already
    /// due ones, wait for the next call.
    pub(crate) fn poll(&mut self, now: Instant, out: &mut Vec<T>) {
        let now = self.tick_floor(now);
        if now < self.next_tick {
            return;
        }
        loop {
            if self.lists[usize::from(DUE)].head != NIL {
                self.expire_list(DUE, out);
                continue;
            }
            match self.next_slot() {
                Some((list, start)) if start <= now => {
                    self.elapsed = self.elapsed.max(start);
                    if usize::from(list) < SLOTS {
                        self.expire_list(list, out);
                    } else {
                        self.cascade(list);
                    }
                }
                _ => {
                    if self.lists[usize::from(OVERFLOW)].head != NIL {
                        let start = self.overflow_start();
                        if start <= now {
                            self.elapsed = start;
                            self.cascade(OVERFLOW);
                            continue;
                        }
                    }
                    break;
                }
            }
        }
        self.elapsed = self.elapsed.max(now);
        self.next_tick = self.next_due_tick().unwrap_or(MAX_TICK);
    }

    /// Re-files the timers of `list` from the current `elapsed`: each moves
    /// to a finer level (or to the due list).
    fn cascade(&mut self, list: u16) {
        let mut key = self.take_list(list);
        while key != NIL {
            let node = &self.nodes[key as usize];
            let (next, tick) = (node.next, node.tick);
            let to = self.list_for(tick);
            self.push_back(to, key);
            key = next;
        }
    }

    /// Hands out every timer of `list` (all due), sorted.
    fn expire_list(&mut self, list: u16, out: &mut Vec<T>) {
        let mut batch = std::mem::take(&mut self.batch);
        let mut key = self.take_list(list);
        while key != NIL {
            let node = &self.nodes[key as usize];
            batch.push((node.deadline, node.seq, key));
            key = node.next;
        }
        // Usually in order already (timers set one after the other).
        if !batch.is_sorted() {
            batch.sort_unstable();
        }
        out.extend(
            batch
                .drain(..)
                .map(|(_, _, key)| self.nodes.remove(key as usize).value),
        );
        self.batch = batch;
    }

    /// Takes every timer (the loop is closing), in no particular order.
    pub(crate) fn take_all(&mut self) -> Vec<T> {
        *self.lists = [EMPTY; LISTS];
        self.occupied = [0; LEVELS];
        self.next_tick = MAX_TICK;
        self.nodes.drain().map(|n| n.value).collect()
    }
}

#[cfg(test)]
mod tests {
    //! The wheel against a plain model: a list of pending timers, of which a
    //! poll at `now` must hand out exactly those whose deadline, rounded up
    //! to the tick, is reached by `now` rounded down, sorted by (deadline,
    //! insertion); never one whose deadline is still ahead.

    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// A timer this many nanoseconds from the current time (negative:
        /// already past).
        Insert(i64),
        /// Cancels the pending timer at this index (modulo their number).
        Cancel(usize),
        /// Moves time forward this many nanoseconds and polls.
        Advance(u64),
    }

    const MS: i64 = 1_000_000;
    const DAY: i64 = 86_400_000 * MS;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            // Mostly near, some on tick boundaries, some far, some past.
            4 => (-5 * MS..200 * MS).prop_map(Op::Insert),
            2 => (0i64..300).prop_map(|t| Op::Insert(t * MS)),
            1 => (0i64..400 * DAY).prop_map(Op::Insert),
            1 => (0i64..i64::MAX / 2).prop_map(Op::Insert),
            2 => any::<usize>().prop_map(Op::Cancel),
            4 => (0u64..100 * MS as u64).prop_map(Op::Advance),
            1 => (0u64..1000).prop_map(|t| Op::Advance(t * MS as u64)),
            1 => (0u64..200 * DAY as u64).prop_map(Op::Advance),
            1 => (0u64..u64::MAX / 4).prop_map(Op::Advance),
        ]
    }

    struct Pending {
        deadline: Instant,
        order: u64,
        key: TimerKey,
    }

    fn ms_ceil(origin: Instant, t: Instant) -> u128 {
        let d = t.saturating_duration_since(origin);
        d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000))
    }

    fn run(ops: Vec<Op>) {
        let origin = Instant::now();
        // Tests start anywhere: leave room for past deadlines.
        let base = origin;
        let mut wheel: Wheel<u64> = Wheel::new(origin);
        let mut now = base;
        let mut model: Vec<Pending> = Vec::new();
        let mut order = 0u64;
        let mut fired = Vec::new();
        for op in ops {
            match op {
                Op::Insert(offset) => {
                    let deadline = if offset >= 0 {
                        now.checked_add(Duration::from_nanos(offset as u64))
                    } else {
                        now.checked_sub(Duration::from_nanos(offset.unsigned_abs()))
                    };
                    let Some(deadline) = deadline else { continue };
                    let key = wheel.insert(deadline, order);
                    model.push(Pending {
                        deadline,
                        order,
                        key,
                    });
                    order += 1;
                }
                Op::Cancel(i) => {
                    if model.is_empty() {
                        continue;
                    }
                    let p = model.remove(i % model.len());
                    assert_eq!(wheel.remove(p.key), Some(p.order));
                    assert_eq!(wheel.remove(p.key), None, "removed once only");
                }
                Op::Advance(by) => {
                    let Some(later) = now.checked_add(Duration::from_nanos(by)) else {
                        continue;
                    };
                    now = later;
                    let reached = now.saturating_duration_since(origin).as_millis();
                    let (mut due, rest): (Vec<_>, Vec<_>) = model
                        .drain(..)
                        .partition(|p| ms_ceil(origin, p.deadline) <= reached);
                    model = rest;
                    due.sort_by_key(|p| (p.deadline, p.order));
                    fired.clear();
                    wheel.poll(now, &mut fired);
                    let expected: Vec<u64> = due.iter().map(|p| p.order).collect();
                    assert_eq!(fired, expected, "at {reached} ms");
                    for p in &due {
                        assert!(p.deadline <= now, "fired early");
                        assert_eq!(wheel.get_mut(p.key), None, "fired once only");
                    }
                }
            }
            assert_eq!(wheel.len(), model.len(), "nothing lost");
            // The loop wakes no later than the first timer's tick (or at
            // once, for one already due).
            match model.iter().map(|p| ms_ceil(origin, p.deadline)).min() {
                None => assert_eq!(wheel.next_deadline(), None),
                Some(first) => {
                    if let Some(at) = origin.checked_add(Duration::from_millis(
                        u64::try_from(first).unwrap_or(u64::MAX),
                    )) {
                        let next = wheel.next_deadline().expect("a timer is pending");
                        assert!(next <= at.max(now), "would sleep past a timer");
                    }
                }
            }
        }
        let left = wheel.take_all();
        assert_eq!(left.len(), model.len());
        assert_eq!(wheel.len(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 512 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn the_wheel_fires_as_a_sorted_list_would(ops in prop::collection::vec(op(), 1..200)) {
            run(ops);
        }
    }

    #[test]
    fn equal_deadlines_fire_in_insertion_order_across_levels() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let at = origin + Duration::from_millis(5000);
        // Filed at different levels (from 0 and from 4,990 ms), one tick.
        wheel.insert(at, 0);
        let mut out = Vec::new();
        wheel.poll(origin + Duration::from_millis(4990), &mut out);
        assert!(out.is_empty());
        wheel.insert(at, 1);
        wheel.insert(at - Duration::from_nanos(1), 2);
        wheel.poll(at, &mut out);
        assert_eq!(out, [2, 0, 1]);
    }

    #[test]
    fn a_deadline_between_ticks_rounds_up_never_early() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let at = origin + Duration::from_micros(2500);
        wheel.insert(at, ());
        let mut out = Vec::new();
        wheel.poll(at, &mut out);
        assert!(out.is_empty(), "2.5 ms is due at the 3 ms tick");
        assert_eq!(
            wheel.next_deadline(),
            Some(origin + Duration::from_millis(3))
        );
        wheel.poll(origin + Duration::from_millis(3), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn centuries_ahead_wait_in_the_overflow_and_come_back() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let year = Duration::from_secs(365 * 86_400);
        wheel.insert(origin + 200 * year, 1);
        wheel.insert(origin + 150 * year, 0);
        let mut out = Vec::new();
        wheel.poll(origin + 140 * year, &mut out);
        assert!(out.is_empty());
        wheel.poll(origin + 199 * year, &mut out);
        assert_eq!(out, [0]);
        wheel.poll(origin + 200 * year, &mut out);
        assert_eq!(out, [0, 1]);
        assert_eq!(wheel.len(), 0);
    }
}
