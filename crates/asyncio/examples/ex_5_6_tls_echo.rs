//! ex_5_2's echo server and ex_5_3's client, over TLS: the server makes its
//! own certificate authority at start-up (nothing is read from disk),
//! writes the CA certificate to a file so other clients can trust it, and
//! serves TLS echo on port 8443; the client connects with `ssl=` and
//! `server_hostname`, as asyncio's would.
//!
//! ```text
//! cargo run --example ex_5_6_tls_echo              # server and client in one run
//! cargo run --example ex_5_6_tls_echo -- serve 3   # serve 3 clients, then stop; meanwhile:
//! openssl s_client -connect 127.0.0.1:8443 -CAfile /tmp/asyncio-ex_5_6-ca.pem -quiet
//! python3 -c 'import asyncio, ssl
//! async def main():
//!     ctx = ssl.create_default_context(cafile="/tmp/asyncio-ex_5_6-ca.pem")
//!     r, w = await asyncio.open_connection("127.0.0.1", 8443, ssl=ctx, server_hostname="localhost")
//!     w.write(b"Hello from Python\n"); print(await r.readline())
//! asyncio.run(main())'
//! ```
//!
//! The same in Python:
//!
//! ```python
//! server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
//! server_ctx.load_cert_chain("cert.pem", "key.pem")
//! server = await asyncio.start_server(echo, "127.0.0.1", 8443, ssl=server_ctx)
//!
//! client_ctx = ssl.create_default_context(cafile="ca.pem")
//! reader, writer = await asyncio.open_connection(
//!     "127.0.0.1", 8443, ssl=client_ctx, server_hostname="localhost")
//! ```

use std::cell::Cell;
use std::rc::Rc;

use asyncio::{
    ClientTls, ConnectOptions, ServerOptions, ServerTls, StreamReader, StreamWriter, TlsError,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

const PORT: u16 = 8443;
const CA_FILE: &str = "/tmp/asyncio-ex_5_6-ca.pem";

/// A CA and a server certificate for localhost and 127.0.0.1, made now.
fn make_certificates() -> Result<(String, ServerTls), Box<dyn std::error::Error>> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "ex_5_6 throwaway CA");
    let ca_key = KeyPair::generate()?;
    let ca = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?
        .signed_by(&key, &ca, &ca_key)?;
    let tls = ServerTls::builder()
        .cert_pem(cert.pem(), key.serialize_pem())
        .build()?;
    Ok((ca.pem(), tls))
}

async fn echo(mut reader: StreamReader, mut writer: StreamWriter) -> std::io::Result<()> {
    let info = writer.tls_info().expect("a TLS server's streams speak TLS");
    let line = reader.readline().await?;
    println!(
        "{} ({:?}, {:?}): {:?}",
        writer.peer_addr()?,
        info.protocol_version.expect("the handshake is done"),
        info.cipher_suite.expect("the handshake is done").suite(),
        String::from_utf8_lossy(&line)
    );
    writer.write(&line);
    writer.drain().await?;
    writer.close(); // sends close_notify
    writer.wait_closed().await
}

async fn serve(tls: ServerTls, clients: usize) -> std::io::Result<asyncio::Server> {
    let served = Rc::new(Cell::new(0));
    let handle: Rc<std::cell::OnceCell<asyncio::Server>> = Rc::default();
    let (s, h) = (served.clone(), handle.clone());
    let server = asyncio::start_server_with(
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
                    server.close();
                }
            }
        },
        "127.0.0.1",
        PORT,
        &ServerOptions::new().ssl(tls),
    )
    .await?;
    let _ = handle.set(server.clone());
    Ok(server)
}

async fn client(ca_pem: String, message: &str) -> std::io::Result<()> {
    let tls = ClientTls::builder()
        .add_root_pem(ca_pem)
        .build()
        .map_err(std::io::Error::other)?;
    let opts = ConnectOptions::new().ssl(tls).server_hostname("localhost");
    let (mut reader, mut writer) =
        match asyncio::open_connection_with("127.0.0.1", PORT, &opts).await {
            Ok(pair) => pair,
            Err(e) => {
                if let Some(tls) = TlsError::from_io(&e) {
                    eprintln!("the TLS handshake failed: {tls}");
                }
                return Err(e);
            }
        };
    writer.write(format!("{message}\n").as_bytes());
    let back = reader.readline().await?;
    println!("Received: {:?}", String::from_utf8_lossy(&back));
    writer.close();
    writer.wait_closed().await
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (ca_pem, server_tls) = make_certificates()?;
    std::fs::write(CA_FILE, &ca_pem)?;
    println!("CA certificate for clients: {CA_FILE}");
    println!("  curl --cacert {CA_FILE} ... / openssl s_client -CAfile {CA_FILE} ...");
    asyncio::run(async move {
        if args.first().map(String::as_str) == Some("serve") {
            let clients = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1);
            let server = serve(server_tls, clients).await?;
            println!("Serving TLS on 127.0.0.1:{PORT} until {clients} client(s) are served");
            server.serve_forever().await?;
            server.wait_closed().await;
        } else {
            let server = serve(server_tls, 1).await?;
            client(ca_pem, "Hello World over TLS!").await?;
            server.wait_closed().await;
        }
        std::io::Result::Ok(())
    })??;
    Ok(())
}
