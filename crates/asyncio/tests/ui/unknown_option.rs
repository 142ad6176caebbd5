#[asyncio::main(fast)]
async fn main() {}
