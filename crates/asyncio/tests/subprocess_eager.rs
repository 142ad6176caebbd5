//! Subprocesses under the eager task factory, through the facade: the stdin
//! writer's flusher task and the clean-up task of a dropped `Process` start
//! inside `create_task`, in the middle of the call that spawned them.

use std::time::Duration;

use asyncio::subprocess::PIPE;

#[test]
fn communicate_through_cat_under_the_eager_factory() {
    let input: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 241) as u8).collect();
    let expected = input.clone();
    let (out, rc) = asyncio::run(asyncio::timeout(Duration::from_secs(30), async move {
        asyncio::set_task_factory(asyncio::eager_task_factory);
        let mut p = asyncio::create_subprocess_exec("cat", [""; 0])
            .stdin(PIPE)
            .stdout(PIPE)
            .await
            .unwrap();
        let (out, _) = p.communicate(Some(&input)).await.unwrap();
        (out, p.returncode())
    }))
    .unwrap()
    .unwrap();
    assert!(out.unwrap() == expected, "cat gave back what it was given");
    assert_eq!(rc, Some(0));
}

#[test]
fn a_dropped_process_is_reaped_under_the_eager_factory() {
    let pid = asyncio::run(asyncio::timeout(Duration::from_secs(30), async {
        asyncio::set_task_factory(asyncio::eager_task_factory);
        let p = asyncio::create_subprocess_exec("sleep", ["30"])
            .await
            .unwrap();
        let pid = p.pid();
        drop(p); // kills; the clean-up task starts eagerly and waits on the pidfd
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            asyncio::sleep(Duration::from_millis(1)).await;
        }
        pid
    }))
    .unwrap()
    .unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}
