//! This framework: an echo service behind the full stack (handshake, auth,
//! AEAD frames or plaintext frames, MessagePack envelopes, correlation), over
//! WebSocket, length-prefixed TCP or a Unix socket.

use std::path::PathBuf;
use std::time::Duration;

use sockets::crypto::{Secret, Suite, generate_key};
use sockets::{AuthDecision, Blob, Client, Reconnect, Server};

use crate::BoxError;
use crate::drive::Rpc;

/// The benchmark's service.
#[sockets::service]
pub trait Bench {
    /// Returns its argument: binary data as a bulk service would take it,
    /// a [`Blob`] (received as a view of its message, not a copy).
    async fn echo(&self, payload: Blob) -> Blob;
}

struct Echo;

impl Bench for Echo {
    async fn echo(&self, payload: Blob) -> Blob {
        payload
    }
}

/// How frames are protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// AES-256-GCM frames.
    Aes,
    /// ChaCha20-Poly1305 frames.
    ChaCha,
    /// Unencrypted frames (the handshake still runs).
    Plaintext,
}

impl Protection {
    /// The target's name in results, after `sockets-` and the transport.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes => "aes-256-gcm",
            Self::ChaCha => "chacha20-poly1305",
            Self::Plaintext => "plaintext",
        }
    }

    fn suite(self) -> Suite {
        match self {
            Self::ChaCha => Suite::ChaCha20Poly1305,
            Self::Aes | Self::Plaintext => Suite::Aes256Gcm,
        }
    }
}

/// What carries the frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `ws://127.0.0.1:port/`
    Ws,
    /// `tcp://127.0.0.1:port`: length-prefixed frames (docs/PROTOCOL.md §2.1).
    Tcp,
    /// `unix:///tmp/…`: the same framing on a Unix domain socket.
    Unix,
}

/// A running server and what its clients need.
pub struct Target {
    server: Server,
    url: String,
    secret: Secret,
    protection: Protection,
}

/// A Unix socket path of this process, fresh for each call.
pub fn socket_path(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("{what}-{}-{n}.sock", std::process::id()))
}

/// Starts a server serving [`Bench`] on 127.0.0.1:0 (or a Unix socket),
/// accepting the token `bench`.
pub async fn start(transport: Transport, protection: Protection) -> Result<Target, BoxError> {
    let secret = Secret::from_base64(&generate_key())?;
    let address = match transport {
        Transport::Ws => "ws://127.0.0.1:0".to_owned(),
        Transport::Tcp => "tcp://127.0.0.1:0".to_owned(),
        Transport::Unix => format!("unix://{}", socket_path("sockets-bench").display()),
    };
    let server = Server::builder()
        .address(address)
        .secret(secret.clone())
        .suites([protection.suite()])
        .allow_plaintext(protection == Protection::Plaintext)
        .max_message(4 << 20)
        // Every benchmark client comes from one address, thousands at a time
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
    let url = server.url().ok_or("the server has no url")?;
    Ok(Target {
        server,
        url,
        secret,
        protection,
    })
}

impl Target {
    /// Stops the server (and removes its socket file).
    pub async fn shutdown(&self) {
        self.server.shutdown(Duration::from_secs(1)).await;
    }
}

/// A client and its typed handle.
pub struct Conn {
    client: Client,
    bench: BenchClient,
}

impl Rpc for Target {
    type Conn = Conn;
    type Payload = Blob;

    fn payload(size: usize) -> Blob {
        Blob::from(vec![0x5a; size])
    }

    async fn connect(&self) -> Result<Conn, BoxError> {
        let plaintext = self.protection == Protection::Plaintext;
        let client = Client::builder()
            .url(self.url.clone())
            .secret(self.secret.clone())
            .suite(self.protection.suite())
            .plaintext(plaintext)
            // Plaintext frames without TLS, on loopback: a benchmark, not a deployment.
            .plaintext_over_ws(plaintext)
            .max_message(4 << 20)
            .credentials("bench")
            .reconnect(Reconnect::disabled())
            .connect()
            .await?;
        let bench = BenchClient::new(client.peer());
        Ok(Conn { client, bench })
    }

    async fn call(conn: &Conn, payload: &Blob) -> Result<(), BoxError> {
        // A copy, as every other target makes its argument (a clone of a
        // `Vec<u8>` or `ByteBuf` there): a `Blob`'s clone would share it,
        // and W4 would measure the application's copy saved, not the runtime.
        let reply = conn.bench.echo(Blob::copy_from_slice(payload)).await?;
        if reply.len() == payload.len() {
            Ok(())
        } else {
            Err("echo of the wrong size".into())
        }
    }

    async fn close(conn: Conn) {
        conn.client.close().await;
    }

    /// Waits until the server has admitted every connection (no call: W5
    /// measures connections that are authenticated and idle).
    async fn settle(&self, conns: &[Conn]) -> Result<(), BoxError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.server.connections().len() < conns.len() {
            if tokio::time::Instant::now() > deadline {
                return Err("the server did not admit every connection".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}
