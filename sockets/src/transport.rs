//! The transport: binary messages in and out over a byte stream, knowing
//! nothing of what they carry.
//!
//! Every handshake message and every sealed frame is exactly one binary
//! message. [`Transport`] is what the layers above see; [`WebSocketTransport`]
//! implements it with our own RFC 6455 framing ([`ws`]) after an HTTP/1.1
//! upgrade ([`http`]), over TCP or, with the `tls` feature, TLS over TCP.
//!
//! A transport starts **unauthenticated**: it accepts messages only up to
//! the small limit its owner gives (the largest AUTH frame, which also
//! bounds HS1 and HS2), answers no WebSocket ping and tolerates only a few
//! ([`ws::PRE_AUTH_CONTROL_FRAMES`]). Once the session is authenticated, the
//! owner raises the limit to the session's frame limit
//! ([`Transport::authenticated`]) and pings are answered, one pong at a time.
//! So a peer that has proved nothing can make the server hold at most one
//! 64 KiB message and a request head, whatever it sends, and nothing it
//! sends makes the server write without bound.
//!
//! With TLS, the session's RFC 9266 exporter (`EXPORTER-Channel-Binding`,
//! TLS 1.3 only) is handed to the handshake, which binds itself to that TLS
//! session: a relay between two different TLS sessions makes the handshake fail.

pub(crate) mod http;
mod queue;
pub(crate) mod ws;

use std::future::{Future, poll_fn};
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker, ready};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::error::Error;
use crate::protocol::Reason;
use tokio::net::TcpStream;

pub(crate) use http::HttpOptions;
use http::{Request, Url};
use queue::{MAX_SLICES, WriteQueue};
use ws::{Frame, Role, WebSocket, WsError};

/// The read buffer's first allocation, and the most a read asks for beyond
/// the frame being received. Small, because idle connections are the common
/// case. Measured with 500 idle authenticated connections (client and server
/// in one process): about 42 KiB of RSS per client/server pair with 4 KiB,
/// 50 KiB with 8 KiB.
const READ_CHUNK: usize = 4 * 1024;

/// Bytes queued for writing before [`Transport::poll_ready`] asks the sender
/// to wait for the socket.
const WRITE_HIGH_WATER: usize = 64 * 1024;

/// Why the transport failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent a text (or otherwise non-binary) message.
    #[error("the peer sent a non-binary websocket message")]
    NotBinary,
    /// The peer sent a message larger than the limit.
    #[error("the peer sent a websocket message over the size limit")]
    TooLarge,
    /// The peer sent too many pings before authentication.
    #[error("too many websocket pings before authentication")]
    TooManyControlFrames,
    /// The peer broke the WebSocket framing rules.
    #[error("websocket framing: {0}")]
    Protocol(&'static str),
    /// The URL cannot be used.
    #[error("bad url: {0}")]
    BadUrl(String),
    /// The HTTP upgrade failed.
    #[error("websocket upgrade: {0}")]
    Http(&'static str),
    /// The server answered the upgrade with another HTTP status.
    #[error("the server refused the upgrade with HTTP {status}: {reason}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The response's body: the server's reason.
        reason: String,
    },
}

impl TransportError {
    /// The close reason a peer that caused this error is told, if it is the
    /// peer's doing and the socket still works.
    pub(crate) fn reason(&self) -> Option<Reason> {
        match self {
            Self::NotBinary => Some(Reason::NonBinary),
            Self::TooLarge => Some(Reason::FrameTooLarge),
            Self::TooManyControlFrames => Some(Reason::TooManyPings),
            Self::Protocol(_) => Some(Reason::MalformedWebSocket),
            _ => None,
        }
    }
}

impl From<TransportError> for Error {
    /// What a client reports when its transport fails while connecting.
    fn from(error: TransportError) -> Self {
        match error {
            TransportError::Io(e) => Error::Io(e),
            TransportError::BadUrl(e) => Error::Config(e),
            // The server turned us away before the upgrade (it is full, or
            // this address is limited), with its reason.
            TransportError::Refused {
                status: 503,
                reason,
            } => Error::Rejected(reason),
            other @ (TransportError::Refused { .. } | TransportError::Http(_)) => {
                Error::Io(std::io::Error::other(other.to_string()))
            }
            other => Error::Protocol(other.to_string()),
        }
    }
}

