//! This framework: an echo service behind the full stack (handshake, auth,
//! AEAD frames or plaintext frames, MessagePack envelopes, correlation).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_bytes::ByteBuf;
use sockets::crypto::{Secret, Suite, generate_key};
use sockets::{AuthDecision, Client, Reconnect, Server};

use crate::BoxError;

/// The benchmark's service.
#[sockets::service]
pub trait Bench {
    /// Returns its argument.
    async fn echo(&self, payload: ByteBuf) -> ByteBuf;
}

struct Echo;

impl Bench for Echo {
    async fn echo(&self, payload: ByteBuf) -> ByteBuf {
        payload
    }
}

/// How frames are protected.
#[derive(Clone, Copy, Debug)]
pub enum Protection {
    /// AES-256-GCM frames.
    Aes,
    /// ChaCha20-Poly1305 frames.
    ChaCha,
    /// Unencrypted frames (the handshake still runs).
    Plaintext,
}

impl Protection {
    /// The target's name in results.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes => "sockets-aes-256-gcm",
            Self::ChaCha => "sockets-chacha20-poly1305",
            Self::Plaintext => "sockets-plaintext",
        }
    }

    fn suite(self) -> Suite {
        match self {
            Self::ChaCha => Suite::ChaCha20Poly1305,
            Self::Aes | Self::Plaintext => Suite::Aes256Gcm,
        }
    }
}

/// A running server and what its clients need.
pub struct Target {
    pub server: Server,
    connector: Connector,
}

/// What a client needs to connect; cheap to clone into a task.
#[derive(Clone)]
pub struct Connector {
    url: String,
    secret: Secret,
    protection: Protection,
}

/// Starts a server on 127.0.0.1:0 serving [`Bench`], accepting the token `bench`.
pub async fn start(protection: Protection) -> Result<Target, BoxError> {
    let secret = Secret::from_base64(&generate_key())?;
    let server = Server::builder()
        .address("127.0.0.1:0")
        .secret(secret.clone())
        .suites([protection.suite()])
        .allow_plaintext(matches!(protection, Protection::Plaintext))
        .max_message(4 << 20)
        // Every benchmark client comes from 127.0.0.1, thousands at a time
        // (W5, W6): the per-address admission limits would refuse them.
        .max_handshakes_per_ip(0)
        .handshake_failures_per_ip(0, Duration::from_secs(60))
        .serve(BenchServer::new(Echo))
        .auth(|token: String, _peer| async move {
            if token == "bench" {
                AuthDecision::accept(token)
            } else {
                AuthDecision::reject("unknown token")
            }
        })
        .start()
        .await?;
    let connector = Connector {
        url: format!("ws://{}/", server.local_addr()),
        secret,
        protection,
    };
    Ok(Target { server, connector })
}

impl Target {
    /// Connects and authenticates one client.
    pub async fn connect(&self) -> Result<Client, BoxError> {
        self.connector.connect().await
    }

    /// A connector for tasks of their own.
    pub fn connector(&self) -> Connector {
        self.connector.clone()
    }
}

impl Connector {
    /// Connects and authenticates one client.
    pub async fn connect(&self) -> Result<Client, BoxError> {
        Ok(Client::builder()
            .url(self.url.clone())
            .secret(self.secret.clone())
            .suite(self.protection.suite())
            .plaintext(matches!(self.protection, Protection::Plaintext))
            // Plaintext frames over ws:// on 127.0.0.1: a benchmark, not a deployment.
            .plaintext_over_ws(matches!(self.protection, Protection::Plaintext))
            .max_message(4 << 20)
            .credentials("bench")
            .reconnect(Reconnect::disabled())
            .connect()
            .await?)
    }
}

/// One call, checked.
pub async fn round_trip(client: &BenchClient, payload: &ByteBuf) -> Result<(), BoxError> {
    let reply = client.echo(payload.clone()).await?;
    if reply.len() == payload.len() {
        Ok(())
    } else {
        Err("echo of the wrong size".into())
    }
}

/// Keeps `in_flight` calls outstanding until `stop`, then drains; returns the replies.
pub async fn pipeline(
    client: &BenchClient,
    payload: &ByteBuf,
    in_flight: usize,
    stop: Instant,
) -> Result<u64, BoxError> {
    let mut pending: FuturesUnordered<_> = (0..in_flight)
        .map(|_| round_trip(client, payload))
        .collect();
    let mut done = 0u64;
    while let Some(outcome) = pending.next().await {
        outcome?;
        done += 1;
        if Instant::now() < stop {
            pending.push(round_trip(client, payload));
        }
    }
    Ok(done)
}
