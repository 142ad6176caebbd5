//! `asyncio.gather`: run several coroutines concurrently and collect their
//! results in input order.
//!
//! ```python
//! results = await asyncio.gather(fetch("slow", 3), fetch("fast", 1), fetch("medium", 2))
//! outcomes = await asyncio.gather(*(request(i) for i in range(3)), return_exceptions=True)
//! # [0, RequestFailed(1), 200]
//! ```
//!
//! Rust has no exceptions: a request that can fail returns a `Result`, and its
//! error is a value in the list that `gather` returns, as with
//! `return_exceptions=True`. Collecting that list into one `Result` gives the
//! first failure, as a plain `gather` raises it. Nothing here panics.

use std::fmt;

async fn fetch(name: &'static str, ticks: usize) -> String {
    for _ in 0..ticks {
        asyncio::yield_now().await; // asyncio.sleep(0)
    }
    println!("fetched {name}");
    format!("{name}: {ticks} ticks")
}

/// What a failed request returns (Python would raise it).
#[derive(Debug)]
struct RequestFailed {
    request: u32,
}

impl fmt::Display for RequestFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request {} failed: the server said no", self.request)
    }
}

impl std::error::Error for RequestFailed {}

async fn request(i: u32) -> Result<u32, RequestFailed> {
    asyncio::yield_now().await;
    if i == 1 {
        Err(RequestFailed { request: i })
    } else {
        Ok(i * 100)
    }
}

async fn main_task() -> Result<(), asyncio::TaskError> {
    let results = asyncio::gather([fetch("slow", 3), fetch("fast", 1), fetch("medium", 2)]).await?;
    println!("in input order: {results:?}");

    // Every outcome, failures included (return_exceptions=True).
    let outcomes = asyncio::gather((0..3).map(request)).await?;
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Ok(v) => println!("request {i}: {v}"),
            Err(e) => println!("request {i}: error value: {e}"),
        }
    }

    // Only the first failure (a plain gather): collect into one Result.
    let all: Result<Vec<u32>, RequestFailed> = outcomes.into_iter().collect();
    match all {
        Ok(values) => println!("all succeeded: {values:?}"),
        Err(e) => println!("as one result: Err({e})"),
    }

    // A task that ends without a value (cancelled, or a panic) is a
    // `TaskError` in the list that `return_exceptions()` gives.
    let sleeper = asyncio::create_task(asyncio::sleep(std::time::Duration::from_secs(3600)));
    sleeper.cancel();
    let ends = asyncio::gather_tasks([sleeper]).return_exceptions().await;
    match &ends[0] {
        Ok(()) => println!("the sleeper finished"),
        Err(e) => println!("a cancelled task: error value: {e}"),
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    asyncio::run(main_task())??;
    Ok(())
}
