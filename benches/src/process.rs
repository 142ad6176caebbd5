//! `subprocess_spawn`: start [`CHILDREN`] `/bin/true` children at once, then
//! wait for and reap each, on asyncio-rs (a pidfd per child in the loop's
//! `epoll`) and on tokio's current-thread runtime (`tokio::process`). Both
//! spawn with `std::process::Command`, stdio inherited.

/// Children per run.
pub const CHILDREN: usize = 1000;

/// The program each child runs.
pub const PROGRAM: &str = "/bin/true";

/// Starts `n` children on asyncio-rs's loop, then waits for each.
pub fn asyncio_subprocess_spawn(lp: &asyncio::EventLoop, n: usize) {
    lp.run_until_complete(async move {
        let mut children = Vec::with_capacity(n);
        for _ in 0..n {
            children.push(
                asyncio::create_subprocess_exec(PROGRAM, [""; 0])
                    .await
                    .expect("/bin/true starts"),
            );
        }
        for mut c in children {
            assert_eq!(c.wait().await.expect("the child is reaped"), 0);
        }
    })
    .expect("the loop runs the workload");
}

/// The same on tokio's current-thread runtime.
pub fn tokio_subprocess_spawn(rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(async move {
        let mut children = Vec::with_capacity(n);
        for _ in 0..n {
            children.push(
                tokio::process::Command::new(PROGRAM)
                    .spawn()
                    .expect("/bin/true starts"),
            );
        }
        for mut c in children {
            assert!(c.wait().await.expect("the child is reaped").success());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_runtimes_run_and_reap_the_children() {
        asyncio_subprocess_spawn(&asyncio::EventLoop::new(), 20);
        tokio_subprocess_spawn(&crate::net::tokio_rt_net(), 20);
    }
}
