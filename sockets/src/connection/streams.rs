//! The streams of one connection: those we receive (we called a streaming
//! method) and those we send (the peer did), with their flow control.
//!
//! A stream has two halves (docs/PROTOCOL.md §9.7): half 0 carries items
//! from the callee to the caller, half 1 from the caller to the callee. The
//! half an envelope names says whose id it carries: we receive half 0 and
//! send half 1 of the streams we opened (our ids); we send half 0 and
//! receive half 1 of those the peer opened (its ids). So each direction has
//! its inboxes and its sent halves, keyed by the id of the side that opened them.
//!
//! A received stream buffers at most its window (the credit machine in
//! `credit` enforces it against the peer); the application takes items
//! from the buffer and gives credit back as it does. Its items are copied
//! out of the frames they came in, into one buffer per stream: an item is
//! never a slice that keeps a whole frame alive (a peer could otherwise
//! make each byte of credit hold up to a frame), and a batch of items costs
//! one allocation at most, not one each. A sent half is polled by the
//! connection's task itself (`sending`), only while the peer has granted
//! credit, so items wait in the handler's stream, not in the connection:
//! a slow reader holds up neither the connection nor its other streams.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream as FuturesStream;
use metrics::Gauge;

mod sending;

pub(super) use sending::{Outbox, Scratch, Sending};

use super::Shared;
use crate::credit::{self, Window};
use crate::error::{Disconnect, DispatchError, Error};
use crate::protocol::{EncodedValue, ErrorCode, Half, Message, Reason, RemoteError};
use crate::service::StreamHandlerFuture;
use crate::stream::{RawItems, RawStream};

/// The most items buffered under one hold of an inbox's lock: its reader
/// waits for the lock no longer than that takes.
const RUN: usize = 128;

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
    /// The halves we send, polled by the connection's task.
    pub(super) sending: Sending,
    next_id: AtomicU64,
    max_streams: usize,
    /// The streams we receive (we opened them) and those we send.
    open_out: Gauge,
    open_in: Gauge,
}

#[derive(Default)]
struct Receiving {
    /// Half 0 of the streams we opened, by our id.
    down: HashMap<u64, Arc<Mutex<Inbox>>>,
    /// Half 1 of the streams the peer opened, by its id.
    up: HashMap<u64, Arc<Mutex<Inbox>>>,
    /// The connection is closing: why; no stream opens any more.
    closed: Option<Disconnect>,
}

impl Receiving {
    fn half(&mut self, half: Half) -> &mut HashMap<u64, Arc<Mutex<Inbox>>> {
        match half {
            Half::Down => &mut self.down,
            Half::Up => &mut self.up,
        }
    }
}

/// One stream half we receive.
struct Inbox {
    credit: credit::Receiver,
    /// The grant that opens the window, until it is sent: an incoming half
    /// (half 1) is granted credit when its handler takes it (or first
    /// reads it), so a call refused before its handler runs is sent no items.
    opening: Option<credit::Grant>,
    items: Items,
    end: End,
    waker: Option<Waker>,
    /// Counts as a stream of its own in the gauges (half 1 of a two-way
    /// stream does not: its half 0 does).
    counted: bool,
}

/// Items received and not taken yet: their bytes back to back, and their
/// lengths.
#[derive(Default)]
struct Items {
    bytes: BytesMut,
    lens: VecDeque<u32>,
}

impl Items {
    fn push(&mut self, item: &[u8]) {
        self.bytes.extend_from_slice(item);
        // An item fits the message limit, far below 4 GiB.
        self.lens
            .push_back(u32::try_from(item.len()).unwrap_or(u32::MAX));
    }

    fn len(&self) -> usize {
        self.lens.len()
    }

    fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Moves every item into `batch`, which must be empty: the bytes are
    /// handed over, not copied.
    fn take(&mut self, batch: &mut Batch) {
        batch.bytes = self.bytes.split().freeze();
        std::mem::swap(&mut batch.lens, &mut self.lens);
    }
}

/// Items a receiver took from its inbox, to hand out one by one: slices of
/// one buffer.
#[derive(Default)]
struct Batch {
    bytes: Bytes,
    lens: VecDeque<u32>,
}

impl Batch {
    fn next(&mut self) -> Option<Bytes> {
        let len = self.lens.pop_front()? as usize;
        Some(self.bytes.split_to(len.min(self.bytes.remaining())))
    }
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

impl Streams {
    /// `open_out` and `open_in` count the streams open each way (metrics).
    pub(super) fn new(
        max_streams: usize,
        max_message: usize,
        open_out: Gauge,
        open_in: Gauge,
    ) -> Self {
        // Room for the item envelope's own fields.
        let max_item = max_message.saturating_sub(64);
        let sending = Sending::new(max_streams, max_item, open_out.clone(), open_in.clone());
        Self {
            receiving: Mutex::new(Receiving::default()),
            sending,
            next_id: AtomicU64::new(FIRST_STREAM_ID),
            max_streams,
            open_out,
            open_in,
        }
    }

