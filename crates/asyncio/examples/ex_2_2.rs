//! ex_2_2 of the asyncio 3.12/3.13 tutorial series this project follows:
//! `asyncio.Runner` runs several top-level coroutines on one loop and one
//! context.
//!
//! ```python
//! with asyncio.Runner() as runner:
//!     runner.run(first())
//!     runner.run(second())
//! ```

use std::cell::RefCell;
use std::rc::Rc;

async fn first(memo: Rc<RefCell<Vec<String>>>) -> asyncio::EventLoop {
    memo.borrow_mut().push("written by the first run".into());
    println!(
        "first run: task {}",
        asyncio::current_task().unwrap().name()
    );
    asyncio::get_running_loop().expect("inside Runner::run")
}

async fn second(memo: Rc<RefCell<Vec<String>>>) -> asyncio::EventLoop {
    println!("second run: found {:?}", memo.borrow());
    memo.borrow_mut().push("written by the second run".into());
    asyncio::get_running_loop().expect("inside Runner::run")
}

fn main() -> Result<(), asyncio::RunError> {
    let memo = Rc::new(RefCell::new(Vec::new()));
    let runner = asyncio::Runner::new();
    let loop1 = runner.run(first(memo.clone()))?;
    let loop2 = runner.run(second(memo.clone()))?;
    println!("same loop for both runs: {}", loop1.same_loop(&loop2));
    println!("kept between runs: {:?}", memo.borrow());
    runner.close()?;
    println!("loop closed after close(): {}", loop1.is_closed());
    Ok(())
}
