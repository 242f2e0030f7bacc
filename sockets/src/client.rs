//! The client: connects, authenticates, calls the server, serves its own
//! services to the server, and reconnects when the connection is lost.
//!
//! ```no_run
//! # async fn run(secret: sockets::crypto::Secret) -> Result<(), sockets::Error> {
//! use sockets::client::Client;
//! use sockets::CallOptions;
//!
//! let client = Client::builder()
//!     .url("ws://127.0.0.1:7878/")
//!     .secret(secret)
//!     .credentials("let me in")
//!     .connect()
//!     .await?;
//! let sum: i64 = client.peer().call("calculator.add", &(1, 2), CallOptions::default()).await?;
//! # Ok(()) }
//! ```
//!
//! A [`Client`] is a cheap handle: clones share the connection. Its
//! [`Client::peer`] follows reconnects. While the connection is down, calls
//! fail at once with [`Error::Disconnected`] unless they ask to wait
//! ([`CallOptions::wait_for_connection`]). [`Client::states`] reports every
//! [`ClientState`]:
//!
//! ```text
//!                  connect()
//!                      │
//!                      ▼
//!   ┌──────────► Connecting{attempt} ──(fails)──► AttemptFailed{attempt, error} ──┐
//!   │                  │                               │ auth rejected            │ backoff,
//!   │                  │ up (hooks done)               ▼                          │ next attempt
//!   │                  │                          Rejected(reason) ──► Closed      │
//!   │                  ▼                                                          │
//!   │   first: Ready   │   later: Resumed{missed} | SessionLost ◄─────────────────┘
//!   │                  │         ▲
//!   │                  │         └──── renewal (session lifetime): a new connection
//!   │                  ▼
//!   └──────── Disconnected(reason) ──(reconnect disabled, gave up, or closed)──► Closed
//! ```
//!
//! After a loss the client reconnects and asks the server to **resume** its
//! session: within the server's resumption window it comes back with the
//! same server-side id ([`Client::server_connection_id`]), its rooms, and
//! the notifications sent to it meanwhile, delivered in order before
//! anything else (`Resumed { missed }` counts those the server's bounded
//! buffer dropped). Otherwise (the window passed, the server restarted, or
//! it does not resume sessions) the client gets a new session and
//! `SessionLost`: what the application built on the server is gone, and
//! [`ClientBuilder::on_reconnected`] is where to rebuild it. An auth
//! rejection ends reconnecting (`Rejected`) unless [`Reconnect::retry_rejected`].
//!
//! After [`ClientBuilder::session_lifetime`] (default 24 h) the client renews
//! its connection: a new handshake with fresh ephemeral keys, which resumes
//! the session, takes over new calls, and the old connection closes once
//! its pending calls have ended.

mod builder;
mod hooks;
mod resubscribe;

use std::borrow::Cow;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

pub use builder::ClientBuilder;

use crate::config::ConnectionConfig;
use crate::connection::establish::{self, ClientSetup, Ticket};
use crate::connection::{self, Handle, Params, Shared, Start};
use crate::crypto::{Mode, Secret, Suite};
use crate::describe;
use crate::descriptor::ServiceDescriptor;
use crate::dispatch::Services;
use crate::error::{Disconnect, Error};
use crate::heartbeat::Rtt;
use crate::identity::{ConnectionId, SessionKind};
use crate::observe::{Meter, Side};
use crate::protocol::EncodedValue;
use crate::protocol::{CloseCode, Reason};
use crate::service::{BoxFuture, CallOptions, Caller, Peer};
use crate::signal::Signal;
use crate::stream::{RawStream, Window};
use crate::transport::{ClientTls, Connector, Endpoint};
use hooks::Hooks;

/// State changes a [`Client::states`] receiver may fall behind by.
const STATES_CAPACITY: usize = 64;

