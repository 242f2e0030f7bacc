//! Testing a service without sockets: a server and any number of clients in
//! one process, connected by in-memory pipes.
//!
//! Nothing else is faked: every connection runs the real handshake, frames,
//! authentication, dispatch, heartbeats and timeouts (on tokio's clock, so
//! `#[tokio::test(start_paused = true)]` runs a 30 s timeout at once). No
//! port is bound and no file is created, so tests need no network and cannot
//! collide. A client reconnects as it would over a network: each connection
//! is a fresh pipe, and [`Harness::cut_connections`] fails every pipe open
//! at once, as a network failure would: the way to test what an
//! application does when its clients reconnect or resume their sessions.
//!
//! ```
//! use sockets::testing::Harness;
//! use sockets::{AuthDecision, Server};
//!
//! #[sockets::service]
//! pub trait Greeter {
//!     async fn greet(&self, name: String) -> String;
//! }
//!
//! struct Hello;
//!
//! impl Greeter for Hello {
//!     async fn greet(&self, name: String) -> String {
//!         format!("hello, {name}")
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sockets::Error> {
//! let harness = Harness::new(
//!     Server::builder()
//!         .serve(GreeterServer::new(Hello))
//!         .auth(|user: String, _peer| async move { AuthDecision::accept(user) }),
//! )?;
//! let client = harness.client().credentials("ada").connect().await?;
//! let greeter = GreeterClient::new(client.peer());
//! assert_eq!(greeter.greet("ada").await?, "hello, ada");
//! # Ok(()) }
//! ```
//!
//! To call one handler directly, without any connection, give it a context
//! from [`Context::builder`](crate::Context::builder) (re-exported here as
//! [`context`]).

use std::sync::{Arc, Mutex};

use tokio::task::AbortHandle;

use crate::client::ClientBuilder;
use crate::crypto::{Secret, generate_key};
use crate::error::Error;
use crate::server::{Server, ServerBuilder};
use crate::service::{Context, ContextBuilder};
use crate::transport::{Framing, Io, OpenStream};

/// Bytes a pipe holds in each direction before the writer waits: enough for
/// a batch of small calls, small enough to exercise back-pressure.
const PIPE: usize = 256 * 1024;

/// A server that listens on nothing, and clients connected to it in memory.
#[derive(Clone, Debug)]
pub struct Harness {
    server: Server,
    secret: Secret,
    /// The relay of every pipe made so far, to cut them.
    links: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Harness {
    /// Builds the server `builder` describes, without a listener. If it has
    /// no secret, a fresh random one is used, and its clients get it.
    ///
    /// # Errors
    /// As [`ServerBuilder::build`].
    pub fn new(builder: ServerBuilder) -> Result<Self, Error> {
        let secret = match builder.secret.clone() {
            Some(secret) => secret,
            None => Secret::from_base64(&generate_key())
                .map_err(|e| Error::Config(format!("a test secret: {e}")))?,
        };
        let server = builder.secret(secret.clone()).build()?;
        Ok(Self {
            server,
            secret,
            links: Arc::default(),
        })
    }

    /// The server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// A client builder with the server's secret whose connections are
    /// in-memory pipes to this server; configure it further (credentials,
    /// services, timeouts) and `connect`.
    pub fn client(&self) -> ClientBuilder {
        let server = self.server.clone();
        let links = Arc::clone(&self.links);
        let open: OpenStream = Arc::new(move || {
            let server = server.clone();
            let links = Arc::clone(&links);
            Box::pin(async move {
                // client ⇄ relay ⇄ server: the relay is what a cut stops.
                let (near, mut relay_near) = tokio::io::duplex(PIPE);
                let (mut relay_far, far) = tokio::io::duplex(PIPE);
                let relay = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut relay_near, &mut relay_far).await;
                });
                {
                    let mut links = links.lock().unwrap_or_else(|p| p.into_inner());
                    links.retain(|link| !link.is_finished());
                    links.push(relay.abort_handle());
                }
                server.serve_stream(Box::new(far), Framing::Prefixed, None);
                Ok(Box::new(near) as Box<dyn Io>)
            })
        });
        ClientBuilder::default()
            .secret(self.secret.clone())
            .open_with(open, Framing::Prefixed)
    }
}

impl Harness {
    /// Fails every connection open now, as a network failure would: no
    /// close reaches either side, both see the connection lost. Clients
    /// reconnect by their policy and resume their sessions if the server
    /// still keeps them. Returns how many connections were cut.
    pub fn cut_connections(&self) -> usize {
        let links = std::mem::take(&mut *self.links.lock().unwrap_or_else(|p| p.into_inner()));
        links
            .into_iter()
            .filter(|link| !link.is_finished())
            .map(|link| link.abort())
            .count()
    }
}

/// A context for calling a handler directly in a unit test; see
/// [`ContextBuilder`] for what it holds by default.
///
/// ```
/// let cx = sockets::testing::context().meta("ada".to_owned()).build();
/// assert_eq!(cx.meta::<String>().map(String::as_str), Some("ada"));
/// ```
pub fn context() -> ContextBuilder {
    Context::builder()
}
