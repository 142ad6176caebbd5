//! TLS on the streams, on rustls (the `tls` feature, on by default): the
//! configurations, the per-connection state, and the handshake.

mod config;
mod error;
mod session;

pub use config::{ClientTls, ClientTlsBuilder, ServerTls, ServerTlsBuilder, TlsContext};
pub use error::{TlsConfigError, TlsError};
pub use session::{DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, TlsInfo};
pub(crate) use session::{Feed, TlsSession};
