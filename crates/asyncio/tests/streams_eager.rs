//! The streams under the eager task factory: the writer's flusher task and
//! the server's callbacks start inside create_task, while the stream that
//! spawned them is in the middle of a call.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

#[test]
fn eager_factory_echoes_large_writes_and_closes_without_loss() {
    const SIZE: usize = 4 * 1024 * 1024;
    // The handler's outcome is recorded and checked after the run.
    let closed: Rc<RefCell<Option<std::io::Result<()>>>> = Rc::default();
    let record = closed.clone();
    let seen = closed.clone();
    let out = asyncio::run(asyncio::timeout(Duration::from_secs(30), async move {
        asyncio::set_task_factory(asyncio::eager_task_factory);
        let server = asyncio::start_server(
            move |mut r: asyncio::StreamReader, mut w: asyncio::StreamWriter| {
                let record = record.clone();
                async move {
                    let data = r.read_to_eof().await.unwrap_or_default();
                    w.write(&data); // more than the socket takes: the flusher starts eagerly
                    w.close();
                    *record.borrow_mut() = Some(w.wait_closed().await);
                }
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let (mut r, mut w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        let data: Vec<u8> = (0..SIZE).map(|i| (i % 253) as u8).collect();
        w.write(&data);
        w.write_eof().unwrap();
        let back = r.read_to_eof().await.unwrap();
        assert!(back == data, "the echo differs");
        server.close();
        server.wait_closed().await;
        // The handler's wait_closed returned first (its waker was woken
        // before the server's); let it record, within a bound.
        for _ in 0..100 {
            if seen.borrow().is_some() {
                break;
            }
            asyncio::yield_now().await;
        }
    }));
    out.unwrap().expect("the echo finished within 30 s");
    let closed = closed.borrow_mut().take();
    assert!(matches!(closed, Some(Ok(()))), "{closed:?}");
}

/// The same over TLS: the handshake task, the flusher of the encrypted
/// records and the close_notify wait all start inside create_task.
#[test]
fn eager_factory_echoes_large_writes_over_tls_and_closes_cleanly() {
    const SIZE: usize = 1024 * 1024;
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let server_tls = asyncio::ServerTls::builder()
        .cert_pem(made.cert.pem(), made.key_pair.serialize_pem())
        .build()
        .unwrap();
    let client_tls = asyncio::ClientTls::builder()
        .add_root_pem(made.cert.pem())
        .build()
        .unwrap();
    let closed: Rc<RefCell<Option<std::io::Result<()>>>> = Rc::default();
    let record = closed.clone();
    let seen = closed.clone();
    let out = asyncio::run(asyncio::timeout(Duration::from_secs(30), async move {
        asyncio::set_task_factory(asyncio::eager_task_factory);
        let server = asyncio::start_server_with(
            move |mut r: asyncio::StreamReader, mut w: asyncio::StreamWriter| {
                let record = record.clone();
                async move {
                    let data = r.read_to_eof().await.unwrap_or_default();
                    w.write(&data);
                    w.close();
                    *record.borrow_mut() = Some(w.wait_closed().await);
                }
            },
            "127.0.0.1",
            0,
            &asyncio::ServerOptions::new().ssl(server_tls),
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let opts = asyncio::ConnectOptions::new()
            .ssl(client_tls)
            .server_hostname("localhost");
        let (mut r, mut w) = asyncio::open_connection_with("127.0.0.1", port, &opts)
            .await
            .unwrap();
        let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
        w.write(&data);
        w.write_eof().unwrap();
        let back = r.read_to_eof().await.unwrap();
        assert!(back == data, "the echo differs");
        w.close();
        w.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await;
        for _ in 0..100 {
            if seen.borrow().is_some() {
                break;
            }
            asyncio::yield_now().await;
        }
    }));
    out.unwrap().expect("the echo finished within 30 s");
    let closed = closed.borrow_mut().take();
    assert!(matches!(closed, Some(Ok(()))), "{closed:?}");
}