impl From<WsError> for TransportError {
    fn from(error: WsError) -> Self {
        match error {
            WsError::TooLarge => Self::TooLarge,
            WsError::NotBinary => Self::NotBinary,
            WsError::TooManyControlFrames => Self::TooManyControlFrames,
            WsError::Protocol(what) => Self::Protocol(what),
        }
    }
}

/// What the peer sent.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// One binary message.
    Binary(Bytes),
    /// The transport ended: with the peer's close code and reason, or without them.
    Closed(Option<(u16, String)>),
}

/// The byte stream under a transport: TCP, or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A TLS session's channel-binding value (RFC 9266), when there is one.
pub(crate) type Exporter = Option<[u8; 32]>;

/// An ordered, reliable transport of binary messages, as the connection
/// sees it. Driven by one task: nothing here is shared between tasks.
pub(crate) trait Transport: Send {
    /// The next message, or how the transport ended.
    ///
    /// # Errors
    /// The peer broke the framing, sent too much, or the socket failed.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming, TransportError>>;

    /// Ready when a message may be queued with [`Transport::start_send`]:
    /// writes out what is queued while too much is.
    ///
    /// # Errors
    /// The socket failed.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>>;

    /// Queues a message, without writing it yet.
    fn start_send(&mut self, message: Bytes);

    /// Writes everything queued to the socket.
    ///
    /// # Errors
    /// The socket failed.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>>;

    /// Something the transport itself queued (a pong, the answer to a
    /// close) waits to be flushed.
    fn wants_flush(&self) -> bool;

    /// Queues the transport's own close, with `code` and `reason` where it
    /// can carry them; nothing is sent after it.
    fn start_close(&mut self, code: u16, reason: &str);

    /// Writes everything queued, then ends our direction of the stream.
    ///
    /// # Errors
    /// The socket failed.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>>;

    /// The session is authenticated: accept messages up to `max_message`
    /// from now on, and answer pings.
    fn authenticated(&mut self, max_message: usize);
}

impl dyn Transport + '_ {
    /// The next message, or how the transport ended.
    ///
    /// # Errors
    /// As [`Transport::poll_recv`].
    ///
    /// # Cancel safety
    /// Cancel safe: a message is either returned or stays buffered.
    pub(crate) async fn recv(&mut self) -> Result<Incoming, TransportError> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Queues one message and writes everything out.
    ///
    /// # Errors
    /// The socket failed.
    pub(crate) async fn send(&mut self, message: Bytes) -> Result<(), TransportError> {
        poll_fn(|cx| self.poll_ready(cx)).await?;
        self.start_send(message);
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Closes with `code` and `reason` and ends our direction of the stream.
    ///
    /// # Errors
    /// The socket failed.
    pub(crate) async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError> {
        self.start_close(code, reason);
        poll_fn(|cx| self.poll_shutdown(cx)).await
    }

    /// Closes with `code` and `reason` as far as the socket takes it right
    /// now, without waiting: for a peer whose time is up. A peer that does
    /// not read gets nothing more.
    pub(crate) fn close_now(&mut self, code: u16, reason: &str) {
        self.start_close(code, reason);
        let mut cx = Context::from_waker(Waker::noop());
        let _ = self.poll_shutdown(&mut cx);
    }
}

/// The bytes that connections before authentication hold in their transport
/// buffers, all together, and the most they ever held: what an
/// unauthenticated peer can make a server allocate.
#[derive(Debug, Default)]
pub(crate) struct PreAuthBytes {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl PreAuthBytes {
    /// Bytes held now.
    pub(crate) fn now(&self) -> usize {
        self.now.load(Ordering::Relaxed)
    }

    /// The most ever held at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

/// One transport's share of [`PreAuthBytes`]; gives it back when dropped.
#[derive(Debug)]
pub(crate) struct Gauge {
    total: Arc<PreAuthBytes>,
    mine: usize,
}

impl Gauge {
    pub(crate) fn new(total: Arc<PreAuthBytes>) -> Self {
        Self { total, mine: 0 }
    }

