//! Certificates made at run time (a CA, leaves signed by it, expired and
//! self-signed ones) and blocking rustls peers on plain threads, for the TLS
//! tests. Nothing here is a real key: every one is made fresh per test.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use asyncio_streams::{ClientTls, ServerTls, rustls};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};

/// A certificate authority that signs leaves.
pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

/// A leaf certificate and its key, in PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("asyncio-rs test CA {name}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A leaf for `names` (DNS names, or IP addresses written as such).
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |_| {})
    }

    pub fn leaf_with(&self, names: &[&str], tweak: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        for n in names {
            params.subject_alt_names.push(match n.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into().unwrap()),
            });
        }
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("client"),
        );
        tweak(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// The usual set-up: a CA, a server leaf for localhost and 127.0.0.1, and
/// the two configurations.
pub struct Pki {
    pub ca: Ca,
    pub leaf: Leaf,
    pub server: ServerTls,
    pub client: ClientTls,
}

pub fn pki() -> Pki {
    let ca = Ca::new("main");
    let leaf = ca.leaf(&["localhost"]);
    let server = ServerTls::builder()
        .cert_pem(leaf.cert_pem.clone(), leaf.key_pem.clone())
        .build()
        .unwrap();
    let client = ClientTls::builder().add_root_pem(ca.pem()).build().unwrap();
    Pki {
        ca,
        leaf,
        server,
        client,
    }
}

/// A blocking rustls client on a plain socket, for tests that need a peer
/// that misbehaves on purpose.
pub fn blocking_client(
    tls: &ClientTls,
    sock: TcpStream,
    name: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let conn = rustls::ClientConnection::new(
        Arc::clone(tls.config()),
        name.to_owned().try_into().unwrap(),
    )
    .unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// A blocking rustls server on an accepted socket, handshake done.
pub fn blocking_server(
    tls: &ServerTls,
    mut sock: TcpStream,
) -> (rustls::ServerConnection, TcpStream) {
    let mut conn = rustls::ServerConnection::new(Arc::clone(tls.config())).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    (conn, sock)
}

/// The records rustls would send for `data`, without sending them.
pub fn records_for(conn: &mut rustls::ServerConnection, data: &[u8]) -> Vec<u8> {
    conn.writer().write_all(data).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// Reads a blocking socket to its end (the peer closed), ignoring resets.
pub fn drain(mut sock: TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = sock.read_to_end(&mut out);
    out
}

/// How many file descriptors this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}