/// How a client reconnects: exponential backoff from `initial_delay` up to
/// `max_delay`, each delay drawn at random from its upper half (jitter).
///
/// Build it from [`Reconnect::default`] and change what you need, so new
/// settings keep their defaults:
///
/// ```
/// use std::time::Duration;
/// use sockets::client::Reconnect;
///
/// let reconnect = Reconnect {
///     max_attempts: Some(20),
///     retry_first_connect: true,
///     ..Reconnect::default()
/// };
/// # let _ = reconnect;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconnect {
    /// Reconnect at all.
    pub enabled: bool,
    /// The first delay.
    pub initial_delay: Duration,
    /// The largest delay.
    pub max_delay: Duration,
    /// Attempts per outage before giving up; `None`: never give up.
    pub max_attempts: Option<u32>,
    /// [`ClientBuilder::connect`] retries too, with this policy, instead of
    /// failing at the first attempt (a server that is not up yet). It then
    /// fails only when the attempts run out, or at an error that retrying
    /// cannot fix (an auth rejection, a refused handshake, a bad setting).
    /// Default `false`.
    pub retry_first_connect: bool,
    /// Keep reconnecting after the server's auth hook rejected the
    /// credentials. Default `false`: a rejection ends reconnecting with
    /// [`ClientState::Rejected`], since the same credentials will be
    /// rejected again (and every attempt spends the address's rejection budget).
    pub retry_rejected: bool,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            enabled: true,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            max_attempts: None,
            retry_first_connect: false,
            retry_rejected: false,
        }
    }
}

impl Reconnect {
    /// Never reconnect: a lost connection closes the client.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// The delay before attempt `attempt` (1-based), with jitter.
    fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let full = self
            .initial_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let random = getrandom::u32().unwrap_or(u32::MAX / 2);
        let half = full / 2;
        half + half.mul_f64(f64::from(random) / f64::from(u32::MAX))
    }

    /// Whether `error` ends the attempts: retrying cannot fix it.
    fn gives_up_at(&self, error: &Error) -> bool {
        match error {
            Error::AuthRejected(_) => !self.retry_rejected,
            Error::HandshakeRefused(_) | Error::Config(_) => true,
            _ => false,
        }
    }
}

/// Where the client's connection stands; see the diagram in the
/// [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientState {
    /// Attempt `attempt` of the current outage (or of the first connect) is under way.
    Connecting {
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// Attempt `attempt` failed; the next follows after a backoff delay,
    /// unless the error ends the attempts.
    AttemptFailed {
        /// 1 for the first attempt.
        attempt: u32,
        /// What went wrong, as the server said it where it said it: "rejected:
        /// too many failed handshakes from this address; retry in 42 s".
        error: String,
    },
    /// The first connection is up (handshake, authentication and
    /// [`ClientBuilder::on_connected`] done).
    Ready,
    /// The connection was lost, with the close code and reason.
    Disconnected(Disconnect),
    /// A new connection is up (after a loss, or a renewal) and the server
    /// kept the session: same server-side id, same rooms, and the
    /// notifications sent meanwhile delivered first, in order.
    Resumed {
        /// Notifications the server's buffer dropped while it waited (the
        /// oldest first); 0 when nothing was lost.
        missed: u64,
    },
    /// A new connection is up, in a new session: the server no longer had
    /// the old one (its resumption window passed, it restarted, it is
    /// another node, or it does not resume sessions). Rooms and anything
    /// else the application built on the server for the old session are
    /// gone; [`ClientBuilder::on_reconnected`] ran with `resumed == false`.
    SessionLost,
    /// The server's auth hook rejected the credentials, with its reason;
    /// reconnecting stopped (see [`Reconnect::retry_rejected`]). `Closed` follows.
    Rejected(String),
    /// The client stopped: closed by the application, or reconnecting ended.
    Closed,
}

