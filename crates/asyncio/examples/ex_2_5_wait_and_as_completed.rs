//! `asyncio.wait` (stop at the first result, keep the rest) and
//! `asyncio.as_completed` (handle results in the order they arrive).

use std::future::poll_fn;
use std::pin::Pin;

use asyncio::{ReturnWhen, Task, as_completed, create_task, wait, yield_now};
use futures_core::Stream;

fn download(name: &'static str, ticks: usize) -> Task<String> {
    create_task(async move {
        for _ in 0..ticks {
            yield_now().await;
        }
        format!("{name} ({ticks} ticks)")
    })
}

async fn main_task() {
    let mirrors = vec![
        download("mirror-a", 5),
        download("mirror-b", 2),
        download("mirror-c", 8),
    ];
    let first = wait(mirrors, ReturnWhen::FirstCompleted)
        .expect("three tasks")
        .await;
    for t in first.done {
        println!("first answer: {}", t.await.expect("no download fails"));
    }
    println!(
        "{} mirrors still running; cancelling them",
        first.pending.len()
    );
    for t in &first.pending {
        t.cancel();
    }

    let pages = vec![
        download("page-3", 3),
        download("page-1", 1),
        download("page-2", 2),
    ];
    let mut stream = as_completed(pages);
    while let Some(t) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
        println!("as completed: {}", t.await.expect("no download fails"));
    }
}

fn main() -> Result<(), asyncio::RunError> {
    asyncio::run(main_task())
}
