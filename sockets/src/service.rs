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
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::descriptor::ServiceDescriptor;
pub use crate::error::DispatchError;
use crate::error::Error;
use crate::heartbeat::Rtt;
use crate::identity::{ConnectionId, Meta, SessionKind};
pub use crate::protocol::EncodedValue;
use crate::protocol::codec::{self, CodecError};
use crate::stream::{RawStream, Stream, Window};

/// A boxed, sendable future, as dispatch and peers return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One method of a service, as the runtime sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodInfo {
    /// The wire name, `service.method` (see docs/PROTOCOL.md, "Method identity").
    pub name: &'static str,
    /// Guest sessions may call it (`#[sockets(open)]`).
    pub open: bool,
    /// Fire-and-forget: called with a notification, never replied to (`#[sockets(notify)]`).
    pub notify: bool,
    /// Answers with a stream of items instead of one reply (a method
    /// returning [`Stream`]): started with
    /// [`Service::dispatch_stream`].
    pub stream: bool,
    /// Takes a stream of items from the caller as its last argument (a
    /// parameter of type [`Stream`]): the runtime opens the stream's
    /// incoming half before it dispatches, and the handler takes it from
    /// its [`Context`] (the generated code does).
    pub stream_in: bool,
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

/// The running handler of one call: resolves to its encoded return value
/// (a hand-written service makes it with [`EncodedValue::encode`]; a small
/// value is held inline, so answering allocates nothing for it).
pub type HandlerFuture = BoxFuture<'static, Result<EncodedValue, CodecError>>;

/// The running handler of a streaming call: resolves to its stream of
/// encoded items.
pub type StreamHandlerFuture = BoxFuture<'static, RawStream>;

/// A service the runtime can serve. `#[sockets::service]` implements it; a
/// hand-written implementation is possible but rarely needed.
pub trait Service: Send + Sync + 'static {
    /// The service's name and methods.
    fn info(&self) -> &'static ServiceInfo;

    /// The service's descriptor (its methods' types, docs and hashes), which
    /// `sockets.describe` answers with; `None` leaves the service out of it.
    /// `#[sockets::service]` returns its generated one.
    fn descriptor(&self) -> Option<&'static ServiceDescriptor> {
        None
    }

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

    /// Starts one call of a streaming method ([`MethodInfo::stream`]):
    /// decodes `args` and returns the running handler, which resolves to
    /// the stream of encoded items. The runtime polls that stream only
    /// while the caller has granted credit, and drops it when the caller
    /// stops. The default serves no streaming method.
    ///
    /// # Errors
    /// [`DispatchError::UnknownMethod`] or [`DispatchError::BadRequest`].
    fn dispatch_stream(
        self: Arc<Self>,
        cx: Context,
        method: &str,
        args: &[u8],
    ) -> Result<StreamHandlerFuture, DispatchError> {
        let _ = (cx, args);
        Err(DispatchError::UnknownMethod(method.to_owned()))
    }
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

    /// Whether the method returns or takes a stream. Such a request cannot
    /// be sent as a plain call: call it with the generated client, or
    /// [`Peer::stream`], [`Peer::upload`] or [`Peer::duplex`].
    fn is_stream(&self) -> bool {
        false
    }

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
    /// A stream has no deadline once open.
    pub timeout: Option<Duration>,
    /// If the connection is down, wait for the client to reconnect (up to the
    /// timeout) instead of failing at once with [`Error::Disconnected`].
    pub wait_for_connection: bool,
    /// For a streaming method: the flow-control window this side grants
    /// the sender; `None` takes the method's (`#[sockets(window(...))]`),
    /// else [`Window::DEFAULT`].
    pub window: Option<Window>,
    /// For a streaming method called through a reconnecting
    /// [`Client`](crate::Client): when the connection is lost, wait for the
    /// client's next connection, open the stream again there (the same
    /// method, arguments and window) and yield one
    /// [`Feed::Gap`](crate::Feed::Gap) where the gap was, instead of ending
    /// with [`Error::Disconnected`]. The stream still ends when the client
    /// is closed or gives up reconnecting (`Disconnected`), or when the peer
    /// refuses the new opening (the refusal is the last item). Only for
    /// methods whose items are [`Feed<T>`](crate::Feed) (a
    /// [`Topic`](crate::Topic) subscription): for any other item type the
    /// stream's first item is [`Error::Config`], and it is stopped. Not
    /// re-opened through other callers (a server's connection to its client).
    pub resubscribe: bool,
}

