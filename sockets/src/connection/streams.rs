//! The streams of one connection: those we receive (we called a streaming
//! method) and those we send (the peer did), with their flow control.
//!
//! A received stream buffers at most its window (the credit machine in
//! `credit` enforces it against the peer); the application takes items
//! from the buffer and gives credit back as it does. A sent stream runs in a
//! task of its own that polls the handler's stream only while the peer has
//! granted credit, so items wait in the handler's stream, not in the
//! connection's queue: a slow reader holds up neither the connection nor
//! its other streams.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::{FutureExt, Stream as FuturesStream, StreamExt};
use metrics::Gauge;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::Shared;
use crate::credit::{self, CreditError, Window};
use crate::error::{Disconnect, Error};
use crate::protocol::{ErrorCode, Half, Message, Reason, RemoteError};
use crate::service::StreamHandlerFuture;
use crate::stream::{RawItems, RawStream};

/// Our stream ids start here, so they never meet our call ids (which count
/// up from 1): a reply to either finds its way by the id alone.
pub(super) const FIRST_STREAM_ID: u64 = 1 << 62;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panic elsewhere cannot leave it half-written.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The connection's streams, both ways.
pub(super) struct Streams {
    receiving: Mutex<Receiving>,
    sending: Mutex<HashMap<u64, Sending>>,
    next_id: AtomicU64,
    max_streams: usize,
    max_item: usize,
    /// The streams we receive (we opened them) and those we send.
    open_out: Gauge,
    open_in: Gauge,
}

#[derive(Default)]
struct Receiving {
    by_id: HashMap<u64, Arc<Mutex<Inbox>>>,
    /// The connection is closing: why; no stream opens any more.
    closed: Option<Disconnect>,
}

/// One stream we receive.
struct Inbox {
    credit: credit::Receiver,
    items: VecDeque<Bytes>,
    end: End,
    waker: Option<Waker>,
}

enum End {
    Open,
    Failed(Error),
    Finished,
}