    fn set(&mut self, bytes: usize) {
        if bytes > self.mine {
            let now = self
                .total
                .now
                .fetch_add(bytes - self.mine, Ordering::Relaxed);
            self.total
                .peak
                .fetch_max(now + bytes - self.mine, Ordering::Relaxed);
        } else {
            self.total
                .now
                .fetch_sub(self.mine - bytes, Ordering::Relaxed);
        }
        self.mine = bytes;
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.set(0);
    }
}

/// Reads once into `buf`'s spare capacity.
fn poll_read(
    io: &mut dyn Io,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    let read = pin!(io.read_buf(buf));
    read.poll(cx)
}

/// Binary messages over a WebSocket.
pub(crate) struct WebSocketTransport {
    io: Box<dyn Io>,
    ws: WebSocket,
    read: BytesMut,
    out: WriteQueue,
    /// A ping to answer; a newer ping replaces it, so one pong at most waits.
    pong: Option<Bytes>,
    /// Our close frame is queued: nothing else may follow it.
    close_sent: bool,
    /// The stream ended.
    eof: bool,
    /// This transport's share of the server's pre-authentication bytes.
    gauge: Option<Gauge>,
}

impl std::fmt::Debug for WebSocketTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketTransport")
            .field("ws", &self.ws)
            .field("buffered", &self.read.len())
            .field("queued", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl WebSocketTransport {
    fn new(
        io: Box<dyn Io>,
        role: Role,
        early: BytesMut,
        pre_auth_limit: usize,
        gauge: Option<Gauge>,
    ) -> Self {
        let mut transport = Self {
            io,
            ws: WebSocket::new(role, pre_auth_limit),
            read: early,
            out: WriteQueue::default(),
            pong: None,
            close_sent: false,
            eof: false,
            gauge,
        };
        transport.account();
        transport
    }

    /// Reports the memory held to the gauge, before authentication.
    fn account(&mut self) {
        if let Some(gauge) = &mut self.gauge {
            gauge.set(self.read.capacity() + self.out.allocated());
        }
    }

    /// Writes what is queued (and the pending pong) until done or blocked.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        if let Some(payload) = self.pong.take() {
            self.ws.encode_pong(payload, &mut self.out);
        }
        while !self.out.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = self.out.slices(&mut slices);
            let written = ready!(Pin::new(&mut *self.io).poll_write_vectored(cx, &slices[..count]));
            let written = written?;
            if written == 0 {
                return Poll::Ready(Err(
                    std::io::Error::from(std::io::ErrorKind::WriteZero).into()
                ));
            }
            self.out.advance(written);
        }
        self.account();
        Poll::Ready(Ok(()))
    }
}

