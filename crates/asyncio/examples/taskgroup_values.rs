//! A TaskGroup whose children return plain values, under `#[asyncio::main]`,
//! with errors that travel into `anyhow::Error` (issue 16's first program).
//!
//! ```python
//! async def main():
//!     async with asyncio.TaskGroup() as tg:
//!         a = tg.create_task(coro(20))
//!         b = tg.create_task(coro(22))
//!     assert a.result() + b.result() == 42
//! ```

#[asyncio::main]
async fn main() -> anyhow::Result<()> {
    let n = asyncio::task_group(|tg| async move {
        let a = tg.create_task(async { 20 });
        let b = tg.create_task(async { 22 });
        Ok::<_, anyhow::Error>(a.await? + b.await?)
    })
    .await?;
    assert_eq!(n, 42);
    println!("n = {n}");
    Ok(())
}
