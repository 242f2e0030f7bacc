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
mod queue;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::ConnectionConfig;
use crate::correlation::{InFlight, Started};
use crate::dispatch::{Running, Services};
use crate::error::{Disconnect, Error};
use crate::heartbeat::Rtt;
use crate::identity::{ConnectionId, Meta, SessionKind};
use crate::protocol::{Call, Message, Notify, Reason};
use crate::service::{BoxFuture, CallOptions, Caller, Origin, Peer};
use crate::signal::Signal;

pub(crate) use io::spawn;
use queue::{Queue, TrySendError};

/// The longest a call may wait: the most its `timeout_ms` can say on the
/// wire (about 49 days). Longer timeouts are cut to it.
pub(crate) const MAX_CALL_TIMEOUT: Duration = Duration::from_millis(u32::MAX as u64);

/// Envelope bytes beyond the payload and method name; used to refuse a
/// message that could not be sent before it is queued.
const ENVELOPE_OVERHEAD: usize = 64;

type Waiter = oneshot::Sender<Result<Bytes, Error>>;

/// Why and how a connection is closing.
#[derive(Clone, Debug)]
pub(crate) struct Closing {
    pub(crate) reason: Disconnect,
    /// Send an authenticated CLOSE with the reason (false when the socket is already gone).
    pub(crate) send_close: bool,
}

/// Everything the tasks of one connection and its handles share.
pub(crate) struct Shared {
    pub(crate) id: ConnectionId,
    pub(crate) peer_addr: SocketAddr,
    pub(crate) session: SessionKind,
    /// The peer may call only open methods (a server's guest connection).
    pub(crate) peer_is_guest: bool,
    pub(crate) meta: Meta,
    pub(crate) rtt: Rtt,
    pub(crate) connected_since: SystemTime,
    pub(crate) config: Arc<ConnectionConfig>,
    pub(crate) services: Arc<Services>,
    /// The server this connection belongs to; `None` on a client.
    pub(crate) origin: Option<Origin>,
    /// On a client: the id the server gave this connection, if it said
    /// (AUTH_RESULT's `id`). On a server: its own id.
    pub(crate) server_id: Option<ConnectionId>,
    pub(crate) queue: Queue,
    calls: Mutex<InFlight<Waiter>>,
    /// A call's deadline comes before the task's timer: the task must arm it again.
    timer_stale: AtomicBool,
    /// The handle handlers get to call this peer back ([`Shared::peer`]).
    peer: OnceLock<Peer>,
    pub(crate) running: Mutex<Running>,
    /// Handlers running; graceful shutdown waits for zero.
    pub(crate) running_count: Signal<usize>,
    draining: AtomicBool,
    /// Replaced by a newer connection: close once no call of ours is pending.
    retiring: AtomicBool,
    pub(crate) closing: Signal<Option<Closing>>,
    /// Set once both tasks have ended.
    done: Signal<Option<Disconnect>>,
}

/// What [`Shared::new`] needs besides the queue.
pub(crate) struct Params {
    pub(crate) id: ConnectionId,
    pub(crate) peer_addr: SocketAddr,
    pub(crate) session: SessionKind,
    pub(crate) peer_is_guest: bool,
    pub(crate) meta: Meta,
    pub(crate) config: Arc<ConnectionConfig>,
    pub(crate) services: Arc<Services>,
    pub(crate) origin: Option<Origin>,
    pub(crate) server_id: Option<ConnectionId>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; go on with it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn new(params: Params) -> Arc<Self> {
        let queue = Queue::new(params.config.queue_capacity);
        Arc::new(Self {
            id: params.id,
            peer_addr: params.peer_addr,
            session: params.session,
            peer_is_guest: params.peer_is_guest,
            meta: params.meta,
            rtt: Rtt::default(),
            connected_since: SystemTime::now(),
            config: params.config,
            services: params.services,
            origin: params.origin,
            server_id: params.server_id,
            queue,
            calls: Mutex::new(InFlight::default()),
            timer_stale: AtomicBool::new(false),
            peer: OnceLock::new(),
            running: Mutex::new(Running::default()),
            running_count: Signal::new(0),
            draining: AtomicBool::new(false),
            retiring: AtomicBool::new(false),
            closing: Signal::new(None),
            done: Signal::new(None),
        })
    }