impl Inbox {
    fn finish(&mut self, end: End) {
        if matches!(self.end, End::Open) {
            self.end = end;
        }
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// One stream we send: its task, and the credit the peer granted it.
struct Sending {
    task: AbortHandle,
    credit: Arc<Credit>,
}

/// The credit the peer granted a stream we send; the stream's task waits on it.
#[derive(Default)]
struct Credit {
    sender: Mutex<credit::Sender>,
    granted: Notify,
}

impl Credit {
    /// Waits until an item may be sent.
    async fn ready(&self) {
        loop {
            let granted = self.granted.notified();
            tokio::pin!(granted);
            granted.as_mut().enable();
            if lock(&self.sender).can_send() {
                return;
            }
            granted.await;
        }
    }
}

impl Streams {
    /// `open_out` and `open_in` count the streams open each way (metrics).
    pub(super) fn new(
        max_streams: usize,
        max_message: usize,
        open_out: Gauge,
        open_in: Gauge,
    ) -> Self {
        Self {
            receiving: Mutex::new(Receiving::default()),
            sending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(FIRST_STREAM_ID),
            max_streams,
            // Room for the item envelope's own fields.
            max_item: max_message.saturating_sub(64),
            open_out,
            open_in,
        }
    }

    /// Ends every stream: received ones with `Disconnected(reason)`, sent
    /// ones are dropped. No stream opens after.
    pub(super) fn close(&self, reason: &Disconnect) {
        let inboxes: Vec<_> = {
            let mut receiving = lock(&self.receiving);
            receiving.closed = Some(reason.clone());
            receiving.by_id.drain().map(|(_, inbox)| inbox).collect()
        };
        self.open_out.decrement(count(inboxes.len()));
        for inbox in inboxes {
            lock(&inbox).finish(End::Failed(Error::Disconnected(reason.clone())));
        }
        let sending: Vec<_> = lock(&self.sending).drain().collect();
        self.open_in.decrement(count(sending.len()));
        for (_, stream) in sending {
            stream.task.abort();
        }
    }

    // ---- streams we receive ----

    /// Registers a stream we are about to open with `window`: its id, its
    /// inbox and the grant that opens it.
    fn open(&self, window: Window) -> Result<(u64, Arc<Mutex<Inbox>>, credit::Grant), Error> {
        let mut receiving = lock(&self.receiving);
        if let Some(reason) = &receiving.closed {
            return Err(Error::Disconnected(reason.clone()));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (credit, grant) = credit::Receiver::new(window);
        let inbox = Arc::new(Mutex::new(Inbox {
            credit,
            items: VecDeque::new(),
            end: End::Open,
            waker: None,
        }));
        receiving.by_id.insert(id, Arc::clone(&inbox));
        self.open_out.increment(1.0);
        Ok((id, inbox, grant))
    }

    fn inbox(&self, id: u64) -> Option<Arc<Mutex<Inbox>>> {
        lock(&self.receiving).by_id.get(&id).cloned()
    }

    fn forget(&self, id: u64) -> Option<Arc<Mutex<Inbox>>> {
        let inbox = lock(&self.receiving).by_id.remove(&id);
        if inbox.is_some() {
            self.open_out.decrement(1.0);
        }
        inbox
    }

    /// An item for stream `id`: buffered, or ignored when the stream is
    /// gone (we stopped it and the item crossed the STOP).
    ///
    /// # Errors
    /// The close reason when the peer had no credit for it.
    pub(super) fn item(&self, id: u64, half: Half, item: Bytes) -> Result<(), Reason> {
        let Some(inbox) = (half == Half::Down).then(|| self.inbox(id)).flatten() else {
            return Ok(());
        };
        let mut inbox = lock(&inbox);
        if inbox.credit.received(item.len()).is_err() {
            return Err(Reason::StreamPastCredit);
        }
        inbox.items.push_back(item);
        if let Some(waker) = inbox.waker.take() {
            waker.wake();
        }
        Ok(())
    }

    /// The peer ended stream `id`.
    pub(super) fn end(&self, id: u64, half: Half, error: Option<RemoteError>) {
        if half != Half::Down {
            return;
        }
        if let Some(inbox) = self.forget(id) {
            let end = error.map_or(End::Finished, |error| End::Failed(error.into()));
            lock(&inbox).finish(end);
        }
    }

    /// A reply to the call that opened stream `id` (at least
    /// [`FIRST_STREAM_ID`]): a refusal.
    pub(super) fn refused(&self, id: u64, result: Result<Bytes, Error>) {
        if let Some(inbox) = self.forget(id) {
            let error = result
                .err()
                .unwrap_or_else(|| Error::Protocol("a stream was answered with a reply".into()));
            lock(&inbox).finish(End::Failed(error));
        }
    }

    // ---- streams we send ----

    /// Starts sending the stream the peer opened with call `id`; the
    /// refusal to send instead, when too many are open or the id is taken.
    pub(super) fn start(
        &self,
        shared: &Arc<Shared>,
        id: u64,
        handler: StreamHandlerFuture,
    ) -> Option<Message> {
        let mut sending = lock(&self.sending);
        let refusal = if sending.contains_key(&id) {
            Some("duplicate stream id")
        } else if sending.len() >= self.max_streams {
            Some("too many streams open")
        } else {
            None
        };
        if let Some(message) = refusal {
            return Some(Message::Reply(crate::protocol::Reply {
                id,
                outcome: crate::protocol::Outcome::Err(RemoteError {
                    code: ErrorCode::Rejected,
                    message: message.into(),
                }),
            }));
        }
        let credit = Arc::new(Credit::default());
        // Spawned under the lock, so the task finds itself registered when it ends.
        let task = tokio::spawn(pump(
            Arc::clone(shared),
            id,
            handler,
            Arc::clone(&credit),
            self.max_item,
        ));
        sending.insert(
            id,
            Sending {
                task: task.abort_handle(),
                credit,
            },
        );
        self.open_in.increment(1.0);
        None
    }

    /// The peer granted credit to stream `id` (ignored when it has ended).
    ///
    /// # Errors
    /// The close reason for an empty or overflowing grant.
    pub(super) fn credit(&self, id: u64, half: Half, items: u32, bytes: u32) -> Result<(), Reason> {
        let credit = match half {
            Half::Down => lock(&self.sending).get(&id).map(|s| Arc::clone(&s.credit)),
            Half::Up => None,
        };
        let Some(credit) = credit else {
            // A credit may cross the stream's end; still, an empty one is never valid.
            return if items == 0 && bytes == 0 {
                Err(Reason::StreamCredit)
            } else {
                Ok(())
            };
        };
        let granted = lock(&credit.sender).grant(items, bytes);
        match granted {
            Ok(()) => {
                credit.granted.notify_one();
                Ok(())
            }
            Err(CreditError::BadGrant | CreditError::PastCredit) => Err(Reason::StreamCredit),
        }
    }

    /// The peer stopped stream `id`: its handler's stream is dropped now.
    pub(super) fn stop(&self, id: u64, half: Half) {
        if half != Half::Down {
            return;
        }
        if let Some(stream) = lock(&self.sending).remove(&id) {
            self.open_in.decrement(1.0);
            stream.task.abort();
        }
    }

    /// Stream `id`'s task ended; whether its END is still due (it was not
    /// stopped meanwhile).
    fn finished(&self, id: u64) -> bool {
        let finished = lock(&self.sending).remove(&id).is_some();
        if finished {
            self.open_in.decrement(1.0);
        }
        finished
    }
}

/// A number of streams, for a gauge.
#[allow(clippy::cast_precision_loss)] // Bounded by `max_streams`, far below 2^52.
fn count(n: usize) -> f64 {
    n as f64
}

/// What ends a stream that did not simply finish.
fn end_error(error: &Error) -> RemoteError {
    let (code, message) = match error {
        Error::Lagged(message) => (ErrorCode::Lagged, message.clone()),
        Error::Rejected(message) => (ErrorCode::Rejected, message.clone()),
        Error::Forbidden(message) => (ErrorCode::Forbidden, message.clone()),
        Error::Internal(message) => (ErrorCode::Internal, message.clone()),
        other => (ErrorCode::Internal, other.to_string()),
    };
    RemoteError { code, message }
}

fn internal(message: &str) -> Option<RemoteError> {
    Some(RemoteError {
        code: ErrorCode::Internal,
        message: message.into(),
    })
}

/// Runs the handler of a stream the peer opened, sends its items as the
/// credit allows, then its END.
async fn pump(
    shared: Arc<Shared>,
    id: u64,
    handler: StreamHandlerFuture,
    credit: Arc<Credit>,
    max_item: usize,
) {
    let end = match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(items) => send_items(&shared, id, items, &credit, max_item).await,
        Err(_panic) => {
            tracing::error!(stream = id, "stream handler panicked");
            internal("the handler panicked")
        }
    };
    if shared.streams.finished(id) {
        let end = Message::End {
            id,
            half: Half::Down,
            error: end,
        };
        let _ = shared.outbound.queue().send(end).await;
    }
}

/// Sends the items of `items` while the peer grants credit; the error that
/// ended it, if it did not simply finish.
async fn send_items(
    shared: &Shared,
    id: u64,
    items: RawStream,
    credit: &Credit,
    max_item: usize,
) -> Option<RemoteError> {
    let mut items = AssertUnwindSafe(items).catch_unwind();
    loop {
        credit.ready().await;
        let item = match items.next().await {
            None => return None,
            Some(Err(_panic)) => {
                tracing::error!(stream = id, "stream panicked");
                return internal("the stream panicked");
            }
            Some(Ok(Err(error))) => return Some(end_error(&error)),
            Some(Ok(Ok(item))) => item,
        };
        if item.len() > max_item {
            return internal("a stream item exceeds the maximum message size");
        }
        lock(&credit.sender).spend(item.len());
        let item = Message::Item {
            id,
            half: Half::Down,
            item,
        };
        if shared.outbound.queue().send(item).await.is_err() {
            return None;
        }
    }
}

/// Opens a stream on `shared`: sends the call and the grant that opens the
/// window, and returns the receiving end.
pub(super) async fn open(
    shared: &Arc<Shared>,
    call: impl FnOnce(u64) -> Message,
    window: Window,
) -> Result<RawStream, Error> {
    let (id, inbox, grant) = shared.streams.open(window)?;
    let receiver = Receiver {
        shared: Arc::clone(shared),
        id,
        inbox,
        ended: false,
    };
    let queue = shared.outbound.queue();
    let credit = Message::Credit {
        id,
        half: Half::Down,
        items: grant.items,
        bytes: grant.bytes,
    };
    for message in [call(id), credit] {
        queue
            .send(message)
            .await
            .map_err(|_| shared.disconnected())?;
    }
    Ok(Box::pin(receiver))
}

/// The receiving end of a stream we opened.
struct Receiver {
    shared: Arc<Shared>,
    id: u64,
    inbox: Arc<Mutex<Inbox>>,
    /// The stream ended: nothing to stop when dropped.
    ended: bool,
}

impl FuturesStream for Receiver {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let (next, grant) = {
            let mut inbox = lock(&self.inbox);
            if let Some(item) = inbox.items.pop_front() {
                let grant = inbox.credit.consumed(item.len());
                (Poll::Ready(Some(Ok(item))), grant)
            } else {
                match std::mem::replace(&mut inbox.end, End::Finished) {
                    End::Finished => (Poll::Ready(None), None),
                    End::Failed(error) => (Poll::Ready(Some(Err(error))), None),
                    End::Open => {
                        inbox.end = End::Open;
                        inbox.waker = Some(cx.waker().clone());
                        (Poll::Pending, None)
                    }
                }
            }
        };
        if let Some(grant) = grant {
            self.shared.send_soon(Message::Credit {
                id: self.id,
                half: Half::Down,
                items: grant.items,
                bytes: grant.bytes,
            });
        }
        if matches!(next, Poll::Ready(None)) {
            self.ended = true;
        }
        next
    }
}

impl RawItems for Receiver {
    fn backlog(&self) -> usize {
        lock(&self.inbox).items.len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Still registered: the peer is still sending, tell it to stop.
        if self.shared.streams.forget(self.id).is_some() {
            self.shared.send_soon(Message::Stop {
                id: self.id,
                half: Half::Down,
            });
        }
    }
}
