//! The FIFO list of parked futures that every primitive is built on.
//!
//! Nodes live in a slab so that a future can find (and drop) its own node in
//! O(1) by key. Linked nodes form a doubly linked list in arrival order; waking
//! a node unlinks it but leaves it in the slab, so the future can tell on its
//! next poll (or in its destructor) that it was handed something. That is what
//! makes every waiting future cancellation-safe: a future dropped while still
//! linked just leaves the line, and a future dropped after being woken knows it
//! must pass what it was handed on.
//!
//! Wakers are never called here: waking methods return the [`Waker`] so the
//! caller can release its `RefCell` borrow first. A waker that re-entered the
//! primitive while it is borrowed would otherwise panic.

use std::task::Waker;

use slab::Slab;

/// Links are `u32` slab keys, which keeps a node small (a line never holds
/// anywhere near 4 billion waiters: each costs memory and a task).
const NIL: u32 = u32::MAX;

#[inline]
fn link(key: usize) -> u32 {
    u32::try_from(key).expect("fewer than 4 billion waiters in one line")
}

#[derive(Debug)]
struct Node<D> {
    waker: Option<Waker>,
    prev: u32,
    next: u32,
    linked: bool,
    data: D,
}

/// A FIFO of parked futures, each with some per-waiter data `D`.
#[derive(Debug)]
pub(crate) struct WaitList<D> {
    nodes: Slab<Node<D>>,
    head: u32,
    tail: u32,
    linked: usize,
}

impl<D> Default for WaitList<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D> WaitList<D> {
    pub(crate) const fn new() -> Self {
        Self {
            nodes: Slab::new(),
            head: NIL,
            tail: NIL,
            linked: 0,
        }
    }