/// A connected client; a cheap handle (clones share the connection). The
/// connection closes when the last clone (and the last [`Peer`] from it) is dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    _owner: Arc<Owner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("connector", &self.inner.connector)
            .field("state", &self.inner.state.with(ClientState::clone))
            .finish_non_exhaustive()
    }
}

/// Closes the connection when the last handle goes.
struct Owner(Arc<Inner>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.user_closed.replace(true);
    }
}

struct Inner {
    connector: Connector,
    secret: Secret,
    suite: Suite,
    mode: Mode,
    credentials: Vec<u8>,
    config: Arc<ConnectionConfig>,
    services: Arc<Services>,
    /// The client side's metric handles, from the recorder installed at build.
    meter: Arc<Meter>,
    reconnect: Reconnect,
    session_lifetime: Option<Duration>,
    /// Ask the server to resume the session on each new connection.
    resume: bool,
    hooks: Hooks,
    tls: ClientTls,
    /// What resumes the session on the next connection, if the server keeps it.
    ticket: Mutex<Option<Ticket>>,
    /// The services the server must serve compatibly, checked on every connection.
    expected: Vec<&'static ServiceDescriptor>,
    current: Signal<Option<Handle>>,
    last_reason: Mutex<Option<Disconnect>>,
    state: Signal<ClientState>,
    /// Created by the first [`Client::states`]: a state change sent with no
    /// receiver is dropped anyway, and its 64 slots cost 3.5 KiB per client.
    states: OnceLock<broadcast::Sender<ClientState>>,
    user_closed: Signal<bool>,
}

/// Which connection of the client an attempt makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    /// The first one ([`ClientBuilder::connect`]).
    First,
    /// One after a loss, or a renewal.
    Later,
}

/// A new connection, up: authenticated, and the hooks ran on it.
struct Fresh {
    handle: Handle,
    resumed: bool,
    missed: u64,
}

impl Fresh {
    /// The state it brings, after the first connection.
    fn state(&self) -> ClientState {
        if self.resumed {
            ClientState::Resumed {
                missed: self.missed,
            }
        } else {
            ClientState::SessionLost
        }
    }
}

impl Inner {
    /// Reads the current connection.
    fn with_current<R>(&self, read: impl FnOnce(Option<&Handle>) -> R) -> R {
        self.current.with(|current| read(current.as_ref()))
    }

    fn set_state(&self, state: ClientState) {
        self.state.replace(state.clone());
        if let Some(states) = self.states.get() {
            let _ = states.send(state);
        }
    }

