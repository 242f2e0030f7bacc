//! The outbound half of a connection: our calls in flight, and the queue of
//! envelopes waiting for the connection's task.
//!
//! Callers on any task start calls and wait for their replies here; the
//! connection's task completes them, expires them on its one timer, and
//! takes what the queue holds. A connection that a newer one replaced
//! (session renewal) *retires*: it takes no new calls and closes once the
//! pending ones have ended; every method that can end the last pending call
//! says so, so the owner can close.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::protocol::EncodedValue;
use tokio::time::Instant;

use super::queue::Queue;
use crate::correlation::{IdMap, InFlight, Started};
use crate::error::Error;

/// Our calls: those in flight, each with the waker of its caller (once it
/// has waited), and the outcomes of those that ended, until their callers
/// take them. A call costs no allocation of its own here: the tables keep
/// their room between calls.
#[derive(Default)]
struct Calls {
    in_flight: InFlight<Option<Waker>>,
    ended: IdMap<Result<EncodedValue, Error>>,
}

impl Calls {
    /// Call `id` ended with `outcome`: kept for its caller, whose waker is
    /// returned, to be woken once the lock is released.
    fn end(
        &mut self,
        id: u64,
        waiter: Option<Waker>,
        outcome: Result<EncodedValue, Error>,
    ) -> Option<Waker> {
        self.ended.insert(id, outcome);
        waiter
    }
}

/// Our side of the calls, and the envelopes to send.
pub(super) struct Outbound {
    queue: Queue,
    calls: Mutex<Calls>,
    /// A call's deadline comes before the task's timer: the task must arm it again.
    timer_stale: AtomicBool,
    /// Replaced by a newer connection: close once no call of ours is pending.
    retiring: AtomicBool,
}

impl Outbound {
    pub(super) fn new(queue_capacity: usize) -> Self {
        Self {
            queue: Queue::new(queue_capacity),
            calls: Mutex::new(Calls::default()),
            timer_stale: AtomicBool::new(false),
            retiring: AtomicBool::new(false),
        }
    }

    fn calls(&self) -> MutexGuard<'_, Calls> {
        // Plain data: a panic elsewhere cannot leave it half-written.
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The envelopes waiting for the connection's task.
    pub(super) fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Whether the last pending call just ended on a retiring connection.
    fn retire_now(&self, pending: usize) -> bool {
        pending == 0 && self.retiring.load(Ordering::Acquire)
    }

    /// Starts a call that waits until `deadline`, woken through `waker`
    /// when it ends: its id, for [`Outbound::poll_reply`]. `None` once the
    /// connection is closing.
    pub(super) fn start(&self, deadline: Instant, waker: Waker) -> Option<u64> {
        let Started { id, rearm } = self.calls().in_flight.start(Some(waker), deadline)?;
        if rearm {
            self.timer_stale.store(true, Ordering::Release);
            self.queue.wake_receiver();
        }
        Some(id)
    }

