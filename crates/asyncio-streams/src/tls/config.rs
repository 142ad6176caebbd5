//! The TLS configurations: asyncio's `SSLContext`, as a client's and a
//! server's rustls configuration with builders for what Python's `ssl`
//! module sets (`load_verify_locations`, `load_cert_chain`,
//! `set_alpn_protocols`, `sni_callback`, `verify_mode`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::TlsConfigError;

/// The crypto provider of every configuration built here: rustls on `ring`,
/// which builds with cargo and a C compiler alone. (rustls 0.23.48 marks it
/// deprecated for want of post-quantum key exchange; aws-lc-rs has that but
/// may need cmake to build. A hand-made configuration may use any provider.)
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    #[allow(deprecated)]
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn certs(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsConfigError::Pem { what, source })?;
    if certs.is_empty() {
        return Err(TlsConfigError::Pem {
            what,
            source: rustls_pki_types::pem::Error::NoItemsFound,
        });
    }
    Ok(certs)
}

fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsConfigError> {
    let chain = certs(chain_pem, "certificate chain")?;
    let key = key_der(key_pem)?;
    let ck = CertifiedKey::from_der(chain, key, &provider())?;
    Ok(ck)
}

fn roots_from(pems: &[Vec<u8>], native: bool) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for pem in pems {
        for cert in certs(pem, "CA certificates")? {
            roots.add(cert)?;
        }
    }
    if native {
        let loaded = rustls_native_certs::load_native_certs();
        if loaded.certs.is_empty() {
            let why = loaded
                .errors
                .first()
                .map(ToString::to_string)
                .unwrap_or_else(|| "the store is empty".to_owned());
            return Err(TlsConfigError::NativeRoots(why));
        }
        roots.add_parsable_certificates(loaded.certs);
    }
    Ok(roots)
}

/// A client's TLS configuration (asyncio's client `SSLContext`), given to
/// [`ConnectOptions::ssl`](crate::ConnectOptions::ssl) or to
/// [`StreamWriter::start_tls`](crate::StreamWriter::start_tls). Cheap to
/// clone; one configuration serves any number of connections.
///
/// ```
/// # let ca_pem = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap().cert.pem();
/// // Python: ctx = ssl.create_default_context(cafile="ca.pem"); ctx.set_alpn_protocols(["h2"])
/// let tls = asyncio::ClientTls::builder()
///     .add_root_pem(ca_pem.into_bytes())
///     .alpn_protocols(["h2", "http/1.1"])
///     .build()
///     .unwrap();
/// assert_eq!(tls.config().alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
/// ```
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("alpn_protocols", &self.config.alpn_protocols.len())
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// A builder: trusted roots, a client certificate, ALPN.
    pub fn builder() -> ClientTlsBuilder {
        ClientTlsBuilder::default()
    }

    /// Python's `ssl.create_default_context()`: the system's trusted roots,
    /// certificate and host name checks on.
    ///
    /// # Errors
    /// [`TlsConfigError::NativeRoots`] if the system store cannot be read.
    pub fn create_default_context() -> Result<ClientTls, TlsConfigError> {
        ClientTls::builder().native_roots().build()
    }

    /// Uses a rustls configuration made by hand (a custom verifier, session
    /// resumption settings...).
    pub fn from_config(config: Arc<ClientConfig>) -> ClientTls {
        ClientTls { config }
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }
}

/// Builds a [`ClientTls`]; every input is checked by [`build`](Self::build).
#[derive(Debug, Default, Clone)]
pub struct ClientTlsBuilder {
    roots: Vec<Vec<u8>>,
    native: bool,
    client_cert: Option<(Vec<u8>, Vec<u8>)>,
    alpn: Vec<Vec<u8>>,
}

impl ClientTlsBuilder {
    /// Trusts the CA certificates in `pem` (Python's
    /// `load_verify_locations(cadata=...)`); may be called several times.
    pub fn add_root_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.roots.push(pem.into());
        self
    }

    /// Trusts the system's root certificates as well (Python's
    /// `load_default_certs()`).
    pub fn native_roots(mut self) -> Self {
        self.native = true;
        self
    }

    /// Presents this certificate chain and key when the server asks for a
    /// client certificate (Python's `load_cert_chain` on a client context).
    pub fn client_cert_pem(
        mut self,
        chain_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.client_cert = Some((chain_pem.into(), key_pem.into()));
        self
    }

    /// The ALPN protocols to offer, most preferred first (Python's
    /// `set_alpn_protocols`).
    pub fn alpn_protocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Checks the inputs and builds the configuration.
    ///
    /// # Errors
    /// [`TlsConfigError::NoRoots`] with no trusted root; `Pem` for an input
    /// that does not parse; `Rustls` for a key that does not fit its
    /// certificate; `NativeRoots` if the system store cannot be read.
    pub fn build(self) -> Result<ClientTls, TlsConfigError> {
        let roots = roots_from(&self.roots, self.native)?;
        if roots.is_empty() {
            return Err(TlsConfigError::NoRoots);
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let mut config = match &self.client_cert {
            Some((chain, key)) => {
                builder.with_client_auth_cert(certs(chain, "certificate chain")?, key_der(key)?)?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn;
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }
}

fn key_der(key_pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| TlsConfigError::Pem {
        what: "private key",
        source,
    })
}

/// A server's TLS configuration (asyncio's server `SSLContext`), given to
/// [`ServerOptions::ssl`](crate::ServerOptions::ssl) or to
/// [`StreamWriter::start_tls`](crate::StreamWriter::start_tls).
///
/// ```
/// let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// // Python: ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain("cert.pem", "key.pem")
/// let tls = asyncio::ServerTls::builder()
///     .cert_pem(ck.cert.pem(), ck.key_pair.serialize_pem())
///     .build()
///     .unwrap();
/// assert!(tls.config().alpn_protocols.is_empty());
/// ```
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("alpn_protocols", &self.config.alpn_protocols.len())
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// A builder: the certificate (and more, chosen by SNI), client
    /// certificates, ALPN.
    pub fn builder() -> ServerTlsBuilder {
        ServerTlsBuilder::default()
    }

    /// Uses a rustls configuration made by hand.
    pub fn from_config(config: Arc<ServerConfig>) -> ServerTls {
        ServerTls { config }
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }
}