    /// The gauge of the streams that `half` belongs to when we receive it:
    /// half 0 of ours (out), half 1 of the peer's (in).
    fn received_gauge(&self, half: Half) -> &Gauge {
        match half {
            Half::Down => &self.open_out,
            Half::Up => &self.open_in,
        }
    }

    /// Ends every stream: received halves with `Disconnected(reason)`, sent
    /// ones are dropped. No stream opens after.
    pub(super) fn close(&self, reason: &Disconnect) {
        let inboxes: Vec<_> = {
            let mut receiving = lock(&self.receiving);
            receiving.closed = Some(reason.clone());
            let down = receiving.down.drain().map(|(_, inbox)| (Half::Down, inbox));
            let down: Vec<_> = down.collect();
            let up = receiving.up.drain().map(|(_, inbox)| (Half::Up, inbox));
            down.into_iter().chain(up).collect()
        };
        for (half, inbox) in inboxes {
            let mut inbox = lock(&inbox);
            if inbox.counted {
                self.received_gauge(half).decrement(1.0);
            }
            inbox.finish(End::Failed(Error::Disconnected(reason.clone())));
        }
        self.sending.close();
    }

    // ---- halves we receive ----

    /// Registers half 0 of a stream we are about to open with `window`: its
    /// id, its inbox and the grant that opens it.
    fn open(&self, window: Window) -> Result<(u64, Arc<Mutex<Inbox>>, credit::Grant), Error> {
        let mut receiving = lock(&self.receiving);
        if let Some(reason) = &receiving.closed {
            return Err(Error::Disconnected(reason.clone()));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (credit, grant) = credit::Receiver::new(window);
        let inbox = Arc::new(Mutex::new(Inbox {
            credit,
            opening: None,
            items: Items::default(),
            end: End::Open,
            waker: None,
            counted: true,
        }));
        receiving.down.insert(id, Arc::clone(&inbox));
        self.open_out.increment(1.0);
        Ok((id, inbox, grant))
    }

    /// Registers half 1 of the stream the peer opens with call `id` (a
    /// method that takes a stream), and returns its receiving end, which
    /// grants credit when the handler takes it ([`RawItems::open`]). `counted` when the method
    /// replies once (half 1 is then the whole stream).
    ///
    /// # Errors
    /// [`DispatchError::Rejected`] when `max_streams` incoming halves are
    /// open, or one with this id is.
    pub(super) fn open_incoming(
        &self,
        shared: &Arc<Shared>,
        id: u64,
        counted: bool,
    ) -> Result<RawStream, DispatchError> {
        let mut receiving = lock(&self.receiving);
        if receiving.closed.is_some() {
            return Err(DispatchError::Rejected("the connection is closing".into()));
        }
        if receiving.up.contains_key(&id) {
            return Err(DispatchError::Rejected("duplicate stream id".into()));
        }
        if receiving.up.len() >= self.max_streams {
            return Err(DispatchError::Rejected("too many streams open".into()));
        }
        let (credit, grant) = credit::Receiver::new(Window::DEFAULT);
        let inbox = Arc::new(Mutex::new(Inbox {
            credit,
            opening: Some(grant),
            items: Items::default(),
            end: End::Open,
            waker: None,
            counted,
        }));
        receiving.up.insert(id, Arc::clone(&inbox));
        if counted {
            self.open_in.increment(1.0);
        }
        Ok(Box::pin(Receiver::new(shared, id, Half::Up, inbox)))
    }

    fn forget(&self, id: u64, half: Half) -> Option<Arc<Mutex<Inbox>>> {
        let inbox = lock(&self.receiving).half(half).remove(&id);
        if let Some(inbox) = &inbox
            && lock(inbox).counted
        {
            self.received_gauge(half).decrement(1.0);
        }
        inbox
    }

    /// Items for half `half` of stream `id`, in order: the ranges of
    /// `plaintext` that `next` yields until it yields `None` (a run of item
    /// envelopes in one frame). Buffered under one lock for every
    /// [`RUN`] items and one wake of the reader, or ignored when the half
    /// is gone (we stopped it and the items crossed the STOP).
    ///
    /// # Errors
    /// The close reason when the peer had no credit for one of them.
    pub(super) fn items(
        &self,
        id: u64,
        half: Half,
        plaintext: &[u8],
        next: &mut dyn FnMut() -> Option<Range<usize>>,
    ) -> Result<(), Reason> {
        loop {
            let mut receiving = lock(&self.receiving);
            let Some(inbox) = receiving.half(half).get(&id) else {
                while next().is_some() {}
                return Ok(());
            };
            // Under the map's lock: no reference to count for each run.
            let mut inbox = lock(inbox);
            let mut pushed = 0;
            let more = loop {
                if pushed == RUN {
                    break true;
                }
                let Some(range) = next() else { break false };
                let item = plaintext.get(range).unwrap_or_default();
                if inbox.opening.is_some() || inbox.credit.received(item.len()).is_err() {
                    return Err(Reason::StreamPastCredit);
                }
                inbox.items.push(item);
                pushed += 1;
            };
            if pushed > 0
                && let Some(waker) = inbox.waker.take()
            {
                waker.wake();
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// An item for half `half` of stream `id`: as [`Streams::items`] for one.
    ///
    /// # Errors
    /// The close reason when the peer had no credit for it.
    pub(super) fn item(&self, id: u64, half: Half, item: &[u8]) -> Result<(), Reason> {
        let mut one = Some(0..item.len());
        self.items(id, half, item, &mut || one.take())
    }

    /// The peer ended half `half` of stream `id`. Half 0 ending ends the
    /// stream: we stop sending its half 1, if we do.
    pub(super) fn end(&self, id: u64, half: Half, error: Option<RemoteError>) {
        if let Some(inbox) = self.forget(id, half) {
            let end = error.map_or(End::Finished, |error| End::Failed(error.into()));
            lock(&inbox).finish(end);
        }
        if half == Half::Down {
            self.stop_sending(id, Half::Up);
        }
    }

    /// A reply to the call that opened stream `id` (at least
    /// [`FIRST_STREAM_ID`]): a refusal.
    pub(super) fn refused(&self, id: u64, result: Result<EncodedValue, Error>) {
        if let Some(inbox) = self.forget(id, Half::Down) {
            let error = result
                .err()
                .unwrap_or_else(|| Error::Protocol("a stream was answered with a reply".into()));
            lock(&inbox).finish(End::Failed(error));
        }
        self.stop_sending(id, Half::Up);
    }

    // ---- halves we send ----

    /// Starts sending half 0 of the stream the peer opened with call `id`;
    /// the refusal to send instead, when too many are open or the id is taken.
    pub(super) fn start(&self, id: u64, handler: StreamHandlerFuture) -> Option<Message> {
        let refusal = self.sending.start(id, handler).err()?;
        // Its handler is dropped: so is the half 1 it would have read.
        self.forget(id, Half::Up);
        Some(Message::Reply(crate::protocol::Reply {
            id,
            outcome: crate::protocol::Outcome::Err(RemoteError {
                code: ErrorCode::Rejected,
                message: refusal.into(),
            }),
        }))
    }

    /// The peer granted credit to half `half` of stream `id` (ignored when
    /// it has ended).
    ///
    /// # Errors
    /// The close reason for an empty or overflowing grant.
    pub(super) fn credit(&self, id: u64, half: Half, items: u32, bytes: u32) -> Result<(), Reason> {
        self.sending.credit(id, half, items, bytes)
    }

    /// The peer stopped half `half` of stream `id`: what we send on it is
    /// dropped now. Half 0 stopped stops the whole stream: its handler is
    /// dropped, and with it the half 1 it read.
    pub(super) fn stop(&self, id: u64, half: Half) {
        self.sending.stop(id, half);
        if half == Half::Down {
            // Forgotten first, so dropping it sends no STOP the peer has no use for.
            if let Some(inbox) = self.forget(id, Half::Up) {
                lock(&inbox).finish(End::Finished);
            }
        }
    }

    /// Stops sending half `half` of stream `id`, if we do: no END follows.
    pub(super) fn stop_sending(&self, id: u64, half: Half) {
        self.sending.stop(id, half);
    }
}

/// Opens a stream on `shared`: sends the call and the grant that opens the
/// window of half 0, and returns its receiving end. With `upload`, a
/// two-way stream: its items are sent as half 1 as the callee grants credit.
pub(super) async fn open(
    shared: &Arc<Shared>,
    call: impl FnOnce(u64) -> Message,
    window: Window,
    upload: Option<RawStream>,
) -> Result<RawStream, Error> {
    let (id, inbox, grant) = shared.streams.open(window)?;
    // Dropped on an error below: forgets the stream and stops its half 1.
    let receiver = Receiver::new(shared, id, Half::Down, inbox);
    if let Some(items) = upload {
        shared.streams.sending.start_upload(id, items, false);
    }
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

/// The receiving end of a stream half: half 0 of a stream we opened, or
/// half 1 of one the peer opened.
///
/// It takes the items from the inbox a batch at a time (one lock for all
/// that arrived since the last), hands them out one by one, and accounts
/// for those handed out (the credit they give back) when it takes the
/// next batch: so it holds at most the window, inbox and batch together.
struct Receiver {
    shared: Arc<Shared>,
    id: u64,
    half: Half,
    inbox: Arc<Mutex<Inbox>>,
    /// Taken from the inbox, not yet handed out.
    batch: Batch,
    /// The lengths of the items handed out since the batch was taken.
    handed_out: Vec<usize>,
    /// The half ended: nothing to stop when dropped.
    ended: bool,
}

impl Receiver {
    fn new(shared: &Arc<Shared>, id: u64, half: Half, inbox: Arc<Mutex<Inbox>>) -> Self {
        Self {
            shared: Arc::clone(shared),
            id,
            half,
            inbox,
            batch: Batch::default(),
            handed_out: Vec::new(),
            ended: false,
        }
    }

    /// Hands out the next item of the batch, if there is one.
    fn hand_out(&mut self) -> Option<Bytes> {
        let item = self.batch.next()?;
        self.handed_out.push(item.len());
        Some(item)
    }
}

impl FuturesStream for Receiver {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(item) = self.hand_out() {
            return Poll::Ready(Some(Ok(item)));
        }
        let this = &mut *self;
        let (opening, grant) = {
            let mut inbox = lock(&this.inbox);
            let opening = inbox.opening.take();
            // What was handed out since the last batch gives its credit
            // back, in one grant for all of it.
            for len in this.handed_out.drain(..) {
                inbox.credit.consumed(len);
            }
            let grant = inbox.credit.grant();
            if inbox.items.is_empty() {
                match std::mem::replace(&mut inbox.end, End::Finished) {
                    End::Finished => this.ended = true,
                    End::Failed(error) => {
                        // Yielded now; `None` after.
                        inbox.end = End::Finished;
                        drop(inbox);
                        this.send_grants(opening, grant);
                        return Poll::Ready(Some(Err(error)));
                    }
                    End::Open => {
                        inbox.end = End::Open;
                        inbox.waker = Some(cx.waker().clone());
                    }
                }
            } else {
                inbox.items.take(&mut this.batch);
            }
            (opening, grant)
        };
        this.send_grants(opening, grant);
        if this.ended {
            return Poll::Ready(None);
        }
        match this.hand_out() {
            Some(item) => Poll::Ready(Some(Ok(item))),
            None => Poll::Pending,
        }
    }
}

impl Receiver {
    /// Sends the grant that opens the window and the credit given back, if any.
    fn send_grants(&self, opening: Option<credit::Grant>, grant: Option<credit::Grant>) {
        for grant in [opening, grant].into_iter().flatten() {
            self.shared.send_soon(Message::Credit {
                id: self.id,
                half: self.half,
                items: grant.items,
                bytes: grant.bytes,
            });
        }
    }
}

impl RawItems for Receiver {
    fn backlog(&self) -> usize {
        lock(&self.inbox).items.len() + self.batch.lens.len()
    }

    fn open(self: Pin<&mut Self>, window: Option<Window>) {
        let opening = {
            let mut inbox = lock(&self.inbox);
            if let (Some(window), Some(_)) = (window, inbox.opening) {
                let (credit, grant) = credit::Receiver::new(window);
                inbox.credit = credit;
                inbox.opening = Some(grant);
            }
            inbox.opening.take()
        };
        if let Some(grant) = opening {
            self.shared.send_soon(Message::Credit {
                id: self.id,
                half: self.half,
                items: grant.items,
                bytes: grant.bytes,
            });
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Still registered: the peer is still sending, tell it to stop.
        if self.shared.streams.forget(self.id, self.half).is_some() {
            self.shared.send_soon(Message::Stop {
                id: self.id,
                half: self.half,
            });
        }
        if self.half == Half::Down {
            // The stream is over: stop sending its half 1, if we do.
            self.shared.streams.stop_sending(self.id, Half::Up);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handed_out(batch: &mut Batch) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| batch.next().map(|item| item.to_vec())).collect()
    }

    #[test]
    fn items_are_copied_out_of_their_frame_and_handed_out_in_order() {
        let frame = Bytes::from(vec![1, 2, 3, 4, 5, 6, 7, 8]);
        let mut items = Items::default();
        items.push(&frame[..3]);
        items.push(&[]);
        items.push(&frame[5..]);
        assert!(frame.is_unique(), "no item keeps the frame alive");
        assert_eq!(items.len(), 3);

        let mut batch = Batch::default();
        items.take(&mut batch);
        assert!(items.is_empty());
        items.push(&[9]);
        assert_eq!(
            handed_out(&mut batch),
            [vec![1, 2, 3], vec![], vec![6, 7, 8]],
            "an empty item is an item too"
        );
        assert!(batch.next().is_none());
        items.take(&mut batch);
        assert_eq!(handed_out(&mut batch), [vec![9]]);
    }
}
