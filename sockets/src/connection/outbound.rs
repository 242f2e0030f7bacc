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

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::queue::Queue;
use crate::correlation::{InFlight, Started};
use crate::error::{Disconnect, Error};

/// Where a call's reply goes.
type Waiter = oneshot::Sender<Result<Bytes, Error>>;

/// The reply of a started call, when it comes.
pub(super) type ReplySlot = oneshot::Receiver<Result<Bytes, Error>>;

/// Our side of the calls, and the envelopes to send.
pub(super) struct Outbound {
    queue: Queue,
    calls: Mutex<InFlight<Waiter>>,
    /// A call's deadline comes before the task's timer: the task must arm it again.
    timer_stale: AtomicBool,
    /// Replaced by a newer connection: close once no call of ours is pending.
    retiring: AtomicBool,
}

impl Outbound {
    pub(super) fn new(queue_capacity: usize) -> Self {
        Self {
            queue: Queue::new(queue_capacity),
            calls: Mutex::new(InFlight::default()),
            timer_stale: AtomicBool::new(false),
            retiring: AtomicBool::new(false),
        }
    }

    fn calls(&self) -> MutexGuard<'_, InFlight<Waiter>> {
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

    /// Starts a call that waits until `deadline`: its id and where its reply
    /// will come. `None` once the connection is closing.
    pub(super) fn start(&self, deadline: Instant) -> Option<(u64, ReplySlot)> {
        let (tx, rx) = oneshot::channel();
        let Started { id, rearm } = self.calls().start(tx, deadline)?;
        if rearm {
            self.timer_stale.store(true, Ordering::Release);
            self.queue.wake_receiver();
        }
        Some((id, rx))
    }

    /// A reply came for call `id`; whether the connection may retire now.
    pub(super) fn complete(&self, id: u64, result: Result<Bytes, Error>) -> bool {
        let (waiter, pending) = {
            let mut calls = self.calls();
            (calls.complete(id), calls.len())
        };
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(result);
            }
            None => tracing::trace!(call = id, "reply for no waiting call"),
        }
        self.retire_now(pending)
    }

    /// The caller of `id` stopped waiting: whether the call was still
    /// pending (so the peer must be told to cancel it), and whether the
    /// connection may retire now.
    pub(super) fn abandon(&self, id: u64) -> (bool, bool) {
        let (abandoned, pending) = {
            let mut calls = self.calls();
            (calls.abandon(id), calls.len())
        };
        (abandoned, self.retire_now(pending))
    }

    /// Ends the calls whose deadline passed with [`Error::Timeout`]: their
    /// ids (for the peer to be told to cancel them), when to check again,
    /// and whether the connection may retire now.
    pub(super) fn expire(&self, now: Instant) -> (Vec<u64>, Option<Instant>, bool) {
        let (expired, next, pending) = {
            let mut calls = self.calls();
            let expired = calls.expire(now);
            (expired, calls.arm(), calls.len())
        };
        let ids = expired
            .into_iter()
            .map(|(id, waiter)| {
                let _ = waiter.send(Err(Error::Timeout));
                id
            })
            .collect();
        (ids, next, self.retire_now(pending))
    }

    /// When the task's timer must check the calls' deadlines, if a call
    /// asked for it since the last time: `Some(None)` when no call waits.
    pub(super) fn rearm(&self) -> Option<Option<Instant>> {
        if !self.timer_stale.swap(false, Ordering::AcqRel) {
            return None;
        }
        Some(self.calls().arm())
    }

    /// Fails every pending call with `Disconnected(reason)`; no call starts after.
    pub(super) fn fail_all(&self, reason: &Disconnect) {
        let waiters = self.calls().fail_all();
        for waiter in waiters {
            let _ = waiter.send(Err(Error::Disconnected(reason.clone())));
        }
    }

    /// Takes no new calls from now on (see the module's docs); whether the
    /// connection may retire now.
    pub(super) fn retire(&self) -> bool {
        self.retiring.store(true, Ordering::Release);
        let pending = self.calls().len();
        self.retire_now(pending)
    }
}