impl CallOptions {
    /// Options with the given timeout.
    pub fn timeout(timeout: Duration) -> Self {
        Self {
            timeout: Some(timeout),
            ..Self::default()
        }
    }

    /// These options with [`CallOptions::resubscribe`] set.
    pub fn with_resubscribe(self) -> Self {
        Self {
            resubscribe: true,
            ..self
        }
    }

    /// These options with a stream window.
    pub fn with_window(self, window: Window) -> Self {
        Self {
            window: Some(window),
            ..self
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
        args: EncodedValue,
        options: CallOptions,
    ) -> BoxFuture<'static, Result<EncodedValue, Error>>;

    /// Sends a notification with already-encoded arguments; resolves once it is queued.
    fn notify(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
    ) -> BoxFuture<'static, Result<(), Error>>;

    /// Opens a stream: sends a call of a streaming method with
    /// already-encoded arguments, granting `window`, and resolves once it
    /// is sent to the stream of encoded items. A refusal (an unknown method,
    /// a limit) is the stream's one `Err`. The default opens none:
    /// [`Error::Rejected`].
    ///
    /// Dropping the stream stops it on the remote side.
    fn stream(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        options: CallOptions,
        window: Window,
    ) -> BoxFuture<'static, Result<RawStream, Error>> {
        let _ = (args, options, window);
        Box::pin(std::future::ready(Err(Error::Rejected(format!(
            "`{method}`: this caller does not open streams"
        )))))
    }

