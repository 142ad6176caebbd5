//! The uninitialised-buffer reads of the review (tokio's `AsyncRead`,
//! hyper's `Read`) over a Unix socket pair, small enough for Miri
//! (`cargo +nightly miri test -p asyncio-streams --features tokio,hyper
//! --test review_io_miri`): Miri would check that no uninitialised byte is
//! read and that no byte past what was written is claimed. Miri (nightly
//! 2026-05-19) stops at `set_nonblocking` ("cannot use ioctl on
//! socketpair"), so the test runs natively only for now.
#![cfg(all(feature = "tokio", feature = "hyper"))]

use std::io::Write;
use std::mem::MaybeUninit;
use std::pin::Pin;

fn pair() -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
) {
    std::os::unix::net::UnixStream::pair().unwrap()
}

#[test]
#[cfg_attr(miri, ignore = "Miri: cannot use ioctl (FIONBIO) on socketpair")]
fn tokio_and_hyper_reads_into_uninit_memory() {
    let (a, b) = pair();
    // Miri's socketpair takes write(2), not send(2): write through a File.
    let mut b = std::fs::File::from(std::os::fd::OwnedFd::from(b));
    let data: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
    b.write_all(b"line\n").unwrap();
    b.write_all(&data).unwrap();
    drop(b);
    let got = asyncio::run(async move {
        let (mut r, w) =
            asyncio::open_unix_connection_from_stream(a, &asyncio::ConnectOptions::new()).unwrap();
        // The line and (some of) what follows land in the reader's buffer.
        assert_eq!(r.readline().await.unwrap(), b"line\n");
        let mut out = Vec::new();
        // tokio: the buffered bytes first, then the socket, into uninit memory.
        for size in [1usize, 0, 3, 64] {
            let mut storage = vec![MaybeUninit::<u8>::uninit(); size];
            let mut rb = tokio::io::ReadBuf::uninit(&mut storage);
            std::future::poll_fn(|cx| {
                tokio::io::AsyncRead::poll_read(Pin::new(&mut r), cx, &mut rb)
            })
            .await
            .unwrap();
            assert!(rb.filled().len() <= size);
            out.extend_from_slice(rb.filled());
        }
        // hyper: the rest.
        let mut io = asyncio::HyperIo::new(r, w);
        for _ in 0..100 {
            let mut storage = vec![MaybeUninit::<u8>::uninit(); 50];
            let mut rb = hyper::rt::ReadBuf::uninit(&mut storage);
            std::future::poll_fn(|cx| {
                hyper::rt::Read::poll_read(Pin::new(&mut io), cx, rb.unfilled())
            })
            .await
            .unwrap();
            if rb.filled().is_empty() {
                break;
            }
            // Reading every filled byte: Miri flags any that is uninitialised.
            out.extend_from_slice(rb.filled());
        }
        out
    })
    .unwrap();
    assert_eq!(got, data);
}
