//! Runs a command and reads its output line by line while it runs, as
//! asyncio's `create_subprocess_exec` with `stdout=PIPE`.
//!
//! The same program in Python:
//!
//! ```python
//! async def main():
//!     proc = await asyncio.create_subprocess_exec(
//!         "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.1; done",
//!         stdout=asyncio.subprocess.PIPE)
//!     while line := await proc.stdout.readline():
//!         print(f"[{loop.time():.2f}] {line.decode().rstrip()}")
//!     print("exit code", await proc.wait())
//! ```

use std::time::Instant;

use asyncio::subprocess::PIPE;

async fn main_task() -> std::io::Result<i32> {
    let start = Instant::now();
    let mut proc = asyncio::create_subprocess_exec(
        "sh",
        ["-c", "for i in 1 2 3; do echo line $i; sleep 0.1; done"],
    )
    .stdout(PIPE)
    .await?;
    println!("started pid {}", proc.pid());
    let mut stdout = proc.stdout.take().expect("stdout is a pipe");
    loop {
        let line = stdout.readline().await?;
        if line.is_empty() {
            break; // the child closed its stdout
        }
        // Each line arrives while the child still runs (it sleeps between them).
        print!(
            "[{:.2}s] {}",
            start.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&line)
        );
    }
    let code = proc.wait().await?;
    println!("exit code {code}");
    Ok(code)
}

fn main() -> std::io::Result<()> {
    let code = asyncio::run(main_task()).expect("the main task runs to its end")?;
    assert_eq!(code, 0);
    Ok(())
}
