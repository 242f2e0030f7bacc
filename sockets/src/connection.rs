//! One established connection: the state its task and its handles share,
//! and the handle calls go through.
//!
//! ```text
//!            ┌─────────────────────── connection task (io.rs) ───────────────────────┐
//!  socket ──►│ open ─► codec::messages ─► dispatch ──► handler done at once ─┐        │
//!            │                               └──► handler task ──┐           │        │
//!  socket ◄──│ seal ◄─ batch of envelopes ◄─ queue ◄─────────────┘           │        │
//!            │            ▲  ▲                 ▲                             │        │
//!            │            │  └─ pings, pongs   └─ calls, notifications,      │        │
//!            │            └──────────────────────── cancels (handles) ◄──────┘ reply  │
//!            └───────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! [`establish`] runs the handshake and authentication and yields the two
//! halves of the session; [`spawn`] starts the connection's one task, which
//! owns both the sealer and the opener, so nonces can never race. A bounded
//! [`queue`] feeds it: when the peer stops reading, senders wait, and a
//! write that cannot finish within the write timeout disconnects the peer
//! with `SlowConsumer` instead of buffering without bound. Our calls'
//! deadlines live in the in-flight table and are enforced by the task's one
//! timer, not by a timer per call.

pub(crate) mod establish;
mod io;
mod outbound;
mod queue;
mod streams;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::task::{Poll, Waker};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::{Instrument, Span};

use crate::config::ConnectionConfig;
use crate::dispatch::{Inbound, Services};
use crate::error::{Disconnect, Error};
use crate::heartbeat::Rtt;
use crate::identity::{ConnectionId, Meta, SessionKind};
use crate::observe::{self, CallOutcome, Direction, Meter};
use crate::protocol::EncodedValue;
use crate::protocol::{Call, Half, Message, Notify, Reason};
use crate::service::{BoxFuture, CallOptions, Caller, Context, Origin, Peer};
use crate::signal::Signal;
use crate::stream::{RawStream, Window};

pub(crate) use io::{Start, spawn};
use outbound::Outbound;
use queue::TrySendError;

/// The longest a call may wait: the most its `timeout_ms` can say on the
/// wire (about 49 days). Longer timeouts are cut to it.
pub(crate) const MAX_CALL_TIMEOUT: Duration = Duration::from_millis(u32::MAX as u64);

/// Envelope bytes beyond the payload and method name; used to refuse a
/// message that could not be sent before it is queued.
const ENVELOPE_OVERHEAD: usize = 64;

/// Why and how a connection is closing.
#[derive(Clone, Debug)]
pub(crate) struct Closing {
    pub(crate) reason: Disconnect,
    /// Send an authenticated CLOSE with the reason (false when the socket is already gone).
    pub(crate) send_close: bool,
}

/// Everything the task of one connection and its handles share: who the
/// peer is, the outbound half (our calls, the queue), the inbound half (the
/// peer's calls and their handlers), and how the connection ends. Other
/// modules see it only through [`Handle`].
pub(crate) struct Shared {
    id: ConnectionId,
    peer_addr: SocketAddr,
    session: SessionKind,
    /// What the auth hook stored; the application may replace it
    /// (`Server::set_meta`). Each handler's context takes a snapshot.
    meta: RwLock<Meta>,
    rtt: Rtt,
    connected_since: SystemTime,
    config: Arc<ConnectionConfig>,
    /// The server this connection belongs to; `None` on a client.
    origin: Option<Origin>,
    /// On a client: the id the server gave this connection, if it said
    /// (AUTH_RESULT's `id`). On a server: its own id.
    server_id: Option<ConnectionId>,
    outbound: Outbound,
    inbound: Inbound,
    /// Streams both ways, with their flow control.
    streams: streams::Streams,
    /// The handle handlers get to call this peer back ([`Shared::peer`]).
    peer: OnceLock<Peer>,
    closing: Signal<Option<Closing>>,
    /// `closing` is set: read on every call without taking its lock.
    closed: AtomicBool,
    /// Set once the task has ended.
    done: Signal<Option<Disconnect>>,
    /// This side's metric handles.
    meter: Arc<Meter>,
    /// The `sockets.connection` span: the task runs in it, calls' spans are its children.
    span: Span,
}

