//! Debug mode: creation sites, slow steps and callbacks logged through `log`,
//! tasks destroyed while pending reported, `ASYNCIO_DEBUG=1`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use asyncio_core::{EventLoop, ExceptionContext, TaskOptions, create_task, create_task_with};

/// Records what is logged to the `asyncio` target, per thread (tests run in
/// parallel threads).
struct Recorder;

static RECORDS: Mutex<Vec<(std::thread::ThreadId, String)>> = Mutex::new(Vec::new());

impl log::Log for Recorder {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.target() == "asyncio"
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            RECORDS
                .lock()
                .unwrap()
                .push((std::thread::current().id(), r.args().to_string()));
        }
    }
    fn flush(&self) {}
}

/// Installs the recorder (once per process; every test calls it first).
fn install_logger() {
    let _ = log::set_logger(&Recorder);
    log::set_max_level(log::LevelFilter::Warn);
}

fn logged_here() -> Vec<String> {
    let me = std::thread::current().id();
    RECORDS
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t == me)
        .map(|(_, m)| m.clone())
        .collect()
}

fn debug_loop() -> EventLoop {
    install_logger();
    let lp = EventLoop::new();
    lp.set_debug(true);
    lp
}

#[test]
fn tasks_record_where_they_were_created_only_in_debug_mode() {
    let lp = EventLoop::new();
    let off = lp
        .run_until_complete(async { create_task(async {}).created_at() })
        .unwrap();
    assert!(off.is_none());

    let lp = debug_loop();
    let (line, site) = lp
        .run_until_complete(async {
            let line = line!() + 1;
            let t = create_task(async {});
            (line, t.created_at().expect("recorded in debug mode"))
        })
        .unwrap();
    assert_eq!(site.line(), line);
    assert!(site.file().ends_with("debug.rs"), "{site}");
}

#[test]
fn the_never_retrieved_report_shows_the_creation_site() {
    let lp = debug_loop();
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    lp.set_exception_handler(Some(move |ctx: &ExceptionContext| {
        r.borrow_mut().push(ctx.to_string())
    }));
    let line = lp
        .run_until_complete(async {
            let line = line!() + 1;
            drop(create_task(async { panic!("nobody looks") }));
            asyncio_core::yield_now().await;
            line
        })
        .unwrap();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].contains("never retrieved"), "{}", reports[0]);
    assert!(
        reports[0].contains(&format!("debug.rs:{line}:")),
        "{}",
        reports[0]
    );
}

#[test]
fn slow_steps_are_logged_with_the_task_name_and_site_in_debug_mode() {
    let lp = debug_loop();
    // Every step counts as slow: the test does not depend on the clock.
    lp.set_slow_callback_duration(Duration::ZERO);
    lp.run_until_complete(async {
        create_task_with(async {}, TaskOptions::new().name("sluggish"))
            .await
            .unwrap();
    })
    .unwrap();
    let logged = logged_here();
    let line = logged
        .iter()
        .find(|m| m.contains("'sluggish'"))
        .unwrap_or_else(|| panic!("no record of the slow step in {logged:?}"));
    assert!(
        line.contains("created at") && line.contains("debug.rs"),
        "{line}"
    );
    assert!(line.contains("took"), "{line}");
}

#[test]
fn slow_callbacks_are_logged_in_debug_mode() {
    let lp = debug_loop();
    lp.set_slow_callback_duration(Duration::ZERO);
    lp.run_until_complete(async {
        asyncio_core::get_running_loop().unwrap().call_soon(|| {});
        asyncio_core::yield_now().await;
    })
    .unwrap();
    assert!(
        logged_here().iter().any(|m| m.contains("callback took")),
        "{:?}",
        logged_here()
    );
}

#[test]
fn nothing_is_logged_when_debug_mode_is_off() {
    install_logger();
    let lp = EventLoop::new();
    lp.set_slow_callback_duration(Duration::ZERO);
    lp.run_until_complete(async {
        create_task_with(async {}, TaskOptions::new().name("quiet"))
            .await
            .unwrap();
        asyncio_core::get_running_loop().unwrap().call_soon(|| {});
        asyncio_core::yield_now().await;
    })
    .unwrap();
    assert_eq!(logged_here(), Vec::<String>::new());
}

#[test]
fn a_task_destroyed_while_pending_is_reported_in_debug_mode() {
    let lp = debug_loop();
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    lp.set_exception_handler(Some(move |ctx: &ExceptionContext| {
        r.borrow_mut().push(ctx.to_string())
    }));
    lp.run_until_complete(async {
        drop(create_task_with(
            std::future::pending::<()>(),
            TaskOptions::new().name("forgotten"),
        ));
        asyncio_core::yield_now().await;
    })
    .unwrap();
    lp.close().unwrap();
    let reports = reports.borrow();
    assert!(
        reports
            .iter()
            .any(|m| m.contains("destroyed but it is pending") && m.contains("'forgotten'")),
        "{reports:?}"
    );
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot start processes")]
fn the_asyncio_debug_variable_turns_debug_mode_on() {
    if std::env::var_os("ASYNCIO_DEBUG_TEST_CHILD").is_some() {
        assert!(EventLoop::new().get_debug(), "ASYNCIO_DEBUG=1 was set");
        return;
    }
    assert!(!EventLoop::new().get_debug() || std::env::var_os("ASYNCIO_DEBUG").is_some());
    // The variable is read once per process: ask a fresh one.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["the_asyncio_debug_variable_turns_debug_mode_on", "--exact"])
        .env("ASYNCIO_DEBUG", "1")
        .env("ASYNCIO_DEBUG_TEST_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("1 passed"), "{stdout}");
}
