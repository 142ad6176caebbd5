//! The bits of a task's local state word.
//!
//! The word lives in a `Cell`: only the loop's thread reads or writes it. Other
//! threads touch only the atomics of the header (the waker count and the
//! remote-notified flag), so no transition here needs an atomic instruction.
//!
//! A task moves through these states:
//!
//! ```text
//! created ──schedule──▶ SCHEDULED ──poll──▶ RUNNING ──Pending──▶ idle (waiting for a wake)
//!    │                     ▲                  │                   │
//!    └──eager step─────────┼──────────────────┘                   │
//!                          └───────────────wake───────────────────┘
//! RUNNING ──Ready / cancelled / panicked──▶ COMPLETE (+ CANCELLED or FAILED)
//! ```

/// In the loop's ready queue; a second wake while set does nothing.
pub(crate) const SCHEDULED: u32 = 1 << 0;
/// Being polled right now (its `poll` is on the stack).
pub(crate) const RUNNING: u32 = 1 << 1;
/// Finished: the future is gone and the outcome is stored (or was taken).
pub(crate) const COMPLETE: u32 = 1 << 2;
/// `cancel()` was called and the task has not yet acted on it.
pub(crate) const CANCEL_REQUESTED: u32 = 1 << 3;
/// Finished by cancellation.
pub(crate) const CANCELLED: u32 = 1 << 4;
/// Finished by a panic.
pub(crate) const FAILED: u32 = 1 << 5;
/// A `Task<T>` handle exists (so a failure is not yet unobserved).
pub(crate) const HAS_HANDLE: u32 = 1 << 6;
/// Running its eager step, inside the `create_task` that made it. Its header's
/// `next` link (unused until it is registered) then points to the task that
/// was current when the step began, so the tasks in their eager steps form a
/// chain from the current task, which `all_tasks()` follows.
pub(crate) const EAGER_STEP: u32 = 1 << 7;
/// Listed in the loop's registry of live tasks (`all_tasks`), which holds a reference.
pub(crate) const REGISTERED: u32 = 1 << 8;
/// The failure was handed to someone (awaited, taken, or reported to the exception handler).
pub(crate) const FAILURE_SEEN: u32 = 1 << 9;
/// A `Task<T>` handle was polled and left its waker in `join_waker`.
pub(crate) const HAS_JOIN_WAKER: u32 = 1 << 10;
/// Done callbacks are waiting in `extra`.
pub(crate) const HAS_CALLBACKS: u32 = 1 << 11;
/// The task has a context of its own (in `extra`).
pub(crate) const HAS_CONTEXT: u32 = 1 << 12;
/// The task's `extra` data was created (release must free it).
pub(crate) const HAS_EXTRA: u32 = 1 << 13;
/// The stage holds nothing with a destructor (an outcome `Ok(v)` whose type has
/// no drop glue): releasing the cell need not look at it.
pub(crate) const STAGE_TRIVIAL: u32 = 1 << 14;
/// The outcome was moved out through the `Task<T>` handle.
pub(crate) const OUTPUT_TAKEN: u32 = 1 << 15;
/// The future was dropped (the stage holds an outcome, or nothing).
pub(crate) const FUTURE_GONE: u32 = 1 << 16;
/// The stage holds the task's value.
pub(crate) const HAS_OUTPUT: u32 = 1 << 17;
/// The stage holds the panic the task ended with.
pub(crate) const HAS_PANIC: u32 = 1 << 18;
/// Something the task's step had to dispose of mid-transition (a replaced
/// outcome, the panic it replaced, the task's context) waits in the loop's
/// deferred list: the step's end (completion or suspension) disposes of it
/// through the gate once the task's state is whole.
pub(crate) const DEFERRED: u32 = 1 << 19;
/// Where a task in its eager step keeps how many eager steps are nested, its
/// own included (bits 24 to 31; meaningful only with `EAGER_STEP`). Kept in
/// the task rather than counted up and down in the loop: a counter that every
/// spawn increments and decrements chains each spawn to the one before.
pub(crate) const EAGER_DEPTH_SHIFT: u32 = 24;
pub(crate) const EAGER_DEPTH: u32 = 0xFF << EAGER_DEPTH_SHIFT;
/// What `complete` has to look at beyond marking the task done (a failure,
/// panic or cancellation, gets its number there).
pub(crate) const COMPLETION_WORK: u32 =
    REGISTERED | HAS_JOIN_WAKER | HAS_CALLBACKS | FAILED | CANCELLED | DEFERRED;
