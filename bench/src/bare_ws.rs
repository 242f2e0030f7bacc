//! The ceiling of the WebSocket targets: a bare tokio-tungstenite binary
//! echo, no RPC layer, no crypto; and the same echo over TLS 1.3
//! (`bare-wss-echo`, rustls with *ring*: X25519, an ECDSA P-256 certificate,
//! AES-256-GCM records), what a standard secure WebSocket costs.
//!
//! It is written to be as fast as we know how, so ratios against it are not
//! flattered: TCP_NODELAY, the same WebSocket buffer sizes as the runtime's
//! transport, and batched writes on both sides (feed every message that is
//! ready, flush once when nothing more is queued).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector, client};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::BoxError;
use crate::drive::Ceiling;

/// The runtime's transport settings (sockets/src/transport.rs): 4 KiB read
/// buffer, 64 KiB write buffer. The message limit is raised to fit W4's 1 MiB
/// payload in one message.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(64 * 1024)
        .max_message_size(Some(2 << 20))
        .max_frame_size(Some(2 << 20))
}

/// A byte stream a WebSocket runs on: TCP, or TLS on TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A running echo server, plain or over TLS.
pub struct Echo<T> {
    addr: SocketAddr,
    /// Connections whose WebSocket upgrade completed.
    accepted: Arc<AtomicUsize>,
    /// What a client needs for TLS (`Tls`), or nothing (`Plain`).
    tls: T,
    task: tokio::task::JoinHandle<()>,
}

impl<T> Drop for Echo<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// No TLS.
pub struct Plain;

/// The client side of TLS: a connector trusting the server's certificate.
pub struct Tls(TlsConnector);

/// Starts the echo server on 127.0.0.1:0.
pub async fn start() -> Result<Echo<Plain>, BoxError> {
    listen(None, Plain).await
}

/// Starts the echo server on 127.0.0.1:0 behind TLS 1.3, with a fresh
/// self-signed certificate for `localhost`.
pub async fn start_tls() -> Result<Echo<Tls>, BoxError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;
    let mut roots = RootCertStore::empty();
    roots.add(cert)?;
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Every connection a full handshake, as every one of ours is.
    client.resumption = Resumption::disabled();
    let acceptor = TlsAcceptor::from(Arc::new(server));
    listen(Some(acceptor), Tls(TlsConnector::from(Arc::new(client)))).await
}

async fn listen<T>(acceptor: Option<TlsAcceptor>, tls: T) -> Result<Echo<T>, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let io: Box<dyn Io> = match acceptor {
                    None => Box::new(tcp),
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(tls) => Box::new(tls),
                        Err(_) => return,
                    },
                };
                if let Ok(ws) =
                    tokio_tungstenite::accept_async_with_config(io, Some(config())).await
                {
                    counter.fetch_add(1, Ordering::Relaxed);
                    let _ = serve(ws).await;
                }
            });
        }
    });
    Ok(Echo {
        addr,
        accepted,
        tls,
        task,
    })
}

/// Echoes every binary message, feeding all that are ready before one flush.
async fn serve<S: Io>(mut ws: WebSocketStream<S>) -> Result<(), BoxError> {
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_binary() {
            ws.feed(message).await?;
        }
        while let Some(Some(message)) = ws.next().now_or_never() {
            let message = message?;
            if message.is_binary() {
                ws.feed(message).await?;
            }
        }
        // Also sends tungstenite's reply to a close.
        ws.flush().await?;
    }
    Ok(())
}

async fn upgrade<S: Io>(addr: SocketAddr, io: S) -> Result<WebSocketStream<S>, BoxError> {
    let url = format!("ws://{addr}/");
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, io, Some(config())).await?;
    Ok(ws)
}

async fn tcp(addr: SocketAddr) -> Result<TcpStream, BoxError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

async fn round_trip<S: Io>(ws: &mut WebSocketStream<S>, payload: &Bytes) -> Result<(), BoxError> {
    ws.send(Message::Binary(payload.clone())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(reply))) if reply.len() == payload.len() => return Ok(()),
            Some(Ok(Message::Binary(_))) => return Err("echo of the wrong size".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Err("the echo server went away".into()),
        }
    }
}

async fn pipeline<S: Io>(
    ws: &mut WebSocketStream<S>,
    payload: &Bytes,
    in_flight: usize,
    stop: Instant,
) -> Result<u64, BoxError> {
    for _ in 0..in_flight {
        ws.feed(Message::Binary(payload.clone())).await?;
    }
    ws.flush().await?;
    let mut outstanding = in_flight;
    let mut done = 0u64;
    while outstanding > 0 {
        let mut replies = match ws.next().await {
            Some(Ok(message)) => usize::from(message.is_binary()),
            Some(Err(e)) => return Err(e.into()),
            None => return Err("the echo server went away".into()),
        };
        while let Some(Some(message)) = ws.next().now_or_never() {
            replies += usize::from(message?.is_binary());
        }
        outstanding -= replies;
        done += replies as u64;
        if Instant::now() < stop && replies > 0 {
            for _ in 0..replies {
                ws.feed(Message::Binary(payload.clone())).await?;
            }
            ws.flush().await?;
            outstanding += replies;
        }
    }
    Ok(done)
}

/// Closes and waits for the server's close.
async fn close<S: Io>(mut ws: WebSocketStream<S>) -> Result<(), BoxError> {
    ws.close(None).await?;
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = ws.next() => match next {
                None | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => continue,
            },
            () = &mut deadline => return Err("the close was not answered".into()),
        }
    }
}

impl Ceiling for Echo<Plain> {
    type Stream = WebSocketStream<TcpStream>;

    async fn connect(&self) -> Result<Self::Stream, BoxError> {
        upgrade(self.addr, tcp(self.addr).await?).await
    }

    async fn round_trip(ws: &mut Self::Stream, payload: &Bytes) -> Result<(), BoxError> {
        round_trip(ws, payload).await
    }

    async fn pipeline(
        ws: &mut Self::Stream,
        payload: &Bytes,
        in_flight: usize,
        stop: Instant,
    ) -> Result<u64, BoxError> {
        pipeline(ws, payload, in_flight, stop).await
    }

    async fn close(ws: Self::Stream) -> Result<(), BoxError> {
        close(ws).await
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Ceiling for Echo<Tls> {
    type Stream = WebSocketStream<client::TlsStream<TcpStream>>;

    /// TCP, a full TLS 1.3 handshake (no resumption), then the upgrade.
    async fn connect(&self) -> Result<Self::Stream, BoxError> {
        let name = ServerName::try_from("localhost")?;
        let tls = self.tls.0.connect(name, tcp(self.addr).await?).await?;
        upgrade(self.addr, tls).await
    }

    async fn round_trip(ws: &mut Self::Stream, payload: &Bytes) -> Result<(), BoxError> {
        round_trip(ws, payload).await
    }

    async fn pipeline(
        ws: &mut Self::Stream,
        payload: &Bytes,
        in_flight: usize,
        stop: Instant,
    ) -> Result<u64, BoxError> {
        pipeline(ws, payload, in_flight, stop).await
    }

    async fn close(ws: Self::Stream) -> Result<(), BoxError> {
        close(ws).await
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}
