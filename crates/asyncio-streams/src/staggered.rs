//! asyncio's `staggered.staggered_race`: the race under Happy Eyeballs
//! (RFC 8305) connection attempts.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

/// What a [`staggered_race`] came to: the winner's index (in start order,
/// which is the order of the factories) and value, if one succeeded, and
/// each started attempt's error (`None` for the winner and for attempts
/// stopped because another won).
pub type StaggeredOutcome<T, E> = (Option<(usize, T)>, Vec<Option<E>>);

/// Runs the attempts `coro_fns` makes, staggered (asyncio's
/// `asyncio.staggered.staggered_race`): the first starts at once; each next
/// one starts when the one before it fails, or `delay` after it started,
/// whichever comes first (with `delay` `None`, only when it fails: one
/// after the other). The first attempt to succeed wins and every other one
/// still running is dropped (cancelled). Attempts that were never needed
/// are never started.
///
/// ```
/// use std::time::Duration;
///
/// let (winner, errors) = asyncio::run(asyncio::staggered_race(
///     // Three attempts: the first fails, which starts the second at once.
///     [Err("first fails"), Ok(2), Ok(3)].map(|r: Result<u32, &str>| move || async move { r }),
///     Some(Duration::from_millis(250)),
/// ))
/// .unwrap();
/// assert_eq!(winner, Some((1, 2)));
/// assert_eq!(errors, [Some("first fails"), None]);
/// ```
pub async fn staggered_race<T, E, F, Fut>(
    coro_fns: impl IntoIterator<Item = F>,
    delay: Option<Duration>,
) -> StaggeredOutcome<T, E>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut fns = coro_fns.into_iter();
    let mut running: Vec<Option<Pin<Box<Fut>>>> = Vec::new();
    let mut errors: Vec<Option<E>> = Vec::new();
    let mut timer: Option<Pin<Box<asyncio_core::Sleep>>> = None;
    let mut start_next = true;
    std::future::poll_fn(move |cx| {
        loop {
            if std::mem::take(&mut start_next) {
                if let Some(f) = fns.next() {
                    running.push(Some(Box::pin(f())));
                    errors.push(None);
                    timer = delay.map(|d| Box::pin(asyncio_core::sleep(d)));
                } else {
                    timer = None;
                }
            }
            let last = running.len().wrapping_sub(1);
            for i in 0..running.len() {
                let Some(fut) = running[i].as_mut() else {
                    continue;
                };
                match fut.as_mut().poll(cx) {
                    Poll::Pending => {}
                    Poll::Ready(Ok(value)) => {
                        // The others are dropped, here and now.
                        running.clear();
                        return Poll::Ready((Some((i, value)), std::mem::take(&mut errors)));
                    }
                    Poll::Ready(Err(e)) => {
                        errors[i] = Some(e);
                        running[i] = None;
                        if i == last {
                            start_next = true;
                        }
                    }
                }
            }
            if let Some(t) = timer.as_mut()
                && t.as_mut().poll(cx).is_ready()
            {
                timer = None;
                start_next = true;
            }
            if start_next {
                continue;
            }
            if running.iter().all(Option::is_none) {
                // Every attempt started has failed and none is left to
                // start (a failure of the last one started would have
                // started the next).
                return Poll::Ready((None, std::mem::take(&mut errors)));
            }
            return Poll::Pending;
        }
    })
    .await
}