    /// Calls a method that takes a stream ([`MethodInfo::stream_in`]) and
    /// replies once: sends the call with already-encoded arguments, then
    /// the items of `items` as the callee grants credit, and resolves to
    /// the encoded reply. The reply ends the call: items not sent by then
    /// are not sent. The default sends none: [`Error::Rejected`].
    ///
    /// Dropping the returned future cancels the call on the remote side
    /// and drops `items`.
    fn upload(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        options: CallOptions,
        items: RawStream,
    ) -> BoxFuture<'static, Result<EncodedValue, Error>> {
        let _ = (args, options, items);
        Box::pin(std::future::ready(Err(Error::Rejected(format!(
            "`{method}`: this caller does not send streams"
        )))))
    }

    /// Opens a two-way stream: a method that takes a stream and returns
    /// one. Sends the call, granting `window` for the items that come back,
    /// then the items of `items` as the callee grants credit; resolves once
    /// the call is sent to the stream of encoded items that come back. The
    /// default opens none: [`Error::Rejected`].
    ///
    /// Dropping the returned stream stops both halves; the stream that comes
    /// back ending stops sending `items`.
    fn duplex(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        options: CallOptions,
        window: Window,
        items: RawStream,
    ) -> BoxFuture<'static, Result<RawStream, Error>> {
        let _ = (args, options, window, items);
        Box::pin(std::future::ready(Err(Error::Rejected(format!(
            "`{method}`: this caller does not open streams"
        )))))
    }
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
        let args = EncodedValue::encode(args)?;
        let reply = self
            .caller
            .call(Cow::Owned(method.to_owned()), args, options)
            .await?;
        reply
            .decode(|value| codec::decode_value(value))
            .map_err(|e| Error::Protocol(format!("reply to `{method}` did not decode: {e}")))
    }

    /// Sends `method` with `args` as a notification: no reply, no outcome beyond being queued.
    ///
    /// # Errors
    /// [`Error::Disconnected`] when there is no connection; [`Error::Codec`] when the arguments do not encode.
    pub async fn notify<A: Serialize + ?Sized>(&self, method: &str, args: &A) -> Result<(), Error> {
        let args = EncodedValue::encode(args)?;
        self.caller
            .notify(Cow::Owned(method.to_owned()), args)
            .await
    }

    /// Calls the streaming `method` with `args` (a tuple of its arguments)
    /// and returns the stream of its items, decoded as `T` as they are
    /// taken. The window is `options.window`, else [`Window::DEFAULT`].
    ///
    /// # Errors
    /// [`Error::Disconnected`] when there is no connection; [`Error::Codec`]
    /// when the arguments do not encode. A refusal of the call
    /// (`UnknownMethod`, `Rejected`, ...) is the stream's one `Err` item.
    ///
    /// # Cancel safety
    /// Dropping the stream stops it on the peer.
    pub async fn stream<A, T>(
        &self,
        method: &str,
        args: &A,
        options: CallOptions,
    ) -> Result<Stream<T>, Error>
    where
        A: Serialize + ?Sized,
        T: Send + 'static,
    {
        let args = EncodedValue::encode(args)?;
        let window = options.window.unwrap_or_default();
        let raw = self
            .caller
            .stream(Cow::Owned(method.to_owned()), args, options, window)
            .await?;
        Ok(Stream::from_raw(raw).checking_gap(options.resubscribe))
    }

    /// Calls `method`, which takes a stream of items as its last argument,
    /// with `args` (a tuple of its other arguments) and `items`, and
    /// decodes the reply as `R`. Items are sent as the callee grants credit
    /// (its window); the reply ends the call.
    ///
    /// # Errors
    /// As [`Peer::call`]; the call's timeout covers sending the items.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the call on the peer and drops `items`.
    pub async fn upload<A, U, R>(
        &self,
        method: &str,
        args: &A,
        items: Stream<U>,
        options: CallOptions,
    ) -> Result<R, Error>
    where
        A: Serialize + ?Sized,
        U: Serialize + Send + 'static,
        R: DeserializeOwned,
    {
        self.upload_named(Cow::Owned(method.to_owned()), args, items, options)
            .await
    }

    /// [`Peer::upload`] of a method named by a `Cow`: the generated
    /// clients pass their `&'static str` names borrowed, so no call copies them.
    pub(crate) async fn upload_named<A, U, R>(
        &self,
        method: Cow<'static, str>,
        args: &A,
        items: Stream<U>,
        options: CallOptions,
    ) -> Result<R, Error>
    where
        A: Serialize + ?Sized,
        U: Serialize + Send + 'static,
        R: DeserializeOwned,
    {
        let args = EncodedValue::encode(args)?;
        let reply = self
            .caller
            .upload(method.clone(), args, options, items.into_raw())
            .await?;
        reply
            .decode(|value| codec::decode_value(value))
            .map_err(|e| Error::Protocol(format!("reply to `{method}` did not decode: {e}")))
    }

    /// Opens a two-way stream: calls `method`, which takes a stream of
    /// items as its last argument and returns one, with `args` (a tuple of
    /// its other arguments) and `items`, and returns the stream of the
    /// items that come back. The window of those is `options.window`, else
    /// [`Window::DEFAULT`].
    ///
    /// # Errors
    /// As [`Peer::stream`]; [`Error::Config`] for `options.resubscribe`
    /// (the items sent cannot be sent again).
    ///
    /// # Cancel safety
    /// Dropping the stream stops both halves on the peer.
    pub async fn duplex<A, U, T>(
        &self,
        method: &str,
        args: &A,
        items: Stream<U>,
        options: CallOptions,
    ) -> Result<Stream<T>, Error>
    where
        A: Serialize + ?Sized,
        U: Serialize + Send + 'static,
        T: Send + 'static,
    {
        let args = EncodedValue::encode(args)?;
        let window = options.window.unwrap_or_default();
        open_duplex(
            self,
            Cow::Owned(method.to_owned()),
            args,
            items,
            options,
            window,
        )
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
        let encoded = Encoded::call(request)?;
        self.call_encoded(&encoded, options).await
    }

    /// Sends a request encoded once (for several peers) as a call, and
    /// decodes the reply as `R`.
    pub(crate) async fn call_encoded<R: ServiceResponse>(
        &self,
        encoded: &Encoded,
        options: CallOptions,
    ) -> Result<R, Error> {
        let method = encoded.method;
        let reply = self
            .caller
            .call(Cow::Borrowed(method), encoded.args.clone(), options)
            .await?;
        reply.decode(|value| R::decode(method, value))
    }

    /// Sends a request encoded once (for several peers) as a notification.
    pub(crate) async fn notify_encoded(&self, encoded: &Encoded) -> Result<(), Error> {
        self.caller
            .notify(Cow::Borrowed(encoded.method), encoded.args.clone())
            .await
    }

    /// The caller behind this peer.
    pub fn caller(&self) -> &Arc<dyn Caller> {
        &self.caller
    }
}

