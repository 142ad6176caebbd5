//! The registry of live tasks, which `all_tasks` and closing walk.
//!
//! A task joins it when it first suspends (or is created while the loop is
//! not running its eager step): a task that finishes in its first step (the
//! common trivial task, eager or lazy) never touches it. Until then the task
//! is found where it is: in the ready queue, or running (the current task and
//! the chain of eager steps under it). The list is a vector of cell pointers
//! outside the headers, each task keeping its index (`Header::slot`); leaving
//! moves the last entry into the hole.

use std::ptr::NonNull;

use crate::context;
use crate::task::TaskRef;
use crate::task::header::Header;
use crate::task::state::*;

use super::LoopInner;

impl LoopInner {
    /// Lists the task, which keeps one reference for the registry.
    pub(super) fn register(&self, task: &TaskRef) {
        let header = task.header();
        debug_assert!(!header.has(REGISTERED));
        // SAFETY: loop thread; no other borrow of the registry is alive (none
        // is held across user code).
        let list = unsafe { &mut *self.registry.get() };
        let slot = u32::try_from(list.len())
            .unwrap_or_else(|_| panic!("more than {} tasks are pending on one loop", u32::MAX));
        list.push(std::mem::ManuallyDrop::new(task.clone()).as_ptr());
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
        let list = unsafe { &mut *self.registry.get() };
        let slot = header.slot.get() as usize;
        debug_assert_eq!(list[slot], ptr);
        list.swap_remove(slot);
        if let Some(&moved) = list.get(slot) {
            // SAFETY: listed tasks are alive: the list holds a reference to each.
            unsafe { moved.as_ref() }.slot.set(slot as u32);
        }
        // SAFETY: the list's reference, handed over to the caller.
        Some(unsafe { TaskRef::from_raw(ptr) })
    }

    /// Takes every task off the list; returns the list's references.
    pub(super) fn unregister_all(&self) -> Vec<TaskRef> {
        // SAFETY: as in `register`.
        let list = std::mem::take(unsafe { &mut *self.registry.get() });
        list.into_iter()
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
        let list = unsafe { &*self.registry.get() };
        list.iter()
            // SAFETY: listed tasks are alive; loop thread.
            .map(|&ptr| unsafe { TaskRef::clone_raw(ptr) })
            .collect()
    }

    /// The unfinished tasks that are not registered: those that never ran
    /// (in the ready queue), and the current task and the eager steps under
    /// it that have not suspended yet.
    pub(super) fn unlisted_tasks(&self) -> Vec<TaskRef> {
        let mut tasks: Vec<TaskRef> = self
            .ready_tasks()
            .into_iter()
            // A task that woke itself during its first step is in the queue
            // too: it is listed from the chain below, once.
            .filter(|t| !t.header().has(REGISTERED | COMPLETE | RUNNING))
            .collect();
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

    pub(super) fn all_tasks(&self) -> Vec<TaskRef> {
        let mut tasks = self.registered();
        tasks.extend(self.unlisted_tasks());
        tasks
    }
}
