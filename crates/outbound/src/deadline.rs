//! Deadlines that almost never fire — a backend call's, a Resiliency timeout's, an HTTP/1 request head's — on
//! tokio timers that are kept and reused rather than made for each, and that fire a little late rather than be
//! moved for every call.
//!
//! A new `tokio::time::Sleep` goes into the runtime's timer wheel when first polled and comes out when dropped,
//! each time under the timer's lock: ~600 instructions a timer, and a state GET waited on three (the request
//! head, the component's Resiliency timeout, the store's own deadline), ~3 % of its instructions. A kept `Sleep`
//! stays in the wheel; moving its deadline later is an atomic compare-and-swap (~220 instructions with the
//! arithmetic around it), and the wheel moves the entry when it reaches the earlier deadline. And a deadline
//! may fire up to a sixteenth of its time late: a kept timer whose deadline already falls in that span is taken
//! as it is, and one that is moved is moved to the span's end, so calls that start within that sixteenth of each
//! other move no timer at all. Each thread keeps its spare timers, by kind of deadline; one that is not reused
//! fires once at its last deadline and wakes the task that last waited on it, which finds nothing to do.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Kinds of deadline (by how late they may fire) a thread keeps spare timers for, at most, and spares per kind:
/// a process has a few kinds (the store's deadline, HTTP/1's request head, the Resiliency timeouts tenants set),
/// and a thread about as many calls waiting at once as it has spares. Past these, timers are made and dropped.
const KINDS: usize = 8;
const SPARES_PER_KIND: usize = 16;

/// How late a deadline may fire, as a share of its time: 1/16 (a 5 s deadline fires at 5 s to 5.3 s).
const LATE_SHARE: u32 = 16;

/// A thread's spare timers, by kind, and the runtime whose timer wheel they are in: a thread that runs another
/// runtime later (a test's thread) must not use them, as a timer of a runtime that has stopped fails when polled.
struct SpareTimers {
    runtime: Option<tokio::runtime::Id>,
    /// Each kind's spares, the last given back last. Kinds are kept apart so that the spare taken is the one most
    /// likely due in the span already: a deadline of another length never is.
    kinds: Vec<(Duration, Vec<Pin<Box<Sleep>>>)>,
}

thread_local! {
    static SPARE: RefCell<SpareTimers> = const { RefCell::new(SpareTimers { runtime: None, kinds: Vec::new() }) };
}

/// A future that is ready at its deadline, or up to a set time after it, on a kept timer that goes back to the
/// thread's spares when it is dropped. Made inside a tokio runtime.
#[derive(Debug)]
pub struct Deadline {
    sleep: Option<Pin<Box<Sleep>>>,
    /// How late it may fire: its kind among the spares.
    late: Duration,
}

impl Deadline {
    /// Ready `limit` from now, or up to a sixteenth of `limit` later.
    pub fn after(limit: Duration) -> Deadline {
        Deadline::between(Instant::now() + limit, limit / LATE_SHARE)
    }

    /// Ready at `at`, or up to `late` after it.
    pub fn between(at: Instant, late: Duration) -> Deadline {
        let runtime = tokio::runtime::Handle::current().id();
        let spare = SPARE.with_borrow_mut(|spare| {
            if spare.runtime != Some(runtime) {
                spare.kinds.clear();
                spare.runtime = Some(runtime);
            }
            spare.kinds.iter_mut().find(|(kind, _)| *kind == late).and_then(|(_, sleeps)| sleeps.pop())
        });
        match spare {
            Some(sleep) => {
                let mut deadline = Deadline { sleep: Some(sleep), late };
                deadline.reset(at, late);
                deadline
            }
            None => Deadline { sleep: Some(Box::pin(tokio::time::sleep_until(at + late))), late },
        }
    }

    /// Makes it ready at `at`, or up to `late` after it.
    pub fn reset(&mut self, at: Instant, late: Duration) {
        self.late = late;
        let mut sleep = self.sleep();
        if !(at..=at + late).contains(&sleep.deadline()) {
            sleep.as_mut().reset(at + late);
        }
    }

    fn sleep(&mut self) -> Pin<&mut Sleep> {
        self.sleep.as_mut().expect("a deadline holds its timer until dropped").as_mut()
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.sleep().poll(cx)
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        let Some(sleep) = self.sleep.take() else { return };
        let late = self.late;
        // A thread that is ending keeps no spares: the timer is dropped with the closure.
        let _ = SPARE.try_with(|spare| {
            let kinds = &mut spare.borrow_mut().kinds;
            let kind = match kinds.iter().position(|(kind, _)| *kind == late) {
                Some(kind) => kind,
                None if kinds.len() < KINDS => {
                    kinds.push((late, Vec::new()));
                    kinds.len() - 1
                }
                None => return,
            };
            let sleeps = &mut kinds[kind].1;
            if sleeps.len() < SPARES_PER_KIND {
                sleeps.push(sleep);
            }
        });
    }
}

