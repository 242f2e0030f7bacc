//! The bounded queue of envelopes waiting for a connection's task: calls and
//! notifications of ours, replies of handler tasks, cancels.
//!
//! Many senders, one receiver (the connection's task), at most `capacity`
//! envelopes waiting: a sender that finds it full waits for room, so a peer
//! that stops reading slows its senders down instead of growing memory.
//!
//! Why not `tokio::sync::mpsc`: it allocates its first block of 32 slots when
//! the channel is made, about 2.3 KiB per side of every connection, idle or
//! not. This queue allocates only once envelopes wait, and the receiver takes
//! everything waiting under one lock.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::Waker;

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

use crate::protocol::Message;

/// Why [`Queue::try_send`] did not queue the envelope.
#[derive(Debug)]
pub(crate) enum TrySendError {
    /// `capacity` envelopes wait already: the envelope, back.
    Full(Message),
    /// The connection's task has ended.
    Closed,
}

/// The connection's task has ended: nothing more is sent.
#[derive(Debug)]
pub(crate) struct Closed;

#[derive(Debug, Default)]
struct Waiting {
    messages: VecDeque<Message>,
    closed: bool,
}

/// A bounded queue of envelopes for one connection's task.
#[derive(Debug)]
pub(crate) struct Queue {
    waiting: Mutex<Waiting>,
    capacity: usize,
    /// Senders waiting for room.
    room: Notify,
    /// The connection's task.
    receiver: AtomicWaker,
}

impl Queue {
    /// A queue that holds at most `capacity` envelopes (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            waiting: Mutex::new(Waiting::default()),
            capacity: capacity.max(1),
            room: Notify::new(),
            receiver: AtomicWaker::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // Plain data: go on with it after a panic elsewhere.
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `message` if there is room, and wakes the connection's task.
    ///
    /// # Errors
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the message.
    pub(crate) fn try_send(&self, message: Message) -> Result<(), TrySendError> {
        {
            let mut waiting = self.lock();
            if waiting.closed {
                return Err(TrySendError::Closed);
            }
            if waiting.messages.len() >= self.capacity {
                return Err(TrySendError::Full(message));
            }
            waiting.messages.push_back(message);
        }
        self.receiver.wake();
        Ok(())
    }

    /// Queues `message`, waiting for room while the queue is full.
    ///
    /// # Errors
    /// [`Closed`] once the connection's task has ended.
    ///
    /// # Cancel safety
    /// Cancel safe: the message is queued only when this resolves `Ok`.
    pub(crate) async fn send(&self, message: Message) -> Result<(), Closed> {
        // Most find room: no waiter is registered for them.
        let mut message = match self.try_send(message) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed) => return Err(Closed),
            Err(TrySendError::Full(back)) => back,
        };
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            // Registered before trying: room made in between still wakes us.
            room.as_mut().enable();
            match self.try_send(message) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed) => return Err(Closed),
                Err(TrySendError::Full(back)) => message = back,
            }
            room.await;
        }
    }

    /// The connection's task is polled with `waker`: new envelopes wake it.
    pub(crate) fn register(&self, waker: &Waker) {
        self.receiver.register(waker);
    }

    /// Wakes the connection's task without an envelope (see `Shared::rearm_calls`).
    pub(crate) fn wake_receiver(&self) {
        self.receiver.wake();
    }

    /// Moves every waiting envelope to the end of `into`, in order; whether
    /// there were any.
    pub(crate) fn take(&self, into: &mut VecDeque<Message>) -> bool {
        let was_full = {
            let mut waiting = self.lock();
            if waiting.messages.is_empty() {
                return false;
            }
            let was_full = waiting.messages.len() >= self.capacity;
            if into.is_empty() {
                std::mem::swap(into, &mut waiting.messages);
            } else {
                into.append(&mut waiting.messages);
            }
            was_full
        };
        if was_full {
            self.room.notify_waiters();
        }
        true
    }

    /// The connection's task has ended: senders fail from now on, and those
    /// waiting for room are woken to find out.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures_util::FutureExt;

    use super::*;

    fn ping(nonce: u64) -> Message {
        Message::Ping { nonce }
    }

    fn nonces(messages: &VecDeque<Message>) -> Vec<u64> {
        messages
            .iter()
            .map(|m| match m {
                Message::Ping { nonce } => *nonce,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn holds_at_most_its_capacity_and_hands_envelopes_over_in_order() {
        let queue = Queue::new(2);
        queue.try_send(ping(1)).unwrap();
        queue.try_send(ping(2)).unwrap();
        assert!(matches!(
            queue.try_send(ping(3)),
            Err(TrySendError::Full(Message::Ping { nonce: 3 }))
        ));
        let mut taken = VecDeque::new();
        assert!(queue.take(&mut taken));
        assert_eq!(nonces(&taken), [1, 2]);
        assert!(!queue.take(&mut taken), "nothing more waits");
        queue.try_send(ping(3)).unwrap();
        assert!(queue.take(&mut taken));
        assert_eq!(nonces(&taken), [1, 2, 3], "appended after what was taken");
    }

    #[tokio::test]
    async fn a_sender_waits_for_room_and_a_closed_queue_fails_it() {
        let queue = Arc::new(Queue::new(1));
        queue.try_send(ping(1)).unwrap();
        let mut send = std::pin::pin!(queue.send(ping(2)));
        assert!(
            send.as_mut().now_or_never().is_none(),
            "the queue is full: the sender waits"
        );
        let mut taken = VecDeque::new();
        queue.take(&mut taken);
        tokio::time::timeout(Duration::from_secs(10), send)
            .await
            .expect("room wakes the sender")
            .unwrap();
        queue.take(&mut taken);
        assert_eq!(nonces(&taken), [1, 2]);

        queue.try_send(ping(3)).unwrap();
        let blocked = tokio::spawn({
            let queue = Arc::clone(&queue);
            async move { queue.send(ping(4)).await }
        });
        tokio::task::yield_now().await;
        queue.close();
        let outcome = tokio::time::timeout(Duration::from_secs(10), blocked)
            .await
            .expect("closing wakes the sender")
            .unwrap();
        assert!(outcome.is_err());
        assert!(matches!(queue.try_send(ping(5)), Err(TrySendError::Closed)));
    }
}
