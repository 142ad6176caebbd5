//! Dropping user values in the middle of the loop's state transitions.
//!
//! A destructor is user code: it may panic. Wherever the loop drops a user
//! value while its own state is half updated (a task finishing, a cell being
//! released, the loop closing), it drops the value here, catches the panic and
//! reports it once the state is whole again, instead of unwinding through the
//! transition.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A caught panic's payload.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// Drops `value`; returns the payload if its destructor panicked.
#[inline]
pub(crate) fn drop_catching<T>(value: T) -> Option<Payload> {
    if !std::mem::needs_drop::<T>() {
        drop(value);
        return None;
    }
    catch_unwind(AssertUnwindSafe(move || drop(value))).err()
}

/// How many payloads in a row [`discard_payload`] drops before it gives up.
const DISCARD_ROUNDS: usize = 8;

/// Drops a panic payload that nobody will look at.
///
/// A payload is a user value too: its destructor may panic, and the payload of
/// that panic may panic in turn when dropped. Each is dropped the same way; a
/// chain longer than a few links (only a payload built to panic in every
/// destructor makes one) ends with the last payload leaked, which is better
/// than unwinding through the caller or aborting.
pub(crate) fn discard_payload(payload: Payload) {
    let mut next = payload;
    for _ in 0..DISCARD_ROUNDS {
        match catch_unwind(AssertUnwindSafe(move || drop(next))) {
            Ok(()) => return,
            Err(again) => next = again,
        }
    }
    std::mem::forget(next);
}
