//! asyncio's streams, for Rust — not written yet.
//!
//! This crate will hold `open_connection`, `start_server`, `StreamReader` and
//! `StreamWriter`, built on the I/O readiness registrations of `asyncio-core`'s
//! reactor. Until that issue is taken, it exports nothing on purpose: there is
//! no placeholder API to depend on.
