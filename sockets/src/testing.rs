//! Testing a service without sockets: a server and any number of clients in
//! one process, connected by in-memory pipes.
//!
//! Nothing else is faked: every connection runs the real handshake, frames,
//! authentication, dispatch, heartbeats and timeouts (on tokio's clock, so
//! `#[tokio::test(start_paused = true)]` runs a 30 s timeout at once). No
//! port is bound and no file is created, so tests need no network and cannot
//! collide. A client reconnects as it would over a network: each connection
//! is a fresh pipe.
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

use std::sync::Arc;

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
        Ok(Self { server, secret })
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
        let open: OpenStream = Arc::new(move || {
            let server = server.clone();
            Box::pin(async move {
                let (near, far) = tokio::io::duplex(PIPE);
                server.serve_stream(Box::new(far), Framing::Prefixed, None);
                Ok(Box::new(near) as Box<dyn Io>)
            })
        });
        ClientBuilder::default()
            .secret(self.secret.clone())
            .open_with(open, Framing::Prefixed)
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
