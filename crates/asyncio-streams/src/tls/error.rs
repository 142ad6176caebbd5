//! The TLS errors: what went wrong on a connection, and what is wrong with a
//! configuration.

use std::io;
use std::time::Duration;

/// Why a TLS connection failed or could not start; carried inside the
/// `io::Error` that the stream functions return (find it with
/// [`TlsError::from_io`]), as Python's `ssl.SSLError` subclasses are
/// `OSError`s.
///
/// ```
/// let err = std::io::Error::from(asyncio::TlsError::HandshakeEof);
/// assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
/// assert_eq!(asyncio::TlsError::from_io(&err), Some(&asyncio::TlsError::HandshakeEof));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The peer's certificate was not accepted: unknown issuer (self-signed,
    /// or the CA is not trusted), expired, not valid for the name asked for,
    /// or, on a server asking for client certificates, missing.
    #[error("the peer's certificate was rejected: {0}")]
    Certificate(rustls::CertificateError),
    /// The peer gave no certificate although this server requires one.
    #[error("the peer sent no certificate, and this server requires one")]
    NoPeerCertificate,
    /// The peer ended the connection with a fatal TLS alert (it rejected our
    /// certificate, or the versions, ciphers or ALPN protocols did not match).
    #[error("the peer sent the fatal TLS alert {0:?}")]
    AlertReceived(rustls::AlertDescription),
    /// The first bytes from the peer are not a TLS record: a plaintext peer
    /// on a TLS port, or a TLS peer on a plaintext port that answered in
    /// plaintext.
    #[error("the peer does not speak TLS: its first bytes are not a TLS record")]
    NotTls,
    /// The peer closed the connection before the handshake finished (asyncio
    /// raises `ConnectionResetError`).
    #[error("the peer closed the connection during the TLS handshake")]
    HandshakeEof,
    /// The handshake took longer than the handshake timeout (asyncio's
    /// `ssl_handshake_timeout`, 60 s by default); the connection was aborted.
    #[error("the TLS handshake took longer than {0:?}: connection aborted")]
    HandshakeTimeout(Duration),
    /// The connection ended in the middle of a TLS record.
    #[error("the peer closed the connection in the middle of a TLS record")]
    TruncatedRecord,
    /// The connection ended without the peer's `close_notify`. Reported only
    /// with [`suppress_ragged_eofs(false)`](crate::ConnectOptions::suppress_ragged_eofs);
    /// by default this is an ordinary end of stream, as in asyncio.
    #[error("the peer closed the connection without a TLS close_notify")]
    MissingCloseNotify,
    /// Any other violation of the TLS protocol seen by rustls: a record that
    /// fails to decrypt (garbage, tampering), an unexpected message (a
    /// renegotiation attempt), an unsupported version...
    #[error("TLS protocol error")]
    Protocol(#[source] rustls::Error),
    /// The `server_hostname` is neither a DNS name nor an IP address.
    #[error("invalid server_hostname {0:?}: a DNS name or an IP address is expected")]
    InvalidServerName(String),
    /// A TLS connection over a Unix socket needs a `server_hostname` to
    /// check the certificate against (asyncio raises `ValueError`).
    #[error("server_hostname is required for a TLS connection over a Unix socket")]
    ServerHostnameRequired,
    /// A TLS-only option was given without TLS (asyncio raises `ValueError`
    /// "server_hostname is only meaningful with ssl" and the like).
    #[error("{0} is only meaningful with ssl")]
    OptionWithoutTls(&'static str),
    /// `start_tls` on a stream that already speaks TLS.
    #[error("start_tls() on a stream that already uses TLS")]
    AlreadyTls,
    /// `start_tls` was given the reader of another connection: pass the
    /// reader that came with this writer.
    #[error("start_tls() was given the reader of another connection")]
    ReaderMismatch,
}

impl TlsError {
    /// The `TlsError` inside an `io::Error` returned by a stream function,
    /// if the failure was one.
    pub fn from_io(err: &io::Error) -> Option<&TlsError> {
        err.get_ref().and_then(|e| e.downcast_ref::<TlsError>())
    }

    pub(crate) fn from_rustls(e: rustls::Error, first_record: bool) -> TlsError {
        match e {
            rustls::Error::InvalidCertificate(c) => TlsError::Certificate(c),
            rustls::Error::NoCertificatesPresented => TlsError::NoPeerCertificate,
            rustls::Error::AlertReceived(a) => TlsError::AlertReceived(a),
            rustls::Error::InvalidMessage(_) if first_record => TlsError::NotTls,
            other => TlsError::Protocol(other),
        }
    }

    fn kind(&self) -> io::ErrorKind {
        match self {
            TlsError::HandshakeTimeout(_) => io::ErrorKind::TimedOut,
            TlsError::HandshakeEof => io::ErrorKind::ConnectionReset,
            TlsError::TruncatedRecord | TlsError::MissingCloseNotify => {
                io::ErrorKind::UnexpectedEof
            }
            TlsError::InvalidServerName(_)
            | TlsError::ServerHostnameRequired
            | TlsError::OptionWithoutTls(_)
            | TlsError::AlreadyTls
            | TlsError::ReaderMismatch => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::InvalidData,
        }
    }
}

impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> Self {
        io::Error::new(e.kind(), e)
    }
}

/// What is wrong with a [`ClientTls`](crate::ClientTls) or
/// [`ServerTls`](crate::ServerTls) being built (Python's
/// `load_cert_chain`/`load_verify_locations` raise `SSLError` for these).
///
/// ```
/// let err = asyncio::ServerTls::builder().cert_pem(b"not a pem".to_vec(), b"".to_vec()).build();
/// assert!(matches!(err, Err(asyncio::TlsConfigError::Pem { .. })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A PEM input could not be read, or holds no item of the kind expected.
    #[error("cannot read the {what} PEM")]
    Pem {
        /// Which input: "certificate chain", "private key", "CA certificates".
        what: &'static str,
        /// The PEM parser's error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A client was built with no trusted root (asyncio's context would
    /// fail every handshake): add a CA or the system's roots.
    #[error("no trusted root certificate: add a CA (add_root_pem) or the system's roots")]
    NoRoots,
    /// A server was built with no certificate.
    #[error("a TLS server needs a certificate and its private key (cert_pem)")]
    NoCertificate,
    /// The system's certificate store could not be read.
    #[error("cannot load the system's root certificates: {0}")]
    NativeRoots(String),
    /// rustls refused the configuration (a key that does not match its
    /// certificate, an unsupported key type, a bad CA certificate...).
    #[error("rustls refused the configuration")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("cannot build the client certificate verifier: {0}")]
    Verifier(String),
}
