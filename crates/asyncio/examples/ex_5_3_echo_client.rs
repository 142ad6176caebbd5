//! A TCP echo client with asyncio's streams. It talks to `ex_5_2_echo_server`
//! on 127.0.0.1:8888 if one runs; otherwise it starts an echo server in this
//! process on a free port, so the example also works alone.
//!
//! The same client in Python:
//!
//! ```python
//! async def client(message):
//!     reader, writer = await asyncio.open_connection("127.0.0.1", 8888)
//!     writer.write(message.encode())
//!     await writer.drain()
//!     reply = await reader.read(100)
//!     print(f"Received: {reply.decode()!r}")
//!     writer.close()
//!     await writer.wait_closed()
//! ```

use std::io::ErrorKind;

use asyncio::{StreamReader, StreamWriter};

async fn echo(mut reader: StreamReader, mut writer: StreamWriter) {
    if let Ok(data) = reader.read(100).await {
        writer.write(&data);
    }
    writer.close(); // flushes the reply first
}

async fn main_task(message: String) -> std::io::Result<()> {
    // A server started here lives until the end of main_task.
    let mut _local_server = None;
    let (mut reader, mut writer) = match asyncio::open_connection("127.0.0.1", 8888).await {
        Ok(pair) => pair,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            println!("no server on 127.0.0.1:8888; starting one in this process");
            let server = asyncio::start_server(echo, "127.0.0.1", 0).await?;
            let port = server.local_addr().expect("a TCP server").port();
            _local_server = Some(server);
            asyncio::open_connection("127.0.0.1", port).await?
        }
        Err(e) => return Err(e),
    };
    println!("Send: {message:?}");
    writer.write(message.as_bytes());
    writer.drain().await?;
    let reply = reader.read(100).await?;
    println!("Received: {:?}", String::from_utf8_lossy(&reply));
    writer.close();
    writer.wait_closed().await
}

fn main() -> std::io::Result<()> {
    let message = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Hello World!".to_owned());
    asyncio::run(main_task(message)).expect("the loop runs")
}
