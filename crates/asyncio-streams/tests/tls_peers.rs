//! TLS against programs no one here wrote, run as child processes:
//! `openssl s_client` and `openssl s_server`, and CPython's asyncio
//! (`open_connection(ssl=)`, `start_server(ssl=)`, `StreamWriter.start_tls`)
//! in both directions. Each test fails with a clear message when the
//! program is missing (`.ci/run` installs them). The curl test is in the
//! facade's tests, beside the hyper glue.

mod common;
mod tls_support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use asyncio_streams::{
    ConnectOptions, ServerOptions, StartTlsOptions, StreamReader, StreamWriter,
    open_connection_with, start_server_with,
};
use common::run;
use tls_support::{Pki, pki};

/// A directory with the CA, the server's certificate and key, removed on drop.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(p: &Pki, tag: &str) -> Files {
        let dir = std::env::temp_dir().join(format!("asyncio-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), p.ca.pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), &p.leaf.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &p.leaf.key_pem).unwrap();
        Files { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Fails the test, saying what to install, when `program` is not there.
fn require(program: &str, install: &str) {
    let found = Command::new(program)
        .arg(if program == "openssl" {
            "version"
        } else {
            "--version"
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{program}` is not installed: this test runs it as a real TLS peer ({install})"
    );
}

fn require_python() {
    require("python3", "apt-get install python3");
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.version_info >= (3, 11))"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "True",
        "python3 must be 3.11 or later (StreamWriter.start_tls)"
    );
}

/// Waits for a child for at most 30 s, killing it past that.
fn finish(mut child: Child) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the child ran over 30 s: stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    asyncio_core::to_thread(f).await.unwrap()
}

fn stdout_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "the child failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One line in, "echo: " + the line out, then close.
async fn echo_once(mut r: StreamReader, mut w: StreamWriter) {
    if let Ok(line) = r.readline().await {
        w.write(b"echo: ");
        w.write(&line);
    }
    w.close();
    let _ = w.wait_closed().await;
}

async fn tls_echo_server(p: &Pki) -> (asyncio_streams::Server, u16) {
    let opts = ServerOptions::new().ssl(p.server.clone());
    let server = start_server_with(echo_once, "127.0.0.1", 0, &opts)
        .await
        .unwrap();
    let port = server.local_addr().unwrap().port();
    (server, port)
}

fn spawn_with_stdin(cmd: &mut Command, input: &[u8]) -> Child {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.as_mut().unwrap().write_all(input).unwrap();
    child
}

#[test]
fn openssl_s_client_talks_to_our_tls_server() {
    require("openssl", "apt-get install openssl");
    let p = pki();
    let files = Files::new(&p, "s_client");
    let ca = files.path("ca.pem");
    run(async move {
        let (_server, port) = tls_echo_server(&p).await;
        let out = blocking(move || {
            let child = spawn_with_stdin(
                Command::new("openssl").args([
                    "s_client",
                    "-connect",
                    &format!("127.0.0.1:{port}"),
                    "-servername",
                    "localhost",
                    "-verify_hostname",
                    "localhost",
                    "-CAfile",
                    &ca,
                    "-verify_return_error",
                    "-quiet",
                ]),
                b"hello from openssl\n",
            );
            finish(child)
        })
        .await;
        assert!(
            stdout_of(&out).contains("echo: hello from openssl"),
            "{out:?}"
        );
    });
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Starts a child server and waits until it prints `ready` on stdout.
#[expect(
    clippy::zombie_processes,
    reason = "the caller waits for the child; a failed read of its stdout fails the test"
)]
fn spawn_server(
    cmd: &mut Command,
    ready: &str,
) -> (Child, BufReader<std::process::ChildStdout>, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = stdout.read_line(&mut line).unwrap();
        if n == 0 {
            let out = child.wait_with_output().unwrap();
            panic!("the child server ended before it was ready: {out:?}");
        }
        if line.contains(ready) {
            return (child, stdout, line);
        }
    }
}

#[test]
fn our_tls_client_talks_to_openssl_s_server() {
    require("openssl", "apt-get install openssl");
    let p = pki();
    let files = Files::new(&p, "s_server");
    let port = free_port();
    let (child, _stdout, _) = spawn_server(
        Command::new("openssl").args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            &files.path("cert.pem"),
            "-key",
            &files.path("key.pem"),
            "-naccept",
            "1",
            "-rev",
        ]),
        "ACCEPT",
    );
    run(async move {
        let opts = ConnectOptions::new()
            .ssl(p.client.clone())
            .server_hostname("localhost");
        let (mut r, mut w) = open_connection_with("127.0.0.1", port, &opts)
            .await
            .unwrap();
        w.write(b"hello openssl\n");
        // s_server -rev answers each line reversed.
        assert_eq!(r.readline().await.unwrap(), b"lssnepo olleh\n");
        let info = w.tls_info().unwrap();
        assert_eq!(info.peer_certificates[0].as_ref(), p.leaf.der.as_slice());
        w.close();
    });
    let mut child = child;
    let _ = child.kill();
    let _ = child.wait();
}

const PY_CLIENT: &str = r#"
import asyncio, ssl, sys
async def main(port, cafile, starttls):
    ctx = ssl.create_default_context(cafile=cafile)
    if starttls:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"STARTTLS\n")
        assert await r.readline() == b"OK\n"
        await w.start_tls(ctx, server_hostname="localhost")
    else:
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    w.write(b"hello from cpython\n")
    await w.drain()
    print((await r.readline()).decode().strip())
    print(w.get_extra_info("ssl_object").version())
    w.close()
    await w.wait_closed()
asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3] == "starttls"))
"#;

const PY_SERVER: &str = r#"
import asyncio, ssl, sys
async def main(cert, key, starttls):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    done = asyncio.Event()
    async def handle(r, w):
        if starttls:
            assert await r.readline() == b"STARTTLS\n"
            w.write(b"OK\n")
            await w.drain()
            await w.start_tls(ctx)
        line = await r.readline()
        w.write(b"cpython says: " + line)
        await w.drain()
        w.close()
        await w.wait_closed()
        done.set()
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=None if starttls else ctx)
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    await asyncio.wait_for(done.wait(), 30)
    server.close()
asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] == "starttls"))
"#;

fn python_client_against_us(starttls: bool) {
    require_python();
    let p = pki();
    let files = Files::new(&p, if starttls { "py-c-st" } else { "py-c" });
    let ca = files.path("ca.pem");
    run(async move {
        let server_tls = p.server.clone();
        let server = if starttls {
            common::serve(move |mut r: StreamReader, mut w: StreamWriter| {
                let tls = server_tls.clone();
                async move {
                    assert_eq!(r.readline().await.unwrap(), b"STARTTLS\n");
                    w.write(b"OK\n");
                    w.start_tls(&mut r, tls, &StartTlsOptions::new())
                        .await
                        .unwrap();
                    echo_once(r, w).await;
                }
            })
            .await
        } else {
            tls_echo_server(&p).await
        };
        let port = server.1;
        let out = blocking(move || {
            let child = spawn_with_stdin(
                Command::new("python3").args([
                    "-c",
                    PY_CLIENT,
                    &port.to_string(),
                    &ca,
                    if starttls { "starttls" } else { "ssl" },
                ]),
                b"",
            );
            finish(child)
        })
        .await;
        let text = stdout_of(&out);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("echo: hello from cpython"));
        assert_eq!(lines.next(), Some("TLSv1.3"));
    });
}

fn us_against_python_server(starttls: bool) {
    require_python();
    let p = pki();
    let files = Files::new(&p, if starttls { "py-s-st" } else { "py-s" });
    let (child, _stdout, ready) = spawn_server(
        Command::new("python3").args([
            "-c",
            PY_SERVER,
            &files.path("cert.pem"),
            &files.path("key.pem"),
            if starttls { "starttls" } else { "ssl" },
        ]),
        "PORT",
    );
    let port: u16 = ready.trim().trim_start_matches("PORT ").parse().unwrap();
    run(async move {
        let (mut r, mut w) = if starttls {
            let (mut r, mut w) = open_connection_with("127.0.0.1", port, &ConnectOptions::new())
                .await
                .unwrap();
            w.write(b"STARTTLS\n");
            assert_eq!(r.readline().await.unwrap(), b"OK\n");
            let opts = StartTlsOptions::new().server_hostname("localhost");
            w.start_tls(&mut r, p.client.clone(), &opts).await.unwrap();
            (r, w)
        } else {
            let opts = ConnectOptions::new()
                .ssl(p.client.clone())
                .server_hostname("localhost");
            open_connection_with("127.0.0.1", port, &opts)
                .await
                .unwrap()
        };
        w.write(b"hello python\n");
        assert_eq!(r.readline().await.unwrap(), b"cpython says: hello python\n");
        // CPython closes with close_notify: a clean end of stream.
        assert_eq!(r.read_to_eof().await.unwrap(), b"");
        w.close();
        w.wait_closed().await.unwrap();
    });
    let out = finish(child);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn cpython_asyncio_client_talks_to_our_tls_server() {
    python_client_against_us(false);
}

#[test]
fn cpython_asyncio_client_upgrades_with_start_tls_against_our_server() {
    python_client_against_us(true);
}

#[test]
fn our_tls_client_talks_to_a_cpython_asyncio_tls_server() {
    us_against_python_server(false);
}

#[test]
fn our_start_tls_client_upgrades_against_a_cpython_asyncio_server() {
    us_against_python_server(true);
}
