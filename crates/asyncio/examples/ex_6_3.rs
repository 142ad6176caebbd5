//! ex_6_3 of the asyncio 3.12/3.13 tutorial series this project follows: one
//! million `current_task()` calls (asyncio 3.12 made them 4-6x faster; here
//! each is a thread-local read).
//!
//! ```python
//! async def main():
//!     t1 = time.time()
//!     for _ in range(10 ** 6):
//!         asyncio.current_task()
//!     t2 = time.time()
//!     print(f'It took {t2-t1}s')
//! ```

use std::hint::black_box;
use std::time::Instant;

async fn main_task() {
    let n = 1_000_000u32;
    let t1 = Instant::now();
    for _ in 0..n {
        black_box(asyncio::current_task());
    }
    let took = t1.elapsed();
    println!("It took {:?}s", took.as_secs_f64());
    println!(
        "{:.2} ns per current_task() call",
        took.as_nanos() as f64 / f64::from(n)
    );
}

fn main() -> Result<(), asyncio::RunError> {
    asyncio::run(main_task())
}
