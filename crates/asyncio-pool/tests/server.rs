//! A server on every loop of a pool: `SO_REUSEPORT` sockets, or one acceptor
//! handing sockets round to the loops.

use std::collections::BTreeSet;

use asyncio_pool::{AcceptMode, LoopPool, PoolListener};
use asyncio_streams::{ServerOptions, StreamReader, StreamWriter, open_connection};
use asyncio_sync::Channel;

/// Serves "worker N" on each loop; worker 0 opens `conns` connections one
/// after the other and returns which worker answered each; then every
/// worker closes its server.
fn who_answers(mode: AcceptMode, conns: usize) -> (AcceptMode, Vec<usize>) {
    let listener = PoolListener::bind("127.0.0.1:0", 2, mode).unwrap();
    let port = listener.local_addr().port();
    let stop = Channel::<()>::new(0);
    let out = LoopPool::new()
        .workers(2)
        .run(|w| {
            let (listener, stop) = (listener.clone(), stop.clone());
            async move {
                let me = w.index();
                let server = listener.start_server(
                    &w,
                    move |_r: StreamReader, mut w: StreamWriter| async move {
                        w.write(me.to_string().as_bytes());
                    },
                    &ServerOptions::new(),
                )?;
                let mut answers = Vec::new();
                if me == 0 {
                    for _ in 0..conns {
                        let (mut r, _w) = open_connection("127.0.0.1", port).await?;
                        let text = String::from_utf8(r.read_to_eof().await?).unwrap();
                        answers.push(text.parse::<usize>().unwrap());
                    }
                    stop.shutdown(false);
                }
                let _ = stop.get().await;
                server.close();
                std::io::Result::Ok(answers)
            }
        })
        .unwrap();
    (listener.mode(), out.into_iter().flatten().collect())
}

#[test]
fn with_reuse_port_every_loop_accepts_its_own_connections() {
    let (mode, answers) = who_answers(AcceptMode::ReusePort, 32);
    assert_eq!(mode, AcceptMode::ReusePort);
    assert_eq!(answers.len(), 32);
    // The kernel spreads connections by a hash of their addresses: 32 all on
    // one socket would be a 1 in 2^31 chance.
    let loops: BTreeSet<usize> = answers.into_iter().collect();
    assert_eq!(loops, BTreeSet::from([0, 1]));
}

#[test]
fn the_hand_off_fallback_deals_connections_round_robin_to_the_loops() {
    let (mode, answers) = who_answers(AcceptMode::Handoff, 6);
    assert_eq!(mode, AcceptMode::Handoff);
    assert_eq!(answers, [0, 1, 0, 1, 0, 1]);
}

#[test]
fn auto_uses_reuse_port_where_the_os_has_it() {
    let listener = PoolListener::bind("127.0.0.1:0", 2, AcceptMode::Auto).unwrap();
    assert_eq!(listener.mode(), AcceptMode::ReusePort);
}

#[test]
fn a_listener_bound_for_another_pool_size_is_refused_clearly() {
    let listener = PoolListener::bind("127.0.0.1:0", 3, AcceptMode::ReusePort).unwrap();
    let err = LoopPool::new()
        .workers(2)
        .run(|w| {
            let listener = listener.clone();
            async move {
                listener
                    .start_server(&w, |_r, _w| async {}, &ServerOptions::new())
                    .map(drop)
            }
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("bound for 3 workers but the pool has 2"),
        "{err}"
    );
}

#[test]
fn starting_a_workers_server_twice_is_refused() {
    let listener = PoolListener::bind("127.0.0.1:0", 1, AcceptMode::ReusePort).unwrap();
    let out = LoopPool::new()
        .workers(1)
        .run(|w| {
            let listener = listener.clone();
            async move {
                let _first = listener.start_server(&w, |_r, _w| async {}, &ServerOptions::new())?;
                let second = listener.start_server(&w, |_r, _w| async {}, &ServerOptions::new());
                std::io::Result::Ok(second.unwrap_err().kind())
            }
        })
        .unwrap();
    assert_eq!(out, [std::io::ErrorKind::AlreadyExists]);
}

#[test]
#[cfg(target_os = "linux")]
fn steered_by_cpu_a_pinned_loops_own_connections_come_back_to_it() {
    // SAFETY: an all-zero cpu_set_t is the empty set; the call writes at
    // most its size into it.
    let cpus = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        (0..2).all(|c| libc::CPU_ISSET(c, &set))
    };
    if !cpus {
        eprintln!("skipped: this process may not run on CPUs 0 and 1");
        return;
    }
    let listener = PoolListener::bind("127.0.0.1:0", 2, AcceptMode::ReusePortByCpu).unwrap();
    assert_eq!(listener.mode(), AcceptMode::ReusePortByCpu);
    let port = listener.local_addr().port();
    let stop = Channel::<()>::new(0);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let out = LoopPool::new()
        .workers(2)
        .pin_to_cores(true)
        .run(|w| {
            let (listener, stop, done) = (listener.clone(), stop.clone(), done.clone());
            async move {
                let me = w.index();
                let server = listener.start_server(
                    &w,
                    move |_r: StreamReader, mut w: StreamWriter| async move {
                        w.write(me.to_string().as_bytes());
                    },
                    &ServerOptions::new(),
                )?;
                let mut answers = Vec::new();
                for _ in 0..8 {
                    let (mut r, _w) = open_connection("127.0.0.1", port).await?;
                    let text = String::from_utf8(r.read_to_eof().await?).unwrap();
                    answers.push(text.parse::<usize>().unwrap());
                }
                if done.fetch_add(1, std::sync::atomic::Ordering::AcqRel) == 1 {
                    stop.shutdown(false);
                }
                let _ = stop.get().await;
                server.close();
                std::io::Result::Ok(answers)
            }
        })
        .unwrap();
    assert_eq!(out, [vec![0; 8], vec![1; 8]]);
}
