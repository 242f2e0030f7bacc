//! The server: accepts connections, admits them through the handshake and the
//! auth hook, serves its services to them, and calls or notifies them back.
//!
//! ```no_run
//! # async fn run(secret: sockets::crypto::Secret) -> Result<(), sockets::Error> {
//! use sockets::server::{AuthDecision, Server};
//!
//! let server = Server::builder()
//!     .address("127.0.0.1:0")
//!     .secret(secret)
//!     .auth(|token: String, _peer| async move {
//!         if token == "let me in" { AuthDecision::accept(token) } else { AuthDecision::Guest }
//!     })
//!     .start()
//!     .await?;
//! println!("listening on {}", server.local_addr());
//! # Ok(()) }
//! ```
//!
//! Every admitted connection gets a [`ConnectionId`] that is never reused.
//! [`Server::connections`] lists them, [`Server::send_to`] calls one with a
//! typed request and waits for its typed reply, [`Server::broadcast`]
//! notifies every authenticated (not guest) connection, and rooms group
//! connections for [`Server::broadcast_to`]. [`Server::events`] reports
//! connections as they come, authenticate and go.
//!
//! Typed requests go the way their method is declared: notification methods
//! (`#[sockets(notify)]`) with [`Server::notify`], [`Server::broadcast`] and
//! [`Server::broadcast_to`]; every other method with [`Server::send_to`],
//! [`Server::send_to_with`], [`Server::call_all`] and
//! [`Server::call_all_with`]. The wrong way fails with
//! [`Error::KindMismatch`] before anything is sent. A handler reaches its
//! server through [`Context::server`](crate::Context::server).

mod accept;
pub mod auth;
mod builder;
mod hooks;
mod limits;
mod registry;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, broadcast, watch};

use limits::{Admission, AdmissionConfig};
use tokio::task::JoinHandle;

pub use auth::{AuthDecision, PeerInfo};
pub use builder::ServerBuilder;
use hooks::Hooks;
pub use registry::ConnectionInfo;

use crate::config::ConnectionConfig;
use crate::connection::Handle;
use crate::connection::establish::AuthHook;
use crate::crypto::{Acceptor, AcceptorConfig};
use crate::descriptor::ServiceDescriptor;
use crate::dispatch::Services;
use crate::error::{Disconnect, Error};
use crate::heartbeat::Rtt;
use crate::identity::{ConnectionId, Meta, SessionKind};
use crate::observe::{Meter, Side};
use crate::protocol::EncodedValue;
use crate::protocol::{CloseCode, Notify, Reason};
use crate::service::{BoxFuture, CallOptions, Caller, Encoded, Peer, ServiceRequest};
use crate::stream::{RawStream, Window};
use crate::transport::{Conn, Framing, HttpOptions, Io, Listener, PreAuthBytes, ServerTls};
use registry::{Delivery, Registry};

/// How long the accept loop pauses after a failed accept (out of file
/// descriptors, say) before it tries again.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Refused connections told why after an upgrade, at once; past this many, a
/// refused socket gets an HTTP 503 written without waiting, so a flood past
/// the limits costs no tasks.
const MAX_REFUSALS: usize = 64;

/// Something that happened to a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A TCP connection was accepted and got its id; the handshake follows.
    Connected {
        /// The connection.
        id: ConnectionId,
        /// The client's address.
        addr: SocketAddr,
    },
    /// The handshake and the auth hook admitted the connection: a new
    /// session with the connection's id, now in [`Server::connections`].
    Authenticated {
        /// The connection.
        id: ConnectionId,
        /// Authenticated or guest.
        session: SessionKind,
    },
    /// The handshake and the auth hook admitted the connection, and it
    /// resumed session `id` (after a lost connection, or a client renewing
    /// its keys): the connection goes by the session's id from now on, with
    /// the session's rooms; the notifications buffered for it go first.
    Resumed {
        /// The session, in [`Server::connections`] again.
        id: ConnectionId,
        /// The id the connection was accepted with ([`ServerEvent::Connected`]).
        connection: ConnectionId,
        /// Notifications the session's buffer dropped while it waited.
        missed: u64,
    },
    /// A connection ended (or never got through the handshake), and why. If
    /// it served a session, the session may wait for its client to resume it
    /// ([`ServerBuilder::resumption_window`]) or live on in a newer
    /// connection ([`ServerEvent::Resumed`]); [`ServerEvent::SessionEnded`]
    /// says when it is gone.
    Disconnected {
        /// The connection.
        id: ConnectionId,
        /// The close code and reason.
        reason: Disconnect,
    },
    /// A session is gone for good: its connection closed on purpose, or it
    /// was lost and the resumption window passed without the client. Its
    /// rooms and buffered notifications are dropped; a client that comes
    /// back gets a new session (and `ClientState::SessionLost`).
    SessionEnded {
        /// The session.
        id: ConnectionId,
    },
}

