#[asyncio::main]
fn main() {}
