//! Benchmarks of asyncio-rs against its peers (being written).
