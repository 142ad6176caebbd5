//! `asyncio.gather`: run several coroutines concurrently and collect their
//! results in order; with `return_exceptions`, collect failures too.

async fn fetch(name: &'static str, ticks: usize) -> String {
    for _ in 0..ticks {
        asyncio::yield_now().await;
    }
    println!("fetched {name}");
    format!("{name}: {ticks} ticks")
}

async fn main_task() -> Result<(), asyncio::TaskError> {
    let results = asyncio::gather([fetch("slow", 3), fetch("fast", 1), fetch("medium", 2)]).await?;
    println!("in input order: {results:?}");

    let outcomes = asyncio::gather((0..3).map(|i| async move {
        if i == 1 {
            panic!("request {i} failed");
        }
        i * 100
    }))
    .return_exceptions()
    .await;
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Ok(v) => println!("request {i}: {v}"),
            Err(e) => println!("request {i}: {e}"),
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    asyncio::run(main_task())??;
    Ok(())
}