    fn ticket(&self) -> std::sync::MutexGuard<'_, Option<Ticket>> {
        self.ticket.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes one connection: the handshake and authentication (resuming the
    /// session when the client holds a ticket), then the hooks, on the new
    /// connection before anyone else may use it.
    async fn attempt(self: &Arc<Self>, which: Attempt) -> Result<Fresh, Error> {
        let ticket = if self.resume {
            self.ticket().take()
        } else {
            None
        };
        let established = establish::client(ClientSetup {
            connector: &self.connector,
            secret: &self.secret,
            suite: self.suite,
            mode: self.mode,
            credentials: &self.credentials,
            config: &self.config,
            tls: &self.tls,
            resume: ticket.as_ref(),
        })
        .await;
        let established = match established {
            Ok(established) => established,
            Err(error) => {
                // A server that broke off at our resumption request (one
                // that does not know it) gets none next time; otherwise the
                // ticket was not spent.
                if !matches!(error, Error::Protocol(_)) && !is_protocol_close(&error) {
                    let mut slot = self.ticket();
                    if slot.is_none() {
                        *slot = ticket;
                    }
                }
                return Err(error);
            }
        };
        let resumption = established.resumption;
        let server_id = established.server_id;
        *self.ticket() = match server_id {
            Some(id) if resumption.resumable => Some(Ticket {
                id: id.get(),
                secret: resumption.secret,
            }),
            _ => None,
        };
        let guest = established.session == SessionKind::Guest;
        let shared = Shared::new(Params {
            id: ConnectionId::next(),
            peer_addr: established.peer_addr,
            session: established.session,
            // The server proved the secret; the guest rule applies to clients only.
            peer_is_guest: false,
            meta: established.meta,
            config: Arc::clone(&self.config),
            services: Arc::clone(&self.services),
            origin: None,
            server_id,
            meter: Arc::clone(&self.meter),
        });
        let handle = connection::spawn(
            shared,
            established.transport,
            (established.sealer, established.opener),
            Start::default(),
            |_reason| {},
        );
        // Closed by the application meanwhile: a session the server admitted
        // is closed properly, so that it ends there rather than waits.
        let closed = || {
            handle.close(Reason::ClientClosed);
            Err(self.disconnected())
        };
        if self.user_closed.with(|closed| *closed) {
            return closed();
        }
        if !self.expected.is_empty() {
            let peer = Peer::new(Arc::new(handle.clone()));
            if let Err(error) = describe::check(&peer, &self.expected, guest).await {
                handle.close(Disconnect::new(
                    CloseCode::Disconnected,
                    "incompatible services",
                ));
                return Err(error);
            }
        }
        let hooks = async {
            match which {
                Attempt::First => self.hooks.connected(&handle).await,
                Attempt::Later => self.hooks.reconnected(&handle, resumption.resumed).await,
            }
        };
        let hooked = tokio::select! {
            hooked = hooks => hooked,
            () = stopped(&self.user_closed) => return closed(),
        };
        if let Err(error) = hooked {
            tracing::warn!(%error, "a connection hook failed; the connection is dropped");
            // After the first connection, the session stays resumable.
            handle.close(match which {
                Attempt::First => Disconnect::from(Reason::ClientClosed),
                Attempt::Later => {
                    Disconnect::new(CloseCode::InternalError, "connection hook failed")
                }
            });
            return Err(error);
        }
        Ok(Fresh {
            handle,
            resumed: resumption.resumed,
            missed: resumption.missed,
        })
    }

    /// Attempts connections with the reconnect policy until one is up, the
    /// attempts run out, an error ends them, or the application closes the
    /// client. The first attempt of a first connect goes at once; every
    /// other waits its backoff delay.
    async fn retry(self: &Arc<Self>, which: Attempt) -> Result<Fresh, Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > 1 || which == Attempt::Later {
                let delay = self.reconnect.delay(attempt);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stopped(&self.user_closed) => return Err(self.disconnected()),
                }
            }
            self.set_state(ClientState::Connecting { attempt });
            // Boxed: the supervisor lives as long as the client, and a set-up
            // future inline would make every idle client's task several KiB larger.
            let mut attempting = Box::pin(self.attempt(which));
            let attempted = tokio::select! {
                attempted = &mut attempting => attempted,
                () = stopped(&self.user_closed) => {
                    // Let the set-up end (within the handshake timeout): a
                    // session the server admitted is then closed, not dropped.
                    let _ = attempting.await;
                    return Err(self.disconnected());
                }
            };
            let error = match attempted {
                Ok(fresh) => return Ok(fresh),
                Err(error) => error,
            };
            tracing::debug!(attempt, %error, "connection attempt failed");
            self.set_state(ClientState::AttemptFailed {
                attempt,
                error: error.to_string(),
            });
            let out_of_attempts = self
                .reconnect
                .max_attempts
                .is_some_and(|max| attempt >= max);
            if self.reconnect.gives_up_at(&error) || out_of_attempts {
                if let Error::AuthRejected(reason) = &error {
                    self.set_state(ClientState::Rejected(reason.clone()));
                }
                return Err(error);
            }
        }
    }

    fn disconnected(&self) -> Error {
        let reason = self
            .last_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Error::Disconnected(reason.unwrap_or_else(|| Disconnect::lost("not connected")))
    }

    /// The current connection, if it is up.
    fn usable_connection(&self) -> Option<Handle> {
        self.current.with(usable)
    }

    /// The connection a call or stream with `options` goes on, and the
    /// call's deadline, which waiting for a connection counts against.
    async fn connection_for(&self, options: &CallOptions) -> Result<(Handle, Instant), Error> {
        let timeout = options
            .timeout
            .unwrap_or(self.config.call_timeout)
            .min(connection::MAX_CALL_TIMEOUT);
        let deadline = Instant::now() + timeout;
        let handle = match self.usable_connection() {
            Some(handle) => handle,
            None => Box::pin(self.connection(options.wait_for_connection, deadline)).await?,
        };
        Ok((handle, deadline))
    }

    /// The open connection, waiting for one until `deadline` if `wait`.
    async fn connection(&self, wait: bool, deadline: Instant) -> Result<Handle, Error> {
        if let Some(handle) = self.usable_connection() {
            return Ok(handle);
        }
        if !wait || self.user_closed.with(|closed| *closed) {
            return Err(self.disconnected());
        }
        tokio::time::timeout_at(deadline, self.current.wait_for(usable))
            .await
            .map_err(|_| Error::Timeout)
    }
}

