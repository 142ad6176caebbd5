//! The registry of live tasks, which `all_tasks` and closing walk.
//!
//! A task joins it when it first suspends: a task that finishes in its first
//! step (the common trivial task, eager or lazy) never touches it. Until then
//! the task is found where it is: in the ready queue, or running (the current
//! task and the chain of eager steps under it). The list is a slab of cell
//! pointers outside the headers, each task keeping its index
//! (`Header::slot`): leaving empties the entry and remembers it for the next
//! task, touching no other task (a task that leaves is usually cold, and so
//! would be any neighbour).

use std::ptr::NonNull;

use crate::context;
use crate::task::TaskRef;
use crate::task::header::Header;
use crate::task::state::*;

use super::LoopInner;

/// The slab behind the registry. Loop thread only; no borrow of it is held
/// across user code.
#[derive(Default)]
pub(crate) struct Registry {
    /// Listed tasks at their slots, `None` where a task left.
    entries: Vec<Option<NonNull<Header>>>,
    /// The empty slots, reused last-freed first.
    free: Vec<u32>,
}

impl LoopInner {
    /// Lists the task, which keeps one reference for the registry.
    pub(super) fn register(&self, task: &TaskRef) {
        let header = task.header();
        debug_assert!(!header.has(REGISTERED));
        // SAFETY: loop thread; no other borrow of the registry is alive (none
        // is held across user code).
        let reg = unsafe { &mut *self.registry.get() };
        let ptr = std::mem::ManuallyDrop::new(task.clone()).as_ptr();
        let slot = match reg.free.pop() {
            Some(slot) => {
                reg.entries[slot as usize] = Some(ptr);
                slot
            }
            None => {
                let slot = u32::try_from(reg.entries.len()).unwrap_or_else(|_| {
                    panic!("more than {} tasks are pending on one loop", u32::MAX)
                });
                reg.entries.push(Some(ptr));
                slot
            }
        };
        header.slot.set(slot);
        header.set(REGISTERED);
    }

    /// Takes the task off the list; returns the list's reference for the
    /// caller to drop.
    ///
    /// Takes the cell pointer itself (not a `&Header`): the returned reference
    /// must keep the provenance of the whole cell.
    pub(super) fn unregister(&self, ptr: NonNull<Header>) -> Option<TaskRef> {
        // SAFETY: the caller passes a live task of this loop.
        let header = unsafe { ptr.as_ref() };
        if !header.has(REGISTERED) {
            return None;
        }
        header.clear(REGISTERED);
        // SAFETY: as in `register`.
        let reg = unsafe { &mut *self.registry.get() };
        let slot = header.slot.get();
        let taken = reg.entries[slot as usize].take();
        debug_assert_eq!(taken, Some(ptr));
        if reg.free.len() + 1 == reg.entries.len() {
            // The last one left: start over, so the slab never keeps holes
            // from a burst that is over.
            reg.entries.clear();
            reg.free.clear();
        } else {
            reg.free.push(slot);
        }
        // SAFETY: the list's reference, handed over to the caller.
        Some(unsafe { TaskRef::from_raw(ptr) })
    }

    /// Takes every task off the list; returns the list's references.
    pub(super) fn unregister_all(&self) -> Vec<TaskRef> {
        // SAFETY: as in `register`.
        let reg = std::mem::take(unsafe { &mut *self.registry.get() });
        reg.entries
            .into_iter()
            .flatten()
            .map(|ptr| {
                // SAFETY: listed tasks are alive; loop thread.
                unsafe { ptr.as_ref() }.clear(REGISTERED);
                // SAFETY: the list's reference, handed over.
                unsafe { TaskRef::from_raw(ptr) }
            })
            .collect()
    }

    /// References to every registered task.
    pub(super) fn registered(&self) -> Vec<TaskRef> {
        // SAFETY: as in `register`; cloning a reference runs no user code.
        let reg = unsafe { &*self.registry.get() };
        reg.entries
            .iter()
            .flatten()
            // SAFETY: listed tasks are alive; loop thread.
            .map(|&ptr| unsafe { TaskRef::clone_raw(ptr) })
            .collect()
    }

    /// The unfinished tasks that are not registered: those that never ran
    /// (in the ready queue), and the current task and the eager steps under
    /// it that have not suspended yet.
    pub(super) fn unlisted_tasks(&self) -> Vec<TaskRef> {
        let mut tasks = self.never_ran();
        // The chain from the current task through the tasks in their eager
        // step. (Only this loop's, if it is the one running here.)
        let mut cur = if std::ptr::eq(context::running_loop(), self) {
            NonNull::new(context::current_task().cast_mut())
        } else {
            None
        };
        while let Some(ptr) = cur {
            // SAFETY: the current task is being polled, and each task in the
            // chain is in its eager step, on the stack of the one after it: alive.
            let header = unsafe { ptr.as_ref() };
            if !header.has(REGISTERED | COMPLETE) {
                // SAFETY: alive and ours, on the loop thread.
                tasks.push(unsafe { TaskRef::clone_raw(ptr) });
            }
            if !header.has(EAGER_STEP) {
                break;
            }
            cur = NonNull::new(header.creator().cast_mut());
        }
        tasks
    }

    /// The unfinished, unregistered tasks in the ready queue: those that have
    /// not run yet. (A task that woke itself during its first step is queued
    /// too, but it is running: it belongs to the current task's chain.)
    pub(super) fn never_ran(&self) -> Vec<TaskRef> {
        self.ready_tasks()
            .into_iter()
            .filter(|t| !t.header().has(REGISTERED | COMPLETE | RUNNING))
            .collect()
    }

    pub(super) fn all_tasks(&self) -> Vec<TaskRef> {
        let mut tasks = self.registered();
        tasks.extend(self.unlisted_tasks());
        tasks
    }
}
