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
//! ([`CallOptions::wait_for_connection`]). [`Client::states`] reports
//! `Connecting`, `Ready`, `Disconnected(reason)`, `Reconnected` and `Closed`.
//!
//! After [`ClientBuilder::session_lifetime`] (default 24 h) the client renews
//! its connection: a new handshake with fresh ephemeral keys takes over new
//! calls, and the old connection closes once its pending calls have ended.

mod builder;

use std::borrow::Cow;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio::time::Instant;

pub use builder::ClientBuilder;

use crate::config::ConnectionConfig;
use crate::connection::establish::{self, ClientSetup};
use crate::connection::{self, Handle, Params, Shared};
use crate::crypto::{Mode, Secret, Suite};
use crate::describe;
use crate::descriptor::ServiceDescriptor;
use crate::dispatch::Services;
use crate::error::{Disconnect, Error};
use crate::heartbeat::Rtt;
use crate::identity::{ConnectionId, SessionKind};
use crate::protocol::{CloseCode, Reason};
use crate::service::{BoxFuture, CallOptions, Caller, Peer};
use crate::signal::Signal;
use crate::transport::{ClientTls, Connector, Endpoint};

/// State changes a [`Client::states`] receiver may fall behind by.
const STATES_CAPACITY: usize = 64;

/// How a client reconnects: exponential backoff from `initial_delay` up to
/// `max_delay`, each delay drawn at random from its upper half (jitter).
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
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            enabled: true,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            max_attempts: None,
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
}

/// Where the client's connection stands.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientState {
    /// Reconnect attempt `attempt` of the current outage is under way.
    Connecting {
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// The first connection is up (handshake and authentication done).
    Ready,
    /// The connection was lost, with the close code and reason.
    Disconnected(Disconnect),
    /// A new connection is up after a loss.
    Reconnected,
    /// The client stopped: closed by the application, or reconnecting gave up.
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
    reconnect: Reconnect,
    session_lifetime: Option<Duration>,
    tls: ClientTls,
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

    async fn establish(self: &Arc<Self>) -> Result<Handle, Error> {
        let established = establish::client(ClientSetup {
            connector: &self.connector,
            secret: &self.secret,
            suite: self.suite,
            mode: self.mode,
            credentials: &self.credentials,
            config: &self.config,
            tls: &self.tls,
        })
        .await?;
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
            server_id: established.server_id,
        });
        let handle = connection::spawn(
            shared,
            established.transport,
            (established.sealer, established.opener),
            |_reason| {},
        );
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
        Ok(handle)
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
        let inner = Arc::new(Inner {
            connector,
            secret,
            suite: builder.suite.unwrap_or_else(Suite::preferred),
            mode: builder.mode,
            credentials: builder.credentials,
            config: Arc::new(builder.config),
            services: Arc::new(builder.services.with_describe(builder.describe)?),
            reconnect: builder.reconnect,
            session_lifetime: builder.session_lifetime,
            tls: builder.tls,
            expected: builder.expected,
            current: Signal::new(None),
            last_reason: Mutex::new(None),
            state: Signal::new(ClientState::Connecting { attempt: 1 }),
            states: OnceLock::new(),
            user_closed: Signal::new(false),
        });
        let handle = inner.establish().await?;
        inner.current.replace(Some(handle.clone()));
        inner.set_state(ClientState::Ready);
        tokio::spawn(supervise(Arc::clone(&inner), handle));
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

    /// The current connection's id on this side (a new one after each
    /// reconnect): what handlers this client serves see as
    /// [`Context::connection_id`](crate::Context::connection_id), and what
    /// its logs name. Ids are per process, so the server knows the same
    /// connection by another id: see [`Client::server_connection_id`].
    pub fn connection_id(&self) -> Option<ConnectionId> {
        self.inner.with_current(|h| h.map(Handle::id))
    }

    /// The id the server gave the current connection (a new one after each
    /// reconnect): what the server's handlers see as
    /// [`Context::connection_id`](crate::Context::connection_id) and what
    /// [`Server::send_to`](crate::Server::send_to), `join` or `disconnect`
    /// take. `None` while disconnected, or when the server did not say
    /// (AUTH_RESULT's optional `id`, docs/PROTOCOL.md §9.2).
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
        args: Vec<u8>,
        options: CallOptions,
    ) -> BoxFuture<'static, Result<Bytes, Error>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let timeout = options
                .timeout
                .unwrap_or(inner.config.call_timeout)
                .min(connection::MAX_CALL_TIMEOUT);
            if let Some(handle) = inner.usable_connection() {
                return handle.call(method, args, timeout).await;
            }
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
        args: Vec<u8>,
    ) -> BoxFuture<'static, Result<(), Error>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let handle = inner.connection(false, Instant::now()).await?;
            handle.notify(method, args).await
        })
    }
}

/// Watches the connection; reconnects after a loss until told to stop.
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
                    match Box::pin(inner.establish()).await {
                        Ok(fresh) => {
                            let old = std::mem::replace(&mut handle, fresh);
                            inner.current.replace(Some(handle.clone()));
                            old.retire();
                            tracing::debug!(old = %old.id(), new = %handle.id(), "session renewed");
                        }
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
        let mut attempt = 0;
        let reconnected = loop {
            attempt += 1;
            if inner
                .reconnect
                .max_attempts
                .is_some_and(|max| attempt > max)
            {
                break None;
            }
            let delay = inner.reconnect.delay(attempt);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stopped(&inner.user_closed) => break None,
            }
            inner.set_state(ClientState::Connecting { attempt });
            let attempted = tokio::select! {
                attempted = Box::pin(inner.establish()) => attempted,
                () = stopped(&inner.user_closed) => break None,
            };
            match attempted {
                Ok(handle) => break Some(handle),
                Err(error) => tracing::debug!(attempt, %error, "reconnect failed"),
            }
        };
        match reconnected {
            Some(new) => {
                handle = new;
                inner.current.replace(Some(handle.clone()));
                inner.set_state(ClientState::Reconnected);
            }
            None => break,
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
