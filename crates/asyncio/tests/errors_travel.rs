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
fn an_exception_group_goes_into_anyhow_and_eyre_and_keeps_its_chain() {
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
    let chain: Vec<String> = a.chain().map(|e| e.to_string()).collect();
    assert_eq!(chain.len(), 3, "{chain:?}");
    assert!(chain[2].contains("disk full"), "{chain:?}");
    let io = a
        .downcast_ref::<asyncio::ExceptionGroup>()
        .unwrap()
        .downcast_ref::<std::io::Error>()
        .unwrap();
    assert_eq!(io.to_string(), "disk full");

    let e = with_eyre().unwrap_err();
    assert!(e.chain().any(|c| c.to_string() == "disk full"));
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