impl Transport for WebSocketTransport {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming, TransportError>> {
        loop {
            match self.ws.decode(&mut self.read)? {
                Some(Frame::Binary(message)) => return Poll::Ready(Ok(Incoming::Binary(message))),
                Some(Frame::Ping(payload)) => {
                    if self.ws.answers_pings() && !self.close_sent {
                        self.pong = Some(payload);
                        // Written with the next flush; the owner is woken for it.
                        cx.waker().wake_by_ref();
                    }
                    continue;
                }
                Some(Frame::Pong) => continue,
                Some(Frame::Close(frame)) => {
                    // Answer the close (RFC 6455 §5.5.1) with the next flush.
                    let code = frame.as_ref().map_or(1000, |(code, _)| *code);
                    self.start_close(code, "");
                    return Poll::Ready(Ok(Incoming::Closed(frame)));
                }
                None => {}
            }
            if self.eof {
                return Poll::Ready(Ok(Incoming::Closed(None)));
            }
            // The rest of the frame in progress (its size was checked against
            // the limit on its header), or a small chunk.
            let need = self.ws.need().saturating_sub(self.read.len());
            self.read.reserve(need.max(READ_CHUNK));
            self.account();
            let read = ready!(poll_read(&mut *self.io, &mut self.read, cx));
            match read {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                    self.eof = true;
                }
                Err(error) => return Poll::Ready(Err(error.into())),
            }
        }
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        if self.out.len() >= WRITE_HIGH_WATER {
            // Make room; a peer that does not read keeps us waiting here.
            let _ = self.poll_write_out(cx)?;
            if self.out.len() >= WRITE_HIGH_WATER {
                return Poll::Pending;
            }
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(&mut self, message: Bytes) {
        if self.close_sent {
            return;
        }
        self.ws.encode_binary(message, &mut self.out);
        self.account();
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        ready!(self.poll_write_out(cx))?;
        Poll::Ready(Ok(ready!(Pin::new(&mut *self.io).poll_flush(cx))?))
    }

    fn wants_flush(&self) -> bool {
        self.pong.is_some() || !self.out.is_empty()
    }

    fn start_close(&mut self, code: u16, reason: &str) {
        if std::mem::replace(&mut self.close_sent, true) {
            return;
        }
        self.pong = None;
        // RFC 6455 §7.4: some codes may not be sent; 1000 stands in for them.
        let code = match code {
            1000..=1003 | 1007..=1011 | 3000..=4999 => code,
            _ => 1000,
        };
        self.ws.encode_close(code, reason, &mut self.out);
        self.account();
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        ready!(self.poll_flush(cx))?;
        Poll::Ready(Ok(ready!(Pin::new(&mut *self.io).poll_shutdown(cx))?))
    }

    fn authenticated(&mut self, max_message: usize) {
        self.ws.authenticated(max_message);
        self.gauge = None;
    }
}

/// A server's TLS settings; empty without the `tls` feature or when unset.
#[derive(Clone, Default)]
pub(crate) struct ServerTls {
    #[cfg(feature = "tls")]
    pub(crate) acceptor: Option<tokio_rustls::TlsAcceptor>,
}

impl ServerTls {
    /// Whether connections are TLS.
    pub(crate) fn is_on(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.acceptor.is_some() {
            return true;
        }
        false
    }
}

/// A client's TLS settings; empty without the `tls` feature or when unset.
#[derive(Clone, Default)]
pub(crate) struct ClientTls {
    #[cfg(feature = "tls")]
    pub(crate) connector: Option<tokio_rustls::TlsConnector>,
}

/// RFC 9266 `tls-exporter`: defined for TLS 1.3 only; `None` for older versions.
#[cfg(feature = "tls")]
fn exporter<D>(connection: &tokio_rustls::rustls::ConnectionCommon<D>) -> Exporter {
    use tokio_rustls::rustls::ProtocolVersion;
    if connection.protocol_version() != Some(ProtocolVersion::TLSv1_3) {
        return None;
    }
    connection
        .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
        .ok()
}

/// What came of an accepted socket.
pub(crate) enum Accepted {
    /// A WebSocket, with the TLS channel binding if TLS is on.
    Upgraded(Box<dyn Transport>, Exporter),
    /// A plain HTTP request, answered with this status and closed.
    Answered(u16),
}

/// The server side of an accepted socket: TLS (if configured), then the
/// HTTP request, answered with an upgrade or a plain response. Messages are
/// limited to `pre_auth_limit` bytes until [`Transport::authenticated`].
///
/// # Errors
/// I/O and TLS failures.
pub(crate) async fn accept(
    tcp: TcpStream,
    tls: &ServerTls,
    options: &HttpOptions,
    pre_auth_limit: usize,
    mut gauge: Option<Gauge>,
) -> Result<Accepted, TransportError> {
    let _ = tcp.set_nodelay(true);
    let (mut io, exporter): (Box<dyn Io>, Exporter) = match tls {
        #[cfg(feature = "tls")]
        ServerTls {
            acceptor: Some(acceptor),
        } => {
            let stream = acceptor.accept(tcp).await?;
            let exporter = exporter(stream.get_ref().1);
            (Box::new(stream), exporter)
        }
        _ => (Box::new(tcp), None),
    };
    match http::serve(&mut *io, options, &mut gauge).await? {
        Request::Upgraded(early) => {
            let transport = WebSocketTransport::new(io, Role::Server, early, pre_auth_limit, gauge);
            Ok(Accepted::Upgraded(Box::new(transport), exporter))
        }
        Request::Answered(status) => {
            let _ = poll_fn(|cx| Pin::new(&mut *io).poll_shutdown(cx)).await;
            Ok(Accepted::Answered(status))
        }
    }
}

/// Refuses an accepted socket with `code` and `reason` in a WebSocket close,
/// after the upgrade (how browsers can read a reason). Plain HTTP requests
/// get their plain answer instead.
pub(crate) async fn refuse(
    tcp: TcpStream,
    tls: &ServerTls,
    options: &HttpOptions,
    code: u16,
    reason: &str,
) {
    // Nothing is read after the upgrade: the smallest limit will do.
    if let Ok(Accepted::Upgraded(mut transport, _)) = accept(tcp, tls, options, 0, None).await {
        let _ = transport.close(code, reason).await;
    }
}

pub(crate) use http::refuse_now;

/// Connects to `url`: TCP, TLS for `wss://`, the upgrade. Returns the
/// transport, the server's address and the TLS channel binding. Messages
/// are limited to `pre_auth_limit` bytes until [`Transport::authenticated`].
///
/// # Errors
/// [`TransportError::BadUrl`], I/O and TLS failures, a refused or invalid upgrade.
pub(crate) async fn connect(
    url: &str,
    tls: &ClientTls,
    pre_auth_limit: usize,
) -> Result<(Box<dyn Transport>, SocketAddr, Exporter), TransportError> {
    let url = Url::parse(url)?;
    if url.secure {
        tls_ready(tls)?;
    }
    let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
    let _ = tcp.set_nodelay(true);
    let addr = tcp.peer_addr()?;
    let (mut io, exporter): (Box<dyn Io>, Exporter) = if url.secure {
        secure_stream(tcp, &url.host, tls).await?
    } else {
        (Box::new(tcp), None)
    };
    let early = http::upgrade(&mut *io, &url).await?;
    let transport = WebSocketTransport::new(io, Role::Client, early, pre_auth_limit, None);
    Ok((Box::new(transport), addr, exporter))
}

#[cfg(feature = "tls")]
async fn secure_stream(
    tcp: TcpStream,
    host: &str,
    tls: &ClientTls,
) -> Result<(Box<dyn Io>, Exporter), TransportError> {
    use tokio_rustls::rustls::pki_types::ServerName;
    let Some(connector) = &tls.connector else {
        return Err(TransportError::BadUrl(
            "a wss:// url needs a TLS configuration (ClientBuilder::tls)".into(),
        ));
    };
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| TransportError::BadUrl("the url's host is not a valid TLS name".into()))?;
    let stream = connector.connect(name, tcp).await?;
    let exporter = exporter(stream.get_ref().1);
    Ok((Box::new(stream), exporter))
}