    /// Starts closing with `reason`; the first reason wins. Fails every pending
    /// call with `Disconnected` and aborts every running handler at once.
    pub(crate) fn close(&self, reason: Disconnect, send_close: bool) -> bool {
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
            tracing::debug!(id = %self.id, %reason, "connection closing");
            let waiters = lock(&self.calls).fail_all();
            for waiter in waiters {
                let _ = waiter.send(Err(Error::Disconnected(reason.clone())));
            }
            lock(&self.running).abort_all(&self.running_count);
        }
        first
    }

    /// The reason the connection is closing or closed, if it is.
    pub(crate) fn closed_reason(&self) -> Option<Disconnect> {
        self.closing.with(|c| c.as_ref().map(|c| c.reason.clone()))
    }

    fn disconnected(&self) -> Error {
        Error::Disconnected(
            self.closed_reason()
                .unwrap_or_else(|| Disconnect::lost("connection lost")),
        )
    }

    /// A reply came for one of our calls.
    pub(crate) fn complete(&self, id: u64, result: Result<Bytes, Error>) {
        let (waiter, pending) = {
            let mut calls = lock(&self.calls);
            (calls.complete(id), calls.len())
        };
        self.retire_if_idle(pending);
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(result);
            }
            None => tracing::trace!(id = %self.id, call = id, "reply for no waiting call"),
        }
    }

    /// A handle to call this peer, made once per connection: every handler's
    /// context shares it. It holds the connection weakly (the connection
    /// holds it), so a peer kept past the connection's end fails its calls
    /// with [`Error::Disconnected`].
    pub(crate) fn peer(self: &Arc<Self>) -> Peer {
        self.peer
            .get_or_init(|| Peer::new(Arc::new(WeakHandle(Arc::downgrade(self)))))
            .clone()
    }

    /// Ends our calls whose deadline passed with [`Error::Timeout`]; their
    /// ids, for the peer to be told to cancel them, and the time to check again.
    pub(crate) fn expire_calls(&self, now: Instant) -> (Vec<u64>, Option<Instant>) {
        let (expired, next, pending) = {
            let mut calls = lock(&self.calls);
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
        self.retire_if_idle(pending);
        (ids, next)
    }

    /// When the task's timer must check our calls' deadlines, if a call
    /// asked for it since the last time (see [`InFlight::start`]):
    /// `Some(None)` when no call waits.
    pub(crate) fn rearm_calls(&self) -> Option<Option<Instant>> {
        if !self.timer_stale.swap(false, Ordering::AcqRel) {
            return None;
        }
        Some(lock(&self.calls).arm())
    }

    /// Stops taking new calls of ours (the client moved them to a newer
    /// connection) and closes once the pending ones have ended.
    pub(crate) fn retire(&self) {
        self.retiring.store(true, Ordering::Release);
        let pending = lock(&self.calls).len();
        self.retire_if_idle(pending);
    }

    fn retire_if_idle(&self, pending: usize) {
        if pending == 0 && self.retiring.load(Ordering::Acquire) {
            self.close(Reason::SessionRenewed.into(), true);
        }
    }

    /// New calls from the peer are refused with `ShuttingDown` from now on.
    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub(crate) fn finish(&self, reason: Disconnect) {
        self.done.replace(Some(reason));
    }
}

/// A cheap handle on one connection; implements [`Caller`].
#[derive(Clone)]
pub(crate) struct Handle(pub(crate) Arc<Shared>);

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("id", &self.0.id)
            .finish_non_exhaustive()
    }
}

/// Ends a call exactly once: when the caller drops its future (or the
/// deadline passes) while the call is pending, the peer is told to cancel it.
struct CallGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let (abandoned, pending) = {
            let mut calls = lock(&self.shared.calls);
            (calls.abandon(self.id), calls.len())
        };
        self.shared.retire_if_idle(pending);
        if !abandoned {
            return;
        }
        let cancel = Message::Cancel { id: self.id };
        if let Err(TrySendError::Full(cancel)) = self.shared.queue.try_send(cancel)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let shared = Arc::clone(&self.shared);
            runtime.spawn(async move {
                let _ = shared.queue.send(cancel).await;
            });
        }
    }
}

