//! The task of an established connection: it reads, dispatches and writes.
//!
//! One task per connection rather than a reader and a writer: a call whose
//! handler finishes on its first poll is answered straight into the batch
//! being written, and replies, pings and queued calls leave together in one
//! sealed frame per batch, with no hop between tasks on the way. On a busy
//! machine each such hop can cost a thread wake-up, which is what bounded
//! throughput when the halves were two tasks.
//!
//! Flow control, with every buffer bounded:
//! - Envelopes from the queue (calls, notifications, replies of handler
//!   tasks) are taken only while no batch is being written, so the bounded
//!   queue makes their senders wait while the peer does not read.
//! - Incoming envelopes are processed only while the replies they produced
//!   stay under [`BATCH_BYTES`]; the rest of a frame waits for the next batch,
//!   and the socket is not read meanwhile. A peer that sends calls but does
//!   not read the replies is therefore no longer read either.
//! - A batch whose write stays blocked for the write timeout ends the
//!   connection with `SlowConsumer`.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::task::AbortHandle;
use tokio::time::{Instant, Sleep, sleep_until};
use tracing::Instrument;

use super::streams::{Outbox, Scratch};
use super::{Closing, Handle, Shared};
use crate::crypto::{FrameKind, Opener, Sealer};
use crate::dispatch::{CallRef, Dispatched, PendingNotification, PendingReply};
use crate::error::Disconnect;
use crate::heartbeat::{Action, Heartbeat};
use crate::observe::{self, SecurityEvent};
use crate::protocol::codec::{self, Messages};
use crate::protocol::payloads::Close;
use crate::protocol::{CloseCode, Half, Message, Outcome, Reason};
use crate::transport::{Incoming, Transport, TransportError};

/// A batch is sealed once its plaintext is this large; incoming envelopes
/// wait while the replies they produced are this large.
const BATCH_BYTES: usize = 64 * 1024;

/// Payloads at least this large are sealed straight from the envelope that
/// carries them instead of being copied into the batch first.
const COPY_FREE_PAYLOAD: usize = 1024;

/// Rounds of reading and writing in one wake-up before the task yields to
/// others on its thread. It yields sooner, after a round that handed a batch
/// to the socket: the tasks that feed the connection (callers, handler
/// tasks, stream sources' wakers, other connections on the thread) then add
/// to the next batch before it is made, instead of the task writing many
/// small ones (`docs/figures/bench-yield-after-write-ab.txt`).
const ROUNDS_PER_WAKE: usize = 16;

/// How long the last CLOSE may take to leave when closing.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// What a connection's task sends before anything from its queue.
#[derive(Default)]
pub(crate) struct Start {
    /// On a server: the AUTH_RESULT that admits the client (its payload),
    /// the session's first frame.
    pub(crate) auth_result: Option<Vec<u8>>,
    /// Envelopes sent first, in order: a resumed session's notifications
    /// buffered while it waited.
    pub(crate) backlog: Vec<Message>,
}

/// Starts the task of an established connection. `on_done` runs once it has
/// ended, with the reason the connection closed.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    transport: Box<dyn Transport>,
    (sealer, opener): (Sealer, Opener),
    start: Start,
    on_done: impl FnOnce(Disconnect) + Send + 'static,
) -> Handle {
    let task_shared = Arc::clone(&shared);
    let span = shared.span.clone();
    span.record("transport", transport.name());
    shared.meter.connection_opened();
    let task = async move {
        let mut link = Link::new(&task_shared, transport, (sealer, opener));
        link.queued.extend(start.backlog);
        if let Some(body) = start.auth_result {
            link.greet(&body);
        }
        link.run().await;
        link.farewell().await;
        task_shared.outbound.queue().close();
        let reason = task_shared
            .closed_reason()
            .unwrap_or_else(|| Disconnect::lost("connection lost"));
        task_shared.meter.connection_closed();
        tracing::debug!(%reason, "connection closed");
        task_shared.done.replace(Some(reason.clone()));
        on_done(reason);
    };
    tokio::spawn(task.instrument(span));
    Handle(shared)
}