#[cfg(not(feature = "tls"))]
async fn secure_stream(
    _tcp: TcpStream,
    _host: &str,
    _tls: &ClientTls,
) -> Result<(Box<dyn Io>, Exporter), TransportError> {
    Err(TransportError::BadUrl(
        "wss:// needs the `tls` feature of sockets".into(),
    ))
}

/// Whether `wss://` can be used: checked before connecting.
fn tls_ready(tls: &ClientTls) -> Result<(), TransportError> {
    #[cfg(feature = "tls")]
    if tls.connector.is_some() {
        return Ok(());
    }
    let _ = tls;
    Err(TransportError::BadUrl(if cfg!(feature = "tls") {
        "a wss:// url needs a TLS configuration (ClientBuilder::tls)".into()
    } else {
        "wss:// needs the `tls` feature of sockets".into()
    }))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// The limit before authentication in these tests.
    const LIMIT: usize = 64 * 1024;

    /// A server and a client transport over a loopback socket.
    async fn pair() -> (Box<dyn Transport>, Box<dyn Transport>, Arc<PreAuthBytes>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let total = Arc::new(PreAuthBytes::default());
        let gauge = Gauge::new(Arc::clone(&total));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            match accept(
                tcp,
                &ServerTls::default(),
                &HttpOptions::default(),
                LIMIT,
                Some(gauge),
            )
            .await
            {
                Ok(Accepted::Upgraded(transport, _)) => transport,
                _ => panic!("an upgrade"),
            }
        });
        let (client, _, _) = connect(&url, &ClientTls::default(), LIMIT).await.unwrap();
        (server.await.unwrap(), client, total)
    }

    #[tokio::test]
    async fn messages_cross_in_both_directions_at_every_size() {
        let (mut server, mut client, _) = pair().await;
        server.authenticated(1 << 21);
        client.authenticated(1 << 21);
        for len in [0, 1, 125, 126, 4096, 65536, 1 << 20, 2 << 20] {
            let message = Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>());
            let (sent, received) = tokio::join!(client.send(message.clone()), server.recv());
            sent.unwrap();
            assert!(matches!(received.unwrap(), Incoming::Binary(m) if m == message));
            let (sent, received) = tokio::join!(server.send(message.clone()), client.recv());
            sent.unwrap();
            assert!(matches!(received.unwrap(), Incoming::Binary(m) if m == message));
        }
    }

    #[tokio::test]
    async fn a_close_is_answered_and_reported_with_its_reason() {
        let (mut server, mut client, _) = pair().await;
        let (closed, received) = tokio::join!(server.close(4007, "busy"), client.recv());
        closed.unwrap();
        assert!(matches!(received.unwrap(), Incoming::Closed(Some((4007, r))) if r == "busy"));
        // The client answered; the server sees the answer, then the end.
        poll_fn(|cx| client.poll_shutdown(cx)).await.unwrap();
        assert!(matches!(
            server.recv().await.unwrap(),
            Incoming::Closed(Some((4007, _)))
        ));
    }

    #[tokio::test]
    async fn before_authentication_the_limit_is_small_and_counted() {
        let (mut server, mut client, total) = pair().await;
        client.authenticated(1 << 20);
        let big = Bytes::from(vec![0u8; LIMIT + 1]);
        let (sent, received) = tokio::join!(client.send(big.clone()), server.recv());
        sent.unwrap();
        assert!(matches!(received, Err(TransportError::TooLarge)));
        assert!(
            total.peak() < LIMIT,
            "refused on its header: {}",
            total.peak()
        );
        drop(server);
        assert_eq!(total.now(), 0);
    }

    #[tokio::test]
    async fn pings_are_answered_only_after_authentication() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepting = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            match accept(
                tcp,
                &ServerTls::default(),
                &HttpOptions::default(),
                LIMIT,
                None,
            )
            .await
            {
                Ok(Accepted::Upgraded(transport, _)) => transport,
                _ => panic!("an upgrade"),
            }
        });
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let url = Url::parse(&format!("ws://{addr}/")).unwrap();
        let early = http::upgrade(&mut tcp, &url).await.unwrap();
        assert!(early.is_empty());
        let mut server = accepting.await.unwrap();
        // A masked ping "hi", then a masked binary "x".
        let ping = [0x89, 0x82, 0, 0, 0, 0, b'h', b'i'];
        let binary = [0x82, 0x81, 0, 0, 0, 0, b'x'];
        tcp.write_all(&ping).await.unwrap();
        tcp.write_all(&binary).await.unwrap();
        assert!(matches!(server.recv().await.unwrap(), Incoming::Binary(m) if &m[..] == b"x"));
        assert!(!server.wants_flush(), "no pong before authentication");
        server.authenticated(1 << 20);
        tcp.write_all(&ping).await.unwrap();
        tcp.write_all(&ping).await.unwrap();
        tcp.write_all(&binary).await.unwrap();
        assert!(matches!(server.recv().await.unwrap(), Incoming::Binary(_)));
        assert!(server.wants_flush());
        poll_fn(|cx| server.poll_flush(cx)).await.unwrap();
        // One pong for the two pings: the newest replaced the older.
        let mut pong = [0u8; 4];
        tcp.read_exact(&mut pong).await.unwrap();
        assert_eq!(pong, [0x8a, 0x02, b'h', b'i']);
        server.close_now(1000, "");
        let mut rest = Vec::new();
        tcp.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, [0x88, 0x02, 0x03, 0xe8], "only the close followed");
    }
}
