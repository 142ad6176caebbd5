//! A Queue consumer written as `async for item in queue` would be: a stream
//! and `next()`, from the facade alone (issue 16's second program).

use asyncio::StreamExt;

#[asyncio::main(eager)]
async fn main() {
    let queue = std::rc::Rc::new(asyncio::Queue::new(2));
    let q = queue.clone();
    let producer = asyncio::create_task(async move {
        for i in 1..=5 {
            q.put(i).await.expect("the queue is open while producing");
        }
        q.shutdown(false);
    });
    let mut total = 0;
    while let Some(item) = queue.stream().next().await {
        println!("got {item}");
        total += item;
    }
    producer.await.expect("the producer finishes");
    println!("total = {total}");
    assert_eq!(total, 15);
}