/// Runs a call's handler in a task of its own and queues its reply, unless
/// the call was cancelled meanwhile.
fn run_handler(shared: &Arc<Shared>, id: u64, pending: PendingReply) -> AbortHandle {
    let shared = Arc::clone(shared);
    let task = tokio::spawn(async move {
        let reply = pending.await;
        if shared.inbound.finished(id) {
            let _ = shared.outbound.queue().send(reply).await;
        }
    });
    task.abort_handle()
}

/// Runs a notification's handler in a task of its own.
fn run_notification(shared: &Arc<Shared>, key: u64, pending: PendingNotification) -> AbortHandle {
    let shared = Arc::clone(shared);
    let task = tokio::spawn(async move {
        pending.await;
        shared.inbound.notification_finished(key);
    });
    task.abort_handle()
}

/// The socket ended before the peer's CLOSE. With no close at all (the
/// socket reached its end or was reset: the peer's process died, the network
/// failed), the connection was lost. A WebSocket close without the
/// authenticated CLOSE came from the transport alone (a proxy going away, or
/// someone in the middle): its code is kept and the reason says so.
fn ended_without_close(frame: Option<(u16, String)>) -> Disconnect {
    match frame {
        None => Disconnect::lost("connection lost: the socket closed without a close"),
        Some((code, reason)) => {
            let mut text = String::from("closed by the transport without an authenticated CLOSE");
            if !reason.is_empty() {
                text.push_str(": ");
                text.push_str(&reason);
            }
            Disconnect::new(CloseCode::from_u16(code), text)
        }
    }
}

fn transport_failed(error: &TransportError) -> Disconnect {
    match error.reason() {
        Some(reason) => reason.into(),
        None => Disconnect::lost(format!("connection lost: {error}")),
    }
}

/// The connection ends with `reason`; `send_close` when the socket still works.
fn ending(reason: Disconnect, send_close: bool) -> Closing {
    Closing { reason, send_close }
}

/// The socket failed: the end of the connection, and whether to say why.
fn socket_failed(error: &TransportError) -> Closing {
    ending(transport_failed(error), error.reason().is_some())
}

/// The peer broke the protocol with a frame (or an envelope in one):
/// counted by cause, logged under `sockets::security`, and the connection
/// ends with `reason`.
fn rejected(shared: &Shared, reason: Reason) -> Closing {
    let cause = observe::reason_label(reason);
    observe::frame_rejected(cause);
    observe::security(
        SecurityEvent::ProtocolClose(cause),
        Some(shared.id),
        shared.peer_addr,
        reason.text(),
    );
    ending(reason.into(), true)
}

/// The socket failed on receiving: as [`socket_failed`], and a transport
/// framing the peer broke counts as a rejected frame.
fn receive_failed(shared: &Shared, error: &TransportError) -> Closing {
    match error.reason() {
        Some(reason) => rejected(shared, reason),
        None => socket_failed(error),
    }
}

/// One connection's state, owned by its task.
struct Link<'a> {
    shared: &'a Arc<Shared>,
    transport: Box<dyn Transport>,
    sealer: Sealer,
    opener: Opener,
    /// Envelopes taken from the queue, not yet in the batch.
    queued: VecDeque<Message>,
    heartbeat: Heartbeat,
    /// When our earliest pending call may pass its deadline.
    call_deadline: Option<Instant>,
    /// The connection's one timer: the heartbeat's next wake or `call_deadline`.
    timer: Pin<Box<Sleep>>,
    /// The envelopes of an incoming frame not processed yet, and when the
    /// frame arrived (the calls in it count their deadlines from then).
    incoming: Option<(Messages, Instant)>,
    /// The next DATA plaintext: envelopes encoded back to back, except the
    /// large payloads in `payloads`.
    plain: Vec<u8>,
    /// Large payloads of the batch, each with the length of `plain` it
    /// follows: the plaintext is `plain[..o1] p1 plain[o1..o2] p2 … plain[on..]`.
    payloads: Vec<(usize, Bytes)>,
    /// The bytes in `payloads`.
    payload_bytes: usize,
    /// What polling the streams we send keeps between rounds.
    streams: Scratch,
    /// Sealed frames not yet handed to the socket.
    frames: VecDeque<Bytes>,
    /// Scratch space for [`Sealer::seal`].
    sealed: Vec<Bytes>,
    /// Frames were handed to the socket and are not flushed yet.
    flushing: bool,
    /// The round under way handed frames to the socket.
    wrote: bool,
    /// When the batch being written must be out; armed once its write blocks.
    write_deadline: Pin<Box<Sleep>>,
    deadline_armed: bool,
    max_message: usize,
    write_timeout: Duration,
}

