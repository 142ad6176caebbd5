//! A TCP echo server with asyncio's streams: each client's message comes back
//! to it. The server stops by itself after serving a number of clients
//! (the first argument, default 1), so a run always ends.
//!
//! ```text
//! cargo run --example ex_5_2_echo_server -- 3     # then, in another terminal:
//! cargo run --example ex_5_3_echo_client
//! ```
//!
//! The same server in Python:
//!
//! ```python
//! async def echo(reader, writer):
//!     data = await reader.read(100)
//!     who = writer.get_extra_info("peername")
//!     print(f"{who}: {data.decode()!r}")
//!     writer.write(data)
//!     await writer.drain()
//!     writer.close()
//!     await writer.wait_closed()
//!
//! async def main():
//!     server = await asyncio.start_server(echo, "127.0.0.1", 8888)
//!     async with server:
//!         await server.serve_forever()
//! ```

use std::cell::Cell;
use std::rc::Rc;

use asyncio::{Server, StreamReader, StreamWriter};

async fn echo(mut reader: StreamReader, mut writer: StreamWriter) -> std::io::Result<()> {
    let data = reader.read(100).await?;
    let who = writer.peer_addr()?;
    println!("{who}: {:?}", String::from_utf8_lossy(&data));
    writer.write(&data);
    writer.drain().await?;
    writer.close();
    writer.wait_closed().await
}

async fn main_task(clients: usize) -> std::io::Result<()> {
    let served = Rc::new(Cell::new(0));
    // The callback needs the server to close it after the last client; the
    // server is made after the callback, so it is handed over through a cell.
    let handle: Rc<std::cell::OnceCell<Server>> = Rc::default();
    let (s, h) = (served.clone(), handle.clone());
    let server = asyncio::start_server(
        move |reader, writer| {
            let (s, h) = (s.clone(), h.clone());
            async move {
                if let Err(e) = echo(reader, writer).await {
                    eprintln!("client failed: {e}");
                }
                s.set(s.get() + 1);
                if s.get() == clients
                    && let Some(server) = h.get()
                {
                    server.close(); // serve_forever returns
                }
            }
        },
        "127.0.0.1",
        8888,
    )
    .await?;
    let _ = handle.set(server.clone());
    let addrs: Vec<String> = server.sockets().iter().map(|a| a.to_string()).collect();
    println!(
        "Serving on {} until {clients} client(s) have been served",
        addrs.join(", ")
    );
    server.serve_forever().await?;
    server.wait_closed().await;
    println!("served {} client(s), bye", served.get());
    Ok(())
}

fn main() -> std::io::Result<()> {
    let clients = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("the argument is a number of clients"))
        .unwrap_or(1);
    asyncio::run(main_task(clients)).expect("the loop runs")
}
