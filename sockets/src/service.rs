//! The contract between the runtime and services: what `#[sockets::service]`
//! generates, and what handlers see of their call.
//!
//! The runtime knows a service only as an object-safe [`Service`]: a static
//! description of its methods ([`ServiceInfo`]) and a `dispatch` that decodes
//! the arguments of one call, runs the handler and encodes its result. The
//! typed request and response enums the macro generates implement
//! [`ServiceRequest`] and [`ServiceResponse`], which is what typed
//! server-to-client calls (`send_to`, `broadcast`, `call_all`) take.
//!
//! Calls to the other side go through a [`Peer`], a cheap handle that the
//! generated client stubs wrap. A client's peer follows it across reconnects;
//! a server's peer is bound to one connection.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::error::Error;
use crate::protocol::codec::{self, CodecError};
use crate::server::Server;

/// A boxed, sendable future, as dispatch and peers return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connection's id: unique within the process, never reused.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One method of a service, as the runtime sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodInfo {
    /// The wire name, `service.method` (see docs/PROTOCOL.md, "Method identity").
    pub name: &'static str,
    /// Guest sessions may call it (`#[sockets(open)]`).
    pub open: bool,
    /// Fire-and-forget: called with a notification, never replied to (`#[sockets(notify)]`).
    pub notify: bool,
}

/// A service's static description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The service's wire name: the prefix of its methods' names.
    pub name: &'static str,
    /// Its methods, in declaration order.
    pub methods: &'static [MethodInfo],
}

impl ServiceInfo {
    /// The method with this wire name, if the service has it.
    pub fn method(&self, name: &str) -> Option<&'static MethodInfo> {
        self.methods.iter().find(|m| m.name == name)
    }
}

/// Why a call could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The service has no method of that name.
    #[error("unknown method `{0}`")]
    UnknownMethod(String),
    /// The arguments did not decode as the method's parameters.
    #[error("bad request: {0}")]
    BadRequest(String),
}

/// The running handler of one call: resolves to its encoded return value.
pub type HandlerFuture = BoxFuture<'static, Result<Vec<u8>, CodecError>>;

/// A service the runtime can serve. `#[sockets::service]` implements it; a
/// hand-written implementation is possible but rarely needed.
pub trait Service: Send + Sync + 'static {
    /// The service's name and methods.
    fn info(&self) -> &'static ServiceInfo;

    /// Starts one call: decodes `args` for `method` and returns the running handler.
    ///
    /// Decoding happens before this returns, so a bad request is reported at
    /// once. The runtime checks the method's `open` and `notify` flags
    /// ([`MethodInfo`]) before it dispatches: a guest may start open methods
    /// only, a call may start only a method that is not `notify`, and a
    /// notification only one that is. It owns the returned future: it applies
    /// the deadline and aborts it when the caller cancels.
    ///
    /// # Errors
    /// [`DispatchError::UnknownMethod`] or [`DispatchError::BadRequest`].
    fn dispatch(
        self: Arc<Self>,
        cx: Context,
        method: &str,
        args: &[u8],
    ) -> Result<HandlerFuture, DispatchError>;
}

/// A typed request enum: one variant per method of a service.
pub trait ServiceRequest: Send + Sync + 'static {
    /// The matching response enum.
    type Response: ServiceResponse;

    /// The wire name of the method this request calls.
    fn method(&self) -> &'static str;

    /// Whether the method is a notification method (`#[sockets(notify)]`):
    /// sent with a notification and never replied to. The runtime refuses to
    /// send such a request as a call, and any other request as a
    /// notification ([`Error::KindMismatch`]).
    fn is_notify(&self) -> bool;

    /// Appends the encoded arguments (one MessagePack array) to `out`.
    ///
    /// # Errors
    /// When an argument's `Serialize` implementation fails.
    fn encode_args(&self, out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// Decodes the request for `method` from its encoded arguments.
    ///
    /// # Errors
    /// [`DispatchError::UnknownMethod`] or [`DispatchError::BadRequest`].
    fn decode(method: &str, args: &[u8]) -> Result<Self, DispatchError>
    where
        Self: Sized;
}

/// A typed response enum: one variant per method of a service, holding its return value.
pub trait ServiceResponse: Send + Sized + 'static {
    /// Decodes the return value of `method` from its encoding.
    ///
    /// # Errors
    /// When `method` is unknown or the value does not decode as its return type.
    fn decode(method: &str, value: &[u8]) -> Result<Self, Error>;
}

/// Options for one outgoing call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// How long to wait for the reply; `None` takes the connection's default.
    pub timeout: Option<Duration>,
    /// If the connection is down, wait for the client to reconnect (up to the
    /// timeout) instead of failing at once with [`Error::Disconnected`].
    pub wait_for_connection: bool,
}