/// What a new connection's state is made from.
pub(crate) struct Params {
    pub(crate) id: ConnectionId,
    pub(crate) peer_addr: SocketAddr,
    pub(crate) session: SessionKind,
    /// The peer may call only open methods (a server's guest connection).
    pub(crate) peer_is_guest: bool,
    pub(crate) meta: Meta,
    pub(crate) config: Arc<ConnectionConfig>,
    pub(crate) services: Arc<Services>,
    pub(crate) origin: Option<Origin>,
    pub(crate) server_id: Option<ConnectionId>,
    pub(crate) meter: Arc<Meter>,
}

impl Shared {
    pub(crate) fn new(params: Params) -> Arc<Self> {
        let config = params.config;
        let span = observe::connection_span(
            params.meter.side(),
            params.id,
            params.peer_addr,
            params.session,
            params.meta.label(),
        );
        Arc::new(Self {
            id: params.id,
            peer_addr: params.peer_addr,
            session: params.session,
            meta: RwLock::new(params.meta),
            rtt: Rtt::default(),
            connected_since: SystemTime::now(),
            outbound: Outbound::new(config.queue_capacity),
            streams: streams::Streams::new(
                config.max_streams,
                config.max_message,
                params.meter.streams_open(Direction::Out),
                params.meter.streams_open(Direction::In),
            ),
            inbound: Inbound::new(
                params.services,
                params.peer_is_guest,
                config.max_in_flight,
                config.max_message,
            ),
            config,
            origin: params.origin,
            server_id: params.server_id,
            peer: OnceLock::new(),
            closing: Signal::new(None),
            closed: AtomicBool::new(false),
            done: Signal::new(None),
            meter: params.meter,
            span,
        })
    }

    /// Starts closing with `reason`; the first reason wins. Fails every pending
    /// call with `Disconnected` and aborts every running handler at once.
    fn close(&self, reason: Disconnect, send_close: bool) -> bool {
        let first = self.closing.update(|closing| {
            if closing.is_some() {
                return false;
            }
            *closing = Some(Closing {
                reason: reason.clone(),
                send_close,
            });
            true
        });
        if first {
            self.closed.store(true, Ordering::Release);
            tracing::debug!(id = %self.id, %reason, "connection closing");
            self.outbound.fail_all();
            self.streams.close(&reason);
            self.inbound.abort_all();
        }
        first
    }

    /// The reason the connection is closing or closed, if it is.
    fn closed_reason(&self) -> Option<Disconnect> {
        self.closing.with(|c| c.as_ref().map(|c| c.reason.clone()))
    }

    fn disconnected(&self) -> Error {
        Error::Disconnected(
            self.closed_reason()
                .unwrap_or_else(|| Disconnect::lost("connection lost")),
        )
    }

    /// Queues a small control envelope (a cancel, a credit, a stop) without
    /// waiting: when the queue is full, a task sends it once there is room.
    fn send_soon(self: &Arc<Self>, message: Message) {
        let queue = self.outbound.queue();
        if let Err(TrySendError::Full(message)) = queue.try_send(message)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let shared = Arc::clone(self);
            runtime.spawn(async move {
                let _ = shared.outbound.queue().send(message).await;
            });
        }
    }

    /// Closes a retired connection whose last call just ended.
    fn retire_if(&self, now: bool) {
        if now {
            self.close(Reason::SessionRenewed.into(), true);
        }
    }

    /// The metadata now.
    fn meta(&self) -> Meta {
        self.meta
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// A handle to call this peer, made once per connection: every handler's
    /// context shares it. It holds the connection weakly (the connection
    /// holds it), so a peer kept past the connection's end fails its calls
    /// with [`Error::Disconnected`].
    fn peer(self: &Arc<Self>) -> Peer {
        self.peer
            .get_or_init(|| Peer::new(Arc::new(WeakHandle(Arc::downgrade(self)))))
            .clone()
    }

    /// The context of a handler serving this peer.
    fn context(self: &Arc<Self>, deadline: Option<std::time::Instant>) -> Context {
        Context::new(
            self.id,
            self.peer_addr,
            self.session,
            self.meta(),
            self.rtt.clone(),
            deadline,
            self.peer(),
            self.origin.clone(),
        )
    }
}

