//! The echo server of ex_5_2 on every core: a `LoopPool` runs one loop per
//! core, each accepting on its own `SO_REUSEPORT` socket bound to port 8888
//! (or, where the OS has no `SO_REUSEPORT`, worker 0 accepts and hands the
//! sockets round). The pool stops by itself after serving a number of clients
//! (the first argument, default 1) in total, so a run always ends; with
//! `demo` as the second argument it also runs those clients itself.
//!
//! ```text
//! cargo run --example ex_8_1_loop_per_core -- 4      # then, 4 times:
//! cargo run --example ex_5_3_echo_client
//! cargo run --example ex_8_1_loop_per_core -- 8 demo # serves its own 8 clients
//! ```
//!
//! Python has no loop per core in one process; the nearest is one process
//! per core, each running ex_5_2's server with `reuse_port=True`:
//!
//! ```python
//! def serve():
//!     async def main():
//!         server = await asyncio.start_server(echo, "127.0.0.1", 8888, reuse_port=True)
//!         async with server:
//!             await server.serve_forever()
//!     asyncio.run(main())
//!
//! with concurrent.futures.ProcessPoolExecutor(os.cpu_count()) as pool:
//!     for _ in range(os.cpu_count()):
//!         pool.submit(serve)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use asyncio::{
    AcceptMode, Channel, LoopPool, PoolListener, ServerOptions, StreamReader, StreamWriter,
};

async fn echo(
    mut reader: StreamReader,
    mut writer: StreamWriter,
    me: usize,
) -> std::io::Result<()> {
    let data = reader.read(100).await?;
    let who = writer.peer_addr()?;
    println!("worker {me}: {who}: {:?}", String::from_utf8_lossy(&data));
    writer.write(&data);
    writer.drain().await?;
    writer.close();
    writer.wait_closed().await
}

/// One client, as ex_5_3: send a line, print the echo.
async fn client(n: usize) -> std::io::Result<()> {
    let (mut reader, mut writer) = asyncio::open_connection("127.0.0.1", 8888).await?;
    writer.write(format!("hello {n}").as_bytes());
    writer.drain().await?;
    let back = reader.read(100).await?;
    println!("client {n} got {:?}", String::from_utf8_lossy(&back));
    writer.close();
    writer.wait_closed().await
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let clients: usize = args
        .next()
        .map(|a| a.parse().expect("the argument is a number of clients"))
        .unwrap_or(1);
    let demo = args.next().as_deref() == Some("demo");
    let pool = LoopPool::new();
    let workers = pool.worker_count();
    let listener = PoolListener::bind("127.0.0.1:8888", workers, AcceptMode::Auto)?;
    println!(
        "Serving on {} with {workers} loops ({:?}) until {clients} client(s) have been served",
        listener.local_addr(),
        listener.mode()
    );
    let served = Arc::new(AtomicUsize::new(0));
    // Shut down once the last client was served: every worker waits on it.
    let stop = Channel::<()>::new(0);
    let per_worker = pool.run(|worker| {
        let (listener, served, stop) = (listener.clone(), served.clone(), stop.clone());
        async move {
            let me = worker.index();
            let (s, st) = (served.clone(), stop.clone());
            let server = listener.start_server(
                &worker,
                move |reader, writer| {
                    let (s, st) = (s.clone(), st.clone());
                    async move {
                        if let Err(e) = echo(reader, writer, me).await {
                            eprintln!("client failed: {e}");
                        }
                        if s.fetch_add(1, Ordering::AcqRel) + 1 == clients {
                            st.shutdown(false);
                        }
                    }
                },
                &ServerOptions::new(),
            )?;
            if demo && me == 0 {
                // A client task each, on this loop; the kernel picks the loop
                // that serves it.
                let tasks: Vec<_> = (0..clients)
                    .map(|n| asyncio::create_task(client(n)))
                    .collect();
                for (n, task) in tasks.into_iter().enumerate() {
                    if let Ok(Err(e)) = task.await {
                        eprintln!("client {n} failed: {e}");
                    }
                }
            }
            let _ = stop.get().await;
            server.close();
            std::io::Result::Ok(me)
        }
    })?;
    println!(
        "served {} client(s) on {} loops, bye",
        served.load(Ordering::Acquire),
        per_worker.len()
    );
    Ok(())
}
