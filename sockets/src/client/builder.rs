//! Configuring a client.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};

use super::hooks::Hooks;
use super::{Client, Reconnect};
use crate::config::{ConnectionConfig, Vars, process_env};
use crate::crypto::{Mode, Secret, Suite};
use crate::describe::DescribeAccess;
use crate::descriptor::ServiceDescriptor;
use crate::dispatch::Services;
use crate::error::Error;
use crate::protocol::codec;
use crate::service::Peer;
use crate::transport::{ClientTls, Connector, Endpoint, Framing, Io, OpenStream, Url};

/// How long one connection's keys serve before the client renews them.
const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Configures a [`Client`] and connects it. See [`Client::builder`].
pub struct ClientBuilder {
    pub(super) url: String,
    /// How to reach the server, when it is not the url.
    pub(super) connector: Option<Connector>,
    /// More headers for a WebSocket upgrade request.
    pub(super) headers: Vec<(String, String)>,
    pub(super) secret: Option<Secret>,
    pub(super) suite: Option<Suite>,
    pub(super) mode: Mode,
    pub(super) plaintext_over_ws: bool,
    pub(super) credentials: Vec<u8>,
    pub(super) config: ConnectionConfig,
    pub(super) services: Services,
    pub(super) reconnect: Reconnect,
    pub(super) session_lifetime: Option<Duration>,
    pub(super) resume: bool,
    pub(super) hooks: Hooks,
    pub(super) tls: ClientTls,
    pub(super) describe: DescribeAccess,
    /// The services the server must serve compatibly, checked at connect.
    pub(super) expected: Vec<&'static ServiceDescriptor>,
    pub(super) error: Option<Error>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("secret", &self.secret)
            .field("suite", &self.suite)
            .field("mode", &self.mode)
            .field("reconnect", &self.reconnect)
            .field("resume", &self.resume)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            url: "ws://127.0.0.1:7878/".into(),
            connector: None,
            headers: Vec::new(),
            secret: None,
            suite: None,
            mode: Mode::Encrypted,
            plaintext_over_ws: false,
            // `()` encodes as nil: no credentials.
            credentials: vec![0xc0],
            config: ConnectionConfig::default(),
            services: Services::default(),
            reconnect: Reconnect::default(),
            session_lifetime: Some(DEFAULT_SESSION_LIFETIME),
            resume: true,
            hooks: Hooks::default(),
            tls: ClientTls::default(),
            describe: DescribeAccess::default(),
            expected: Vec::new(),
            error: None,
        }
    }
}

