//! `asyncio::run` and `Runner::run` take main futures that borrow from the caller.

#[test]
fn run_and_runner_take_futures_that_borrow() {
    let mut n = 0;
    asyncio::run(async { n += 1 }).unwrap();
    let runner = asyncio::Runner::new();
    let words = ["a", "b"];
    let joined = runner.run(async { words.join("+") }).unwrap();
    runner.run(async { n += 1 }).unwrap();
    runner.close().unwrap();
    assert_eq!((n, joined.as_str()), (2, "a+b"));
}