/// Whether the server closed the set-up with a protocol error.
fn is_protocol_close(error: &Error) -> bool {
    matches!(error, Error::Disconnected(reason) if reason.code == CloseCode::ProtocolError)
}

/// The connection in `current`, if it is up.
fn usable(current: &Option<Handle>) -> Option<Handle> {
    current.as_ref().filter(|h| !h.is_closed()).cloned()
}

impl Client {
    /// A builder with defaults; only the secret must be set.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    async fn connect(builder: ClientBuilder) -> Result<Self, Error> {
        if let Some(error) = builder.error {
            return Err(error);
        }
        let secret = builder
            .secret
            .ok_or_else(|| Error::Config("no shared secret configured".into()))?;
        builder.config.validate()?;
        let connector = match builder.connector {
            Some(connector) => connector,
            None => match Endpoint::parse(&builder.url)? {
                Endpoint::WebSocket(mut url) => {
                    url.headers = builder.headers;
                    Connector::Endpoint(Endpoint::WebSocket(url))
                }
                other => Connector::Endpoint(other),
            },
        };
        if builder.mode == Mode::Plaintext && connector.unprotected() && !builder.plaintext_over_ws
        {
            return Err(Error::Config(
                "plaintext mode needs a wss:// url (or ClientBuilder::plaintext_over_ws for tests and trusted sockets)"
                    .into(),
            ));
        }
        let reconnect = builder.reconnect;
        let retry_first = reconnect.enabled && reconnect.retry_first_connect;
        let inner = Arc::new(Inner {
            connector,
            secret,
            suite: builder.suite.unwrap_or_else(Suite::preferred),
            mode: builder.mode,
            credentials: builder.credentials,
            config: Arc::new(builder.config),
            services: Arc::new(builder.services.with_describe(builder.describe)?),
            meter: Arc::new(Meter::new(Side::Client)),
            reconnect,
            session_lifetime: builder.session_lifetime,
            resume: builder.resume,
            hooks: builder.hooks,
            tls: builder.tls,
            ticket: Mutex::new(None),
            expected: builder.expected,
            current: Signal::new(None),
            last_reason: Mutex::new(None),
            state: Signal::new(ClientState::Connecting { attempt: 1 }),
            states: OnceLock::new(),
            user_closed: Signal::new(false),
        });
        let fresh = if retry_first {
            inner.retry(Attempt::First).await?
        } else {
            inner.attempt(Attempt::First).await?
        };
        inner.current.replace(Some(fresh.handle.clone()));
        inner.set_state(ClientState::Ready);
        tokio::spawn(supervise(Arc::clone(&inner), fresh.handle));
        Ok(Self {
            _owner: Arc::new(Owner(Arc::clone(&inner))),
            inner,
        })
    }

    /// A handle to call or notify the server; it follows reconnects.
    pub fn peer(&self) -> Peer {
        Peer::new(Arc::new(self.clone()))
    }

    /// The current state.
    pub fn state(&self) -> ClientState {
        self.inner.state.with(ClientState::clone)
    }

    /// State changes from now on. A receiver more than 64 changes behind
    /// misses the oldest (`RecvError::Lagged`).
    pub fn states(&self) -> broadcast::Receiver<ClientState> {
        self.inner
            .states
            .get_or_init(|| broadcast::Sender::new(STATES_CAPACITY))
            .subscribe()
    }

    /// Whether a connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.inner
            .with_current(|h| h.is_some_and(|h| !h.is_closed()))
    }

    /// Notifications from the server that no handler of this client ran
    /// for (no such method served, undecodable arguments, too many running),
    /// since the client started. Each is logged at DEBUG: a notification has
    /// no reply to say so.
    pub fn dropped_notifications(&self) -> u64 {
        self.inner.services.dropped_notifications()
    }

    /// The current connection's id on this side (a new one after each
    /// reconnect): what handlers this client serves see as
    /// [`Context::connection_id`](crate::Context::connection_id), and what
    /// its logs name. Ids are per process, so the server knows the same
    /// connection by another id: see [`Client::server_connection_id`].
    pub fn connection_id(&self) -> Option<ConnectionId> {
        self.inner.with_current(|h| h.map(Handle::id))
    }

    /// The id of this client's session on the server: what the server's
    /// handlers see as [`Context::connection_id`](crate::Context::connection_id)
    /// and what [`Server::send_to`](crate::Server::send_to), `join` or
    /// `disconnect` take. It stays the same while the session is resumed
    /// ([`ClientState::Resumed`]), and changes with a new session
    /// ([`ClientState::SessionLost`]). `None` while disconnected, or when the
    /// server did not say (AUTH_RESULT's optional `id`, docs/PROTOCOL.md §9.2).
    pub fn server_connection_id(&self) -> Option<ConnectionId> {
        self.inner.with_current(|h| h.and_then(Handle::server_id))
    }

    /// Whether the server admitted this client as authenticated or as a guest.
    pub fn session(&self) -> Option<SessionKind> {
        self.inner.with_current(|h| h.map(Handle::session))
    }

    /// The current connection's round-trip time handle, to wait for a
    /// measurement ([`Rtt::measured`], [`Rtt::subscribe`]); `None` while
    /// disconnected. A reconnect brings a new connection with a new handle.
    pub fn connection_rtt(&self) -> Option<Rtt> {
        self.inner.with_current(|h| h.map(|h| h.rtt().clone()))
    }

    /// The current connection's heartbeat round-trip time, once measured.
    pub fn rtt(&self) -> Option<Duration> {
        self.inner.with_current(|h| h.and_then(|h| h.rtt().get()))
    }

    /// Closes the connection (an authenticated CLOSE, code `Normal`) and
    /// stops reconnecting; waits until the connection has ended.
    pub async fn close(&self) {
        self.inner.user_closed.replace(true);
        let handle = self.inner.current.with(Option::clone);
        if let Some(handle) = handle {
            handle.close(Reason::ClientClosed);
            handle.closed().await;
        }
        self.inner
            .state
            .wait_for(|s| (*s == ClientState::Closed).then_some(()))
            .await;
    }
}