/// A snapshot of a server's counters ([`Server::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Admitted connections, open now.
    pub connections: usize,
    /// Connections between the TCP accept and authentication now.
    pub handshakes: usize,
    /// Bytes the transports of those connections hold in their buffers now:
    /// what peers that have not proved the secret make the server allocate.
    pub pre_auth_bytes: usize,
    /// The most [`pre_auth_bytes`](Self::pre_auth_bytes) ever was.
    pub pre_auth_bytes_peak: usize,
    /// Sessions whose connection was lost, waiting for their client to resume them.
    pub waiting_sessions: usize,
    /// The bytes (method names and arguments) of the notifications those
    /// sessions buffer.
    pub waiting_bytes: usize,
    /// Notifications from clients that no handler ran for (no such method,
    /// closed to guests, undecodable arguments, too many running): a
    /// notification has no reply to say so. Each is logged at DEBUG.
    pub dropped_notifications: u64,
}

/// The ids and peers of the open, authenticated (not guest) connections among `handles`.
fn authenticated(handles: Vec<Handle>) -> impl Iterator<Item = (ConnectionId, Peer)> {
    handles
        .into_iter()
        .filter(|handle| handle.session() == SessionKind::Authenticated && !handle.is_closed())
        .map(|handle| (handle.id(), Peer::new(Arc::new(handle))))
}

impl crate::Context {
    /// The server this handler runs in: `Some` on the server side, `None` in
    /// a service a client serves (or once the server is gone).
    ///
    /// ```
    /// use sockets::Context;
    ///
    /// // A handler that puts its caller in a room.
    /// async fn join(cx: &Context, room: &str) -> Result<(), sockets::Error> {
    ///     match cx.server() {
    ///         Some(server) => server.join(cx.connection_id(), room),
    ///         None => Err(sockets::Error::Config("rooms exist on the server only".into())),
    ///     }
    /// }
    /// ```
    pub fn server(&self) -> Option<Server> {
        let inner = self.origin()?.upgrade::<Inner>()?;
        Some(Server { inner })
    }
}

/// A running server; a cheap handle (clones share the server).
///
/// The server runs until [`Server::shutdown`], even when every handle is dropped.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    /// The first listener's TCP address and url.
    listening: Mutex<Option<(Option<SocketAddr>, String)>>,
    /// The permissions of a Unix socket file the server binds.
    unix_mode: u32,
    config: Arc<ConnectionConfig>,
    services: Arc<Services>,
    acceptor: Acceptor,
    auth: AuthHook,
    tls: ServerTls,
    max_connections: usize,
    /// Slots for connections before authentication (upgrade, handshake,
    /// auth hook), and the per-address limits on them.
    admission: Arc<Admission>,
    /// Slots for refusals in progress (each upgrades, then closes with a
    /// reason); past them a refused socket gets an HTTP 503 at once.
    refusals: Arc<Semaphore>,
    /// How plain HTTP requests are answered.
    http: HttpOptions,
    /// What connections before authentication hold in their transports.
    pre_auth: Arc<PreAuthBytes>,
    registry: Registry,
    hooks: Hooks,
    events: broadcast::Sender<ServerEvent>,
    /// Connections open, including those in the handshake.
    open: watch::Sender<usize>,
    stopping: AtomicBool,
    stop: watch::Sender<bool>,
    /// The accept loops, one per listener.
    accept_tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The services every client must serve compatibly.
    expected_clients: Arc<[&'static ServiceDescriptor]>,
    /// The server side's metric handles, from the recorder installed at build.
    meter: Arc<Meter>,
}

