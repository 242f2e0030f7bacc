//! Configuring a server.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::Server;
use super::auth::{self, AuthDecision, PeerInfo};
use super::hooks::Hooks;
use super::limits::{FailureLimit, PerIpConfig};
use super::registry::ResumptionConfig;
use crate::config::{ConnectionConfig, MAX_DURATION, Vars, process_env};
use crate::connection::establish::AuthHook;
use crate::crypto::{Secret, Suite};
use crate::describe::DescribeAccess;
use crate::descriptor::ServiceDescriptor;
use crate::dispatch::Services;
use crate::error::{Disconnect, Error};
use crate::service::Context;
use crate::transport::{HttpOptions, ServerTls};

/// Configures and starts a [`Server`]. See [`Server::builder`].
pub struct ServerBuilder {
    pub(super) address: String,
    pub(crate) secret: Option<Secret>,
    pub(super) suites: Vec<Suite>,
    pub(super) allow_plaintext: bool,
    pub(super) config: ConnectionConfig,
    pub(super) max_connections: usize,
    pub(super) max_handshakes: usize,
    pub(super) per_ip: PerIpConfig,
    pub(super) services: Services,
    pub(super) auth: AuthHook,
    pub(super) tls: ServerTls,
    pub(super) http: HttpOptions,
    pub(super) unix_mode: u32,
    pub(super) resumption: ResumptionConfig,
    pub(super) hooks: Hooks,
    pub(super) describe: DescribeAccess,
    /// The services every client must serve compatibly, checked after auth.
    pub(super) expected_clients: Vec<&'static ServiceDescriptor>,
    pub(super) error: Option<Error>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("address", &self.address)
            .field("secret", &self.secret)
            .field("suites", &self.suites)
            .field("allow_plaintext", &self.allow_plaintext)
            .field("max_connections", &self.max_connections)
            .field("max_handshakes", &self.max_handshakes)
            .field("per_ip", &self.per_ip)
            .field("resumption", &self.resumption)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:7878".into(),
            secret: None,
            suites: vec![Suite::Aes256Gcm, Suite::ChaCha20Poly1305],
            allow_plaintext: false,
            config: ConnectionConfig::default(),
            max_connections: 10_000,
            max_handshakes: 256,
            per_ip: PerIpConfig::default(),
            services: Services::default(),
            auth: auth::accept_all(),
            tls: ServerTls::default(),
            http: HttpOptions::default(),
            unix_mode: 0o600,
            resumption: ResumptionConfig::default(),
            hooks: Hooks::default(),
            describe: DescribeAccess::default(),
            expected_clients: Vec::new(),
            error: None,
        }
    }
}

