//! In-flight outgoing calls: id allocation, deadlines, and exactly one
//! outcome per call.
//!
//! Sans-IO: the table holds one waiter per call (whatever the connection uses
//! to wake the caller) with the call's deadline, and answers events with the
//! waiters to wake. Each id leaves the table exactly once — by
//! [`InFlight::complete`] (a reply came), [`InFlight::expire`] (its deadline
//! passed), [`InFlight::abandon`] (the caller dropped its future) or
//! [`InFlight::fail_all`] (the connection is gone) — so a call can never end
//! twice or be forgotten. Ids are never reused on a connection.
//!
//! Deadlines are kept here rather than in a timer per call: the connection
//! has one timer, armed with [`InFlight::arm`], and a call that ends in time
//! costs no timer at all. [`InFlight::start`] says when a new call's deadline
//! comes before the armed one, so the timer must be armed again.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use tokio::time::Instant;

/// Hashes call ids, which this side hands out in sequence (the peer does not
/// choose them, so a fast hash without a key is safe here).
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 << 8 | u64::from(*byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        // Fibonacci hashing: sequential ids spread over the table's buckets.
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by call id.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// The calls of one connection that wait for a reply.
#[derive(Debug)]
pub(crate) struct InFlight<W> {
    next_id: u64,
    pending: IdMap<(Instant, W)>,
    /// No pending deadline is earlier; may be earlier than all of them (a
    /// call ended since), never later.
    earliest: Option<Instant>,
    /// What the connection's timer is set to, as of the last [`InFlight::arm`].
    armed: Option<Instant>,
    closed: bool,
}

/// A call registered by [`InFlight::start`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Started {
    /// The call's id.
    pub(crate) id: u64,
    /// Its deadline comes before the armed timer: arm it again.
    pub(crate) rearm: bool,
}

impl<W> Default for InFlight<W> {
    fn default() -> Self {
        Self {
            next_id: 1,
            pending: IdMap::default(),
            earliest: None,
            armed: None,
            closed: false,
        }
    }
}

impl<W> InFlight<W> {
    /// Registers a call that waits until `deadline`; `None` once the
    /// connection is closed.
    pub(crate) fn start(&mut self, waiter: W, deadline: Instant) -> Option<Started> {
        if self.closed {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, (deadline, waiter));
        self.earliest = Some(self.earliest.map_or(deadline, |e| e.min(deadline)));
        let rearm = self.armed.is_none_or(|armed| deadline < armed);
        Some(Started { id, rearm })
    }

    /// The connection sets its timer to the returned time (none: no call
    /// waits). Later calls with an earlier deadline ask for this again.
    pub(crate) fn arm(&mut self) -> Option<Instant> {
        self.armed = self.earliest;
        self.armed
    }

    /// A reply for `id` arrived: the waiter to wake, or `None` for a reply
    /// nobody waits for (late, after a timeout or cancel, or never sent).
    pub(crate) fn complete(&mut self, id: u64) -> Option<W> {
        self.pending.remove(&id).map(|(_, waiter)| waiter)
    }

    /// The waiter of `id`, while it is in flight (to replace it).
    pub(crate) fn waiter_mut(&mut self, id: u64) -> Option<&mut W> {
        self.pending.get_mut(&id).map(|(_, waiter)| waiter)
    }

