//! asyncio's structured concurrency for Rust (being written).
