//! asyncio's streams for Rust: TCP and Unix connections as a
//! [`StreamReader`] and a [`StreamWriter`], servers that run a task per
//! connection, asyncio's low-level `loop.sock_*` calls and UDP sockets — all on
//! asyncio-rs's loop (`asyncio-core`'s edge-triggered `IoRegistration`).
//!
//! ```
//! use asyncio::{open_connection, start_server, StreamReader, StreamWriter};
//!
//! async fn handle(mut reader: StreamReader, mut writer: StreamWriter) -> std::io::Result<()> {
//!     while let Some(line) = reader.readline().await.ok().filter(|l| !l.is_empty()) {
//!         writer.write(&line);
//!         writer.drain().await?;
//!     }
//!     writer.close();
//!     writer.wait_closed().await
//! }
//!
//! asyncio::EventLoop::new().run_until_complete(async {
//!     let server = start_server(handle, "127.0.0.1", 0).await?;
//!     let port = server.local_addr().expect("bound to an IP address").port();
//!
//!     let (mut reader, mut writer) = open_connection("127.0.0.1", port).await?;
//!     writer.write(b"Hello World!\n");
//!     assert_eq!(reader.readline().await?, b"Hello World!\n");
//!     writer.close();
//!     writer.wait_closed().await?;
//!
//!     server.close();
//!     server.wait_closed().await;
//!     std::io::Result::Ok(())
//! }).unwrap().unwrap();
//! ```
//!
//! - [`open_connection`], [`open_unix_connection`]: connect and get a
//!   reader/writer pair; [`start_server`], [`start_unix_server`]: a
//!   [`Server`] that runs a callback per connection.
//! - [`StreamReader`]: `read`, `readline`, `readexactly`, `readuntil`,
//!   `at_eof`; [`StreamWriter`]: `write`, `drain` (flow control), `write_eof`,
//!   `close`, `wait_closed`. They also implement `futures-io`'s traits.
//! - [`subprocess`]: [`create_subprocess_exec`], [`create_subprocess_shell`]
//!   and [`Process`], whose pipes are these streams.
//! - [`sock_recv`], [`sock_sendall`], [`sock_accept`], [`sock_connect`]...:
//!   asyncio's `loop.sock_*` on your own non-blocking sockets;
//!   [`DatagramSocket`]: UDP.
//!
//! - TLS (the `tls` feature, on by default; rustls on `ring`):
//!   [`ConnectOptions::ssl`], [`ServerOptions::ssl`] and
//!   [`StreamWriter::start_tls`] with [`ClientTls`] and [`ServerTls`];
//!   the same reader and writer, with every method, speak TLS.
//!
//! - Feature `hyper`: `HyperIo`, `LoopTimer`, `LocalExecutor` (hyper's
//!   `rt` traits on these streams and the loop); feature `tokio`: tokio's
//!   `AsyncRead`/`AsyncBufRead`/`AsyncWrite` on the reader and writer.
//!
//! Differences from asyncio (names are resolved on the default executor;
//! writers close when dropped; TLS details) are listed in
//! `docs/semantics.md`.

#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

mod conn;
mod connect;
mod error;
#[cfg(feature = "hyper")]
mod hyper_rt;
mod nosigpipe;
mod options;
mod reader;
mod sendfile;
mod server;
mod sock;
mod sock_ops;
mod staggered;
pub mod subprocess;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tokio")]
mod tokio_io;
pub mod transports;
mod udp;
mod writer;

pub use connect::{
    AddrInfo, AddrInfoHints, getaddrinfo, getaddrinfo_with, getnameinfo, open_connection,
    open_connection_from_stream, open_connection_with, open_unix_connection,
    open_unix_connection_from_stream, open_unix_connection_with,
};
pub use error::{
    BlockingSocketError, ConnectErrors, IncompleteReadError, LimitOverrunError, ReadError,
    ReadExactlyError, ReadUntilError, WriteBufferLimitsError, WriterClosedError,
};
#[cfg(feature = "hyper")]
pub use hyper_rt::{HyperIo, LocalExecutor, LoopTimer};
#[cfg(feature = "tls")]
pub use options::StartTlsOptions;
pub use options::{AddressFamily, ConnectOptions, DEFAULT_BACKLOG, ServerOptions};
pub use reader::{DEFAULT_LIMIT, Lines, StreamReader};
/// rustls itself, for configurations made by hand
/// ([`ClientTls::from_config`], [`ServerTls::from_config`]) and the types of
/// [`TlsInfo`].
#[cfg(feature = "tls")]
pub use rustls;
/// The certificate and key types of rustls ([`TlsInfo::peer_certificates`]).
#[cfg(feature = "tls")]
pub use rustls_pki_types as pki_types;
pub use sendfile::{SendfileNotAvailableError, SendfileOptions, sendfile, sock_sendfile};
pub use server::{
    Server, ServerStateError, start_server, start_server_from_listener, start_server_with,
    start_unix_server, start_unix_server_from_listener, start_unix_server_with, with_state,
};
pub use sock::StreamAddr;
pub use sock_ops::{
    sock_accept, sock_connect, sock_connect_host, sock_recv, sock_recv_into, sock_recvfrom,
    sock_recvfrom_into, sock_sendall, sock_sendto,
};
pub use staggered::{StaggeredOutcome, staggered_race};
pub use subprocess::{Process, create_subprocess_exec, create_subprocess_shell};
#[cfg(feature = "tls")]
pub use tls::{
    ClientTls, ClientTlsBuilder, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, ServerTls,
    ServerTlsBuilder, TlsConfigError, TlsContext, TlsError, TlsInfo,
};
#[cfg(feature = "tls")]
pub use transports::start_tls;
pub use transports::{
    Buffered, BufferedProtocol, DatagramError, DatagramOptions, DatagramProtocol,
    DatagramTransport, ExtraInfo, Protocol, ProtocolCell, SubprocessProtocol, SubprocessTransport,
    Transport, TransportError, connect_accepted_socket, connect_read_pipe, connect_write_pipe,
    create_connection, create_connection_with, create_datagram_endpoint, create_server,
    create_server_from_listener, create_server_with, create_unix_connection,
    create_unix_connection_with, create_unix_server, create_unix_server_from_listener,
    create_unix_server_with, subprocess_exec, subprocess_exec_with, subprocess_shell,
};
pub use udp::DatagramSocket;

/// `socket2`, whose `Socket` [`sock_connect`] takes (a socket not yet connected).
pub use socket2;
pub use writer::StreamWriter;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
