//! The registry of live tasks: an intrusive doubly-linked list through their
//! headers, which `all_tasks` and closing walk.

use std::ptr::NonNull;

use crate::context;
use crate::task::TaskRef;
use crate::task::header::Header;
use crate::task::state::*;

use super::LoopInner;

impl LoopInner {
    /// Links the task into the registry, which keeps one reference to it.
    pub(super) fn register(&self, task: &TaskRef) {
        let header = task.header();
        debug_assert!(!header.has(REGISTERED));
        let ptr = std::mem::ManuallyDrop::new(task.clone()).as_ptr();
        let head = self.registry_head.get();
        header.prev.set(None);
        header.next.set(head);
        if let Some(old) = head {
            // SAFETY: listed tasks are alive: the list holds a reference to each.
            unsafe { old.as_ref() }.prev.set(Some(ptr));
        }
        self.registry_head.set(Some(ptr));
        self.registry_len.set(self.registry_len.get() + 1);
        header.set(REGISTERED);
    }

    /// Unlinks the task; returns the list's reference for the caller to drop.
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
        let (prev, next) = (header.prev.take(), header.next.take());
        match prev {
            // SAFETY: listed neighbours are alive (the list holds references).
            Some(p) => unsafe { p.as_ref() }.next.set(next),
            None => self.registry_head.set(next),
        }
        if let Some(n) = next {
            // SAFETY: as above.
            unsafe { n.as_ref() }.prev.set(prev);
        }
        self.registry_len.set(self.registry_len.get() - 1);
        // SAFETY: the list's reference, handed over to the caller.
        Some(unsafe { TaskRef::from_raw(ptr) })
    }

    /// References to every registered task, newest first.
    pub(super) fn registered(&self) -> Vec<TaskRef> {
        let mut out = Vec::with_capacity(self.registry_len.get());
        let mut cur = self.registry_head.get();
        while let Some(ptr) = cur {
            // SAFETY: listed tasks are alive; loop thread.
            out.push(unsafe { TaskRef::clone_raw(ptr) });
            // SAFETY: as above.
            cur = unsafe { ptr.as_ref() }.next.get();
        }
        out
    }

    pub(super) fn all_tasks(&self) -> Vec<TaskRef> {
        let mut tasks = self.registered();
        // Tasks in their eager step are not registered yet: they are the chain
        // from the current task, as long as it runs an eager step. (Only this
        // loop's, if it is the one running here.)
        let mut cur = if std::ptr::eq(context::running_loop(), self) {
            NonNull::new(context::current_task().cast_mut())
        } else {
            None
        };
        while let Some(ptr) = cur {
            // SAFETY: the current task is being polled, and each task in the
            // chain is in its eager step, on the stack of the one after it: alive.
            let header = unsafe { ptr.as_ref() };
            if !header.has(EAGER_STEP) {
                break;
            }
            // SAFETY: alive and ours, on the loop thread.
            tasks.push(unsafe { TaskRef::clone_raw(ptr) });
            cur = header.next.get();
        }
        tasks
    }
}
