//! In-flight outgoing calls: id allocation and exactly one outcome per call.
//!
//! Sans-IO: the table holds one waiter per call (whatever the connection uses
//! to wake the caller) and answers events with the waiter to wake, if any.
//! Each id leaves the table exactly once — by [`InFlight::complete`] (a reply
//! came), [`InFlight::abandon`] (the caller timed out or dropped its future)
//! or [`InFlight::fail_all`] (the connection is gone) — so a call can never
//! end twice or be forgotten. Ids are never reused on a connection.

use std::collections::HashMap;

/// The calls of one connection that wait for a reply.
#[derive(Debug)]
pub(crate) struct InFlight<W> {
    next_id: u64,
    pending: HashMap<u64, W>,
    closed: bool,
}

impl<W> Default for InFlight<W> {
    fn default() -> Self {
        Self {
            next_id: 1,
            pending: HashMap::new(),
            closed: false,
        }
    }
}

impl<W> InFlight<W> {
    /// Registers a call and returns its id; `None` once the connection is closed.
    pub(crate) fn start(&mut self, waiter: W) -> Option<u64> {
        if self.closed {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, waiter);
        Some(id)
    }

    /// A reply for `id` arrived: the waiter to wake, or `None` for a reply
    /// nobody waits for (late, after a timeout or cancel, or never sent).
    pub(crate) fn complete(&mut self, id: u64) -> Option<W> {
        self.pending.remove(&id)
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
        self.pending.drain().map(|(_, waiter)| waiter).collect()
    }

    /// Calls waiting for a reply.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::InFlight;

    #[test]
    fn ids_are_unique_and_each_call_ends_once() {
        let mut calls = InFlight::default();
        let a = calls.start("a").unwrap();
        let b = calls.start("b").unwrap();
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
        let c = calls.start("c").unwrap();
        assert!(c > b, "ids are never reused");
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn fail_all_ends_every_pending_call_and_closes() {
        let mut calls = InFlight::default();
        let a = calls.start(1).unwrap();
        calls.start(2).unwrap();
        calls.start(3).unwrap();
        assert_eq!(calls.complete(a), Some(1));
        let mut failed = calls.fail_all();
        failed.sort_unstable();
        assert_eq!(failed, vec![2, 3]);
        assert_eq!(calls.len(), 0);
        assert_eq!(
            calls.start(4),
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
            FailAll,
        }
        let op = prop_oneof![
            4 => Just(Op::Start),
            2 => any::<usize>().prop_map(Op::Complete),
            2 => any::<usize>().prop_map(Op::Abandon),
            1 => (0u64..64).prop_map(Op::Reply),
            1 => Just(Op::FailAll),
        ];
        proptest!(|(ops in proptest::collection::vec(op, 0..200))| {
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
                        if let Some(id) = calls.start(()) {
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

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_call_ends_once_even_if_its_reply_comes_later() {
        use std::time::Duration;
        let mut calls = InFlight::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let id = calls.start(tx).unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(5), rx).await;
        assert!(outcome.is_err(), "the deadline passes first");
        assert!(calls.abandon(id));
        assert!(
            calls.complete(id).is_none(),
            "the late reply finds no waiter"
        );
    }
}