impl ClientBuilder {
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
        builder.url = match vars.get("SOCKETS_URL") {
            Some(url) => url,
            None => format!("ws://{}/", vars.address()?),
        };
        builder.suite = vars.cipher()?;
        if vars.flag("SOCKETS_PLAINTEXT")? == Some(true) {
            builder.mode = Mode::Plaintext;
        }
        if let Some(allow) = vars.flag("SOCKETS_PLAINTEXT_OVER_WS")? {
            builder.plaintext_over_ws = allow;
        }
        builder.config.apply_env(vars)?;
        if let Some(ms) = vars.parse::<u64>("SOCKETS_SESSION_LIFETIME_MS")? {
            builder.session_lifetime = (ms > 0).then(|| Duration::from_millis(ms));
        }
        Ok(builder)
    }

    /// The server's URL: `ws://host:port/path` (or `wss://` with the `tls`
    /// feature and `ClientBuilder::tls`) for a WebSocket, `tcp://host:port`
    /// for length-prefixed frames on raw TCP, `unix:///path` for a Unix
    /// domain socket. Default `ws://127.0.0.1:7878/`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Sends `name: value` with the WebSocket upgrade request, for a server
    /// (or a proxy in front of it) that checks a cookie or a bearer token
    /// there; the server's auth hook reads them in
    /// [`PeerInfo::headers`](crate::PeerInfo::headers). On `tcp://` and
    /// `unix://` there is no HTTP request, and they are not sent. Unlike
    /// credentials, headers travel before the handshake: in clear on `ws://`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        if crate::transport::http::valid_header(&name, &value) {
            self.headers.push((name, value));
        } else {
            self.error
                .get_or_insert(Error::Config(format!("`{name}` is not a valid header")));
        }
        self
    }

    /// Connects over `stream`, a byte stream the application opened (a
    /// socket through a proxy, one end of an in-process pipe): the client
    /// sends a WebSocket upgrade on it (for [`ClientBuilder::url`]'s host
    /// and path) and runs the handshake as usual. A stream can be used once:
    /// a client made this way does not reconnect when it ends.
    ///
    /// # Errors
    /// As [`ClientBuilder::connect`].
    pub async fn connect_with<S>(mut self, stream: S) -> Result<Client, Error>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let mut url = match Endpoint::parse(&self.url)? {
            Endpoint::WebSocket(url) => url,
            _ => Url::parse("ws://localhost/")?,
        };
        url.headers.clone_from(&self.headers);
        let stream: Box<dyn Io> = Box::new(stream);
        self.connector = Some(Connector::Stream(
            std::sync::Arc::new(std::sync::Mutex::new(Some(stream))),
            url,
        ));
        self.reconnect = Reconnect::disabled();
        Client::connect(self).await
    }

    /// Connects through `open`, which opens a new stream to the server for
    /// each connection, framed as `framing` (the in-process pairs of
    /// [`testing`](crate::testing)).
    pub(crate) fn open_with(mut self, open: OpenStream, framing: Framing) -> Self {
        self.connector = Some(Connector::Open(open, framing));
        self
    }

    /// The cipher suite. Default: AES-256-GCM where the CPU accelerates it, else ChaCha20-Poly1305.
    pub fn suite(mut self, suite: Suite) -> Self {
        self.suite = Some(suite);
        self
    }

    /// Plaintext mode: frames unencrypted (the server must allow it). The
    /// handshake still proves the secret. Needs a `wss://` url unless
    /// [`ClientBuilder::plaintext_over_ws`] says otherwise.
    pub fn plaintext(mut self, plaintext: bool) -> Self {
        self.mode = if plaintext {
            Mode::Plaintext
        } else {
            Mode::Encrypted
        };
        self
    }

    /// Allows plaintext mode on a `ws://` url, where nothing protects the
    /// frames: only for tests, or a socket you trust (loopback, a TLS
    /// terminator in front). Default: refused (docs/PROTOCOL.md §6.6).
    pub fn plaintext_over_ws(mut self, allow: bool) -> Self {
        self.plaintext_over_ws = allow;
        self
    }

    /// The rustls configuration (trusted roots, client certificate) for
    /// `wss://` urls. With TLS 1.3 the handshake is bound to the TLS session
    /// (RFC 9266 exporter).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: std::sync::Arc<tokio_rustls::rustls::ClientConfig>) -> Self {
        self.tls.connector = Some(tokio_rustls::TlsConnector::from(config));
        self
    }

    /// The credentials presented to the server's auth hook, sent only
    /// inside the encrypted channel after the server proved the secret.
    pub fn credentials<C: Serialize + ?Sized>(mut self, credentials: &C) -> Self {
        match codec::to_vec(credentials) {
            Ok(encoded) => self.credentials = encoded,
            Err(error) => {
                self.error.get_or_insert(error.into());
            }
        }
        self
    }

    /// Checks, right after authentication on every connection, that the
    /// server serves these services compatibly: it calls `sockets.describe`
    /// and compares the answer with these descriptors (usually
    /// `CalculatorClient::descriptor()`). A missing service or method, or a
    /// signature that breaks (docs/DESCRIPTOR.md §5), fails
    /// [`connect`](Self::connect) with [`Error::Incompatible`] listing each
    /// difference; a reconnect that finds one is a failed attempt. Methods
    /// and services the server adds are compatible.
    ///
    /// ```no_run
    /// # #[sockets::service] pub trait Calculator { async fn add(&self, a: i64, b: i64) -> i64; }
    /// # async fn run(secret: sockets::crypto::Secret) -> Result<(), sockets::Error> {
    /// let client = sockets::Client::builder()
    ///     .secret(secret)
    ///     .expect_services([CalculatorClient::descriptor()])
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn expect_services(
        mut self,
        services: impl IntoIterator<Item = &'static ServiceDescriptor>,
    ) -> Self {
        self.expected.extend(services);
        self
    }

    /// Serves every call and notification from the server that no service
    /// of this client serves with `service`, which gets the method's wire
    /// name and its encoded arguments: a generic listener (`sockets listen`)
    /// or a proxy. It is left out of `sockets.describe`.
    pub fn serve_fallback<S: crate::Service>(mut self, service: S) -> Self {
        self.services.set_fallback(std::sync::Arc::new(service));
        self
    }

    /// How to reconnect after the connection is lost, and whether
    /// [`connect`](Self::connect) retries too. Default: unlimited attempts
    /// after a loss; `connect` tries once; an auth rejection stops.
    pub fn reconnect(mut self, reconnect: Reconnect) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Asks the server to resume the session on each new connection (after
    /// a loss, or a renewal), so that the client keeps its server-side id,
    /// rooms and the notifications sent while it was away. Default `true`;
    /// the server decides (its resumption window).
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Runs `hook` on the first connection, once it is authenticated and
    /// before [`connect`](Self::connect) returns: with a [`Peer`] on that
    /// connection, to register or subscribe. An error fails `connect`.
    ///
    /// ```
    /// # #[sockets::service]
    /// # pub trait Feed { async fn subscribe(&self, topic: String) -> bool; }
    /// # let secret = sockets::crypto::Secret::from_key(&[7; 32]);
    /// let builder = sockets::Client::builder()
    ///     .secret(secret)
    ///     .on_connected(|peer| async move {
    ///         FeedClient::new(peer).subscribe("prices").await?;
    ///         Ok(())
    ///     });
    /// ```
    pub fn on_connected<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Peer) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.hooks.set_on_connected(hook);
        self
    }

    /// Runs `hook` on every later connection (after a loss, or a renewal),
    /// with a [`Peer`] on it and whether the server resumed the session,
    /// before the connection is published: calls that wait for a connection
    /// ([`CallOptions::wait_for_connection`](crate::CallOptions::wait_for_connection))
    /// go out only after it. `resumed == false` means a new session on the
    /// server: rebuild there what the old one had (subscriptions, rooms).
    /// An error drops the connection and counts as a failed attempt.
    pub fn on_reconnected<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Peer, bool) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.hooks.set_on_reconnected(hook);
        self
    }

    /// The longest a connection serves before the client renews it: a fresh
    /// handshake (new ephemeral keys) and authentication on a new connection,
    /// which takes over new calls while the old one finishes its pending calls
    /// and closes. Bounds what a stolen session key could ever decrypt.
    /// `None`: never renew. Default 24 h.
    pub fn session_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        // A lifetime past a century never ends in practice; keep the clock arithmetic finite.
        self.session_lifetime =
            lifetime.filter(|l| *l < Duration::from_secs(100 * 365 * 24 * 3600));
        self
    }

    /// Connects; resolves once the handshake and authentication are complete.
    ///
    /// # Errors
    /// [`Error::Config`], [`Error::Io`] (connect failed), [`Error::HandshakeFailed`]
    /// (the server does not know the secret; no credentials were sent),
    /// [`Error::HandshakeRefused`] (the server refused our settings, with
    /// its reason), [`Error::AuthRejected`], [`Error::Rejected`] (server
    /// full, or this address limited, with the server's reason),
    /// [`Error::Timeout`], or the error of the
    /// [`on_connected`](Self::on_connected) hook. With
    /// [`Reconnect::retry_first_connect`], the error of the last attempt.
    pub async fn connect(self) -> Result<Client, Error> {
        Client::connect(self).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::crypto::generate_key;

    fn from(vars: &[(&str, String)]) -> Result<ClientBuilder, Error> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let lookup = move |name: &str| map.get(name).cloned();
        ClientBuilder::from_vars(&Vars(&lookup))
    }

    #[test]
    fn from_env_requires_a_secret_and_builds_the_url() {
        assert!(matches!(from(&[]), Err(Error::Config(_))));
        let builder = from(&[
            ("SOCKETS_SECRET", generate_key()),
            ("SOCKETS_ADDR", "10.1.2.3".into()),
            ("SOCKETS_PORT", "4444".into()),
            ("SOCKETS_CIPHER", "chacha20-poly1305".into()),
            ("SOCKETS_CALL_TIMEOUT_MS", "250".into()),
            ("SOCKETS_SESSION_LIFETIME_MS", "0".into()),
        ])
        .unwrap();
        assert_eq!(builder.session_lifetime, None);
        assert_eq!(builder.url, "ws://10.1.2.3:4444/");
        assert_eq!(builder.suite, Some(Suite::ChaCha20Poly1305));
        assert_eq!(builder.mode, Mode::Encrypted);
        assert_eq!(builder.config.call_timeout, Duration::from_millis(250));
        let builder = from(&[
            ("SOCKETS_SECRET", generate_key()),
            ("SOCKETS_URL", "ws://example.invalid:1/".into()),
            ("SOCKETS_PLAINTEXT", "yes".into()),
        ])
        .unwrap();
        assert_eq!(builder.url, "ws://example.invalid:1/");
        assert_eq!(builder.mode, Mode::Plaintext);
        assert!(!builder.plaintext_over_ws);
    }
}
