//! Every public error is `Send + Sync + 'static`, so `?` takes asyncio's
//! errors into `anyhow::Error`, `eyre::Report` and `Box<dyn Error + Send + Sync>`.

use std::error::Error;

fn travels<E: Error + Send + Sync + 'static>() {}

#[test]
fn every_public_error_is_send_sync_and_static() {
    travels::<asyncio::CancelledError>();
    travels::<asyncio::InvalidStateError>();
    travels::<asyncio::RuntimeError>();
    travels::<asyncio::RunError>();
    travels::<asyncio::PanicError>();
    travels::<asyncio::TaskError>();
    travels::<asyncio::TimeoutError>();
    travels::<asyncio::ExceptionGroup>();
    travels::<asyncio::ChildFailure>();
    travels::<asyncio::TaskGroupError>();
    travels::<asyncio::EmptyWaitError>();
    travels::<asyncio::ContextError>();
    travels::<asyncio::SignalError>();
    travels::<asyncio::SpawnError>();
    travels::<asyncio::QueueFull<u8>>();
    travels::<asyncio::QueueEmpty>();
    travels::<asyncio::QueueShutDown<u8>>();
    travels::<asyncio::QueueError>();
    travels::<asyncio::GetError>();
    travels::<asyncio::PutError<u8>>();
    travels::<asyncio::BrokenBarrierError>();
    travels::<asyncio::ZeroPartiesError>();
    travels::<asyncio::ReleaseError>();
    travels::<asyncio::TaskDoneError>();
    travels::<asyncio::IncompleteReadError>();
    travels::<asyncio::LimitOverrunError>();
    travels::<asyncio::ReadExactlyError>();
    travels::<asyncio::ReadUntilError>();
    travels::<asyncio::ServerStateError>();
    travels::<asyncio::WriteBufferLimitsError>();
    travels::<asyncio::WriterClosedError>();
    travels::<asyncio::BlockingSocketError>();
}

async fn panicking_child() -> anyhow::Result<u32> {
    let v = asyncio::create_task(async {
        if true {
            panic!("the child broke");
        }
        1u32
    })
    .await?;
    Ok(v)
}

#[test]
fn a_task_error_goes_into_anyhow_with_its_message() {
    let err = asyncio::run(panicking_child()).unwrap().unwrap_err();
    let task_error = err
        .downcast_ref::<asyncio::TaskError>()
        .expect("the TaskError itself");
    assert!(task_error.is_panic());
    assert!(err.to_string().contains("the child broke"), "{err}");
}

#[test]
fn an_exception_group_goes_into_anyhow_and_eyre_with_every_cause_in_its_message() {
    fn group() -> asyncio::ExceptionGroup {
        asyncio::run(asyncio::task_group(|tg| async move {
            tg.create_fallible_task(async { Err::<(), _>(std::io::Error::other("disk full")) });
            Ok::<_, asyncio::TaskError>(())
        }))
        .unwrap()
        .unwrap_err()
    }
    fn with_anyhow() -> anyhow::Result<()> {
        Err(group())?;
        Ok(())
    }
    fn with_eyre() -> eyre::Result<()> {
        Err(group())?;
        Ok(())
    }
    fn with_box() -> Result<(), Box<dyn Error + Send + Sync>> {
        Err(group())?;
        Ok(())
    }
    let a = with_anyhow().unwrap_err();
    // The group's message holds every failure with its causes; no chain
    // repeats them (tests/errors_read_once.rs checks every error for that).
    assert_eq!(a.chain().count(), 1);
    assert!(a.to_string().contains("disk full"), "{a}");
    let io = a
        .downcast_ref::<asyncio::ExceptionGroup>()
        .unwrap()
        .downcast_ref::<std::io::Error>()
        .unwrap();
    assert_eq!(io.to_string(), "disk full");

    let e = with_eyre().unwrap_err();
    assert!(e.to_string().contains("disk full"));
    assert!(e.downcast_ref::<asyncio::ExceptionGroup>().is_some());

    let b = with_box().unwrap_err();
    assert!(b.downcast_ref::<asyncio::ExceptionGroup>().is_some());
    // It crosses threads.
    let text = std::thread::spawn(move || b.to_string()).join().unwrap();
    assert!(text.contains("disk full"));
}

#[test]
fn a_cancelled_error_keeps_its_message_in_anyhow() {
    let err = asyncio::run(async {
        let t = asyncio::create_task(std::future::pending::<()>());
        t.cancel_with("time is up");
        let r: anyhow::Result<()> = t.await.map_err(Into::into);
        r
    })
    .unwrap()
    .unwrap_err();
    let c = err.downcast_ref::<asyncio::TaskError>().unwrap();
    assert_eq!(c.cancelled_message(), Some("time is up"));
}

/// Issue 28: `QueueShutDown<Rc<T>>` is not `Send`, so it cannot go into
/// anyhow as it is; `drop_item` and the item-less `QueueError` let `?` take
/// it anyway.
#[test]
fn a_refused_rc_item_goes_through_question_mark_after_dropping_the_item() {
    use std::rc::Rc;

    async fn into_anyhow(q: &asyncio::Queue<Rc<u32>>) -> anyhow::Result<()> {
        q.put(Rc::new(1))
            .await
            .map_err(asyncio::QueueShutDown::drop_item)?;
        Ok(())
    }
    async fn into_queue_error(q: &asyncio::Queue<Rc<u32>>) -> Result<(), asyncio::QueueError> {
        q.put(Rc::new(1)).await?;
        q.put_nowait(Rc::new(2))?;
        Ok(())
    }
    asyncio::run(async {
        let q = asyncio::Queue::new(0);
        q.shutdown(false);
        let e = into_anyhow(&q).await.unwrap_err();
        assert_eq!(
            e.downcast_ref::<asyncio::QueueShutDown>(),
            Some(&asyncio::QueueShutDown(()))
        );
        assert_eq!(
            into_queue_error(&q).await,
            Err(asyncio::QueueError::ShutDown)
        );
        // Inside a task group's body too.
        let group = asyncio::task_group(|tg| async move {
            tg.create_task(async {});
            let q = asyncio::Queue::new(0);
            q.shutdown(false);
            q.put(Rc::new(3))
                .await
                .map_err(asyncio::QueueShutDown::drop_item)?;
            Ok::<_, asyncio::QueueShutDown>(())
        })
        .await;
        assert!(
            group
                .unwrap_err()
                .downcast_ref::<asyncio::QueueShutDown>()
                .is_some()
        );
    })
    .unwrap();
}