impl Handle {
    /// A handle on `shared`: what the registry and the client keep.
    pub(crate) fn of(shared: &Arc<Shared>) -> Self {
        Self(Arc::clone(shared))
    }
}

/// A cheap handle on one connection; implements [`Caller`].
#[derive(Clone)]
pub(crate) struct Handle(Arc<Shared>);

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("id", &self.0.id)
            .finish_non_exhaustive()
    }
}

/// Ends a call exactly once: when the caller drops its future (or the
/// deadline passes) while the call is pending, the peer is told to cancel it.
struct CallGuard<'a> {
    /// Borrowed from the call's handle: no reference count to change per call.
    shared: &'a Arc<Shared>,
    id: u64,
    /// The call sends a stream: it ends with the call.
    uploading: bool,
    /// The caller took the call's outcome: the call is in no table any more.
    ended: AtomicBool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if self.uploading {
            self.shared.streams.stop_sending(self.id, Half::Up);
        }
        if *self.ended.get_mut() {
            return;
        }
        let (abandoned, retire) = self.shared.outbound.abandon(self.id);
        self.shared.retire_if(retire);
        if !abandoned {
            return;
        }
        self.shared.send_soon(Message::Cancel { id: self.id });
    }
}

impl Handle {
    /// The connection's id on this side.
    pub(crate) fn id(&self) -> ConnectionId {
        self.0.id
    }

    /// The peer's address.
    pub(crate) fn peer_addr(&self) -> SocketAddr {
        self.0.peer_addr
    }

    /// Authenticated or guest.
    pub(crate) fn session(&self) -> SessionKind {
        self.0.session
    }

    /// What the auth hook stored, or the application since (none on a client).
    pub(crate) fn meta(&self) -> Meta {
        self.0.meta()
    }

    /// Replaces the metadata; handlers that start from now on see `meta`.
    pub(crate) fn set_meta(&self, meta: Meta) {
        *self
            .0
            .meta
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = meta;
    }

    /// A context on this connection, as a handler serving the peer gets it
    /// (without a deadline): for lifecycle hooks.
    pub(crate) fn context(&self) -> Context {
        self.0.context(None)
    }