impl CallOptions {
    /// Options with the given timeout.
    pub fn timeout(timeout: Duration) -> Self {
        Self {
            timeout: Some(timeout),
            ..Self::default()
        }
    }
}

/// What carries calls to one peer. The runtime implements it for a client and
/// for a server's connection; tests may implement it to fake a peer.
pub trait Caller: Send + Sync + 'static {
    /// Sends a call with already-encoded arguments and resolves to the encoded reply.
    ///
    /// Dropping the returned future cancels the call on the remote side.
    fn call(
        &self,
        method: Cow<'static, str>,
        args: Vec<u8>,
        options: CallOptions,
    ) -> BoxFuture<'static, Result<Bytes, Error>>;

    /// Sends a notification with already-encoded arguments; resolves once it is queued.
    fn notify(
        &self,
        method: Cow<'static, str>,
        args: Vec<u8>,
    ) -> BoxFuture<'static, Result<(), Error>>;
}

/// A cheap, cloneable handle to call or notify the other side of a connection.
#[derive(Clone)]
pub struct Peer {
    caller: Arc<dyn Caller>,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer").finish_non_exhaustive()
    }
}

impl Peer {
    /// A peer that sends through `caller`.
    pub fn new(caller: Arc<dyn Caller>) -> Self {
        Self { caller }
    }

    /// Calls `method` with `args` (a tuple of the method's arguments) and decodes the reply as `R`.
    ///
    /// # Errors
    /// Every outcome other than the typed reply; see [`Error`].
    ///
    /// # Cancel safety
    /// Dropping the future before it completes sends a cancel to the peer.
    pub async fn call<A, R>(&self, method: &str, args: &A, options: CallOptions) -> Result<R, Error>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let args = codec::to_vec(args)?;
        let reply = self
            .caller
            .call(Cow::Owned(method.to_owned()), args, options)
            .await?;
        codec::decode_value(&reply)
            .map_err(|e| Error::Protocol(format!("reply to `{method}` did not decode: {e}")))
    }

    /// Sends `method` with `args` as a notification: no reply, no outcome beyond being queued.
    ///
    /// # Errors
    /// [`Error::Disconnected`] when there is no connection; [`Error::Codec`] when the arguments do not encode.
    pub async fn notify<A: Serialize + ?Sized>(&self, method: &str, args: &A) -> Result<(), Error> {
        let args = codec::to_vec(args)?;
        self.caller
            .notify(Cow::Owned(method.to_owned()), args)
            .await
    }

    /// Sends a typed request and returns the typed response.
    ///
    /// # Errors
    /// As [`Peer::call`], and [`Error::KindMismatch`] (nothing sent) when the
    /// request is for a notification method: send those with [`Peer::notify`].
    pub async fn request<Q: ServiceRequest>(
        &self,
        request: &Q,
        options: CallOptions,
    ) -> Result<Q::Response, Error> {
        ensure_call(request)?;
        let mut args = Vec::with_capacity(64);
        request.encode_args(&mut args)?;
        let method = request.method();
        let reply = self
            .caller
            .call(Cow::Borrowed(method), args, options)
            .await?;
        Q::Response::decode(method, &reply)
    }

    /// The caller behind this peer.
    pub fn caller(&self) -> &Arc<dyn Caller> {
        &self.caller
    }
}

/// `Ok` when `request` is for a method that replies, so it may be sent as a call.
///
/// # Errors
/// [`Error::KindMismatch`] for a notification method.
pub(crate) fn ensure_call<Q: ServiceRequest>(request: &Q) -> Result<(), Error> {
    if request.is_notify() {
        return Err(Error::KindMismatch {
            method: request.method().to_owned(),
            notify: true,
        });
    }
    Ok(())
}

/// `Ok` when `request` is for a notification method, so it may be sent as a notification.
///
/// # Errors
/// [`Error::KindMismatch`] for a method that replies.
pub(crate) fn ensure_notify<Q: ServiceRequest>(request: &Q) -> Result<(), Error> {
    if !request.is_notify() {
        return Err(Error::KindMismatch {
            method: request.method().to_owned(),
            notify: false,
        });
    }
    Ok(())
}

/// What the auth hook stored for a connection, shared by all its handlers.
#[derive(Clone)]
pub struct Meta(Option<Arc<dyn Any + Send + Sync>>);

impl Meta {
    /// No metadata (a guest session, or an auth hook that stores none).
    pub fn none() -> Self {
        Self(None)
    }

    /// Metadata holding `value`.
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Self(Some(Arc::new(value)))
    }

    /// The metadata, if it is a `T`.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.as_deref().and_then(|any| any.downcast_ref())
    }
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Meta(..)"
        } else {
            "Meta(none)"
        })
    }
}