    /// The outcome of call `id` once it ended (its reply, a timeout);
    /// `None` when the connection failed it (or it was never started).
    pub(super) fn poll_reply(
        &self,
        id: u64,
        cx: &Context<'_>,
    ) -> Poll<Option<Result<EncodedValue, Error>>> {
        let mut calls = self.calls();
        if let Some(outcome) = calls.ended.remove(&id) {
            return Poll::Ready(Some(outcome));
        }
        match calls.in_flight.waiter_mut(id) {
            Some(waiter) => {
                if !waiter.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *waiter = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            None => Poll::Ready(None),
        }
    }

    /// A reply came for call `id`; whether the connection may retire now.
    pub(super) fn complete(&self, id: u64, result: Result<EncodedValue, Error>) -> bool {
        let (waker, known, pending) = {
            let mut calls = self.calls();
            let (waker, known) = match calls.in_flight.complete(id) {
                Some(waiter) => (calls.end(id, waiter, result), true),
                None => (None, false),
            };
            (waker, known, calls.in_flight.len())
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        if !known {
            tracing::trace!(call = id, "reply for no waiting call");
        }
        self.retire_now(pending)
    }

    /// The caller of `id` stopped waiting: whether the call was still
    /// pending (so the peer must be told to cancel it), and whether the
    /// connection may retire now.
    pub(super) fn abandon(&self, id: u64) -> (bool, bool) {
        let (abandoned, pending) = {
            let mut calls = self.calls();
            // An outcome its caller will not take.
            calls.ended.remove(&id);
            (calls.in_flight.abandon(id), calls.in_flight.len())
        };
        (abandoned, self.retire_now(pending))
    }

    /// Ends the calls whose deadline passed with [`Error::Timeout`]: their
    /// ids (for the peer to be told to cancel them), when to check again,
    /// and whether the connection may retire now.
    pub(super) fn expire(&self, now: Instant) -> (Vec<u64>, Option<Instant>, bool) {
        let (ids, wakers, next, pending) = {
            let mut calls = self.calls();
            let expired = calls.in_flight.expire(now);
            let mut ids = Vec::with_capacity(expired.len());
            let mut wakers = Vec::with_capacity(expired.len());
            for (id, waiter) in expired {
                ids.push(id);
                wakers.extend(calls.end(id, waiter, Err(Error::Timeout)));
            }
            let next = calls.in_flight.arm();
            (ids, wakers, next, calls.in_flight.len())
        };
        for waker in wakers {
            waker.wake();
        }
        (ids, next, self.retire_now(pending))
    }

    /// When the task's timer must check the calls' deadlines, if a call
    /// asked for it since the last time: `Some(None)` when no call waits.
    pub(super) fn rearm(&self) -> Option<Option<Instant>> {
        if !self.timer_stale.swap(false, Ordering::AcqRel) {
            return None;
        }
        Some(self.calls().in_flight.arm())
    }

    /// Fails every pending call (its caller finds it gone and reports the
    /// connection's end); no call starts after.
    pub(super) fn fail_all(&self) {
        let waiters = self.calls().in_flight.fail_all();
        for waker in waiters.into_iter().flatten() {
            waker.wake();
        }
    }

    /// Takes no new calls from now on (see the module's docs); whether the
    /// connection may retire now.
    pub(super) fn retire(&self) -> bool {
        self.retiring.store(true, Ordering::Release);
        let pending = self.calls().in_flight.len();
        self.retire_now(pending)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;
    use std::time::Duration;

    use super::*;

    /// Counts its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (Arc::clone(&count), Waker::from(count))
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn a_reply_wakes_its_waiting_caller_and_is_taken_once() {
        let outbound = Outbound::new(8);
        let id = outbound.start(later(), Waker::noop().clone()).unwrap();
        let (count, waker) = waker();
        let cx = Context::from_waker(&waker);
        assert!(outbound.poll_reply(id, &cx).is_pending());
        assert!(!outbound.complete(id, Ok(EncodedValue::from(&b"ok"[..]))));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        match outbound.poll_reply(id, &cx) {
            Poll::Ready(Some(Ok(reply))) => assert_eq!(&reply[..], b"ok"),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(outbound.poll_reply(id, &cx), Poll::Ready(None)),
            "taken: the call is in no table"
        );
        assert!(
            !outbound.complete(id, Ok(EncodedValue::default())),
            "a second reply finds no call"
        );
    }

    #[test]
    fn a_reply_before_its_caller_waits_is_kept_for_it_until_abandoned() {
        let outbound = Outbound::new(8);
        let (count, waker) = waker();
        let (first, second) = (
            outbound.start(later(), waker.clone()).unwrap(),
            outbound.start(later(), waker.clone()).unwrap(),
        );
        outbound.complete(first, Ok(EncodedValue::from(&b"1"[..])));
        outbound.complete(second, Err(Error::Timeout));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "each end wakes the waker its call started with"
        );
        let cx = Context::from_waker(&waker);
        assert!(matches!(
            outbound.poll_reply(first, &cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert_eq!(
            outbound.abandon(second),
            (false, false),
            "ended already: nothing to cancel"
        );
        assert!(
            matches!(outbound.poll_reply(second, &cx), Poll::Ready(None)),
            "its outcome went with it"
        );
        assert!(outbound.calls().ended.is_empty());
    }

    #[test]
    fn a_deadline_ends_a_call_with_a_timeout_and_a_closed_connection_fails_the_rest() {
        let outbound = Outbound::new(8);
        let now = Instant::now();
        let (count, waker) = waker();
        let soon = outbound.start(now, waker.clone()).unwrap();
        let late = outbound.start(later(), waker.clone()).unwrap();
        let cx = Context::from_waker(&waker);
        for id in [soon, late] {
            assert!(outbound.poll_reply(id, &cx).is_pending());
        }
        let (expired, next, _) = outbound.expire(now);
        assert_eq!(expired, [soon]);
        assert!(next.is_some(), "the later call still waits");
        assert!(matches!(
            outbound.poll_reply(soon, &cx),
            Poll::Ready(Some(Err(Error::Timeout)))
        ));
        outbound.fail_all();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "each waiting caller woken once"
        );
        assert!(matches!(outbound.poll_reply(late, &cx), Poll::Ready(None)));
        assert!(
            outbound.start(later(), waker).is_none(),
            "no call starts after"
        );
    }
}
