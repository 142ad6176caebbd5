//! Where a queue keeps its items: the one thing that differs between
//! `Queue`, `LifoQueue` and `PriorityQueue`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// The item container behind a queue: which item `get` takes next.
pub(crate) trait Store: Default {
    type Item;
    fn with_capacity(capacity: usize) -> Self;
    fn push(&mut self, item: Self::Item);
    fn pop(&mut self) -> Option<Self::Item>;
    fn len(&self) -> usize;
}

/// The queue caps its up-front allocation: a huge `maxsize` is a limit, not
/// a promise that the queue will ever hold that many items.
pub(crate) const PREALLOCATE_AT_MOST: usize = 1024;

/// First in, first out (asyncio's `Queue`).
#[derive(Debug)]
pub(crate) struct Fifo<T>(VecDeque<T>);

/// Last in, first out (asyncio's `LifoQueue`).
#[derive(Debug)]
pub(crate) struct Lifo<T>(Vec<T>);

/// Smallest first, as `heapq` (asyncio's `PriorityQueue`).
#[derive(Debug)]
pub(crate) struct Priority<T>(BinaryHeap<Reverse<T>>);

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Self(VecDeque::new())
    }
}

impl<T> Default for Lifo<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T: Ord> Default for Priority<T> {
    fn default() -> Self {
        Self(BinaryHeap::new())
    }
}

impl<T> Store for Fifo<T> {
    type Item = T;
    fn with_capacity(capacity: usize) -> Self {
        Self(VecDeque::with_capacity(capacity))
    }
    #[inline]
    fn push(&mut self, item: T) {
        self.0.push_back(item);
    }
    #[inline]
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    #[inline]
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl<T> Store for Lifo<T> {
    type Item = T;
    fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }
    #[inline]
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    #[inline]
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    #[inline]
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl<T: Ord> Store for Priority<T> {
    type Item = T;
    fn with_capacity(capacity: usize) -> Self {
        Self(BinaryHeap::with_capacity(capacity))
    }
    #[inline]
    fn push(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
    #[inline]
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|Reverse(item)| item)
    }
    #[inline]
    fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain<S: Store>(mut s: S, items: &[S::Item]) -> Vec<S::Item>
    where
        S::Item: Clone,
    {
        for i in items {
            s.push(i.clone());
        }
        std::iter::from_fn(|| s.pop()).collect()
    }

    #[test]
    fn each_store_pops_in_its_order() {
        assert_eq!(drain(Fifo::default(), &[3, 1, 2]), [3, 1, 2]);
        assert_eq!(drain(Lifo::default(), &[3, 1, 2]), [2, 1, 3]);
        assert_eq!(drain(Priority::default(), &[3, 1, 2]), [1, 2, 3]);
    }
}
