//! asyncio for Rust (being written).