/// Opens a two-way stream through `peer`: what [`Peer::duplex`] and the
/// generated clients do.
pub(crate) async fn open_duplex<U, T>(
    peer: &Peer,
    method: Cow<'static, str>,
    args: EncodedValue,
    items: Stream<U>,
    options: CallOptions,
    window: Window,
) -> Result<Stream<T>, Error>
where
    U: Serialize + Send + 'static,
    T: Send + 'static,
{
    if options.resubscribe {
        return Err(Error::Config(format!(
            "`{method}` sends a stream, which cannot be sent again after a reconnect: it cannot resubscribe"
        )));
    }
    let raw = peer
        .caller
        .duplex(method, args, options, window, items.into_raw())
        .await?;
    Ok(Stream::from_raw(raw))
}

/// A typed request encoded for sending, checked for the way it is sent.
pub(crate) struct Encoded {
    method: &'static str,
    args: EncodedValue,
}

impl Encoded {
    /// `request` encoded as a call.
    ///
    /// # Errors
    /// [`Error::KindMismatch`] for a notification method; [`Error::Codec`].
    pub(crate) fn call<Q: ServiceRequest>(request: &Q) -> Result<Self, Error> {
        ensure_call(request)?;
        Self::encode(request)
    }

    /// `request` encoded as a notification.
    ///
    /// # Errors
    /// [`Error::KindMismatch`] for a method that replies; [`Error::Codec`].
    pub(crate) fn notification<Q: ServiceRequest>(request: &Q) -> Result<Self, Error> {
        ensure_notify(request)?;
        Self::encode(request)
    }

    /// The method's wire name.
    pub(crate) fn method(&self) -> &'static str {
        self.method
    }

    /// The encoded arguments.
    pub(crate) fn args(&self) -> &[u8] {
        &self.args
    }

    fn encode<Q: ServiceRequest>(request: &Q) -> Result<Self, Error> {
        let mut args = Vec::with_capacity(64);
        request.encode_args(&mut args)?;
        Ok(Self {
            method: request.method(),
            args: args.into(),
        })
    }
}

/// `Ok` when `request` is for a method that replies, so it may be sent as a call.
///
/// # Errors
/// [`Error::KindMismatch`] for a notification method.
fn ensure_call<Q: ServiceRequest>(request: &Q) -> Result<(), Error> {
    if request.is_stream() {
        return Err(stream_reply(request.method()));
    }
    if request.is_notify() {
        return Err(Error::KindMismatch {
            method: request.method().to_owned(),
            notify: true,
        });
    }
    Ok(())
}

