//! The transport: binary messages in and out over a byte stream, knowing
//! nothing of what they carry.
//!
//! Every handshake message and every sealed frame is exactly one binary
//! message. [`Transport`] is what the layers above see; [`Framed`]
//! implements it over any byte stream with a [`Codec`]: our own RFC 6455
//! framing ([`ws`]) after an HTTP/1.1 upgrade ([`http`]), over TCP or, with
//! the `tls` feature, TLS over TCP; or length-prefixed frames ([`prefixed`])
//! over raw TCP, Unix domain sockets or an in-process pair.
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
mod prefixed;
mod queue;
#[cfg(unix)]
mod unix;
pub(crate) mod ws;

use std::future::{Future, poll_fn};
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::task::{Context, Poll, Waker, ready};
use tokio::net::TcpListener;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::error::Error;
use crate::identity::Headers;
use crate::protocol::Reason;
use tokio::net::TcpStream;

pub(crate) use http::HttpOptions;
use http::Request;
pub(crate) use http::Url;
use prefixed::Prefixed;
use queue::{MAX_SLICES, WriteQueue};
use ws::{Role, WebSocket, WsError};

/// The read buffer's first allocation, the most a read asks for beyond the
/// frame being received, and the size of the scratch buffer a read uses
/// when the buffer was let go ([`Transport::release_idle`]: idle
/// connections, the common case, hold no read buffer).
const READ_CHUNK: usize = 4 * 1024;

/// The least room a read is attempted with; below it, [`READ_CHUNK`] more is reserved.
const MIN_READ: usize = 1024;

/// The most a read takes beyond the end of the frame being received. A
/// read never runs far into the next frame: when the buffer must grow for a
/// large frame, the part of it already read is moved to the front of the
/// buffer, and that part is then at most this large rather than most of the
/// frame. A 1 MiB message found deep in a full buffer moved about half a MiB
/// each (4 % of W4's CPU; 1 % with this bound). A bound of 64 KiB moved less
/// still but cost 14 % more reads on W7's 1 KiB items, whose frames are
/// 64 KiB batches (`docs/figures/bench-read-ahead-ab.txt`).
const READ_AHEAD: usize = 256 * 1024;

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
            Self::Protocol(_) => Some(Reason::MalformedTransport),
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

/// One decoded unit of a framing, as far as [`Framed`] needs to know.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A whole binary message, in a buffer of its own: the session opens it
    /// in place.
    Binary(BytesMut),
    /// A ping to answer with this payload (WebSocket only).
    Ping(Bytes),
    /// A pong: nothing to do.
    Pong,
    /// The peer's close: its code and reason, if it gave them.
    Close(Option<(u16, String)>),
}

/// A framing of binary messages over a byte stream, sans-IO: bytes in,
/// frames out, and the other way round. [`ws::WebSocket`] (after an HTTP
/// upgrade) and [`prefixed::Prefixed`] (TCP, Unix sockets, in-process pairs)
/// implement it; [`Framed`] drives either over a stream.
pub(crate) trait Codec: Send + 'static {
    /// The framing's name, for logs and spans (`websocket`, `prefixed`).
    fn name(&self) -> &'static str;

    /// Decodes the next frame from the front of `buf`, consuming it.
    /// `Ok(None)`: more bytes are needed.
    ///
    /// # Errors
    /// The peer broke the framing or sent too much.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, TransportError>;

    /// How many bytes the buffer must hold for the frame being received,
    /// once its header is known (0 otherwise), so they are reserved at once.
    fn need(&self) -> usize;

    /// Appends a binary message.
    fn encode_binary(&mut self, message: Bytes, out: &mut WriteQueue);

    /// Appends a pong for a ping with `payload` (a framing without pings never asks).
    fn encode_pong(&mut self, payload: Bytes, out: &mut WriteQueue);

    /// Appends the framing's close, with `code` and `reason`.
    fn encode_close(&mut self, code: u16, reason: &str, out: &mut WriteQueue);

    /// The peer authenticated: accept messages up to `max_message`, and
    /// answer pings.
    fn authenticated(&mut self, max_message: usize);

    /// Whether pings are answered now.
    fn answers_pings(&self) -> bool;
}

