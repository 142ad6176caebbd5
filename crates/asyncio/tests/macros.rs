//! `#[asyncio::main]` / `#[asyncio::test]` as users write them (issue 16's
//! third program is the first test here).

use std::time::Duration;

#[asyncio::test]
async fn a_test_runs_on_its_own_loop() {
    let lp = asyncio::get_running_loop().expect("the test body runs on a loop");
    assert!(!lp.get_debug());
    let t = asyncio::create_task(async { 6 * 7 });
    assert_eq!(t.await.unwrap(), 42);
    asyncio::sleep(Duration::from_millis(1)).await;
}

#[asyncio::test]
async fn a_test_may_return_a_result() -> Result<(), asyncio::TaskError> {
    let v = asyncio::create_task(async { "ok" }).await?;
    assert_eq!(v, "ok");
    Ok(())
}

#[asyncio::test(eager)]
async fn eager_starts_tasks_inside_create_task() {
    let t = asyncio::create_task(async { 1 });
    assert!(
        t.done(),
        "under the eager factory it finished inside create_task"
    );
}

#[asyncio::test]
async fn without_eager_tasks_start_later() {
    let t = asyncio::create_task(async { 1 });
    assert!(!t.done(), "lazy by default");
    t.await.unwrap();
}

#[asyncio::test(debug, eager)]
async fn debug_turns_the_loops_debug_mode_on() {
    assert!(asyncio::get_running_loop().unwrap().get_debug());
}

#[asyncio::test]
async fn each_test_gets_a_fresh_loop() {
    // No task of another test is visible here: only this test's main task.
    assert_eq!(asyncio::all_tasks().unwrap().len(), 1);
}

#[test]
fn the_ui_errors_point_at_the_users_code() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