impl ServerBuilder {
    /// Settings from the `SOCKETS_*` environment variables (see the
    /// [`config`](crate::config) table); unset ones keep their defaults.
    ///
    /// # Errors
    /// [`Error::Config`] when no secret is set or a variable is invalid.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(&Vars(&process_env))
    }

    crate::config::connection_setters!();

    pub(crate) fn from_vars(vars: &Vars<'_>) -> Result<Self, Error> {
        let mut builder = Self::default().secret(vars.secret()?);
        builder.address = vars.address()?;
        if let Some(suite) = vars.cipher()? {
            builder.suites = vec![suite];
        }
        if let Some(plaintext) = vars.flag("SOCKETS_PLAINTEXT")? {
            builder.allow_plaintext = plaintext;
        }
        builder.config.apply_env(vars)?;
        if let Some(max) = vars.parse("SOCKETS_MAX_CONNECTIONS")? {
            builder.max_connections = max;
        }
        if let Some(max) = vars.parse("SOCKETS_MAX_HANDSHAKES")? {
            builder.max_handshakes = max;
        }
        if let Some(path) = vars.get("SOCKETS_HEALTH_PATH") {
            builder = builder.health_route(path.trim());
        }
        if let Some(max) = vars.parse("SOCKETS_MAX_HANDSHAKES_PER_IP")? {
            builder.per_ip.max_handshakes = max;
        }
        let count = vars.parse("SOCKETS_HANDSHAKE_FAILURES_PER_IP")?;
        let window = vars.parse::<u64>("SOCKETS_HANDSHAKE_FAILURE_WINDOW_MS")?;
        if count.is_some() || window.is_some() {
            let current = builder.per_ip.failures;
            let count = count.unwrap_or_else(|| current.map_or(10, |limit| limit.count));
            let per = window.map_or_else(
                || current.map_or(Duration::from_secs(60), |limit| limit.per),
                Duration::from_millis,
            );
            builder = builder.handshake_failures_per_ip(count, per);
        }
        if let Some(count) = vars.parse("SOCKETS_AUTH_REJECTIONS_PER_IP")? {
            let per = builder
                .per_ip
                .rejections
                .map_or(Duration::from_secs(60), |limit| limit.per);
            builder = builder.auth_rejections_per_ip(count, per);
        }
        if let Some(window) = vars.parse::<u64>("SOCKETS_RESUMPTION_WINDOW_MS")? {
            builder = builder.resumption_window(Duration::from_millis(window));
        }
        Ok(builder)
    }

    /// Where [`ServerBuilder::start`] listens: `host:port` (or `ws://host:port`)
    /// for WebSocket, `tcp://host:port` for length-prefixed frames on raw
    /// TCP, `unix:///path` for a Unix domain socket. Port 0 picks a free one
    /// (see [`Server::local_addr`], [`Server::url`]). Default `127.0.0.1:7878`.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// The cipher suites clients may choose. Default: both.
    pub fn suites(mut self, suites: impl IntoIterator<Item = Suite>) -> Self {
        self.suites = suites.into_iter().collect();
        self
    }

    /// Accepts clients in plaintext mode (frames unencrypted, for use behind
    /// TLS). The handshake still proves the secret. Default: off.
    pub fn allow_plaintext(mut self, allow: bool) -> Self {
        self.allow_plaintext = allow;
        self
    }

    /// Connections open at once, including those still in the handshake;
    /// more are closed with `TooManyConnections`. Default 10 000.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// Connections still in the handshake or authentication at once (the
    /// pre-authentication cap: each may make the server buffer one WebSocket
    /// message of up to `max_frame`). More are closed at once with
    /// `TooManyConnections` "too many handshakes"; authenticated sessions
    /// hold no slot. Default 256.
    pub fn max_handshakes(mut self, handshakes: usize) -> Self {
        self.max_handshakes = handshakes;
        self
    }

    /// Connections from one client address (an IPv4 address, or an IPv6 /64
    /// prefix) in the handshake or authentication at once. More are closed at
    /// once with `TooManyConnections` "too many handshakes from this
    /// address"; authenticated sessions are not counted. `0` turns the
    /// per-address cap off (the global [`max_handshakes`](Self::max_handshakes)
    /// still holds). Default 8.
    ///
    /// Behind a reverse proxy every client has the proxy's address: raise or
    /// turn off the per-address limits there, and limit at the proxy.
    pub fn max_handshakes_per_ip(mut self, handshakes: usize) -> Self {
        self.per_ip.max_handshakes = handshakes;
        self
    }

    /// At most `count` failed handshakes per `per` from one client address
    /// (a token bucket refilled at `count` per `per`). A failure is a handshake
    /// rejected (wrong secret, tampered), stale, malformed or timed out; a
    /// rejection by the auth hook is not (see
    /// [`auth_rejections_per_ip`](Self::auth_rejections_per_ip)). When the budget is spent, every connection
    /// from the address is refused at once, whatever it would send (close
    /// `TooManyConnections` "too many failed handshakes from this address"),
    /// for a whole `per`. Connections in the handshake hold a token each, so
    /// concurrency cannot overshoot the budget. `count` 0 turns the limit off.
    /// Default 10 per 60 s.
    pub fn handshake_failures_per_ip(mut self, count: u32, per: Duration) -> Self {
        self.per_ip.failures = (count > 0).then_some(FailureLimit { count, per });
        self
    }

    /// At most `count` credentials rejected by the auth hook per `per` from
    /// one client address (a token bucket refilled at `count` per `per`),
    /// apart from the failed-handshake budget: a client with a revoked token
    /// proves the secret, so its rejections do not lock good clients at its
    /// address out of the handshake. When the budget is spent, connections
    /// from the address are refused for a whole `per` (close
    /// `TooManyConnections` "too many rejected credentials from this
    /// address; retry in N s"). It bounds how fast a holder of the shared
    /// secret can guess credentials. `count` 0 turns it off. Default 30 per 60 s.
    pub fn auth_rejections_per_ip(mut self, count: u32, per: Duration) -> Self {
        self.per_ip.rejections = (count > 0).then_some(FailureLimit { count, per });
        self
    }

    pub(super) fn validate_per_ip(&self) -> Result<(), Error> {
        let windows = [
            ("the handshake failure window", self.per_ip.failures),
            ("the auth rejection window", self.per_ip.rejections),
        ];
        for (what, limit) in windows {
            if let Some(limit) = limit
                && (limit.per.is_zero() || limit.per > MAX_DURATION)
            {
                return Err(Error::Config(format!(
                    "{what} must be between 1 ms and a year"
                )));
            }
        }
        if self.resumption.window > MAX_DURATION {
            return Err(Error::Config(
                "the resumption window must be at most a year".into(),
            ));
        }
        Ok(())
    }

    /// How long a session whose connection was lost waits for its client to
    /// resume it: its id, rooms and the notifications sent to it meanwhile
    /// (see [`resumption_buffer`](Self::resumption_buffer)) are kept, and a
    /// client that reconnects within the window carries on in the same
    /// session (`ClientState::Resumed`). A session closed on purpose (by the
    /// client, [`Server::disconnect`], shutdown) does not wait. Zero turns
    /// resumption off: every reconnect is a new session
    /// (`ClientState::SessionLost`). Default 2 minutes; also
    /// `SOCKETS_RESUMPTION_WINDOW_MS`.
    pub fn resumption_window(mut self, window: Duration) -> Self {
        self.resumption.window = window;
        self
    }

    /// What each waiting session buffers: at most `max_messages`
    /// notifications and `max_bytes` bytes of method names and arguments.
    /// Past either bound the oldest are dropped, and the client learns how
    /// many it missed when it resumes (`ClientState::Resumed { missed }`).
    /// Default 1024 notifications and 256 KiB.
    pub fn resumption_buffer(mut self, max_messages: usize, max_bytes: usize) -> Self {
        self.resumption.max_messages = max_messages;
        self.resumption.max_bytes = max_bytes;
        self
    }

    /// Sessions waiting for their client at once, at most; past it a lost
    /// session ends at once. Default 10 000.
    pub fn max_waiting_sessions(mut self, sessions: usize) -> Self {
        self.resumption.max_waiting = sessions;
        self
    }

    /// Runs `hook` when a new session starts (the auth hook admitted a
    /// client that did not resume one), with the connection's context: to
    /// join rooms, set metadata ([`Server::set_meta`] through
    /// [`Context::server`]) or call the client. It runs in a task of its
    /// own, concurrently with the client's first calls.
    ///
    /// ```
    /// # let secret = sockets::crypto::Secret::from_key(&[7; 32]);
    /// let builder = sockets::Server::builder()
    ///     .secret(secret)
    ///     .on_connect(|cx: sockets::Context| async move {
    ///         if let Some(server) = cx.server() {
    ///             let _ = server.join(cx.connection_id(), "lobby");
    ///         }
    ///     });
    /// ```
    pub fn on_connect<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.set_on_connect(hook);
        self
    }

    /// Runs `hook` when a client resumes its session on a new connection
    /// (after a loss, or when it renews its keys), once the auth hook has
    /// run again: the session's rooms are kept, its metadata is the auth
    /// hook's new one.
    pub fn on_resume<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.set_on_resume(hook);
        self
    }

    /// Runs `hook` when the connection serving a session ends, with why.
    /// The session may wait for its client to resume it
    /// ([`resumption_window`](Self::resumption_window));
    /// `ServerEvent::SessionEnded` says when it is gone. A connection that a
    /// newer one of the same session replaced does not run it.
    pub fn on_disconnect<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Context, Disconnect) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.set_on_disconnect(hook);
        self
    }

    /// Answers `GET path` (and `HEAD`) with `200 ok`, for load balancers and
    /// monitors that probe the server's port. Such probes, like every plain
    /// HTTP request (answered `426 Upgrade Required`), never count as failed
    /// handshakes. Default: no health route. Also `SOCKETS_HEALTH_PATH`.
    ///
    /// ```
    /// # let secret = sockets::crypto::Secret::from_key(&[7; 32]);
    /// let builder = sockets::Server::builder().secret(secret).health_route("/healthz");
    /// ```
    pub fn health_route(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        if path.starts_with('/') {
            self.http.health_path = Some(path);
        } else {
            self.error
                .get_or_insert(Error::Config("a health route must start with `/`".into()));
        }
        self
    }

    /// The auth hook: runs once per connection with the client's credentials
    /// (any type the client sent, decoded as `C`; credentials that do not
    /// decode are rejected). Default: every client that proved the secret is
    /// authenticated, without metadata.
    pub fn auth<C, F, Fut>(mut self, hook: F) -> Self
    where
        C: DeserializeOwned + Send + 'static,
        F: Fn(C, PeerInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AuthDecision> + Send + 'static,
    {
        self.auth = auth::typed(hook);
        self
    }

    /// Serves over TLS (`wss://`) with this rustls configuration. With TLS 1.3
    /// the handshake is bound to the TLS session (RFC 9266 exporter), so it
    /// cannot be relayed between two TLS sessions.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: std::sync::Arc<tokio_rustls::rustls::ServerConfig>) -> Self {
        self.tls.acceptor = Some(tokio_rustls::TlsAcceptor::from(config));
        self
    }

    /// Checks that every client admitted serves these services compatibly:
    /// right after authentication the server calls the client's
    /// `sockets.describe` and compares (docs/DESCRIPTOR.md §5). A client
    /// that does not is disconnected (close code 4006, `Disconnected`) with
    /// a reason listing the differences; its `connect` has already
    /// succeeded, so it sees the close as a lost connection.
    pub fn expect_client_services(
        mut self,
        services: impl IntoIterator<Item = &'static ServiceDescriptor>,
    ) -> Self {
        self.expected_clients.extend(services);
        self
    }

    /// The permissions of the socket file when the address is `unix://…`.
    /// Default `0o600`: only the server's user may connect.
    pub fn unix_permissions(mut self, mode: u32) -> Self {
        self.unix_mode = mode;
        self
    }

    /// Binds the address and starts accepting connections.
    ///
    /// # Errors
    /// [`Error::Config`] for a missing secret, bad settings or a duplicate
    /// service; [`Error::Io`] when the address cannot be bound.
    pub async fn start(self) -> Result<Server, Error> {
        Server::start(self).await
    }

    /// A server that listens on nothing of its own: it serves what it is
    /// given ([`Server::serve_listener`], [`Server::serve_connection`], a
    /// route of an axum application with the `axum` feature). The address is
    /// not used.
    ///
    /// # Errors
    /// [`Error::Config`] for a missing secret, bad settings or a duplicate service.
    pub fn build(self) -> Result<Server, Error> {
        Server::build(self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::crypto::generate_key;

    fn from(vars: &[(&str, String)]) -> Result<ServerBuilder, Error> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let lookup = move |name: &str| map.get(name).cloned();
        ServerBuilder::from_vars(&Vars(&lookup))
    }

    #[test]
    fn from_env_requires_a_secret() {
        let missing = from(&[("SOCKETS_PORT", "9000".into())]);
        assert!(matches!(missing, Err(Error::Config(_))), "{missing:?}");
        let bad = from(&[("SOCKETS_SECRET", "not base64!".into())]);
        assert!(matches!(bad, Err(Error::Config(_))), "{bad:?}");
    }

    #[test]
    fn from_env_reads_every_setting() {
        let builder = from(&[
            ("SOCKETS_SECRET", generate_key()),
            ("SOCKETS_ADDR", "0.0.0.0".into()),
            ("SOCKETS_PORT", "9000".into()),
            ("SOCKETS_CIPHER", "aes-256-gcm".into()),
            ("SOCKETS_PLAINTEXT", "true".into()),
            ("SOCKETS_HEARTBEAT_INTERVAL_MS", "1000".into()),
            ("SOCKETS_HEARTBEAT_TIMEOUT_MS", "3000".into()),
            ("SOCKETS_HANDSHAKE_TIMEOUT_MS", "2000".into()),
            ("SOCKETS_MAX_FRAME", "65536".into()),
            ("SOCKETS_MAX_IN_FLIGHT", "4".into()),
            ("SOCKETS_MAX_CONNECTIONS", "12".into()),
            ("SOCKETS_MAX_HANDSHAKES", "3".into()),
            ("SOCKETS_MAX_HANDSHAKES_PER_IP", "2".into()),
            ("SOCKETS_HANDSHAKE_FAILURES_PER_IP", "5".into()),
            ("SOCKETS_HANDSHAKE_FAILURE_WINDOW_MS", "1500".into()),
        ])
        .unwrap();
        assert_eq!(builder.address, "0.0.0.0:9000");
        assert_eq!(builder.suites, vec![Suite::Aes256Gcm]);
        assert!(builder.allow_plaintext);
        assert_eq!(builder.config.heartbeat_interval, Duration::from_secs(1));
        assert_eq!(builder.config.heartbeat_timeout, Duration::from_secs(3));
        assert_eq!(builder.config.handshake_timeout, Duration::from_secs(2));
        assert_eq!(builder.config.max_frame, 65536);
        assert_eq!(builder.config.max_in_flight, 4);
        assert_eq!(builder.max_connections, 12);
        assert_eq!(builder.max_handshakes, 3);
        assert_eq!(builder.per_ip.max_handshakes, 2);
        assert_eq!(
            builder.per_ip.failures,
            Some(FailureLimit {
                count: 5,
                per: Duration::from_millis(1500)
            })
        );
        assert!(builder.secret.is_some());
    }

    #[test]
    fn per_address_limits_default_and_turn_off() {
        let secret = ("SOCKETS_SECRET", generate_key());
        let defaults = from(std::slice::from_ref(&secret)).unwrap();
        assert_eq!(defaults.per_ip, PerIpConfig::default());
        assert_eq!(defaults.per_ip.max_handshakes, 8);
        let off = from(&[
            secret.clone(),
            ("SOCKETS_MAX_HANDSHAKES_PER_IP", "0".into()),
            ("SOCKETS_HANDSHAKE_FAILURES_PER_IP", "0".into()),
        ])
        .unwrap();
        assert_eq!(off.per_ip.max_handshakes, 0);
        assert_eq!(off.per_ip.failures, None);
        let window_only = from(&[
            secret.clone(),
            ("SOCKETS_HANDSHAKE_FAILURE_WINDOW_MS", "2000".into()),
        ])
        .unwrap();
        assert_eq!(
            window_only.per_ip.failures,
            Some(FailureLimit {
                count: 10,
                per: Duration::from_secs(2)
            })
        );
        let zero_window = from(&[secret, ("SOCKETS_HANDSHAKE_FAILURE_WINDOW_MS", "0".into())]);
        assert!(zero_window.unwrap().validate_per_ip().is_err());
    }

    #[test]
    fn from_env_accepts_a_passphrase_with_its_salt() {
        let builder = from(&[
            ("SOCKETS_PASSPHRASE", "correct horse battery staple".into()),
            ("SOCKETS_SALT", "deployment-salt-0001".into()),
        ])
        .unwrap();
        assert!(builder.secret.is_some());
        let without_salt = from(&[("SOCKETS_PASSPHRASE", "correct horse".into())]);
        assert!(matches!(without_salt, Err(Error::Config(_))));
    }
}