    /// Ends every call whose deadline is `now` or earlier: their ids and
    /// waiters, to be failed with a timeout.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<(u64, W)> {
        if self.earliest.is_none_or(|earliest| earliest > now) {
            return Vec::new();
        }
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        let ended = expired
            .into_iter()
            .filter_map(|id| self.pending.remove(&id).map(|(_, waiter)| (id, waiter)))
            .collect();
        self.earliest = self.pending.values().map(|(deadline, _)| *deadline).min();
        ended
    }

    /// The caller stopped waiting for `id`. `true` if the call was still in
    /// flight, so the callee should be told to cancel it.
    pub(crate) fn abandon(&mut self, id: u64) -> bool {
        self.pending.remove(&id).is_some()
    }

    /// The connection is gone: every waiter, to be failed at once. Later calls
    /// to [`InFlight::start`] fail.
    pub(crate) fn fail_all(&mut self) -> Vec<W> {
        self.closed = true;
        self.earliest = None;
        self.armed = None;
        self.pending
            .drain()
            .map(|(_, (_, waiter))| waiter)
            .collect()
    }

    /// Calls waiting for a reply.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::InFlight;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[test]
    fn ids_are_unique_and_each_call_ends_once() {
        let mut calls = InFlight::default();
        let a = calls.start("a", far()).unwrap().id;
        let b = calls.start("b", far()).unwrap().id;
        assert_ne!(a, b);
        assert_eq!(calls.complete(b), Some("b"));
        assert_eq!(calls.complete(b), None, "a second reply is ignored");
        assert!(calls.abandon(a));
        assert_eq!(
            calls.complete(a),
            None,
            "a late reply after a timeout is ignored"
        );
        assert!(!calls.abandon(a), "an ended call needs no cancel");
        let c = calls.start("c", far()).unwrap().id;
        assert!(c > b, "ids are never reused");
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn fail_all_ends_every_pending_call_and_closes() {
        let mut calls = InFlight::default();
        let a = calls.start(1, far()).unwrap().id;
        calls.start(2, far()).unwrap();
        calls.start(3, far()).unwrap();
        assert_eq!(calls.complete(a), Some(1));
        let mut failed = calls.fail_all();
        failed.sort_unstable();
        assert_eq!(failed, vec![2, 3]);
        assert_eq!(calls.len(), 0);
        assert_eq!(
            calls.start(4, far()),
            None,
            "no call starts on a closed connection"
        );
        assert!(calls.fail_all().is_empty());
    }

    /// Any interleaving of events: every call ends exactly once, and ids are never reused.
    #[test]
    fn every_call_ends_exactly_once_under_any_event_order() {
        use proptest::prelude::*;
        use std::collections::HashSet;

        #[derive(Clone, Debug)]
        enum Op {
            Start,
            Complete(usize),
            Abandon(usize),
            Reply(u64),
            Expire(u64),
            FailAll,
        }
        let op = prop_oneof![
            4 => Just(Op::Start),
            2 => any::<usize>().prop_map(Op::Complete),
            2 => any::<usize>().prop_map(Op::Abandon),
            1 => (0u64..64).prop_map(Op::Reply),
            1 => (0u64..64).prop_map(Op::Expire),
            1 => Just(Op::FailAll),
        ];
        proptest!(|(ops in proptest::collection::vec(op, 0..200))| {
            let start = Instant::now();
            let mut calls = InFlight::default();
            let mut issued = Vec::new();
            let mut ended = HashSet::new();
            let end = |id: u64, ended: &mut HashSet<u64>| {
                prop_assert!(ended.insert(id), "call {} ended twice", id);
                Ok(())
            };
            for op in ops {
                match op {
                    Op::Start => {
                        // Deadlines 0..64 ms after `start`, by id.
                        let deadline = start + Duration::from_millis(issued.len() as u64 * 7 % 64);
                        if let Some(id) = calls.start((), deadline).map(|s| s.id) {
                            prop_assert!(!issued.contains(&id), "id {} reused", id);
                            issued.push(id);
                        }
                    }
                    Op::Complete(i) | Op::Abandon(i) if issued.is_empty() => { let _ = i; }
                    Op::Complete(i) => {
                        let id = issued[i % issued.len()];
                        if calls.complete(id).is_some() { end(id, &mut ended)?; }
                    }
                    Op::Abandon(i) => {
                        let id = issued[i % issued.len()];
                        if calls.abandon(id) { end(id, &mut ended)?; }
                    }
                    Op::Reply(id) => {
                        if calls.complete(id).is_some() { end(id, &mut ended)?; }
                    }
                    Op::Expire(ms) => {
                        let now = start + Duration::from_millis(ms);
                        for (id, ()) in calls.expire(now) {
                            end(id, &mut ended)?;
                        }
                        if let Some(armed) = calls.arm() {
                            prop_assert!(armed > now, "a due call was left pending");
                        }
                    }
                    Op::FailAll => {
                        let before = calls.len();
                        let failed = calls.fail_all();
                        prop_assert_eq!(failed.len(), before);
                        // The waiters carry no id; count them as the pending ones.
                        for id in issued.iter().filter(|id| !ended.contains(id)).copied().collect::<Vec<_>>() {
                            end(id, &mut ended)?;
                        }
                    }
                }
                prop_assert_eq!(calls.len(), issued.len() - ended.len());
            }
        });
    }

    #[test]
    fn expire_ends_exactly_the_calls_whose_deadline_passed() {
        let now = Instant::now();
        let at = |ms| now + Duration::from_millis(ms);
        let mut calls = InFlight::default();
        assert_eq!(calls.arm(), None);
        let slow = calls.start("slow", at(300)).unwrap();
        assert!(slow.rearm, "no timer was armed");
        assert_eq!(calls.arm(), Some(at(300)));
        let fast = calls.start("fast", at(100)).unwrap();
        assert!(fast.rearm, "earlier than the armed timer");
        assert_eq!(calls.arm(), Some(at(100)));
        let mid = calls.start("mid", at(200)).unwrap();
        assert!(!mid.rearm, "the armed timer fires first");
        assert!(calls.expire(at(99)).is_empty(), "nothing is due yet");
        assert_eq!(calls.expire(at(100)), vec![(fast.id, "fast")]);
        assert_eq!(calls.arm(), Some(at(200)));
        assert_eq!(
            calls.complete(fast.id),
            None,
            "a late reply finds no waiter"
        );
        assert_eq!(calls.complete(mid.id), Some("mid"));
        // The armed time may come early (mid ended) but never late.
        assert_eq!(calls.arm(), Some(at(200)));
        assert!(calls.expire(at(250)).is_empty());
        assert_eq!(calls.arm(), Some(at(300)));
        assert_eq!(calls.expire(at(1000)), vec![(slow.id, "slow")]);
        assert_eq!(calls.arm(), None);
        assert_eq!(calls.len(), 0);
    }
}