/// The error for a streaming method (one that returns or takes a stream)
/// sent as a plain call, or a reply to one: its items travel as a stream,
/// which a typed request cannot carry.
pub(crate) fn stream_reply(method: &str) -> Error {
    Error::Protocol(format!(
        "`{method}` streams: call it with the generated client, or `Peer::stream`, `Peer::upload` or `Peer::duplex`"
    ))
}

/// `Ok` when `request` is for a notification method, so it may be sent as a notification.
///
/// # Errors
/// [`Error::KindMismatch`] for a method that replies.
fn ensure_notify<Q: ServiceRequest>(request: &Q) -> Result<(), Error> {
    if !request.is_notify() {
        return Err(Error::KindMismatch {
            method: request.method().to_owned(),
            notify: false,
        });
    }
    Ok(())
}

/// The server a handler runs in, as this layer sees it: opaque. The server
/// gives it its type back ([`Context::server`](crate::Context::server)); a
/// handler a client serves has none.
#[derive(Clone)]
pub(crate) struct Origin(Weak<dyn Any + Send + Sync>);

impl Origin {
    /// An origin that refers to `server` without keeping it alive.
    pub(crate) fn new<T: Any + Send + Sync>(server: &Arc<T>) -> Self {
        let server: Arc<dyn Any + Send + Sync> = Arc::clone(server) as _;
        Self(Arc::downgrade(&server))
    }

    /// The server, if it still exists and is a `T`.
    pub(crate) fn upgrade<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.0.upgrade()?.downcast().ok()
    }
}

/// What a handler knows about the call it serves: which connection it came
/// on and who is on the other end, when the caller stops waiting, and a
/// [`Peer`] to call that peer back.
///
/// Handlers get one from the runtime; a unit test that calls a handler
/// directly builds one with [`Context::builder`].
#[derive(Clone)]
#[non_exhaustive]
pub struct Context {
    connection_id: ConnectionId,
    peer_addr: SocketAddr,
    session: SessionKind,
    meta: Meta,
    rtt: Rtt,
    deadline: Option<Instant>,
    peer: Peer,
    origin: Option<Origin>,
    /// The stream of items the caller sends, for a method that takes one
    /// ([`MethodInfo::stream_in`]): taken once, by the handler.
    incoming: Option<Arc<std::sync::Mutex<Option<RawStream>>>>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("connection_id", &self.connection_id)
            .field("peer_addr", &self.peer_addr)
            .field("session", &self.session)
            .field("meta", &self.meta)
            .field("deadline", &self.deadline)
            .field("server", &self.origin.is_some())
            .finish_non_exhaustive()
    }
}

impl Context {
    /// What the runtime gives a handler.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        connection_id: ConnectionId,
        peer_addr: SocketAddr,
        session: SessionKind,
        meta: Meta,
        rtt: Rtt,
        deadline: Option<Instant>,
        peer: Peer,
        origin: Option<Origin>,
    ) -> Self {
        Self {
            connection_id,
            peer_addr,
            session,
            meta,
            rtt,
            deadline,
            peer,
            origin,
            incoming: None,
        }
    }

    /// This context, carrying the stream of items the caller sends.
    pub(crate) fn with_incoming(mut self, items: RawStream) -> Self {
        self.incoming = Some(Arc::new(std::sync::Mutex::new(Some(items))));
        self
    }

    /// The stream of items the caller sends, the first time it is asked
    /// for; `None` after, or when the call carries none.
    pub(crate) fn take_incoming(&self) -> Option<RawStream> {
        let slot = self.incoming.as_ref()?;
        // Plain data: a panic elsewhere cannot leave it half-written.
        slot.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    /// A context for calling a handler directly in a unit test, without a
    /// connection: see [`ContextBuilder`].
    pub fn builder() -> ContextBuilder {
        ContextBuilder::default()
    }

    /// The connection the call came on.
    pub fn connection_id(&self) -> ConnectionId {
        self.connection_id
    }

    /// The remote address of that connection.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// Authenticated or guest.
    pub fn session(&self) -> SessionKind {
        self.session
    }

    /// The auth hook's metadata as a `T`; `None` when there is none (a
    /// guest, or a hook that stores nothing). Reading it as another type
    /// than the hook stored is a bug: see [`Meta::get`].
    ///
    /// # Panics
    /// In debug builds, when the metadata is of another type than `T`.
    pub fn meta<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.meta.get()
    }

    /// Everything the auth hook stored for the connection.
    pub fn metadata(&self) -> &Meta {
        &self.meta
    }

    /// The label the auth hook gave the connection for logs and spans
    /// ([`AuthDecision::label`](crate::AuthDecision::label)), if any.
    pub fn label(&self) -> Option<&str> {
        self.meta.label()
    }

    /// The connection's measured round-trip time.
    pub fn rtt(&self) -> &Rtt {
        &self.rtt
    }

    /// When the caller stops waiting, if it said.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// A handle to call or notify the same peer back.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The server the call came to, as this layer holds it.
    pub(crate) fn origin(&self) -> Option<&Origin> {
        self.origin.as_ref()
    }
}