impl Caller for Client {
    fn call(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        options: CallOptions,
    ) -> BoxFuture<'static, Result<EncodedValue, Error>> {
        let timeout = options
            .timeout
            .unwrap_or(self.inner.config.call_timeout)
            .min(connection::MAX_CALL_TIMEOUT);
        // The usual case, connected: the call goes on the connection of the
        // moment it is made, and its future holds that connection only (no
        // reference count of the client's to change per call).
        if let Some(handle) = self.inner.usable_connection() {
            return Box::pin(async move { handle.call(method, args, timeout).await });
        }
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            // Waiting for a connection counts against the call's time.
            let deadline = Instant::now() + timeout;
            // Boxed, so the common path's future stays small.
            let handle = Box::pin(inner.connection(options.wait_for_connection, deadline)).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            handle.call(method, args, left).await
        })
    }

    fn notify(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
    ) -> BoxFuture<'static, Result<(), Error>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let handle = inner.connection(false, Instant::now()).await?;
            handle.notify(method, args).await
        })
    }

    fn stream(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        options: CallOptions,
        window: Window,
    ) -> BoxFuture<'static, Result<RawStream, Error>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let (handle, _) = inner.connection_for(&options).await?;
            if !options.resubscribe {
                return handle.open_stream(method, args, window, None).await;
            }
            let stream = handle
                .open_stream(method.clone(), args.clone(), window, None)
                .await?;
            Ok(resubscribe::Resubscribing::boxed(
                inner,
                handle.id(),
                stream,
                method,
                args,
                window,
            ))
        })
    }

    fn upload(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        options: CallOptions,
        items: RawStream,
    ) -> BoxFuture<'static, Result<EncodedValue, Error>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let (handle, deadline) = inner.connection_for(&options).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            handle.upload(method, args, left, items).await
        })
    }

    fn duplex(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        options: CallOptions,
        window: Window,
        items: RawStream,
    ) -> BoxFuture<'static, Result<RawStream, Error>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let (handle, _) = inner.connection_for(&options).await?;
            handle.open_stream(method, args, window, Some(items)).await
        })
    }
}

