//! asyncio's synchronization primitives and queues, for any executor — not written yet.