/// What the peer sent.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// One binary message, in a buffer of its own (it shares its memory with
    /// the read buffer, but no other part of it): the session opens it in place.
    Binary(BytesMut),
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

    /// Lets the read buffer go if no frame is in progress, so that an idle
    /// connection holds none; the next read waits without one and makes a
    /// new one only when something arrives. The connection calls it when it
    /// starts and at each heartbeat wake, so a busy connection keeps its
    /// buffer (no allocation per message) and an idle one gives it back
    /// within a heartbeat interval. A large write buffer that nothing waits
    /// in is let go too.
    fn release_idle(&mut self);

    /// The framing's name, for logs and spans.
    fn name(&self) -> &'static str;
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
/// Reads into `buf`'s spare room, at most `limit` bytes.
fn poll_read(
    io: &mut dyn Io,
    buf: &mut BytesMut,
    limit: usize,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    let mut room = bytes::BufMut::limit(buf, limit);
    let read = pin!(io.read_buf(&mut room));
    read.poll(cx)
}

/// Binary messages over a byte stream, in a framing `C`.
pub(crate) struct Framed<C> {
    io: Box<dyn Io>,
    codec: C,
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

impl<C: std::fmt::Debug> std::fmt::Debug for Framed<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framed")
            .field("codec", &self.codec)
            .field("buffered", &self.read.len())
            .field("queued", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl<C: Codec> Framed<C> {
    /// Drives `codec` over `io`; `early` holds bytes already read from it.
    fn new(io: Box<dyn Io>, codec: C, early: BytesMut, gauge: Option<Gauge>) -> Self {
        let mut transport = Self {
            io,
            codec,
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
            self.codec.encode_pong(payload, &mut self.out);
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

    /// Reads with no read buffer (see [`Transport::release_idle`]): into a
    /// scratch buffer on the stack, so that waiting holds no memory; what
    /// arrived is copied into a new read buffer, which later reads fill as
    /// usual until the buffer is let go again.
    fn poll_read_without_buffer(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let mut scratch = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut scratch = tokio::io::ReadBuf::uninit(&mut scratch);
        ready!(Pin::new(&mut *self.io).poll_read(cx, &mut scratch))?;
        let read = scratch.filled();
        if !read.is_empty() {
            self.read = BytesMut::with_capacity(READ_CHUNK.max(read.len()));
            self.read.extend_from_slice(read);
            self.account();
        }
        Poll::Ready(Ok(read.len()))
    }
}

impl<C: Codec> Transport for Framed<C> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming, TransportError>> {
        loop {
            match self.codec.decode(&mut self.read)? {
                Some(Frame::Binary(message)) => return Poll::Ready(Ok(Incoming::Binary(message))),
                Some(Frame::Ping(payload)) => {
                    if self.codec.answers_pings() && !self.close_sent {
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
            let read = if self.read.capacity() == 0 {
                // The buffer was let go (`release_idle`): wait without one.
                ready!(self.poll_read_without_buffer(cx))
            } else {
                // The rest of the frame in progress (its size was checked
                // against the limit on its header), or a small chunk.
                // Messages are split off the front of the read buffer and
                // opened in place, so the buffer's memory is shared with
                // messages still in use: reserving when enough room is left
                // would move to a fresh allocation for every message.
                // Reserve only when the room left is too small for the
                // frame or for a useful read.
                let need = self.codec.need().saturating_sub(self.read.len());
                if self.read.capacity() - self.read.len() < need.max(MIN_READ) {
                    self.read.reserve(need.max(READ_CHUNK));
                }
                self.account();
                let limit = need.max(READ_AHEAD);
                ready!(poll_read(&mut *self.io, &mut self.read, limit, cx))
            };
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
        self.codec.encode_binary(message, &mut self.out);
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
        self.codec.encode_close(code, reason, &mut self.out);
        self.account();
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        ready!(self.poll_flush(cx))?;
        Poll::Ready(Ok(ready!(Pin::new(&mut *self.io).poll_shutdown(cx))?))
    }

    fn authenticated(&mut self, max_message: usize) {
        self.codec.authenticated(max_message);
        self.gauge = None;
    }

    fn release_idle(&mut self) {
        if self.read.is_empty() {
            self.read = BytesMut::new();
        }
        self.out.release();
        self.account();
    }

    fn name(&self) -> &'static str {
        self.codec.name()
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

/// How messages are framed on a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// An HTTP/1.1 upgrade, then WebSocket frames (`ws://`, `wss://`).
    WebSocket,
    /// WebSocket frames on a stream whose upgrade someone else answered (axum).
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    Upgraded,
    /// Length-prefixed frames (`tcp://`, `unix://`, in-process pairs).
    Prefixed,
}

/// Where a client connects, or a server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `ws://host:port/path` or `wss://…`.
    WebSocket(Url),
    /// `tcp://host:port`: length-prefixed frames on raw TCP.
    Tcp { host: String, port: u16 },
    /// `unix:///path`: length-prefixed frames on a Unix domain socket.
    Unix(std::path::PathBuf),
}

impl Endpoint {
    /// Parses `ws://`, `wss://`, `tcp://host:port` or `unix:///path`.
    ///
    /// # Errors
    /// [`TransportError::BadUrl`] with what is wrong.
    pub(crate) fn parse(url: &str) -> Result<Self, TransportError> {
        let bad = |why: &str| TransportError::BadUrl(why.to_owned());
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("the url must start with ws://, wss://, tcp:// or unix://"))?;
        match scheme.to_ascii_lowercase().as_str() {
            "ws" | "wss" => Ok(Self::WebSocket(Url::parse(url)?)),
            "tcp" => {
                let (host, port) = rest
                    .trim_end_matches('/')
                    .rsplit_once(':')
                    .ok_or_else(|| bad("a tcp:// url needs a port"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() {
                    return Err(bad("the url has no host"));
                }
                let port = port
                    .parse()
                    .map_err(|_| bad("the url's port is not a number"))?;
                Ok(Self::Tcp {
                    host: host.to_owned(),
                    port,
                })
            }
            "unix" if !rest.is_empty() => Ok(Self::Unix(rest.into())),
            "unix" => Err(bad("a unix:// url needs a path")),
            _ => Err(bad(
                "the url must start with ws://, wss://, tcp:// or unix://",
            )),
        }
    }

    /// A server's listening address: a url, or `host:port` for a WebSocket.
    ///
    /// # Errors
    /// As [`Endpoint::parse`].
    pub(crate) fn parse_listen(address: &str) -> Result<Self, TransportError> {
        if address.contains("://") {
            Self::parse(address)
        } else {
            Self::parse(&format!("ws://{address}/"))
        }
    }
}

/// An accepted stream, before it is known to be a session.
pub(crate) struct Conn {
    stream: ConnStream,
    framing: Framing,
    /// The upgrade request's headers, when someone else answered it.
    headers: Headers,
}

enum ConnStream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
    Io(Box<dyn Io>),
}

impl Conn {
    /// An accepted TCP stream, in `framing`.
    #[cfg(test)]
    pub(crate) fn tcp(tcp: TcpStream, framing: Framing) -> Self {
        Self {
            stream: ConnStream::Tcp(tcp),
            framing,
            headers: Headers::default(),
        }
    }

    /// A stream the application brought, in `framing`.
    pub(crate) fn io(io: Box<dyn Io>, framing: Framing) -> Self {
        Self {
            stream: ConnStream::Io(io),
            framing,
            headers: Headers::default(),
        }
    }

    /// A stream whose WebSocket upgrade someone else answered, with the
    /// upgrade request's headers.
    #[cfg(feature = "axum")]
    pub(crate) fn upgraded(io: Box<dyn Io>, headers: Headers) -> Self {
        Self {
            stream: ConnStream::Io(io),
            framing: Framing::Upgraded,
            headers,
        }
    }

    /// Tells the peer why it is refused, writing only what the socket takes
    /// at once (never waiting): an HTTP 503 on a WebSocket port, a close on a
    /// length-prefixed one. A TLS socket or a stream of the application's
    /// gets nothing (a reset).
    pub(crate) fn refuse_now(self, tls: &ServerTls, reason: &str) {
        let stream = match &self.stream {
            ConnStream::Tcp(tcp) => tcp,
            #[cfg(unix)]
            ConnStream::Unix(unix) => {
                let _ = unix.try_write(&prefixed_refusal(reason));
                return;
            }
            ConnStream::Io(_) => return,
        };
        match self.framing {
            Framing::WebSocket if !tls.is_on() => http::refuse_now(stream, reason),
            Framing::Prefixed => {
                let _ = stream.try_write(&prefixed_refusal(reason));
            }
            _ => {}
        }
    }
}

/// A preamble and a close 4007 with `reason`, as one write.
fn prefixed_refusal(reason: &str) -> Vec<u8> {
    let mut codec = Prefixed::new(0);
    let mut out = WriteQueue::default();
    codec.encode_close(4007, reason, &mut out);
    let mut bytes = Vec::with_capacity(out.len());
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    let count = out.slices(&mut slices);
    for slice in &slices[..count] {
        bytes.extend_from_slice(slice);
    }
    bytes
}

/// A server's listening socket.
pub(crate) enum Listener {
    /// TCP, with WebSocket or length-prefixed framing.
    Tcp(TcpListener, Framing),
    /// A Unix domain socket (length-prefixed framing), and its file.
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

impl Listener {
    /// Binds `address` (`host:port`, `ws://…`, `tcp://…` or `unix:///…`);
    /// a Unix socket file gets the permissions `unix_mode`.
    ///
    /// # Errors
    /// A bad address, or the bind failed.
    pub(crate) async fn bind(address: &str, unix_mode: u32) -> Result<Self, TransportError> {
        match Endpoint::parse_listen(address)? {
            Endpoint::WebSocket(url) => {
                if url.secure {
                    return Err(TransportError::BadUrl(
                        "a server listens on ws:// (TLS comes from ServerBuilder::tls)".into(),
                    ));
                }
                let listener = TcpListener::bind((url.host.as_str(), url.port)).await?;
                Ok(Self::Tcp(listener, Framing::WebSocket))
            }
            Endpoint::Tcp { host, port } => {
                let listener = TcpListener::bind((host.as_str(), port)).await?;
                Ok(Self::Tcp(listener, Framing::Prefixed))
            }
            #[cfg(unix)]
            Endpoint::Unix(path) => Ok(Self::Unix(unix::bind(&path, unix_mode).await?, path)),
            #[cfg(not(unix))]
            Endpoint::Unix(_) => {
                let _ = unix_mode;
                Err(TransportError::BadUrl(
                    "unix:// needs a Unix platform".into(),
                ))
            }
        }
    }

    /// The TCP address it listens on; `None` for a Unix socket.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(listener, _) => listener.local_addr().ok(),
            #[cfg(unix)]
            Self::Unix(..) => None,
        }
    }

    /// The url a client connects to.
    pub(crate) fn url(&self) -> String {
        match self {
            Self::Tcp(listener, framing) => {
                let addr = listener
                    .local_addr()
                    .map_or_else(|_| "?".into(), |addr| addr.to_string());
                match framing {
                    Framing::Prefixed => format!("tcp://{addr}"),
                    _ => format!("ws://{addr}/"),
                }
            }
            #[cfg(unix)]
            Self::Unix(_, path) => format!("unix://{}", path.display()),
        }
    }

    /// The next connection, and the peer's address if it has one.
    ///
    /// # Errors
    /// The accept failed (out of file descriptors, say).
    pub(crate) async fn accept(&self) -> std::io::Result<(Conn, Option<SocketAddr>)> {
        match self {
            Self::Tcp(listener, framing) => {
                let (tcp, addr) = listener.accept().await?;
                let _ = tcp.set_nodelay(true);
                let conn = Conn {
                    stream: ConnStream::Tcp(tcp),
                    framing: *framing,
                    headers: Headers::default(),
                };
                Ok((conn, Some(addr)))
            }
            #[cfg(unix)]
            Self::Unix(listener, _) => {
                let (unix, _) = listener.accept().await?;
                let conn = Conn {
                    stream: ConnStream::Unix(unix),
                    framing: Framing::Prefixed,
                    headers: Headers::default(),
                };
                Ok((conn, None))
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Self::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What came of an accepted stream.
pub(crate) enum Accepted {
    /// A transport, with the TLS channel binding if TLS is on, and the
    /// upgrade request's headers (empty on other transports).
    Upgraded(Box<dyn Transport>, Exporter, Headers),
    /// A plain HTTP request, answered with this status and closed.
    Answered(u16),
}

/// The server side of an accepted stream: TLS (if configured, for a
/// WebSocket on TCP), then the HTTP request answered with an upgrade or a
/// plain response, or straight to length-prefixed frames. Messages are
/// limited to `pre_auth_limit` bytes until [`Transport::authenticated`].
///
/// # Errors
/// I/O and TLS failures.
pub(crate) async fn accept(
    conn: Conn,
    tls: &ServerTls,
    options: &HttpOptions,
    pre_auth_limit: usize,
    mut gauge: Option<Gauge>,
) -> Result<Accepted, TransportError> {
    let Conn {
        stream,
        framing,
        mut headers,
    } = conn;
    let (mut io, exporter): (Box<dyn Io>, Exporter) = match stream {
        #[cfg(feature = "tls")]
        ConnStream::Tcp(tcp) if framing == Framing::WebSocket && tls.is_on() => {
            let Some(acceptor) = &tls.acceptor else {
                return Err(TransportError::Http("no TLS acceptor"));
            };
            let stream = acceptor.accept(tcp).await?;
            let exporter = exporter(stream.get_ref().1);
            (Box::new(stream), exporter)
        }
        ConnStream::Tcp(tcp) => (Box::new(tcp), None),
        #[cfg(unix)]
        ConnStream::Unix(unix) => (Box::new(unix), None),
        ConnStream::Io(io) => (io, None),
    };
    let _ = tls;
    let early = match framing {
        Framing::WebSocket => match http::serve(&mut *io, options, &mut gauge).await? {
            Request::Upgraded(request, early) => {
                headers = request;
                early
            }
            Request::Answered(status) => {
                let _ = poll_fn(|cx| Pin::new(&mut *io).poll_shutdown(cx)).await;
                return Ok(Accepted::Answered(status));
            }
        },
        Framing::Upgraded | Framing::Prefixed => BytesMut::new(),
    };
    let transport: Box<dyn Transport> = match framing {
        Framing::Prefixed => Box::new(Framed::new(io, Prefixed::new(pre_auth_limit), early, gauge)),
        Framing::WebSocket | Framing::Upgraded => {
            let codec = WebSocket::new(Role::Server, pre_auth_limit);
            Box::new(Framed::new(io, codec, early, gauge))
        }
    };
    Ok(Accepted::Upgraded(transport, exporter, headers))
}

/// Refuses an accepted stream with `code` and `reason` in the transport's
/// close: after the upgrade, for a WebSocket (how browsers can read a
/// reason). Plain HTTP requests get their plain answer instead.
pub(crate) async fn refuse(
    conn: Conn,
    tls: &ServerTls,
    options: &HttpOptions,
    code: u16,
    reason: &str,
) {
    // Nothing is read after the upgrade: the smallest limit will do.
    if let Ok(Accepted::Upgraded(mut transport, ..)) = accept(conn, tls, options, 0, None).await {
        let _ = transport.close(code, reason).await;
    }
}

/// How a client reaches its server.
#[derive(Clone)]
pub(crate) enum Connector {
    /// A url, connected to afresh each time.
    Endpoint(Endpoint),
    /// A stream the application connected, for the first connection only
    /// (`ClientBuilder::connect_with`), carrying a WebSocket upgrade to `url`.
    Stream(Arc<std::sync::Mutex<Option<Box<dyn Io>>>>, Url),
    /// A function that opens a new stream each time (the in-process pairs of
    /// `sockets::testing`), in the given framing.
    Open(OpenStream, Framing),
}

/// Opens a stream to the server, for [`Connector::Open`].
pub(crate) type OpenStream = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = std::io::Result<Box<dyn Io>>> + Send>> + Send + Sync,
>;

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Endpoint(endpoint) => write!(f, "{endpoint:?}"),
            Self::Stream(..) => f.write_str("a stream of the application"),
            Self::Open(..) => f.write_str("an in-process stream"),
        }
    }
}

impl Connector {
    /// Whether frames travel in clear on the way: plaintext mode is refused
    /// on such a connector unless the client allows it explicitly.
    pub(crate) fn unprotected(&self) -> bool {
        match self {
            Self::Endpoint(Endpoint::WebSocket(url)) => !url.secure,
            Self::Endpoint(Endpoint::Tcp { .. }) => true,
            Self::Stream(..) => true,
            Self::Endpoint(Endpoint::Unix(_)) | Self::Open(..) => false,
        }
    }
}

/// Connects: TCP (with TLS for `wss://`) and the upgrade, raw TCP, a Unix
/// socket, or the connector's own stream. Returns the transport, the
/// server's address if it has one, and the TLS channel binding. Messages are
/// limited to `pre_auth_limit` bytes until [`Transport::authenticated`].
///
/// # Errors
/// [`TransportError::BadUrl`], I/O and TLS failures, a refused or invalid upgrade.
pub(crate) async fn connect(
    connector: &Connector,
    tls: &ClientTls,
    pre_auth_limit: usize,
) -> Result<(Box<dyn Transport>, Option<SocketAddr>, Exporter), TransportError> {
    let prefixed = |io: Box<dyn Io>| -> Box<dyn Transport> {
        Box::new(Framed::new(
            io,
            Prefixed::new(pre_auth_limit),
            BytesMut::new(),
            None,
        ))
    };
    match connector {
        Connector::Endpoint(Endpoint::WebSocket(url)) => {
            if url.secure {
                tls_ready(tls)?;
            }
            let tcp = TcpStream::connect((url.host.as_str(), url.port)).await?;
            let _ = tcp.set_nodelay(true);
            let addr = tcp.peer_addr()?;
            let (io, exporter): (Box<dyn Io>, Exporter) = if url.secure {
                secure_stream(tcp, &url.host, tls).await?
            } else {
                (Box::new(tcp), None)
            };
            let transport = upgrade(io, url, pre_auth_limit).await?;
            Ok((transport, Some(addr), exporter))
        }
        Connector::Endpoint(Endpoint::Tcp { host, port }) => {
            let tcp = TcpStream::connect((host.as_str(), *port)).await?;
            let _ = tcp.set_nodelay(true);
            let addr = tcp.peer_addr()?;
            Ok((prefixed(Box::new(tcp)), Some(addr), None))
        }
        #[cfg(unix)]
        Connector::Endpoint(Endpoint::Unix(path)) => {
            let unix = tokio::net::UnixStream::connect(path).await?;
            Ok((prefixed(Box::new(unix)), None, None))
        }
        #[cfg(not(unix))]
        Connector::Endpoint(Endpoint::Unix(_)) => Err(TransportError::BadUrl(
            "unix:// needs a Unix platform".into(),
        )),
        Connector::Stream(stream, url) => {
            let io = stream
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotConnected,
                        "the stream given to connect_with is used up: a client on it cannot reconnect",
                    )
                })?;
            Ok((upgrade(io, url, pre_auth_limit).await?, None, None))
        }
        Connector::Open(open, framing) => {
            let io = open().await?;
            let transport = match framing {
                Framing::Prefixed => prefixed(io),
                _ => {
                    let url = Url::parse("ws://localhost/")?;
                    upgrade(io, &url, pre_auth_limit).await?
                }
            };
            Ok((transport, None, None))
        }
    }
}

/// The client side of a WebSocket upgrade on `io`.
async fn upgrade(
    mut io: Box<dyn Io>,
    url: &Url,
    pre_auth_limit: usize,
) -> Result<Box<dyn Transport>, TransportError> {
    let early = http::upgrade(&mut *io, url).await?;
    let codec = WebSocket::new(Role::Client, pre_auth_limit);
    Ok(Box::new(Framed::new(io, codec, early, None)))
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let total = Arc::new(PreAuthBytes::default());
        let gauge = Gauge::new(Arc::clone(&total));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            match accept(
                Conn::tcp(tcp, Framing::WebSocket),
                &ServerTls::default(),
                &HttpOptions::default(),
                LIMIT,
                Some(gauge),
            )
            .await
            {
                Ok(Accepted::Upgraded(transport, ..)) => transport,
                _ => panic!("an upgrade"),
            }
        });
        let connector = Connector::Endpoint(Endpoint::parse(&url).unwrap());
        let (client, _, _) = connect(&connector, &ClientTls::default(), LIMIT)
            .await
            .unwrap();
        (server.await.unwrap(), client, total)
    }