/// Builds a [`Context`] for a unit test that calls a handler directly.
/// Everything has a default: a fresh connection id, `127.0.0.1:0`, an
/// authenticated session without metadata, no deadline, no server, and a
/// peer whose calls fail with [`Error::Disconnected`].
///
/// ```
/// use sockets::{Context, SessionKind};
///
/// let cx = Context::builder().meta("ada".to_owned()).session(SessionKind::Guest).build();
/// assert_eq!(cx.meta::<String>().map(String::as_str), Some("ada"));
/// assert_eq!(cx.session(), SessionKind::Guest);
/// assert!(cx.server().is_none());
/// ```
#[derive(Debug, Default)]
pub struct ContextBuilder {
    peer_addr: Option<SocketAddr>,
    session: Option<SessionKind>,
    meta: Option<Meta>,
    deadline: Option<Instant>,
    peer: Option<Peer>,
}

impl ContextBuilder {
    /// The caller's address.
    pub fn peer_addr(mut self, addr: SocketAddr) -> Self {
        self.peer_addr = Some(addr);
        self
    }

    /// Authenticated or guest.
    pub fn session(mut self, session: SessionKind) -> Self {
        self.session = Some(session);
        self
    }

    /// What the auth hook would have stored.
    pub fn meta<T: Any + Send + Sync>(mut self, meta: T) -> Self {
        self.meta = Some(Meta::new(meta));
        self
    }

    /// When the caller stops waiting.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The handle the handler calls the peer back through (a fake
    /// [`Caller`] in a test).
    pub fn peer(mut self, peer: Peer) -> Self {
        self.peer = Some(peer);
        self
    }

    /// The context.
    pub fn build(self) -> Context {
        Context {
            connection_id: ConnectionId::next(),
            peer_addr: self
                .peer_addr
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
            session: self.session.unwrap_or(SessionKind::Authenticated),
            meta: self.meta.unwrap_or_else(Meta::none),
            rtt: Rtt::default(),
            deadline: self.deadline,
            peer: self.peer.unwrap_or_else(|| Peer::new(Arc::new(NoPeer))),
            origin: None,
            incoming: None,
        }
    }
}

/// The peer of a context built without one: every call fails.
struct NoPeer;

impl NoPeer {
    fn error() -> Error {
        Error::Disconnected(crate::error::Disconnect::lost("a test context has no peer"))
    }
}

impl Caller for NoPeer {
    fn call(
        &self,
        _method: Cow<'static, str>,
        _args: EncodedValue,
        _options: CallOptions,
    ) -> BoxFuture<'static, Result<EncodedValue, Error>> {
        Box::pin(std::future::ready(Err(Self::error())))
    }

    fn notify(
        &self,
        _method: Cow<'static, str>,
        _args: EncodedValue,
    ) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(std::future::ready(Err(Self::error())))
    }
}
