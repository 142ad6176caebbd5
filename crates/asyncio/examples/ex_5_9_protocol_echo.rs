//! ex_5_2's echo with asyncio's low-level layer instead of streams: a
//! protocol server (`loop.create_server`) and a protocol client
//! (`loop.create_connection`), as in the "TCP Echo Server/Client" examples of
//! asyncio's "Transports and Protocols" page. The server and the client run
//! on one loop, and the run ends once the client's connection is lost.
//!
//! ```text
//! cargo run --example ex_5_9_protocol_echo -- "Hello World!"
//! ```
//!
//! The same in Python:
//!
//! ```python
//! class EchoServerProtocol(asyncio.Protocol):
//!     def connection_made(self, transport):
//!         print("Connection from", transport.get_extra_info("peername"))
//!         self.transport = transport
//!     def data_received(self, data):
//!         print("Data received:", data.decode())
//!         self.transport.write(data)
//!         self.transport.close()
//!
//! class EchoClientProtocol(asyncio.Protocol):
//!     def __init__(self, message, on_con_lost):
//!         self.message, self.on_con_lost = message, on_con_lost
//!     def connection_made(self, transport):
//!         transport.write(self.message.encode())
//!     def data_received(self, data):
//!         print("Data received:", data.decode())
//!     def connection_lost(self, exc):
//!         self.on_con_lost.set_result(True)
//!
//! async def main():
//!     loop = asyncio.get_running_loop()
//!     server = await loop.create_server(EchoServerProtocol, "127.0.0.1", 0)
//!     port = server.sockets[0].getsockname()[1]
//!     on_con_lost = loop.create_future()
//!     transport, protocol = await loop.create_connection(
//!         lambda: EchoClientProtocol("Hello World!", on_con_lost), "127.0.0.1", port)
//!     await on_con_lost
//!     server.close()
//! ```

use asyncio::{LoopFuture, Protocol, Transport, create_connection, create_server};

/// Echoes what it receives, then closes the connection.
struct EchoServerProtocol {
    transport: Option<Transport>,
}

impl Protocol for EchoServerProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        if let Ok(peer) = transport.peername() {
            println!("Connection from {peer}");
        }
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        println!("Data received: {:?}", String::from_utf8_lossy(data));
        let transport = self
            .transport
            .as_ref()
            .expect("connection_made comes first");
        println!("Send: {:?}", String::from_utf8_lossy(data));
        transport
            .write(data)
            .expect("the server never calls write_eof");
        println!("Close the client socket");
        transport.close();
    }
}

/// Sends one message, prints the reply, and says when the connection is lost.
struct EchoClientProtocol {
    message: String,
    on_con_lost: LoopFuture<()>,
}

impl Protocol for EchoClientProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        transport
            .write(self.message.as_bytes())
            .expect("write_eof was not called");
        println!("Data sent: {:?}", self.message);
    }

    fn data_received(&mut self, data: &[u8]) {
        println!("Data received: {:?}", String::from_utf8_lossy(data));
    }

    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        match exc {
            None => println!("The server closed the connection"),
            Some(e) => println!("The connection failed: {e}"),
        }
        let _ = self.on_con_lost.set_result(());
    }
}

async fn main_task(message: String) -> std::io::Result<()> {
    let server = create_server(|| EchoServerProtocol { transport: None }, "127.0.0.1", 0).await?;
    let port = server.local_addr().expect("bound to an IP address").port();

    let on_con_lost = asyncio::create_future::<()>();
    let lost = on_con_lost.clone();
    let (_transport, _protocol) = create_connection(
        move || EchoClientProtocol {
            message,
            on_con_lost: lost,
        },
        "127.0.0.1",
        port,
    )
    .await?;
    // Wait until the protocol signals that the connection is lost.
    let _ = on_con_lost.await;
    server.close();
    server.wait_closed().await;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let message = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Hello World!".to_owned());
    asyncio::run(main_task(message))??;
    Ok(())
}
