//! One connection's TLS state: the rustls connection, the record tracker
//! that tells a truncated record from a clean end, and the options asyncio
//! gives per connection.

use std::io::{self, Read};
use std::time::Duration;

use rustls::Connection;
use rustls_pki_types::{CertificateDer, ServerName};

use super::config::TlsContext;
use super::error::TlsError;

/// asyncio's default `ssl_handshake_timeout`.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// asyncio's default `ssl_shutdown_timeout`.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Follows the record framing of the bytes received, to know whether the
/// stream ended on a record boundary.
#[derive(Debug, Default)]
pub(crate) struct Records {
    /// Header bytes of the current record seen so far (0..5).
    header: usize,
    /// The current record's length field.
    len: [u8; 2],
    /// Body bytes of the current record still to come.
    body_left: usize,
    /// Whole records received.
    pub(crate) complete: u64,
}

impl Records {
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(data.len());
                self.body_left -= n;
                data = &data[n..];
                if self.body_left == 0 {
                    self.complete += 1;
                }
                continue;
            }
            if self.header >= 3 {
                self.len[self.header - 3] = data[0];
            }
            self.header += 1;
            data = &data[1..];
            if self.header == 5 {
                self.header = 0;
                self.body_left = usize::from(u16::from_be_bytes(self.len));
                if self.body_left == 0 {
                    self.complete += 1;
                }
            }
        }
    }

    pub(crate) fn mid_record(&self) -> bool {
        self.header > 0 || self.body_left > 0
    }
}

/// Reads ciphertext from a socket for rustls, noting what it read.
pub(crate) struct Feed<'a, R> {
    pub(crate) inner: R,
    pub(crate) records: &'a mut Records,
    /// The last read returned less than asked: the socket is drained.
    pub(crate) short: bool,
}

impl<R: Read> Read for Feed<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.short = n < buf.len();
        self.records.feed(&buf[..n]);
        Ok(n)
    }
}

pub(crate) struct TlsSession {
    pub(crate) conn: Connection,
    pub(crate) records: Records,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) suppress_ragged_eofs: bool,
    /// The socket reached its end.
    pub(crate) eof: bool,
    /// The peer's close_notify came.
    pub(crate) peer_closed: bool,
    /// Ours went out (`write_eof` or `close`).
    pub(crate) close_notify_sent: bool,
}

impl TlsSession {
    pub(crate) fn new(
        ctx: &TlsContext,
        server_name: Option<&str>,
        shutdown_timeout: Duration,
        suppress_ragged_eofs: bool,
    ) -> Result<TlsSession, io::Error> {
        let mut conn: Connection = match ctx {
            TlsContext::Client(c) => {
                let name = server_name.ok_or(TlsError::ServerHostnameRequired)?;
                let name = ServerName::try_from(name.trim_start_matches('[').trim_end_matches(']'))
                    .map_err(|_| TlsError::InvalidServerName(name.to_owned()))?
                    .to_owned();
                rustls::ClientConnection::new(c.config().clone(), name)
                    .map_err(TlsError::Protocol)?
                    .into()
            }
            TlsContext::Server(s) => rustls::ServerConnection::new(s.config().clone())
                .map_err(TlsError::Protocol)?
                .into(),
        };
        // The streams' own flow control bounds what is written; rustls need
        // not refuse plaintext written before the handshake ends.
        conn.set_buffer_limit(None);
        Ok(TlsSession {
            conn,
            records: Records::default(),
            shutdown_timeout,
            suppress_ragged_eofs,
            eof: false,
            peer_closed: false,
            close_notify_sent: false,
        })
    }

    /// The error for a rustls failure, with what is known of the stream.
    pub(crate) fn error(&self, e: rustls::Error) -> TlsError {
        TlsError::from_rustls(e, self.records.complete == 0)
    }

    /// What a read returns when the socket ended without close_notify.
    pub(crate) fn ragged_eof(&self) -> io::Result<usize> {
        if self.records.mid_record() {
            Err(TlsError::TruncatedRecord.into())
        } else if self.suppress_ragged_eofs {
            Ok(0)
        } else {
            Err(TlsError::MissingCloseNotify.into())
        }
    }

    /// The peer's close_notify came, or the socket ended.
    pub(crate) fn peer_done(&self) -> bool {
        self.eof || self.peer_closed
    }

    pub(crate) fn info(&self) -> TlsInfo {
        let (server_name, side_is_server) = match &self.conn {
            Connection::Client(_) => (None, false),
            Connection::Server(s) => (s.server_name().map(str::to_owned), true),
        };
        TlsInfo {
            server_side: side_is_server,
            protocol_version: self.conn.protocol_version(),
            cipher_suite: self.conn.negotiated_cipher_suite(),
            alpn_protocol: self.conn.alpn_protocol().map(<[u8]>::to_vec),
            server_name,
            peer_certificates: self
                .conn
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default(),
        }
    }
}

/// What asyncio's `get_extra_info` tells of a TLS connection
/// (`'peercert'`, `'cipher'`, `'ssl_object'.version()` and
/// `.selected_alpn_protocol()`, the server's SNI name), from
/// [`StreamWriter::tls_info`](crate::StreamWriter::tls_info).
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// This end is the TLS server.
    pub server_side: bool,
    /// The negotiated version (`ssl_object.version()`).
    pub protocol_version: Option<rustls::ProtocolVersion>,
    /// The negotiated cipher suite (`get_extra_info('cipher')`).
    pub cipher_suite: Option<rustls::SupportedCipherSuite>,
    /// The ALPN protocol agreed on (`selected_alpn_protocol()`).
    pub alpn_protocol: Option<Vec<u8>>,
    /// On a server, the name the client asked for by SNI.
    pub server_name: Option<String>,
    /// The peer's certificate chain, its own certificate first, in DER
    /// (`get_extra_info('peercert')` / `getpeercert(binary_form=True)`);
    /// empty when the peer sent none.
    pub peer_certificates: Vec<CertificateDer<'static>>,
}