/// Runs `call` for `limit` (to a sixteenth more, [`Deadline::after`]): its output, or `None` past the deadline
/// (`tokio::time::timeout`'s rules: the call is polled first, so an answer ready at the deadline is taken). The
/// deadline is taken when the call first waits: a call answered at once takes no timer.
pub fn within<F: Future>(limit: Duration, call: F) -> Within<F> {
    Within { call, limit, deadline: None }
}

pin_project_lite::pin_project! {
    /// A call [`within`] its deadline. A future of its own rather than an `async fn`: an `async fn`'s future holds
    /// its argument and the pinned call it moves into both, twice the call's size, and these wrap calls whose
    /// futures are large (a queue's fetch: ~5,700 instructions a publish went to copying them into their boxes).
    #[must_use = "futures do nothing unless polled"]
    pub struct Within<F> {
        #[pin]
        call: F,
        limit: Duration,
        deadline: Option<Deadline>,
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let this = self.project();
        if let Poll::Ready(output) = this.call.poll(cx) {
            return Poll::Ready(Some(output));
        }
        let limit = *this.limit;
        let deadline = this.deadline.get_or_insert_with(|| Deadline::after(limit));
        Pin::new(deadline).poll(cx).map(|()| None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `elapsed` is `limit`, or up to the sixteenth of it a deadline may fire late (and the millisecond
    /// tokio's timers round a deadline up to).
    fn fired_within(elapsed: Duration, limit: Duration) -> bool {
        elapsed >= limit && elapsed <= limit + limit / LATE_SHARE + Duration::from_millis(1)
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_deadline_is_cut_short_and_one_within_it_answers() {
        let started = Instant::now();
        assert_eq!(within(Duration::from_secs(5), std::future::pending::<()>()).await, None);
        assert!(fired_within(started.elapsed(), Duration::from_secs(5)), "{:?}", started.elapsed());
        assert_eq!(within(Duration::from_secs(5), async { 7 }).await, Some(7));
        let slow = tokio::time::sleep(Duration::from_secs(4));
        assert_eq!(within(Duration::from_secs(5), slow).await, Some(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_fires_at_its_new_deadline_not_its_old_one() {
        // The first deadline's timer is kept, then reused for a later deadline, an earlier one and a moved one.
        for seconds in [10, 30, 1] {
            let started = Instant::now();
            Deadline::after(Duration::from_secs(seconds)).await;
            assert!(fired_within(started.elapsed(), Duration::from_secs(seconds)), "{:?}", started.elapsed());
        }
        drop(Deadline::after(Duration::from_secs(10)));
        let started = Instant::now();
        Deadline::after(Duration::from_secs(30)).await;
        assert!(fired_within(started.elapsed(), Duration::from_secs(30)), "{:?}", started.elapsed());
        let mut moved = Deadline::after(Duration::from_secs(60));
        let started = Instant::now();
        moved.reset(started + Duration::from_secs(2), Duration::ZERO);
        moved.await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_already_in_the_span_is_not_moved() {
        let first = Deadline::after(Duration::from_secs(16));
        let set = first.sleep.as_ref().unwrap().deadline();
        drop(first);
        tokio::time::advance(Duration::from_millis(500)).await;
        // 16.5 s after the first: its timer, due at 17 s, falls within 16.5 s to 17.5 s and is kept as it is.
        let second = Deadline::after(Duration::from_secs(16));
        assert_eq!(second.sleep.as_ref().unwrap().deadline(), set);
        drop(second);
        tokio::time::advance(Duration::from_secs(2)).await;
        // 18.5 s to 19.5 s: moved to the span's end.
        let third = Deadline::after(Duration::from_secs(16));
        assert_eq!(third.sleep.as_ref().unwrap().deadline(), set + Duration::from_millis(2500));
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_of_different_lengths_each_find_their_own_kept_timer() {
        let (short, long) = (Deadline::after(Duration::from_secs(16)), Deadline::after(Duration::from_secs(32)));
        let set = [&short, &long].map(|deadline| deadline.sleep.as_ref().unwrap().deadline());
        // Given back in the order that leaves the short one's timer under the long one's.
        drop(short);
        drop(long);
        tokio::time::advance(Duration::from_millis(100)).await;
        let again = [Duration::from_secs(16), Duration::from_secs(32)].map(Deadline::after);
        assert_eq!(again.each_ref().map(|deadline| deadline.sleep.as_ref().unwrap().deadline()), set);
    }

    #[test]
    fn a_timer_kept_under_a_runtime_that_stopped_is_not_used_under_the_next() {
        for _ in 0..2 {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            runtime.block_on(async {
                Deadline::after(Duration::from_millis(1)).await;
                assert_eq!(within(Duration::from_millis(1), std::future::pending::<()>()).await, None);
            });
        }
    }
}