    /// Whether `other` is a handle on this same connection.
    pub(crate) fn same(&self, other: &Handle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The heartbeat's measurement.
    pub(crate) fn rtt(&self) -> &Rtt {
        &self.0.rtt
    }

    /// When the connection was admitted.
    pub(crate) fn connected_since(&self) -> SystemTime {
        self.0.connected_since
    }

    /// On a client: the id the server gave the connection, if it said.
    pub(crate) fn server_id(&self) -> Option<ConnectionId> {
        self.0.server_id
    }

    /// Sends a call and waits for its reply, at most `timeout`.
    ///
    /// The connection's task enforces the deadline (one timer per
    /// connection, none per call); a call whose queue is full waits for room
    /// at most until the deadline.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the call on the peer.
    pub(crate) async fn call(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        timeout: Duration,
    ) -> Result<EncodedValue, Error> {
        self.call_sending(method, args, timeout, None).await
    }

    /// As [`Handle::call`], for a method that takes a stream: `items` are
    /// sent as the stream's half 1 as the callee grants credit, until the
    /// reply comes (which stops them) or they end.
    pub(crate) async fn upload(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        timeout: Duration,
        items: RawStream,
    ) -> Result<EncodedValue, Error> {
        self.call_sending(method, args, timeout, Some(items)).await
    }

    /// A call, sending `upload` as its stream when there is one.
    async fn call_sending(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        timeout: Duration,
        upload: Option<RawStream>,
    ) -> Result<EncodedValue, Error> {
        let shared = &self.0;
        if args.len() + method.len() + ENVELOPE_OVERHEAD > shared.config.max_message {
            return Err(Error::Rejected(
                "the arguments exceed the maximum message size".into(),
            ));
        }
        let timeout = timeout.min(MAX_CALL_TIMEOUT);
        let started = Instant::now();
        let deadline = started + timeout;
        // The call's task, woken when the call ends (see `send_call`).
        let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
        let id = shared
            .outbound
            .start(deadline, waker.clone())
            .ok_or_else(|| shared.disconnected())?;
        let guard = CallGuard {
            shared,
            id,
            uploading: upload.is_some(),
            ended: AtomicBool::new(false),
        };
        if let Some(items) = upload {
            // Before the call is sent, so the callee's first credit finds it.
            shared.streams.sending.start_upload(id, items, true);
        }
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        // Dropped unfinished (the caller stopped waiting), it counts as cancelled.
        let direction = Direction::Out;
        let record = (shared.meter).call(
            &shared.span,
            &method,
            id,
            direction,
            Some(timeout_ms),
            started,
        );
        let message = Message::Call(Call {
            id,
            method,
            timeout_ms: Some(timeout_ms),
            args,
        });
        let sent = self.send_call(&guard, message, deadline, waker);
        // Not even a disabled span's wrapper on the common path.
        let result = if record.span().is_disabled() {
            sent.await
        } else {
            sent.instrument(record.span().clone()).await
        };
        record.finish(CallOutcome::of_result(&result));
        result
    }

    /// Queues a started call and waits for its reply.
    async fn send_call(
        &self,
        guard: &CallGuard<'_>,
        message: Message,
        deadline: Instant,
        started_with: Waker,
    ) -> Result<EncodedValue, Error> {
        let shared = &self.0;
        let queue = shared.outbound.queue();
        // Until the task is polled again, nothing can have ended the call
        // without waking `started_with`.
        let mut started_with = Some(started_with);
        match queue.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Closed) => return Err(shared.disconnected()),
            Err(TrySendError::Full(message)) => {
                // Waiting for room, the task may be woken for the call's end
                // (its timeout, the connection's) and go on waiting.
                started_with = None;
                // The peer reads slowly: wait for room, until the deadline.
                // Boxed, so the common path's future stays small.
                let send = tokio::time::timeout_at(deadline, queue.send(message));
                match Box::pin(send).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(shared.disconnected()),
                    Err(_) => return Err(Error::Timeout),
                }
            }
        }
        // Still in the poll that started the call, with the waker it was
        // started with: the call's end would have woken this task, so the
        // table need not be asked yet.
        let outcome = std::future::poll_fn(|cx| {
            if started_with.take().is_some_and(|w| w.will_wake(cx.waker())) {
                return Poll::Pending;
            }
            shared.outbound.poll_reply(guard.id, cx)
        })
        .await;
        match outcome {
            Some(outcome) => {
                guard.ended.store(true, Ordering::Relaxed);
                outcome
            }
            None => Err(shared.disconnected()),
        }
    }

    /// Queues a notification.
    pub(crate) async fn notify(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
    ) -> Result<(), Error> {
        let shared = &self.0;
        if args.len() + method.len() + ENVELOPE_OVERHEAD > shared.config.max_message {
            return Err(Error::Rejected(
                "the arguments exceed the maximum message size".into(),
            ));
        }
        if shared.closed.load(Ordering::Acquire) {
            return Err(shared.disconnected());
        }
        let message = Message::Notify(Notify { method, args });
        let write_timeout = shared.config.write_timeout;
        let send = shared.outbound.queue().send(message);
        match tokio::time::timeout(write_timeout, send).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(shared.disconnected()),
            Err(_) => Err(Error::Timeout),
        }
    }

    /// Opens a stream: calls the streaming `method`, granting `window`;
    /// with `upload`, a two-way stream that sends those items.
    ///
    /// # Cancel safety
    /// Dropping the returned stream stops it on the peer.
    pub(crate) async fn open_stream(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        window: Window,
        upload: Option<RawStream>,
    ) -> Result<RawStream, Error> {
        let shared = &self.0;
        if args.len() + method.len() + ENVELOPE_OVERHEAD > shared.config.max_message {
            return Err(Error::Rejected(
                "the arguments exceed the maximum message size".into(),
            ));
        }
        let call = |id| {
            Message::Call(Call {
                id,
                method,
                timeout_ms: None,
                args,
            })
        };
        streams::open(shared, call, window, upload).await
    }

    /// Closes the connection with an authenticated CLOSE carrying `reason`.
    pub(crate) fn close(&self, reason: impl Into<Disconnect>) {
        self.0.close(reason.into(), true);
    }

    /// Waits until the task has ended; the reason the connection closed.
    pub(crate) async fn closed(&self) -> Disconnect {
        self.0.done.wait_for(Option::clone).await
    }

    /// Whether the connection is closing or closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }

    /// New calls from the peer are answered `SHUTTING_DOWN` from now on.
    pub(crate) fn drain(&self) {
        self.0.inbound.drain();
    }

    /// Waits until no handler of this connection runs.
    pub(crate) async fn idle(&self) {
        self.0.inbound.idle().await;
    }

    /// Stops taking new calls of ours (the client moved them to a newer
    /// connection) and closes once the pending ones have ended.
    pub(crate) fn retire(&self) {
        let now = self.0.outbound.retire();
        self.0.retire_if(now);
    }
}