/// Builds a [`ServerTls`]; every input is checked by [`build`](Self::build).
#[derive(Debug, Default, Clone)]
pub struct ServerTlsBuilder {
    default_cert: Option<(Vec<u8>, Vec<u8>)>,
    sni: Vec<(String, Vec<u8>, Vec<u8>)>,
    client_roots: Option<(Vec<u8>, bool)>,
    alpn: Vec<Vec<u8>>,
}

impl ServerTlsBuilder {
    /// The certificate chain and private key served to every client whose
    /// SNI name has no certificate of its own (Python's `load_cert_chain`).
    pub fn cert_pem(mut self, chain_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        self.default_cert = Some((chain_pem.into(), key_pem.into()));
        self
    }

    /// A certificate served to clients that ask for `server_name` by SNI
    /// (what Python does with an `sni_callback` that swaps the context);
    /// may be called once per name. Names match without regard to case.
    pub fn sni_cert_pem(
        mut self,
        server_name: impl Into<String>,
        chain_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.sni.push((
            server_name.into().to_ascii_lowercase(),
            chain_pem.into(),
            key_pem.into(),
        ));
        self
    }

    /// Asks clients for a certificate issued by one of the CAs in `ca_pem`
    /// (mutual TLS): `required` is Python's `verify_mode = CERT_REQUIRED`,
    /// otherwise `CERT_OPTIONAL` (a client without one is let in; one with a
    /// bad one is not).
    pub fn client_auth_pem(mut self, ca_pem: impl Into<Vec<u8>>, required: bool) -> Self {
        self.client_roots = Some((ca_pem.into(), required));
        self
    }

    /// The ALPN protocols this server speaks, most preferred first (Python's
    /// `set_alpn_protocols`); a client that offers none of them is refused.
    pub fn alpn_protocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Checks the inputs and builds the configuration.
    ///
    /// # Errors
    /// [`TlsConfigError::NoCertificate`] with no certificate at all; `Pem`
    /// for an input that does not parse; `Rustls` for a key that does not
    /// fit its certificate; `Verifier` for unusable client CAs.
    pub fn build(self) -> Result<ServerTls, TlsConfigError> {
        let default = match &self.default_cert {
            Some((chain, key)) => Some(Arc::new(certified_key(chain, key)?)),
            None => None,
        };
        let mut by_name = HashMap::new();
        for (name, chain, key) in &self.sni {
            by_name.insert(name.clone(), Arc::new(certified_key(chain, key)?));
        }
        if default.is_none() && by_name.is_empty() {
            return Err(TlsConfigError::NoCertificate);
        }
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match &self.client_roots {
            Some((ca, required)) => {
                let roots = Arc::new(roots_from(std::slice::from_ref(ca), false)?);
                let v = WebPkiClientVerifier::builder_with_provider(roots, provider());
                let v = if *required {
                    v
                } else {
                    v.allow_unauthenticated()
                };
                builder.with_client_cert_verifier(
                    v.build()
                        .map_err(|e| TlsConfigError::Verifier(e.to_string()))?,
                )
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(SniResolver { default, by_name }));
        config.alpn_protocols = self.alpn;
        Ok(ServerTls {
            config: Arc::new(config),
        })
    }
}

/// Picks the certificate by the client's SNI name, falling back to the
/// default one.
#[derive(Debug)]
struct SniResolver {
    default: Option<Arc<CertifiedKey>>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        hello
            .server_name()
            .and_then(|n| self.by_name.get(&n.to_ascii_lowercase()))
            .or(self.default.as_ref())
            .cloned()
    }
}

/// Either side's configuration, for
/// [`StreamWriter::start_tls`](crate::StreamWriter::start_tls): a
/// [`ClientTls`] makes this end the TLS client, a [`ServerTls`] the server
/// (asyncio's `loop.start_tls(server_side=...)`).
#[derive(Debug, Clone)]
pub enum TlsContext {
    /// This end is the TLS client.
    Client(ClientTls),
    /// This end is the TLS server.
    Server(ServerTls),
}

impl From<ClientTls> for TlsContext {
    fn from(c: ClientTls) -> Self {
        TlsContext::Client(c)
    }
}

impl From<ServerTls> for TlsContext {
    fn from(s: ServerTls) -> Self {
        TlsContext::Server(s)
    }
}