/// A connection's measured round-trip time, updated by the heartbeat; a
/// cheap handle (clones share the measurement).
///
/// Besides reading the latest value, one can wait for it: [`Rtt::measured`]
/// resolves with the first measurement, and [`Rtt::subscribe`] sees every
/// later one.
#[derive(Clone, Debug)]
pub struct Rtt(Arc<Mutex<RttState>>);

#[derive(Debug)]
struct RttState {
    latest: Option<Duration>,
    /// Created for the first subscriber: a watch channel is about 350 bytes,
    /// too much for every idle connection whose round-trip time nobody awaits.
    changes: Option<watch::Sender<Option<Duration>>>,
}

impl Default for Rtt {
    /// No measurement yet.
    fn default() -> Self {
        Self(Arc::new(Mutex::new(RttState {
            latest: None,
            changes: None,
        })))
    }
}

impl Rtt {
    fn state(&self) -> MutexGuard<'_, RttState> {
        // Plain data: a panic elsewhere cannot leave it half-written.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The latest measurement; `None` before the first heartbeat answer.
    pub fn get(&self) -> Option<Duration> {
        self.state().latest
    }

    /// Records a measurement and wakes whoever waits for one.
    pub fn set(&self, rtt: Duration) {
        let mut state = self.state();
        state.latest = Some(rtt);
        if let Some(changes) = &state.changes {
            changes.send_replace(Some(rtt));
        }
    }

    /// Waits for a measurement: at once if there is one, else until the
    /// first heartbeat answer (forever if heartbeats are off or the
    /// connection is gone; bound it with a timeout).
    pub async fn measured(&self) -> Duration {
        let mut changes = self.subscribe();
        loop {
            if let Some(rtt) = *changes.borrow_and_update() {
                return rtt;
            }
            // `self` holds the sender, so this cannot fail while we wait.
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// A receiver that is told of every measurement from now on
    /// (`changed().await`, then `borrow()`).
    pub fn subscribe(&self) -> watch::Receiver<Option<Duration>> {
        let mut state = self.state();
        let latest = state.latest;
        state
            .changes
            .get_or_insert_with(|| watch::Sender::new(latest))
            .subscribe()
    }
}

/// Whether a connection authenticated or was let in as a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// The auth hook accepted the credentials.
    Authenticated,
    /// The auth hook admitted a guest: only open methods may be called.
    Guest,
}

/// What a handler knows about the call it serves.
#[derive(Clone, Debug)]
pub struct Context {
    /// The connection the call came on.
    pub connection_id: ConnectionId,
    /// The remote address of that connection.
    pub peer_addr: SocketAddr,
    /// Authenticated or guest.
    pub session: SessionKind,
    /// What the auth hook stored for the connection.
    pub meta: Meta,
    /// The connection's measured round-trip time.
    pub rtt: Rtt,
    /// When the caller stops waiting, if it said.
    pub deadline: Option<Instant>,
    /// A handle to call or notify the same peer back.
    pub peer: Peer,
    /// The server the call came to, for handlers that reach other
    /// connections (rooms, broadcasts); `None` for a handler a client serves.
    pub server: Option<Server>,
}

impl Context {
    /// The auth hook's metadata, if it is a `T`.
    pub fn meta<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.meta.get()
    }

    /// The server this handler runs in: `Some` on the server side, `None` in
    /// a service a client serves.
    ///
    /// ```
    /// use sockets::Context;
    ///
    /// // A handler that puts its caller in a room.
    /// async fn join(cx: &Context, room: &str) -> Result<(), sockets::Error> {
    ///     match cx.server() {
    ///         Some(server) => server.join(cx.connection_id, room),
    ///         None => Err(sockets::Error::Config("rooms exist on the server only".into())),
    ///     }
    /// }
    /// ```
    pub fn server(&self) -> Option<&Server> {
        self.server.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rtt_reports_to_subscribers_made_before_and_after_a_measurement() {
        let rtt = Rtt::default();
        assert_eq!(rtt.get(), None);
        let mut early = rtt.subscribe();
        assert!(!early.has_changed().unwrap());
        let waiter = tokio::spawn({
            let rtt = rtt.clone();
            async move { rtt.measured().await }
        });
        rtt.set(Duration::from_millis(7));
        assert_eq!(rtt.get(), Some(Duration::from_millis(7)));
        early.changed().await.unwrap();
        assert_eq!(*early.borrow_and_update(), Some(Duration::from_millis(7)));
        assert_eq!(waiter.await.unwrap(), Duration::from_millis(7));

        let mut late = rtt.subscribe();
        assert_eq!(*late.borrow(), Some(Duration::from_millis(7)));
        assert!(!late.has_changed().unwrap());
        rtt.set(Duration::from_millis(9));
        late.changed().await.unwrap();
        assert_eq!(*late.borrow(), Some(Duration::from_millis(9)));
        assert_eq!(rtt.measured().await, Duration::from_millis(9));
    }
}