impl<'a> Link<'a> {
    fn new(
        shared: &'a Arc<Shared>,
        mut transport: Box<dyn Transport>,
        (sealer, opener): (Sealer, Opener),
    ) -> Self {
        // What the handshake read is spent: start without a read buffer.
        transport.release_idle();
        let config = &shared.config;
        let now = Instant::now();
        let heartbeat = Heartbeat::new(config.heartbeat_interval, config.heartbeat_timeout, now);
        // One timer for the connection's life. Traffic only moves the
        // heartbeat's next wake later, so the timer is reset when it fires
        // rather than per frame.
        let timer = Box::pin(sleep_until(heartbeat.next_wake()));
        Self {
            shared,
            transport,
            sealer,
            opener,
            queued: VecDeque::new(),
            heartbeat,
            call_deadline: None,
            timer,
            incoming: None,
            plain: Vec::new(),
            payloads: Vec::new(),
            payload_bytes: 0,
            streams: Scratch::default(),
            frames: VecDeque::new(),
            sealed: Vec::new(),
            flushing: false,
            wrote: false,
            write_deadline: Box::pin(sleep_until(now)),
            deadline_armed: false,
            max_message: config.max_message,
            write_timeout: config.write_timeout,
        }
    }

    /// Seals the AUTH_RESULT that opens the session, to be written first; a
    /// failure closes the connection.
    fn greet(&mut self, body: &[u8]) {
        match self
            .sealer
            .seal(FrameKind::AuthResult, body, &mut self.sealed)
        {
            Ok(()) => self.frames.extend(self.sealed.drain(..)),
            Err(error) => {
                tracing::warn!(id = %self.shared.id, %error, "could not seal AUTH_RESULT");
                self.shared.close(Reason::Internal.into(), false);
            }
        }
    }

    /// Runs the connection until it closes, from either side.
    async fn run(&mut self) {
        let shared = self.shared;
        let end = {
            let closed = shared.closing.wait_for(|c| c.is_some().then_some(()));
            tokio::pin!(closed);
            let step = poll_fn(|cx| self.poll(cx));
            tokio::pin!(step);
            tokio::select! {
                biased;
                _ = &mut closed => None,
                end = &mut step => Some(end),
            }
        };
        if let Some(Closing { reason, send_close }) = end {
            self.shared.close(reason, send_close);
        }
    }

    /// Makes all the progress there is; ready when the connection must end.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Closing> {
        self.shared.outbound.queue().register(cx.waker());
        self.shared.streams.sending.register(cx.waker());
        for _ in 0..ROUNDS_PER_WAKE {
            self.wrote = false;
            match self.round(cx) {
                Err(end) => return Poll::Ready(end),
                Ok(false) => return Poll::Pending,
                Ok(true) => {}
            }
            if self.wrote {
                break;
            }
        }
        // Wrote, or still busy: let other tasks on this thread run, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One round of timers, reading and writing; whether anything happened.
    /// A round without progress has polled every source it waits on.
    fn round(&mut self, cx: &mut Context<'_>) -> Result<bool, Closing> {
        if let Some(deadline) = self.shared.outbound.rearm() {
            self.call_deadline = deadline;
            self.reset_timer();
        }
        let mut progress = self.poll_timer(cx)?;
        progress |= self.poll_incoming(cx)?;
        if !self.writing() {
            while self.batch_len() < BATCH_BYTES {
                // Everything waiting is taken under one lock; the task was
                // registered for new envelopes at the start of this poll.
                if self.queued.is_empty() && !self.shared.outbound.queue().take(&mut self.queued) {
                    break;
                }
                let Some(message) = self.queued.pop_front() else {
                    break;
                };
                self.push(&message)?;
                progress = true;
            }
            // The streams we send fill the rest of the batch.
            let mut scratch = std::mem::take(&mut self.streams);
            let polled = self.shared.streams.sending.poll(self, &mut scratch);
            self.streams = scratch;
            progress |= polled?;
        }
        progress |= self.poll_write(cx)?;
        if self.writing() {
            if !self.deadline_armed {
                let deadline = Instant::now() + self.write_timeout;
                self.write_deadline.as_mut().reset(deadline);
                self.deadline_armed = true;
            }
            if self.write_deadline.as_mut().poll(cx).is_ready() {
                let shared = self.shared;
                let reason = Reason::SlowConsumer;
                observe::security(
                    SecurityEvent::SlowConsumer,
                    Some(shared.id),
                    shared.peer_addr,
                    reason.text(),
                );
                return Err(ending(reason.into(), false));
            }
        } else {
            self.deadline_armed = false;
        }
        Ok(progress)
    }