    #[tokio::test]
    async fn a_read_goes_at_most_a_bounded_way_past_the_frame_being_received() {
        // Messages already waiting on the socket: large ones and small ones.
        let (ours, mut theirs) = tokio::io::duplex(2 << 20);
        let sizes = [600_000, 300_000, 100_000, 10, 400_000];
        let mut wire = prefixed::PREAMBLE.to_vec();
        for (i, size) in sizes.into_iter().enumerate() {
            wire.extend_from_slice(&u32::try_from(size).unwrap().to_be_bytes());
            wire.extend(std::iter::repeat_n(i as u8, size));
        }
        theirs.write_all(&wire).await.unwrap();
        // A buffer with room for all of them, as one grown by earlier
        // messages has.
        let room = BytesMut::with_capacity(2 << 20);
        let mut framed = Framed::new(Box::new(ours), Prefixed::new(1 << 20), room, None);
        for (i, size) in sizes.into_iter().enumerate() {
            match poll_fn(|cx| framed.poll_recv(cx)).await {
                Ok(Incoming::Binary(message)) => {
                    assert_eq!(message.len(), size);
                    assert!(message.iter().all(|byte| usize::from(*byte) == i));
                }
                other => panic!("message {i}: {other:?}"),
            }
            // Little was read past the message's end, however much room the
            // buffer had: a large frame's start never lies deep in a full
            // buffer, with most of the frame read.
            let ahead = framed.read.len();
            assert!(
                ahead <= READ_AHEAD,
                "{ahead} bytes read ahead after message {i}"
            );
        }
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

    /// Whether one poll of `transport` for the next message waits.
    async fn waiting(transport: &mut dyn Transport) -> bool {
        poll_fn(|cx| Poll::Ready(transport.poll_recv(cx).is_pending())).await
    }

    #[tokio::test]
    async fn an_idle_connection_lets_its_read_buffer_go_and_reads_on_without_one() {
        // The server's side reports what it holds to the gauge.
        let (mut server, mut client, total) = pair().await;
        // Small messages, then one larger than a read without a buffer takes.
        for len in [300, 300, 60 * 1024] {
            let message = Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>());
            let (sent, received) = tokio::join!(client.send(message.clone()), server.recv());
            sent.unwrap();
            assert!(matches!(received.unwrap(), Incoming::Binary(m) if m == message));
            // Busy: the buffer stays for the next message.
            assert!(waiting(&mut *server).await);
            if len < READ_CHUNK {
                assert!(total.now() > 0, "the buffer the message was read into");
            }
            // Idle: let go, and waiting again allocates nothing.
            server.release_idle();
            assert_eq!(total.now(), 0);
            assert!(waiting(&mut *server).await);
            assert_eq!(total.now(), 0, "after a {len}-byte message");
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepting = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            match accept(
                Conn::tcp(tcp, Framing::WebSocket),
                &ServerTls::default(),
                &HttpOptions::default(),
                LIMIT,
                None,
            )
            .await
            {
                Ok(Accepted::Upgraded(transport, ..)) => transport,
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

#[cfg(test)]
mod fuzz {
    use bytes::{BufMut, Bytes, BytesMut};
    use proptest::prelude::*;

    use super::prefixed::{PREAMBLE, Prefixed};
    use super::queue::WriteQueue;
    use super::ws::{Role, WebSocket};
    use super::{Codec, Frame, TransportError};

    const LIMIT: usize = 4096;

    fn codecs() -> Vec<(&'static str, Box<dyn Codec>)> {
        vec![
            ("websocket", Box::new(WebSocket::new(Role::Server, LIMIT))),
            ("prefixed", Box::new(Prefixed::new(LIMIT))),
        ]
    }

    /// A valid stream for each codec: the preamble (prefixed), three messages
    /// and a close, as a client of that framing sends them.
    fn valid_streams(payloads: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut client_ws = WebSocket::new(Role::Client, LIMIT);
        let mut client_prefixed = Prefixed::new(LIMIT);
        let mut out = Vec::new();
        for codec in [&mut client_ws as &mut dyn Codec, &mut client_prefixed] {
            let mut queue = WriteQueue::default();
            for payload in payloads {
                codec.encode_binary(Bytes::from(payload.clone()), &mut queue);
            }
            codec.encode_close(1000, "bye", &mut queue);
            out.push(queue.to_vec());
        }
        out
    }

    /// Feeds `bytes` in pieces of the given sizes; what came out, and whether
    /// it ended in an error. Checks on the way that the codec never asks
    /// for more than a frame at the limit.
    fn feed(
        codec: &mut dyn Codec,
        bytes: &[u8],
        cuts: &[usize],
    ) -> (Vec<Frame>, Option<TransportError>) {
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut at = 0;
        let mut cut = cuts.iter().cycle();
        while at < bytes.len() {
            let take = (*cut.next().unwrap_or(&1)).min(bytes.len() - at);
            buf.put_slice(&bytes[at..at + take]);
            at += take;
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(error) => return (frames, Some(error)),
                }
                assert!(codec.need() <= LIMIT + 14 + PREAMBLE.len());
            }
            assert!(
                codec.need() <= LIMIT + 14 + PREAMBLE.len(),
                "asks for {}",
                codec.need()
            );
        }
        (frames, None)
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_never_ask_past_the_limit(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            cuts in proptest::collection::vec(1usize..200, 1..16),
        ) {
            for (_, mut codec) in codecs() {
                let (frames, _) = feed(&mut *codec, &bytes, &cuts);
                for frame in frames {
                    if let Frame::Binary(message) = frame {
                        prop_assert!(message.len() <= LIMIT);
                    }
                }
            }
        }

        #[test]
        fn valid_streams_in_any_pieces_decode_whole_and_mutations_are_caught_or_harmless(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..600), 1..4),
            cuts in proptest::collection::vec(1usize..300, 1..16),
            flip in any::<usize>(),
            bit in 0u8..8,
        ) {
            let streams = valid_streams(&payloads);
            for ((name, mut codec), stream) in codecs().into_iter().zip(&streams) {
                let (frames, error) = feed(&mut *codec, stream, &cuts);
                prop_assert!(error.is_none(), "{name}: {error:?}");
                let messages: Vec<Vec<u8>> = frames
                    .iter()
                    .filter_map(|f| match f {
                        Frame::Binary(m) => Some(m.to_vec()),
                        _ => None,
                    })
                    .collect();
                prop_assert_eq!(&messages, &payloads);
                prop_assert_eq!(frames.last(), Some(&Frame::Close(Some((1000, "bye".into())))));
            }
            // One bit flipped anywhere: an error, or frames within the limit.
            for ((_, mut codec), stream) in codecs().into_iter().zip(&streams) {
                let mut stream = stream.clone();
                let at = flip % stream.len();
                stream[at] ^= 1 << bit;
                let (frames, _) = feed(&mut *codec, &stream, &cuts);
                for frame in frames {
                    if let Frame::Binary(message) = frame {
                        prop_assert!(message.len() <= LIMIT);
                    }
                }
            }
        }
    }
}