impl Handle {
    pub(crate) fn id(&self) -> ConnectionId {
        self.0.id
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
        args: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, Error> {
        let shared = &self.0;
        if args.len() + method.len() + ENVELOPE_OVERHEAD > shared.config.max_message {
            return Err(Error::Rejected(
                "the arguments exceed the maximum message size".into(),
            ));
        }
        let timeout = timeout.min(MAX_CALL_TIMEOUT);
        let deadline = Instant::now() + timeout;
        let (tx, rx) = oneshot::channel();
        let started = lock(&shared.calls).start(tx, deadline);
        let Started { id, rearm } = started.ok_or_else(|| shared.disconnected())?;
        if rearm {
            shared.timer_stale.store(true, Ordering::Release);
            shared.queue.wake_receiver();
        }
        let _guard = CallGuard {
            shared: Arc::clone(shared),
            id,
        };
        let message = Message::Call(Call {
            id,
            method,
            timeout_ms: Some(u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX)),
            args: args.into(),
        });
        match shared.queue.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Closed) => return Err(shared.disconnected()),
            Err(TrySendError::Full(message)) => {
                // The peer reads slowly: wait for room, until the deadline.
                // Boxed, so the common path's future stays small.
                let send = tokio::time::timeout_at(deadline, shared.queue.send(message));
                match Box::pin(send).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(shared.disconnected()),
                    Err(_) => return Err(Error::Timeout),
                }
            }
        }
        rx.await.map_err(|_| shared.disconnected())?
    }

    /// Queues a notification.
    pub(crate) async fn notify(
        &self,
        method: Cow<'static, str>,
        args: Vec<u8>,
    ) -> Result<(), Error> {
        let shared = &self.0;
        if args.len() + method.len() + ENVELOPE_OVERHEAD > shared.config.max_message {
            return Err(Error::Rejected(
                "the arguments exceed the maximum message size".into(),
            ));
        }
        if shared.closing.with(Option::is_some) {
            return Err(shared.disconnected());
        }
        let message = Message::Notify(Notify {
            method,
            args: args.into(),
        });
        let write_timeout = shared.config.write_timeout;
        match tokio::time::timeout(write_timeout, shared.queue.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(shared.disconnected()),
            Err(_) => Err(Error::Timeout),
        }
    }

    /// Closes the connection with an authenticated CLOSE carrying `reason`.
    pub(crate) fn close(&self, reason: impl Into<Disconnect>) {
        self.0.close(reason.into(), true);
    }

    /// Waits until both tasks have ended; the reason the connection closed.
    pub(crate) async fn closed(&self) -> Disconnect {
        self.0.done.wait_for(Option::clone).await
    }

    /// Whether the connection is closing or closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.0.closing.with(Option::is_some)
    }

    /// Waits until no handler of this connection runs.
    pub(crate) async fn idle(&self) {
        self.0
            .running_count
            .wait_for(|n| (*n == 0).then_some(()))
            .await;
    }
}

impl Caller for Handle {
    fn call(
        &self,
        method: Cow<'static, str>,
        args: Vec<u8>,
        options: CallOptions,
    ) -> BoxFuture<'static, Result<Bytes, Error>> {
        self.call_boxed(method, args, options)
    }

    fn notify(
        &self,
        method: Cow<'static, str>,
        args: Vec<u8>,
    ) -> BoxFuture<'static, Result<(), Error>> {
        let handle = self.clone();
        Box::pin(async move { handle.notify(method, args).await })
    }
}

impl Handle {
    fn call_boxed(
        &self,
        method: Cow<'static, str>,
        args: Vec<u8>,
        options: CallOptions,
    ) -> BoxFuture<'static, Result<Bytes, Error>> {
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
        args: Vec<u8>,
        options: CallOptions,
    ) -> BoxFuture<'static, Result<Bytes, Error>> {
        match self.handle() {
            Ok(handle) => handle.call_boxed(method, args, options),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }

    fn notify(
        &self,
        method: Cow<'static, str>,
        args: Vec<u8>,
    ) -> BoxFuture<'static, Result<(), Error>> {
        match self.handle() {
            Ok(handle) => Caller::notify(&handle, method, args),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }
}
