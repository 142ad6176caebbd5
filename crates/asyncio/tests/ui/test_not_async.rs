#[asyncio::test]
fn not_async() {}

fn main() {}
