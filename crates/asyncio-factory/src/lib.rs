//! asyncio's task factories, for Rust — not written yet.
//!
//! This crate will hold the strategies that plug into `asyncio-core`'s
//! `TaskFactory` extension point: `eager_task_factory`,
//! `create_eager_task_factory(ctor)` and an instrumented wrapper. The lazy
//! default lives in `asyncio-core` itself. Until the factory issue is taken,
//! it exports nothing on purpose.
