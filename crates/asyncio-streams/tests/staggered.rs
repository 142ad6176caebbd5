//! `staggered_race` and Happy Eyeballs, derived from CPython's
//! `test_asyncio/test_staggered.py` and the `happy_eyeballs_delay`,
//! `interleave`, `all_errors`, `family` and `local_addr` tests of
//! `test_base_events.py`.

mod common;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use asyncio_streams::{AddressFamily, ConnectErrors, ConnectOptions, staggered_race};
use common::{run, serve};

type Attempt = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Result<u32, String>>>>>;

fn ok(v: u32) -> Attempt {
    Box::new(move || Box::pin(async move { Ok(v) }))
}

fn fail(msg: &'static str) -> Attempt {
    Box::new(move || Box::pin(async move { Err(msg.to_owned()) }))
}

/// Never finishes; counts its starts and drops.
fn stall(started: &Rc<Cell<u32>>, dropped: &Rc<Cell<u32>>) -> Attempt {
    let (s, d) = (started.clone(), dropped.clone());
    Box::new(move || {
        s.set(s.get() + 1);
        struct OnDrop(Rc<Cell<u32>>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let guard = OnDrop(d);
        Box::pin(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok(0)
        })
    })
}

#[test]
fn no_attempts_no_winner() {
    let (winner, errors) = run(staggered_race(Vec::<Attempt>::new(), None));
    assert!(winner.is_none());
    assert!(errors.is_empty());
}

#[test]
fn one_successful_attempt_wins() {
    let (winner, errors) = run(staggered_race(vec![ok(1)], None));
    assert_eq!(winner, Some((0, 1)));
    assert_eq!(errors, [None]);
}

#[test]
fn a_failure_starts_the_next_attempt_at_once() {
    // The delay is long: the second attempt runs because the first failed.
    let (winner, errors) = run(staggered_race(
        vec![fail("first"), ok(2)],
        Some(Duration::from_secs(20)),
    ));
    assert_eq!(winner, Some((1, 2)));
    assert_eq!(errors, [Some("first".to_owned()), None]);
}

#[test]
fn after_the_delay_the_next_attempt_races_and_the_stalled_one_is_cancelled() {
    let (started, dropped) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let (s, d) = (started.clone(), dropped.clone());
    let (winner, errors) = run(async move {
        staggered_race(
            vec![stall(&s, &d), ok(2), ok(3)],
            Some(Duration::from_millis(1)),
        )
        .await
    });
    assert_eq!(winner, Some((1, 2)));
    // The third was never needed, so never started.
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(Option::is_none));
    assert_eq!((started.get(), dropped.get()), (1, 1));
}

#[test]
fn every_attempt_failing_gives_every_error_in_order() {
    let (winner, errors) = run(staggered_race(
        vec![fail("a"), fail("b"), fail("c")],
        Some(Duration::from_millis(1)),
    ));
    assert!(winner.is_none());
    assert_eq!(
        errors,
        [
            Some("a".to_owned()),
            Some("b".to_owned()),
            Some("c".to_owned())
        ]
    );
}

#[test]
fn without_a_delay_the_next_attempt_waits_for_the_one_before_to_fail() {
    let (started, dropped) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let (s, d) = (started.clone(), dropped.clone());
    let second = Rc::new(Cell::new(false));
    let sec = second.clone();
    let out = run(async move {
        let attempts: Vec<Attempt> = vec![
            stall(&s, &d),
            Box::new(move || {
                sec.set(true);
                Box::pin(async { Ok(2) })
            }),
        ];
        asyncio_core::timeout(Duration::from_millis(30), staggered_race(attempts, None)).await
    });
    assert!(
        out.is_err(),
        "the race ends only when the stalled attempt does"
    );
    assert!(!second.get(), "the second attempt never started");
    assert_eq!(
        dropped.get(),
        1,
        "the stalled attempt was dropped with the race"
    );
}

#[test]
fn happy_eyeballs_connects_and_local_addr_binds_the_client_side() {
    run(async {
        let (server, port) = serve(|_r, _w| async {}).await;
        let local = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local_addr = local.local_addr().unwrap();
        drop(local);
        let opts = ConnectOptions::new()
            .happy_eyeballs_delay(Duration::from_millis(250))
            .local_addr(local_addr);
        let (_r, w) = asyncio_streams::open_connection_with("localhost", port, &opts)
            .await
            .unwrap();
        assert_eq!(w.local_addr().unwrap().as_inet(), Some(local_addr));
        assert!(w.peer_addr().unwrap().as_inet().unwrap().is_ipv4());
        server.close();
    });
}

#[test]
fn family_keeps_only_that_familys_addresses() {
    run(async {
        let (server, port) = serve(|_r, _w| async {}).await;
        let v6_only = ConnectOptions::new().family(AddressFamily::Inet6);
        let err = asyncio_streams::open_connection_with("127.0.0.1", port, &v6_only)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        let v4 = ConnectOptions::new().family(AddressFamily::Inet);
        let (_r, w) = asyncio_streams::open_connection_with("127.0.0.1", port, &v4)
            .await
            .unwrap();
        assert!(w.peer_addr().unwrap().as_inet().unwrap().is_ipv4());
        server.close();
    });
}

#[test]
fn all_errors_gives_each_address_its_error_and_without_it_one_error_stays_plain() {
    run(async {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let plain = asyncio_streams::open_connection("127.0.0.1", port)
            .await
            .unwrap_err();
        assert_eq!(plain.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(plain.get_ref().is_none_or(|e| !e.is::<ConnectErrors>()));
        let opts = ConnectOptions::new().all_errors(true);
        let all = asyncio_streams::open_connection_with("127.0.0.1", port, &opts)
            .await
            .unwrap_err();
        assert_eq!(all.kind(), std::io::ErrorKind::ConnectionRefused);
        let group = all
            .get_ref()
            .unwrap()
            .downcast_ref::<ConnectErrors>()
            .unwrap();
        assert_eq!(group.errors.len(), 1);
        assert_eq!(group.errors[0].0.port(), port);
        assert!(
            all.to_string()
                .starts_with("Multiple exceptions: [127.0.0.1:")
        );
    });
}