impl Server {
    /// A builder with defaults; only the secret must be set.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    fn build(builder: ServerBuilder) -> Result<Self, Error> {
        if let Some(error) = builder.error {
            return Err(error);
        }
        builder.validate_per_ip()?;
        let secret = builder
            .secret
            .ok_or_else(|| Error::Config("no shared secret configured".into()))?;
        builder.config.validate()?;
        if builder.max_connections == 0 || builder.max_handshakes == 0 {
            return Err(Error::Config(
                "max connections and max handshakes must be at least 1".into(),
            ));
        }
        let max_frame = u32::try_from(builder.config.max_frame)
            .map_err(|_| Error::Config("max frame is too large".into()))?;
        let acceptor = Acceptor::new(AcceptorConfig {
            secrets: vec![secret],
            suites: builder.suites,
            allow_plaintext: builder.allow_plaintext,
            max_frame,
            ..AcceptorConfig::default()
        })
        .map_err(|e| Error::Config(e.to_string()))?;
        let handshake_timeout = builder.config.handshake_timeout;
        let inner = Arc::new(Inner {
            listening: Mutex::new(None),
            unix_mode: builder.unix_mode,
            config: Arc::new(builder.config),
            services: Arc::new(builder.services.with_describe(builder.describe)?),
            meter: Arc::new(Meter::new(Side::Server)),
            acceptor,
            auth: builder.auth,
            tls: builder.tls,
            max_connections: builder.max_connections,
            admission: Admission::new(AdmissionConfig {
                max_handshakes: builder.max_handshakes,
                per_ip: builder.per_ip,
                handshake_timeout,
            }),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            http: builder.http,
            pre_auth: Arc::new(PreAuthBytes::default()),
            registry: Registry::new(builder.resumption),
            hooks: builder.hooks,
            events: broadcast::Sender::new(1024),
            open: watch::Sender::new(0),
            stopping: AtomicBool::new(false),
            stop: watch::Sender::new(false),
            accept_tasks: Mutex::new(Vec::new()),
            expected_clients: builder.expected_clients.into(),
        });
        Ok(Self { inner })
    }

    async fn start(builder: ServerBuilder) -> Result<Self, Error> {
        let address = builder.address.clone();
        let server = Self::build(builder)?;
        let listener = Listener::bind(&address, server.inner.unix_mode)
            .await
            .map_err(Error::from)?;
        server.listen(listener);
        Ok(server)
    }

    /// Starts accepting on `listener` (the first one names the server).
    fn listen(&self, listener: Listener) {
        let inner = &self.inner;
        let url = listener.url();
        tracing::info!(%url, "server listening");
        inner
            .listening
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert((listener.local_addr(), url));
        let task = tokio::spawn(accept::accept_loop(Arc::clone(inner), listener));
        inner
            .accept_tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
    }

    /// Also accepts WebSocket connections on `listener`, a TCP listener the
    /// application bound: everything else (limits, handshake, services) is
    /// the server's. Stops with the server.
    ///
    /// ```no_run
    /// # async fn run(server: sockets::Server) -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
    /// server.serve_listener(listener);
    /// # Ok(()) }
    /// ```
    pub fn serve_listener(&self, listener: tokio::net::TcpListener) {
        self.listen(Listener::Tcp(listener, Framing::WebSocket));
    }

    /// Serves one connection on `stream`, any byte stream that carries a
    /// WebSocket from its HTTP upgrade on (the server answers the upgrade).
    /// `peer_addr`, when known, is what the per-address limits and handlers
    /// see; without it the connection counts under the global limits only.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let secret = sockets::crypto::Secret::from_key(&[7; 32]);
    /// let server = sockets::Server::builder().secret(secret.clone()).build()?;
    /// let (near, far) = tokio::io::duplex(64 * 1024);
    /// server.serve_connection(far, None);
    /// let client = sockets::Client::builder().secret(secret).connect_with(near).await?;
    /// assert!(client.is_connected());
    /// # Ok(()) }
    /// ```
    pub fn serve_connection<S>(&self, stream: S, peer_addr: Option<SocketAddr>)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        self.serve_stream(Box::new(stream), Framing::WebSocket, peer_addr);
    }

    /// Serves one connection on `io`, whose WebSocket upgrade (with
    /// `headers`) someone else answered.
    #[cfg(feature = "axum")]
    pub(crate) fn serve_upgraded(
        &self,
        io: Box<dyn Io>,
        headers: crate::identity::Headers,
        peer_addr: Option<SocketAddr>,
    ) {
        accept::offer(&self.inner, Conn::upgraded(io, headers), peer_addr);
    }

    /// Serves one connection on `io`, framed as `framing`.
    pub(crate) fn serve_stream(
        &self,
        io: Box<dyn Io>,
        framing: Framing,
        peer_addr: Option<SocketAddr>,
    ) {
        accept::offer(&self.inner, Conn::io(io, framing), peer_addr);
    }

    /// The TCP address of the server's first listener: the one
    /// [`ServerBuilder::start`] bound, or the first given to
    /// [`Server::serve_listener`]. The unspecified address `0.0.0.0:0` for a
    /// server listening on a Unix socket, or on nothing of its own (made with
    /// [`ServerBuilder::build`]); see [`Server::url`].
    pub fn local_addr(&self) -> SocketAddr {
        self.listening()
            .and_then(|(addr, _)| addr)
            .unwrap_or(accept::NO_ADDRESS)
    }

    /// The url a client connects to: `ws://host:port/`, `tcp://host:port` or
    /// `unix:///path`, of the server's first listener; `None` for a server
    /// that listens on nothing of its own.
    pub fn url(&self) -> Option<String> {
        self.listening().map(|(_, url)| url)
    }

    fn listening(&self) -> Option<(Option<SocketAddr>, String)> {
        self.inner
            .listening
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Counters of the server's connections and of what connections before
    /// authentication hold.
    pub fn stats(&self) -> ServerStats {
        let inner = &self.inner;
        let (waiting_sessions, waiting_bytes) = inner.registry.waiting();
        ServerStats {
            connections: inner.registry.len(),
            handshakes: inner.admission.in_progress(),
            pre_auth_bytes: inner.pre_auth.now(),
            pre_auth_bytes_peak: inner.pre_auth.peak(),
            waiting_sessions,
            waiting_bytes,
            dropped_notifications: inner.services.dropped_notifications(),
        }
    }

    /// Lifecycle events from now on. A receiver that falls more than 1024
    /// events behind misses the oldest (`RecvError::Lagged`).
    pub fn events(&self) -> broadcast::Receiver<ServerEvent> {
        self.inner.events.subscribe()
    }

    /// Every admitted, open connection, ordered by id.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.inner
            .registry
            .all()
            .iter()
            .filter(|handle| !handle.is_closed())
            .map(ConnectionInfo::of)
            .collect()
    }

    /// The open connections whose metadata is a `T` that `select` picks,
    /// ordered by id: the connections of one user, say. Scans every
    /// connection; connections whose metadata is of another type (or none)
    /// are skipped silently.
    ///
    /// ```
    /// # fn run(server: &sockets::Server) {
    /// // The auth hook stored the user's name: AuthDecision::accept(String::from("ada")).
    /// let ada = server.connections_of(|user: &String| user == "ada");
    /// # let _ = ada; }
    /// ```
    pub fn connections_of<T, F>(&self, select: F) -> Vec<ConnectionId>
    where
        T: std::any::Any + Send + Sync,
        F: Fn(&T) -> bool,
    {
        self.inner
            .registry
            .all()
            .iter()
            .filter(|handle| !handle.is_closed())
            .filter(|handle| handle.meta().peek::<T>().is_some_and(&select))
            .map(Handle::id)
            .collect()
    }

    /// One open connection.
    pub fn get(&self, id: ConnectionId) -> Option<ConnectionInfo> {
        self.handle(id)
            .ok()
            .map(|handle| ConnectionInfo::of(&handle))
    }

    fn handle(&self, id: ConnectionId) -> Result<Handle, Error> {
        self.inner
            .registry
            .get(id)
            .filter(|handle| !handle.is_closed())
            .ok_or(Error::UnknownConnection(id))
    }

    /// Replaces a connection's metadata (what the auth hook stored): the
    /// handlers that start from now on see `meta`. A resumed session gets
    /// the auth hook's metadata again; [`ServerBuilder::on_resume`] may set
    /// it anew.
    ///
    /// # Errors
    /// [`Error::UnknownConnection`] when no such connection is open.
    pub fn set_meta(&self, id: ConnectionId, meta: Meta) -> Result<(), Error> {
        self.handle(id)?.set_meta(meta);
        Ok(())
    }

    /// A connection's round-trip time handle, to wait for a heartbeat
    /// measurement ([`Rtt::measured`], [`Rtt::subscribe`]);
    /// [`ConnectionInfo::rtt`] is a snapshot of it.
    ///
    /// # Errors
    /// [`Error::UnknownConnection`] when no such connection is open.
    pub fn connection_rtt(&self, id: ConnectionId) -> Result<Rtt, Error> {
        Ok(self.handle(id)?.rtt().clone())
    }

    /// Closes a connection with an authenticated CLOSE (code `Disconnected`)
    /// carrying `reason`. Its session ends with it (the client may connect
    /// again, to a new session).
    ///
    /// # Errors
    /// [`Error::UnknownConnection`] when no such connection is open.
    pub fn disconnect(&self, id: ConnectionId, reason: impl Into<String>) -> Result<(), Error> {
        self.handle(id)?
            .close(Disconnect::new(CloseCode::Disconnected, reason));
        Ok(())
    }

    /// A handle to call or notify one client, by its session: it follows
    /// the session to the connection that resumes it. While the session
    /// waits for its client, notifications are buffered for it and calls
    /// fail with [`Error::Disconnected`]. Wrap it in a generated client for
    /// typed calls:
    ///
    /// ```
    /// # #[sockets::service]
    /// # pub trait Greeter { async fn hello(&self, name: String) -> String; }
    /// # async fn run(server: sockets::Server, id: sockets::ConnectionId) -> Result<(), sockets::Error> {
    /// let greeter = GreeterClient::new(server.peer(id)?);
    /// let greeting = greeter.hello("ada").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownConnection`] when no such session exists.
    pub fn peer(&self, id: ConnectionId) -> Result<Peer, Error> {
        if !self.inner.registry.contains(id) {
            return Err(Error::UnknownConnection(id));
        }
        Ok(Peer::new(Arc::new(SessionCaller {
            server: Arc::downgrade(&self.inner),
            id,
        })))
    }

    /// A handle on every authenticated session that is live now, by id
    /// (guests excluded, like [`Server::call_all`]): typed calls to all of
    /// them through a generated client, each with its own outcome.
    ///
    /// ```
    /// # #[sockets::service]
    /// # pub trait Greeter { async fn hello(&self, name: String) -> String; }
    /// # async fn run(server: sockets::Server) {
    /// let calls = server.peers().into_iter().map(|(id, peer)| async move {
    ///     (id, GreeterClient::new(peer).hello("everyone").await)
    /// });
    /// let greetings = futures_util::future::join_all(calls).await;
    /// # let _ = greetings; }
    /// ```
    pub fn peers(&self) -> Vec<(ConnectionId, Peer)> {
        authenticated(self.inner.registry.all())
            .map(|(id, _)| {
                let caller = SessionCaller {
                    server: Arc::downgrade(&self.inner),
                    id,
                };
                (id, Peer::new(Arc::new(caller)))
            })
            .collect()
    }

    /// Calls a method on one client and waits for its typed reply, with the
    /// server's default call timeout.
    ///
    /// # Errors
    /// [`Error::KindMismatch`] (nothing sent) when the request is for a
    /// notification method: send those with [`Server::notify`].
    /// [`Error::UnknownConnection`], [`Error::Disconnected`], [`Error::Timeout`],
    /// [`Error::UnknownMethod`] and the other call outcomes.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the call on the client.
    pub async fn send_to<Q: ServiceRequest>(
        &self,
        id: ConnectionId,
        request: &Q,
    ) -> Result<Q::Response, Error> {
        self.send_to_with(id, request, CallOptions::default()).await
    }

    /// As [`Server::send_to`], with per-call options.
    ///
    /// # Errors
    /// As [`Server::send_to`].
    pub async fn send_to_with<Q: ServiceRequest>(
        &self,
        id: ConnectionId,
        request: &Q,
        options: CallOptions,
    ) -> Result<Q::Response, Error> {
        let encoded = Encoded::call(request)?;
        self.peer(id)?.call_encoded(&encoded, options).await
    }

    /// Sends a typed request to one client as a notification (no reply).
    ///
    /// # Errors
    /// [`Error::KindMismatch`] (nothing sent) when the request is for a method
    /// that replies: call those with [`Server::send_to`].
    /// [`Error::UnknownConnection`], [`Error::Disconnected`], [`Error::Codec`].
    pub async fn notify<Q: ServiceRequest>(
        &self,
        id: ConnectionId,
        request: &Q,
    ) -> Result<(), Error> {
        let encoded = Encoded::notification(request)?;
        self.peer(id)?.notify_encoded(&encoded).await
    }

    /// Notifies every authenticated session (guests excluded); sessions
    /// waiting for their client buffer it. Returns how many sessions it was
    /// queued or buffered for.
    ///
    /// # Errors
    /// [`Error::KindMismatch`] (nothing sent) when the request is for a method
    /// that replies: call those with [`Server::call_all`].
    /// [`Error::Codec`] when the request does not encode.
    pub async fn broadcast<Q: ServiceRequest>(&self, request: &Q) -> Result<usize, Error> {
        self.notify_all(None, request).await
    }

    async fn notify_all<Q: ServiceRequest>(
        &self,
        ids: Option<&[ConnectionId]>,
        request: &Q,
    ) -> Result<usize, Error> {
        let encoded = Encoded::notification(request)?;
        let notify = Notify {
            method: Cow::Borrowed(encoded.method()),
            args: EncodedValue::copy_from_slice(encoded.args()),
        };
        let (targets, buffered) = self.inner.registry.fan_out(ids, &notify);
        let encoded = &encoded;
        let sends = targets
            .into_iter()
            .filter(|handle| !handle.is_closed())
            .map(|handle| async move {
                Peer::new(Arc::new(handle))
                    .notify_encoded(encoded)
                    .await
                    .is_ok()
            });
        let sent = join_all(sends)
            .await
            .into_iter()
            .filter(|sent| *sent)
            .count();
        Ok(sent + buffered)
    }

    /// Calls a method on every authenticated connection at once and collects
    /// each outcome by connection.
    ///
    /// # Errors
    /// [`Error::KindMismatch`] (nothing sent) when the request is for a
    /// notification method: send those with [`Server::broadcast`].
    /// [`Error::Codec`] when the request does not encode; per-connection
    /// failures are in the map.
    pub async fn call_all<Q: ServiceRequest>(
        &self,
        request: &Q,
    ) -> Result<HashMap<ConnectionId, Result<Q::Response, Error>>, Error> {
        self.call_all_with(request, CallOptions::default()).await
    }

    /// As [`Server::call_all`], with per-call options: `timeout` bounds each
    /// call (the server's default call timeout when `None`);
    /// `wait_for_connection` has no effect here, since a server cannot
    /// reconnect a client.
    ///
    /// # Errors
    /// As [`Server::call_all`].
    pub async fn call_all_with<Q: ServiceRequest>(
        &self,
        request: &Q,
        options: CallOptions,
    ) -> Result<HashMap<ConnectionId, Result<Q::Response, Error>>, Error> {
        let encoded = Encoded::call(request)?;
        let encoded = &encoded;
        let targets = self.inner.registry.all();
        let calls = authenticated(targets)
            .map(|(id, peer)| async move { (id, peer.call_encoded(encoded, options).await) });
        Ok(join_all(calls).await.into_iter().collect())
    }

    /// Adds a session to a room (created on first join). A session keeps
    /// its rooms while it waits for its client and when it is resumed.
    ///
    /// # Errors
    /// [`Error::UnknownConnection`] when no such session exists.
    pub fn join(&self, id: ConnectionId, room: &str) -> Result<(), Error> {
        if self.inner.registry.join(id, room) {
            Ok(())
        } else {
            Err(Error::UnknownConnection(id))
        }
    }

    /// Takes a session out of a room; `true` if it was a member. Sessions
    /// leave all their rooms when they end ([`ServerEvent::SessionEnded`]).
    pub fn leave(&self, id: ConnectionId, room: &str) -> bool {
        self.inner.registry.leave(id, room)
    }

    /// The sessions in a room, ordered by id (those waiting for their client included).
    pub fn members(&self, room: &str) -> Vec<ConnectionId> {
        self.inner.registry.members(room)
    }

    /// Notifies every authenticated member of a room (members waiting for
    /// their client buffer it); returns how many it was queued or buffered for.
    ///
    /// # Errors
    /// [`Error::KindMismatch`] (nothing sent) when the request is for a method
    /// that replies. [`Error::Codec`] when the request does not encode.
    pub async fn broadcast_to<Q: ServiceRequest>(
        &self,
        room: &str,
        request: &Q,
    ) -> Result<usize, Error> {
        let members = self.members(room);
        self.notify_all(Some(&members), request).await
    }

    /// Shuts down gracefully: stops accepting, answers new calls with
    /// `ShuttingDown`, lets running handlers finish for up to `grace`, then
    /// closes every connection with `GoingAway` and waits for them to end.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.stopping.store(true, Ordering::Release);
        inner.stop.send_replace(true);
        let tasks =
            std::mem::take(&mut *inner.accept_tasks.lock().unwrap_or_else(|p| p.into_inner()));
        // Each loop ends at the stop signal, and drops its listener (a Unix
        // socket's file goes with it).
        join_all(tasks).await;
        let handles = inner.registry.all();
        for handle in &handles {
            handle.drain();
        }
        let _ = tokio::time::timeout(grace, join_all(handles.iter().map(Handle::idle))).await;
        for handle in &handles {
            handle.close(Reason::ServerShuttingDown);
        }
        for id in inner.registry.end_waiting() {
            let _ = inner.events.send(ServerEvent::SessionEnded { id });
        }
        let mut open = inner.open.subscribe();
        let wait = inner.config.handshake_timeout + Duration::from_secs(2);
        let _ = tokio::time::timeout(wait, open.wait_for(|n| *n == 0)).await;
        tracing::info!(url = ?self.url(), "server stopped");
    }
}

