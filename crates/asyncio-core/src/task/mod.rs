//! Tasks: the cell that holds a future, its waker and its two handles.

pub(crate) mod handle;
pub(crate) mod header;
pub(crate) mod raw;
pub(crate) mod state;
pub(crate) mod waker;

pub use handle::{CallbackId, Task, TaskRef};