impl Caller for Handle {
    fn call(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        options: CallOptions,
    ) -> BoxFuture<'static, Result<EncodedValue, Error>> {
        self.call_boxed(method, args, options)
    }

    fn notify(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
    ) -> BoxFuture<'static, Result<(), Error>> {
        let handle = self.clone();
        Box::pin(async move { handle.notify(method, args).await })
    }

    fn stream(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        _options: CallOptions,
        window: Window,
    ) -> BoxFuture<'static, Result<RawStream, Error>> {
        let handle = self.clone();
        Box::pin(async move { handle.open_stream(method, args, window, None).await })
    }

    fn upload(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        options: CallOptions,
        items: RawStream,
    ) -> BoxFuture<'static, Result<EncodedValue, Error>> {
        let handle = self.clone();
        let timeout = options.timeout.unwrap_or(self.0.config.call_timeout);
        Box::pin(async move { handle.upload(method, args, timeout, items).await })
    }

    fn duplex(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        _options: CallOptions,
        window: Window,
        items: RawStream,
    ) -> BoxFuture<'static, Result<RawStream, Error>> {
        let handle = self.clone();
        Box::pin(async move { handle.open_stream(method, args, window, Some(items)).await })
    }
}

impl Handle {
    fn call_boxed(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        options: CallOptions,
    ) -> BoxFuture<'static, Result<EncodedValue, Error>> {
        let handle = self.clone();
        let timeout = options.timeout.unwrap_or(self.0.config.call_timeout);
        Box::pin(async move { handle.call(method, args, timeout).await })
    }
}

/// A handle that does not keep its connection alive; see [`Shared::peer`].
struct WeakHandle(Weak<Shared>);

impl WeakHandle {
    fn handle(&self) -> Result<Handle, Error> {
        self.0
            .upgrade()
            .map(Handle)
            .ok_or_else(|| Error::Disconnected(Disconnect::lost("connection gone")))
    }
}

impl Caller for WeakHandle {
    fn call(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        options: CallOptions,
    ) -> BoxFuture<'static, Result<EncodedValue, Error>> {
        match self.handle() {
            Ok(handle) => handle.call_boxed(method, args, options),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }

    fn notify(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
    ) -> BoxFuture<'static, Result<(), Error>> {
        match self.handle() {
            Ok(handle) => Caller::notify(&handle, method, args),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }

    fn stream(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        options: CallOptions,
        window: Window,
    ) -> BoxFuture<'static, Result<RawStream, Error>> {
        match self.handle() {
            Ok(handle) => Caller::stream(&handle, method, args, options, window),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }

    fn upload(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        options: CallOptions,
        items: RawStream,
    ) -> BoxFuture<'static, Result<EncodedValue, Error>> {
        match self.handle() {
            Ok(handle) => Caller::upload(&handle, method, args, options, items),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }

    fn duplex(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        options: CallOptions,
        window: Window,
        items: RawStream,
    ) -> BoxFuture<'static, Result<RawStream, Error>> {
        match self.handle() {
            Ok(handle) => Caller::duplex(&handle, method, args, options, window, items),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }
}