    /// Whether no future is waiting in line (woken ones do not count).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.linked == 0
    }

    /// How many futures are waiting in line.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.linked
    }

    /// Parks a new waiter at the back of the line.
    pub(crate) fn push_back(&mut self, waker: &Waker, data: D) -> usize {
        let key = self.insert(waker, data);
        self.link_back(key);
        key
    }

    /// Parks a new waiter at the front of the line (a woken waiter that found
    /// its chance taken keeps its place).
    pub(crate) fn push_front(&mut self, waker: &Waker, data: D) -> usize {
        let key = self.insert(waker, data);
        self.link_front(key);
        key
    }

    /// The data of a waiter, woken or not.
    #[inline]
    pub(crate) fn data(&self, key: usize) -> &D {
        &self.nodes[key].data
    }

    /// Parks a woken waiter again at the back of the line, in its own node
    /// (no slab removal and insertion), with new data.
    pub(crate) fn requeue_back(&mut self, key: usize, waker: &Waker, data: D) {
        let node = &mut self.nodes[key];
        debug_assert!(!node.linked, "only a woken waiter is parked again");
        match &mut node.waker {
            Some(old) if old.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        node.data = data;
        self.link_back(key);
    }

    /// Parks a new waiter in line just before `before` (which is in line).
    pub(crate) fn push_before(&mut self, before: usize, waker: &Waker, data: D) -> usize {
        let key = self.insert(waker, data);
        let prev = self.nodes[before].prev;
        {
            let node = &mut self.nodes[key];
            node.prev = prev;
            node.next = link(before);
            node.linked = true;
        }
        let k = link(key);
        if prev == NIL {
            self.head = k;
        } else {
            self.nodes[prev as usize].next = k;
        }
        self.nodes[before].prev = k;
        self.linked += 1;
        key
    }

    fn insert(&mut self, waker: &Waker, data: D) -> usize {
        self.nodes.insert(Node {
            waker: Some(waker.clone()),
            prev: NIL,
            next: NIL,
            linked: false,
            data,
        })
    }

    fn link_back(&mut self, key: usize) {
        let tail = self.tail;
        {
            let node = &mut self.nodes[key];
            node.prev = tail;
            node.next = NIL;
            node.linked = true;
        }
        let k = link(key);
        if tail == NIL {
            self.head = k;
        } else {
            self.nodes[tail as usize].next = k;
        }
        self.tail = k;
        self.linked += 1;
    }

    fn link_front(&mut self, key: usize) {
        let head = self.head;
        {
            let node = &mut self.nodes[key];
            node.prev = NIL;
            node.next = head;
            node.linked = true;
        }
        let k = link(key);
        if head == NIL {
            self.tail = k;
        } else {
            self.nodes[head as usize].prev = k;
        }
        self.head = k;
        self.linked += 1;
    }

    fn unlink(&mut self, key: usize) {
        let (prev, next) = {
            let node = &mut self.nodes[key];
            debug_assert!(node.linked);
            node.linked = false;
            (node.prev, node.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        self.linked -= 1;
    }

    /// Whether the waiter is still in line (not woken yet).
    #[inline]
    pub(crate) fn is_linked(&self, key: usize) -> bool {
        self.nodes[key].linked
    }

    /// Stores the waker of the latest poll, unless it would wake the same task.
    pub(crate) fn set_waker(&mut self, key: usize, waker: &Waker) {
        match &mut self.nodes[key].waker {
            Some(old) if old.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }

    /// Forgets a waiter (woken or not) and returns its data.
    pub(crate) fn remove(&mut self, key: usize) -> D {
        if self.nodes[key].linked {
            self.unlink(key);
        }
        self.nodes.remove(key).data
    }

    /// The data of the waiter at the front of the line.
    pub(crate) fn front_mut(&mut self) -> Option<&mut D> {
        if self.head == NIL {
            None
        } else {
            Some(&mut self.nodes[self.head as usize].data)
        }
    }

    /// The key of the waiter at the front of the line.
    pub(crate) fn front_key(&self) -> Option<usize> {
        (self.head != NIL).then_some(self.head as usize)
    }

    /// The key of the waiter behind `key` in the line (which `key` is in).
    pub(crate) fn key_after(&self, key: usize) -> Option<usize> {
        let next = self.nodes[key].next;
        (next != NIL).then_some(next as usize)
    }

    /// The data of a waiter, woken or not.
    pub(crate) fn data_mut(&mut self, key: usize) -> &mut D {
        &mut self.nodes[key].data
    }

    /// Takes a waiter's waker, leaving it in line (where it is).
    pub(crate) fn take_waker(&mut self, key: usize) -> Option<Waker> {
        self.nodes[key].waker.take()
    }

    /// Takes a waiter out of the line, wherever it is, and returns its waker.
    pub(crate) fn wake(&mut self, key: usize) -> Option<Waker> {
        self.unlink(key);
        self.nodes[key].waker.take()
    }

    /// Takes the first waiter out of the line and returns its waker.
    pub(crate) fn wake_front(&mut self) -> Option<Waker> {
        if self.head == NIL {
            return None;
        }
        let key = self.head as usize;
        self.unlink(key);
        self.nodes[key].waker.take()
    }

    /// Takes every waiter out of the line, front first, after letting `f`
    /// write into each one's data; their wakers are appended to `wakers`.
    pub(crate) fn wake_all_with(&mut self, wakers: &mut Vec<Waker>, mut f: impl FnMut(&mut D)) {
        wakers.reserve(self.linked);
        while self.head != NIL {
            let key = self.head as usize;
            f(&mut self.nodes[key].data);
            self.unlink(key);
            if let Some(w) = self.nodes[key].waker.take() {
                wakers.push(w);
            }
        }
    }

    /// The data of every waiter that was woken but has not yet collected
    /// what it was handed.
    pub(crate) fn woken_data_mut(&mut self) -> impl Iterator<Item = &mut D> {
        self.nodes
            .iter_mut()
            .filter(|(_, n)| !n.linked)
            .map(|(_, n)| &mut n.data)
    }
}

/// Wakes every waker in `wakers` (after the caller has released its borrow).
pub(crate) fn wake_all(wakers: Vec<Waker>) {
    for w in wakers {
        w.wake();
    }
}

/// Wakers collected under a borrow, to be woken after it; the common case of
/// a single waker needs no allocation.
#[derive(Debug, Default)]
pub(crate) struct WakeBatch {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl WakeBatch {
    pub(crate) fn push(&mut self, waker: Option<Waker>) {
        let Some(w) = waker else { return };
        if self.first.is_none() {
            self.first = Some(w);
        } else {
            self.rest.push(w);
        }
    }

    /// Makes room for `n` more wakers at once (a barrier trip, a shutdown).
    pub(crate) fn reserve(&mut self, n: usize) {
        self.rest.reserve(n.saturating_sub(1));
    }

    #[inline]
    pub(crate) fn wake(self) {
        // `rest` fills only after `first`: nothing to do (and nothing to
        // free) in the common case of an empty batch.
        let Some(first) = self.first else { return };
        first.wake();
        wake_all(self.rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn fifo_order_and_removal_from_the_middle() {
        let w = Waker::noop();
        let mut list = WaitList::new();
        let a = list.push_back(w, 'a');
        let b = list.push_back(w, 'b');
        let c = list.push_back(w, 'c');
        assert_eq!(list.len(), 3);
        assert_eq!(list.remove(b), 'b');
        assert!(list.wake_front().is_some());
        assert!(!list.is_linked(a));
        assert!(list.is_linked(c));
        let d = list.push_front(w, 'd');
        assert_eq!(list.front_mut().copied(), Some('d'));
        assert!(list.wake_front().is_some());
        assert!(!list.is_linked(d));
        assert_eq!(list.front_mut().copied(), Some('c'));
        let mut wakers = Vec::new();
        list.wake_all_with(&mut wakers, |_| {});
        assert_eq!(wakers.len(), 1);
        assert!(list.is_empty());
        assert_eq!(list.woken_data_mut().count(), 3);
    }
}