/// Calls one session's client through whichever connection serves it now.
struct SessionCaller {
    server: Weak<Inner>,
    id: ConnectionId,
}

impl SessionCaller {
    fn server(&self) -> Result<Arc<Inner>, Error> {
        self.server
            .upgrade()
            .ok_or_else(|| Error::Disconnected(Reason::ServerShuttingDown.into()))
    }

    /// The connection that serves the session now; `Disconnected` while the
    /// session waits for its client to come back.
    fn live(&self) -> Result<Handle, Error> {
        self.server()
            .and_then(|inner| match inner.registry.get(self.id) {
                Some(handle) => Ok(handle),
                None if inner.registry.contains(self.id) => Err(Error::Disconnected(
                    Disconnect::lost("the session waits for its client to reconnect"),
                )),
                None => Err(Error::UnknownConnection(self.id)),
            })
    }
}

impl Caller for SessionCaller {
    fn call(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        options: CallOptions,
    ) -> BoxFuture<'static, Result<EncodedValue, Error>> {
        match self.live() {
            Ok(handle) => Caller::call(&handle, method, args, options),
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
        match self.live() {
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
        match self.live() {
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
        match self.live() {
            Ok(handle) => Caller::duplex(&handle, method, args, options, window, items),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }

    fn notify(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
    ) -> BoxFuture<'static, Result<(), Error>> {
        let inner = match self.server() {
            Ok(inner) => inner,
            Err(error) => return Box::pin(std::future::ready(Err(error))),
        };
        let notify = Notify { method, args };
        match inner.registry.notify(self.id, &notify) {
            Delivery::Live(handle) => {
                Box::pin(async move { handle.notify(notify.method, notify.args).await })
            }
            Delivery::Buffered => Box::pin(std::future::ready(Ok(()))),
            Delivery::Unknown => {
                Box::pin(std::future::ready(Err(Error::UnknownConnection(self.id))))
            }
        }
    }
}