    /// The size of the next DATA plaintext.
    fn batch_len(&self) -> usize {
        self.plain.len() + self.payload_bytes
    }

    /// A batch is on its way to the socket.
    fn writing(&self) -> bool {
        self.flushing || !self.frames.is_empty()
    }

    /// Sets the timer to the heartbeat's next wake or the call deadline, whichever comes first.
    fn reset_timer(&mut self) {
        let heartbeat = self.heartbeat.next_wake();
        let next = self.call_deadline.map_or(heartbeat, |d| d.min(heartbeat));
        self.timer.as_mut().reset(next);
    }

    /// Heartbeats and call deadlines, when the timer fires.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Result<bool, Closing> {
        if self.timer.as_mut().poll(cx).is_pending() {
            return Ok(false);
        }
        let now = Instant::now();
        if self.call_deadline.is_some_and(|deadline| deadline <= now) {
            let (expired, next, retire) = self.shared.outbound.expire(now);
            self.shared.retire_if(retire);
            self.call_deadline = next;
            for id in expired {
                // The caller has its timeout; the peer may stop working on it.
                self.push(&Message::Cancel { id })?;
            }
        }
        let action = self.heartbeat.poll(now);
        self.reset_timer();
        if !self.writing() {
            // Every heartbeat interval at most: a connection that moved a
            // large message keeps its frame buffer until then, not for ever.
            self.sealer.release_buffer();
        }
        // And the last large message's buffer, kept for the next one.
        self.opener.release_buffer();
        // The same for the read buffer, unless a frame is arriving.
        self.transport.release_idle();
        match action {
            Some(Action::Ping(nonce)) => self.push(&Message::Ping { nonce })?,
            Some(Action::TimedOut) => {
                return Err(ending(Reason::HeartbeatTimeout.into(), true));
            }
            None => {}
        }
        Ok(true)
    }

    /// Processes incoming envelopes while their replies fit in the batch.
    fn poll_incoming(&mut self, cx: &mut Context<'_>) -> Result<bool, Closing> {
        let mut progress = false;
        while self.batch_len() < BATCH_BYTES {
            if let Some((messages, received)) = &mut self.incoming {
                let received = *received;
                if let Some(call) = messages.next_call() {
                    // The method's name is looked up where it arrived, not copied.
                    let plaintext = messages.plaintext().clone();
                    let name = plaintext.get(call.method.clone()).unwrap_or_default();
                    let method = std::str::from_utf8(name).unwrap_or_default();
                    let call = CallRef {
                        id: call.id,
                        method,
                        timeout_ms: call.timeout_ms,
                        args: &call.args,
                    };
                    self.on_call(call, received)?;
                    progress = true;
                    continue;
                }
                if let Some((id, half, first)) = messages.next_item(None) {
                    // A run of items for one stream: buffered together,
                    // without a `Message` for each.
                    let plaintext = messages.plaintext().clone();
                    let mut first = Some(first);
                    let mut next = || {
                        first.take().or_else(|| {
                            let (_, _, payload) = messages.next_item(Some((id, half)))?;
                            Some(payload)
                        })
                    };
                    self.shared
                        .streams
                        .items(id, half, &plaintext, &mut next)
                        .map_err(|reason| ending(reason.into(), true))?;
                    progress = true;
                    continue;
                }
                match messages.next() {
                    Some(message) => {
                        let message = message.map_err(|error| {
                            tracing::debug!(id = %self.shared.id, %error, "undecodable envelope");
                            rejected(self.shared, Reason::MalformedEnvelope)
                        })?;
                        self.on_message(message, received)?;
                    }
                    None => self.incoming = None,
                }
                progress = true;
                continue;
            }
            let Poll::Ready(incoming) = self.transport.poll_recv(cx) else {
                break;
            };
            progress = true;
            self.on_frame(incoming)?;
        }
        Ok(progress)
    }

    /// One WebSocket message from the peer.
    fn on_frame(&mut self, incoming: Result<Incoming, TransportError>) -> Result<(), Closing> {
        let wire = match incoming {
            Ok(Incoming::Binary(wire)) => wire,
            Ok(Incoming::Closed(frame)) => return Err(ending(ended_without_close(frame), false)),
            Err(error) => return Err(receive_failed(self.shared, &error)),
        };
        let received = Instant::now();
        self.heartbeat.heard(received);
        self.shared.meter.bytes_in(wire.len());
        let opened = match self.opener.open_owned(wire) {
            Ok(Some(opened)) => opened,
            Ok(None) => return Ok(()),
            Err(error) => {
                tracing::debug!(id = %self.shared.id, %error, "frame rejected");
                return Err(rejected(self.shared, error.reason()));
            }
        };
        match opened.kind {
            // One envelope at a time: a plaintext of many tiny envelopes
            // costs no more memory than the plaintext.
            FrameKind::Data => self.incoming = Some((codec::messages(opened.plaintext), received)),
            FrameKind::Close => {
                // A close code is 1000..=4999 (docs/PROTOCOL.md §9.3).
                let reason = match codec::decode_value::<Close>(&opened.plaintext) {
                    Ok(body) if (1000..=4999).contains(&body.code) => {
                        Disconnect::new(CloseCode::from_u16(body.code), body.reason)
                    }
                    _ => return Err(rejected(self.shared, Reason::MalformedClose)),
                };
                return Err(ending(reason, true));
            }
            // The opener lets these through only to open a session.
            FrameKind::Auth | FrameKind::AuthResult => {
                return Err(rejected(self.shared, Reason::AuthTwice));
            }
        }
        Ok(())
    }

    /// A call from the peer: dispatched, and answered in the batch when its
    /// handler finishes at once.
    fn on_call(&mut self, call: CallRef<'_>, received: Instant) -> Result<(), Closing> {
        let shared = self.shared;
        let (id, timeout_ms) = (call.id, call.timeout_ms);
        let dispatched = shared.inbound.call(
            call,
            received,
            |deadline, info| {
                let cx = shared.context(deadline);
                if !info.stream_in {
                    return Ok(cx);
                }
                // Half 1 alone is the stream of a method that replies once.
                let items = shared.streams.open_incoming(shared, id, !info.stream)?;
                Ok(cx.with_incoming(items))
            },
            |method| {
                let method = std::borrow::Cow::Borrowed(method);
                let direction = observe::Direction::In;
                let span = &shared.span;
                let meter = &shared.meter;
                meter.call(span, &method, id, direction, timeout_ms, received)
            },
        );
        match dispatched {
            Dispatched::Reply(reply) => self.push(&reply)?,
            Dispatched::Stream(id, handler) => {
                if let Some(refusal) = shared.streams.start(id, handler) {
                    self.push(&refusal)?;
                }
            }
            Dispatched::Running(id, pending) => {
                if let Some(refusal) = shared.inbound.run(id, || run_handler(shared, id, pending)) {
                    self.push(&refusal)?;
                }
            }
        }
        Ok(())
    }

    fn on_message(&mut self, message: Message, received: Instant) -> Result<(), Closing> {
        let shared = self.shared;
        match message {
            Message::Call(call) => self.on_call(CallRef::from(&call), received)?,
            Message::Notify(notify) => {
                if let Some(pending) = shared.inbound.notify(notify, || shared.context(None)) {
                    shared
                        .inbound
                        .run_notification(|key| run_notification(shared, key, pending));
                }
            }
            Message::Cancel { id } => shared.inbound.cancel(id),
            Message::Reply(reply) => {
                let result = match reply.outcome {
                    Outcome::Ok(value) => Ok(value),
                    Outcome::Err(error) => Err(error.into()),
                };
                if reply.id >= super::streams::FIRST_STREAM_ID {
                    shared.streams.refused(reply.id, result);
                } else {
                    let retire = shared.outbound.complete(reply.id, result);
                    shared.retire_if(retire);
                }
            }
            Message::Credit {
                id,
                half,
                items,
                bytes,
            } => shared
                .streams
                .credit(id, half, items, bytes)
                .map_err(|reason| ending(reason.into(), true))?,
            Message::Item { id, half, item } => shared
                .streams
                .item(id, half, &item)
                .map_err(|reason| ending(reason.into(), true))?,
            Message::End { id, half, error } => shared.streams.end(id, half, error),
            Message::Stop { id, half } => shared.streams.stop(id, half),
            Message::Ping { nonce } => self.push(&Message::Pong { nonce })?,
            Message::Pong { nonce } => {
                if let Some(rtt) = self.heartbeat.pong(nonce, Instant::now()) {
                    shared.rtt.set(rtt);
                    shared.meter.rtt(rtt);
                }
            }
        }
        Ok(())
    }

    /// Adds an envelope to the batch. A batch never exceeds the message
    /// limit: what came before an envelope that would cross it is sealed first.
    fn push(&mut self, message: &Message) -> Result<(), Closing> {
        let before = self.mark();
        if let Some(payload) = codec::encode_envelope_head(message, &mut self.plain) {
            // Small pieces are copied into `plain`; a large one follows the
            // bytes before it when sealed, from the buffer it is in.
            payload.for_each_piece(|piece, shared| match shared {
                Some(buffer) if piece.len() >= COPY_FREE_PAYLOAD => {
                    self.payload_bytes += piece.len();
                    self.payloads
                        .push((self.plain.len(), buffer.slice_ref(piece)));
                }
                _ => self.plain.extend_from_slice(piece),
            });
        }
        self.pushed(before)
    }

    /// Where the batch ends now, before an envelope is added.
    fn mark(&self) -> Mark {
        Mark {
            batch: self.batch_len(),
            plain: self.plain.len(),
            payloads: self.payloads.len(),
        }
    }

    /// An envelope was added after `before`: when it took the batch past
    /// the message limit, what came before it is sealed.
    fn pushed(&mut self, before: Mark) -> Result<(), Closing> {
        if self.batch_len() > self.max_message && before.batch > 0 {
            self.seal(before.plain, before.payloads)?;
        }
        Ok(())
    }

    /// Seals the batch up to byte `len` of `plain` and its first `count`
    /// large payloads into frames.
    fn seal(&mut self, len: usize, count: usize) -> Result<(), Closing> {
        let sealed = if count == 0 {
            // The usual batch of small envelopes: one part, no list to allocate.
            let whole = [self.plain.get(..len).unwrap_or_default()];
            self.sealer
                .seal_parts(FrameKind::Data, &whole, &mut self.sealed)
        } else {
            let mut parts: Vec<&[u8]> = Vec::with_capacity(2 * count + 1);
            let mut from = 0;
            for (at, payload) in self.payloads.iter().take(count) {
                parts.push(self.plain.get(from..*at).unwrap_or_default());
                parts.push(payload);
                from = *at;
            }
            parts.push(self.plain.get(from..len).unwrap_or_default());
            self.sealer
                .seal_parts(FrameKind::Data, &parts, &mut self.sealed)
        };
        if let Err(error) = sealed {
            tracing::warn!(%error, "cannot seal a frame");
            return Err(ending(error.reason().into(), false));
        }
        self.frames.extend(self.sealed.drain(..));
        self.plain.drain(..len);
        for (_, payload) in self.payloads.drain(..count) {
            self.payload_bytes -= payload.len();
        }
        for (at, _) in &mut self.payloads {
            *at -= len;
        }
        Ok(())
    }

    /// Seals the whole batch.
    fn seal_batch(&mut self) -> Result<(), Closing> {
        self.seal(self.plain.len(), self.payloads.len())
    }

    /// Moves the batch towards the socket: seals it once the previous one is
    /// out, hands the frames over and flushes; whether anything moved.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<bool, Closing> {
        let mut progress = false;
        if !self.writing() && !self.plain.is_empty() {
            self.seal_batch()?;
            // A batch that grew large is not worth keeping allocated.
            if self.plain.capacity() > 4 * BATCH_BYTES {
                self.plain = Vec::new();
            }
        }
        while !self.frames.is_empty() {
            match self.transport.poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Err(socket_failed(&error)),
                Poll::Pending => break,
            }
            let Some(frame) = self.frames.pop_front() else {
                break;
            };
            self.shared.meter.bytes_out(frame.len());
            self.transport.start_send(frame);
            self.wrote = true;
            self.flushing = true;
            progress = true;
        }
        // A pong the transport owes the peer goes out with the batch, or alone.
        if self.flushing || self.transport.wants_flush() {
            self.flushing = true;
            match self.transport.poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.flushing = false;
                    progress = true;
                }
                Poll::Ready(Err(error)) => return Err(socket_failed(&error)),
                Poll::Pending => {}
            }
        }
        Ok(progress)
    }

    /// After the connection closed: when a CLOSE is due, what was queued
    /// before it still goes out, then the CLOSE and the WebSocket close.
    async fn farewell(&mut self) {
        let closing = self.shared.closing.with(Clone::clone);
        let Some(closing) = closing else { return };
        if !closing.send_close {
            // The socket is gone, or the peer closed it (its close is
            // answered if the socket takes the answer now).
            self.transport.close_now(CloseCode::Normal.to_u16(), "");
            return;
        }
        let reason = closing.reason;
        let farewell = async {
            self.shared.outbound.queue().take(&mut self.queued);
            while let Some(message) = self.queued.pop_front() {
                self.push(&message).map_err(|end| end.reason)?;
            }
            if !self.plain.is_empty() {
                self.seal_batch().map_err(|end| end.reason)?;
            }
            while let Some(frame) = self.frames.pop_front() {
                poll_fn(|cx| self.transport.poll_ready(cx))
                    .await
                    .map_err(|e| transport_failed(&e))?;
                self.transport.start_send(frame);
            }
            let body = Close {
                code: reason.code.to_u16(),
                reason: reason.reason.clone(),
            };
            let body = codec::to_vec(&body).map_err(|_| reason.clone())?;
            self.sealed.clear();
            if let Err(error) = self.sealer.seal(FrameKind::Close, &body, &mut self.sealed) {
                tracing::warn!(%error, "cannot seal the CLOSE");
                return Err(reason.clone());
            }
            for frame in std::mem::take(&mut self.sealed) {
                poll_fn(|cx| self.transport.poll_ready(cx))
                    .await
                    .map_err(|e| transport_failed(&e))?;
                self.transport.start_send(frame);
            }
            self.transport
                .close(reason.code.websocket(), "")
                .await
                .map_err(|e| transport_failed(&e))
        };
        let _ = tokio::time::timeout(CLOSE_FLUSH, farewell).await;
    }
}

/// Where a batch ended before an envelope was added to it.
#[derive(Clone, Copy)]
struct Mark {
    batch: usize,
    plain: usize,
    payloads: usize,
}

impl Outbox for Link<'_> {
    fn has_room(&self) -> bool {
        self.batch_len() < BATCH_BYTES
    }

    fn item(&mut self, id: u64, half: Half, item: &[u8]) -> Result<(), Closing> {
        let before = self.mark();
        codec::encode_item_head(id, half, item.len(), &mut self.plain);
        self.plain.extend_from_slice(item);
        self.pushed(before)
    }

    fn own_item(&mut self, id: u64, half: Half, item: Bytes) -> Result<(), Closing> {
        if item.len() < COPY_FREE_PAYLOAD {
            return self.item(id, half, &item);
        }
        self.push(&Message::Item { id, half, item })
    }

    fn end(&mut self, end: Message) {
        self.shared.outbound.queue().take(&mut self.queued);
        self.queued.push_back(end);
    }
}