/// Watches the connection; renews it when its lifetime ends, reconnects
/// after a loss, until told to stop.
async fn supervise(inner: Arc<Inner>, mut handle: Handle) {
    loop {
        let mut renew_at = inner.session_lifetime.map(|l| Instant::now() + l);
        let reason = loop {
            tokio::select! {
                reason = handle.closed() => break reason,
                () = stopped(&inner.user_closed) => {
                    handle.close(Reason::ClientClosed);
                    break handle.closed().await;
                }
                () = at(renew_at) => {
                    renew_at = inner.session_lifetime.map(|l| Instant::now() + l);
                    // Boxed, here and below: the supervisor lives as long as the
                    // client, and a set-up future inline would make every idle
                    // client's task several KiB larger.
                    match Box::pin(inner.attempt(Attempt::Later)).await {
                        Ok(fresh) => {
                            let old = std::mem::replace(&mut handle, fresh.handle.clone());
                            inner.current.replace(Some(handle.clone()));
                            old.retire();
                            tracing::debug!(old = %old.id(), new = %handle.id(), resumed = fresh.resumed, "session renewed");
                            inner.set_state(fresh.state());
                        }
                        Err(_) if inner.user_closed.with(|closed| *closed) => {}
                        Err(error) => {
                            tracing::warn!(%error, "could not renew the session; keeping the current one");
                        }
                    }
                }
            }
        };
        inner.current.replace(None);
        *inner.last_reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
        inner.set_state(ClientState::Disconnected(reason));
        let stop = inner.user_closed.with(|closed| *closed);
        if !inner.reconnect.enabled || stop {
            break;
        }
        match inner.retry(Attempt::Later).await {
            Ok(fresh) => {
                handle = fresh.handle.clone();
                inner.current.replace(Some(handle.clone()));
                inner.set_state(fresh.state());
            }
            Err(_) => break,
        }
    }
    inner.set_state(ClientState::Closed);
}

/// Resolves once the application closed the client.
async fn stopped(user_closed: &Signal<bool>) {
    user_closed.wait_for(|closed| closed.then_some(())).await;
}

/// Resolves at `deadline`, or never.
async fn at(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
