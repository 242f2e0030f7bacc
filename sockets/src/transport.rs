//! The WebSocket adapter: binary messages in and out. The only module that names tungstenite.
//!
//! Every handshake message and every sealed frame is exactly one binary
//! WebSocket message. A text message ends the connection as a protocol
//! error; WebSocket pings and pongs are answered by tungstenite and otherwise
//! ignored (they are unauthenticated, so nothing depends on them).
//!
//! The WebSocket message and frame limits are set to the crypto layer's
//! `max_frame` when the socket is created, so a peer that has not yet proved
//! the secret can make us buffer at most one such message.
//!
//! With the `tls` feature the WebSocket may run over TLS (`wss://`). The TLS
//! session's RFC 9266 exporter (`EXPORTER-Channel-Binding`, TLS 1.3 only) is
//! then handed to the handshake, which binds itself to that TLS session: a
//! relay between two different TLS sessions makes the handshake fail.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};

/// The read buffer each connection allocates up front. Small, because idle
/// connections are the common case; a frame larger than this is read in
/// several steps. Measured with 500 idle authenticated connections (client
/// and server in one process): about 42 KiB of RSS per client/server pair
/// with 4 KiB, 50 KiB with 8 KiB.
const READ_BUFFER: usize = 4 * 1024;

/// Bytes tungstenite collects before it writes to the socket on its own; a
/// batch is flushed explicitly anyway.
const WRITE_BUFFER: usize = 64 * 1024;

/// Why the WebSocket failed.
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
    /// The URL cannot be used.
    #[error("bad url: {0}")]
    BadUrl(String),
    /// The WebSocket layer reported another failure (bad upgrade, bad framing).
    #[error("websocket: {0}")]
    WebSocket(String),
}

impl From<tungstenite::Error> for TransportError {
    fn from(error: tungstenite::Error) -> Self {
        match error {
            tungstenite::Error::Io(e) => Self::Io(e),
            tungstenite::Error::Capacity(_) => Self::TooLarge,
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                Self::Io(std::io::ErrorKind::ConnectionReset.into())
            }
            other => Self::WebSocket(other.to_string()),
        }
    }
}

/// What the peer sent.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// One binary message.
    Binary(Bytes),
    /// The WebSocket ended: with the peer's close code and reason, or without a close frame.
    Closed(Option<(u16, String)>),
}

/// The byte stream under the WebSocket: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

type Stream = Box<dyn Io>;

/// The sending half.
pub(crate) struct Sender(SplitSink<WebSocketStream<Stream>, WsMessage>);

/// The receiving half.
pub(crate) struct Receiver(SplitStream<WebSocketStream<Stream>>);

/// A TLS session's channel-binding value (RFC 9266), when there is one.
pub(crate) type Exporter = Option<[u8; 32]>;

/// A server's TLS settings; empty without the `tls` feature or when unset.
#[derive(Clone, Default)]
pub(crate) struct ServerTls {
    #[cfg(feature = "tls")]
    pub(crate) acceptor: Option<tokio_rustls::TlsAcceptor>,
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

fn config(max_frame: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame))
}

/// Completes the server side of TLS (if configured) and of the WebSocket
/// upgrade on an accepted socket.
pub(crate) async fn accept(
    tcp: TcpStream,
    max_frame: usize,
    tls: &ServerTls,
) -> Result<(Sender, Receiver, Exporter), TransportError> {
    let _ = tcp.set_nodelay(true);
    let (stream, exporter): (Stream, Exporter) = match tls {
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
    let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config(max_frame))).await?;
    let (sink, stream) = ws.split();
    Ok((Sender(sink), Receiver(stream), exporter))
}

/// Opens a TCP connection to the host and port of `url`, runs TLS for a
/// `wss://` url, and upgrades it. Returns the halves, the server's address
/// and the TLS channel binding.
///
/// The client's WebSocket limit is the largest `mf` any server may announce
/// (docs/PROTOCOL.md §2): the server's actual `mf` arrives only in HS2, and
/// the session enforces it from then on.
pub(crate) async fn connect(
    url: &str,
    tls: &ClientTls,
) -> Result<(Sender, Receiver, std::net::SocketAddr, Exporter), TransportError> {
    let max_frame = crate::crypto::handshake::MAX_MAX_FRAME as usize;
    let request = url
        .into_client_request()
        .map_err(|e| TransportError::BadUrl(e.to_string()))?;
    let uri = request.uri();
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => {
            return Err(TransportError::BadUrl(
                "the url must be ws:// or wss://".into(),
            ));
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| TransportError::BadUrl("the url has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if secure {
        tls_ready(tls)?;
    }
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    let _ = tcp.set_nodelay(true);
    let addr = tcp.peer_addr()?;
    let (stream, exporter): (Stream, Exporter) = if secure {
        secure_stream(tcp, &host, tls).await?
    } else {
        (Box::new(tcp), None)
    };
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config(max_frame)))
            .await?;
    let (sink, stream) = ws.split();
    Ok((Sender(sink), Receiver(stream), addr, exporter))
}

#[cfg(feature = "tls")]
async fn secure_stream(
    tcp: TcpStream,
    host: &str,
    tls: &ClientTls,
) -> Result<(Stream, Exporter), TransportError> {
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

#[cfg(not(feature = "tls"))]
async fn secure_stream(
    _tcp: TcpStream,
    _host: &str,
    _tls: &ClientTls,
) -> Result<(Stream, Exporter), TransportError> {
    Err(TransportError::BadUrl(
        "wss:// needs the `tls` feature of sockets".into(),
    ))
}

impl Sender {
    /// Queues one binary message without flushing it.
    ///
    /// # Cancel safety
    /// Not cancel safe: the message may or may not have been queued.
    pub(crate) async fn feed(&mut self, message: Bytes) -> Result<(), TransportError> {
        Ok(self.0.feed(WsMessage::Binary(message)).await?)
    }

    /// Whether a message can be queued with [`Sender::start_send`] now.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.0.poll_ready_unpin(cx).map_err(Into::into)
    }

    /// Queues one binary message without flushing it; call after
    /// [`Sender::poll_ready`] returned ready.
    pub(crate) fn start_send(&mut self, message: Bytes) -> Result<(), TransportError> {
        Ok(self.0.start_send_unpin(WsMessage::Binary(message))?)
    }

    /// Writes everything queued to the socket.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Sink::poll_flush(Pin::new(&mut self.0), cx).map_err(Into::into)
    }

    /// Writes everything queued to the socket.
    pub(crate) async fn flush(&mut self) -> Result<(), TransportError> {
        Ok(self.0.flush().await?)
    }

    /// Sends one binary message and flushes.
    pub(crate) async fn send(&mut self, message: Bytes) -> Result<(), TransportError> {
        Ok(self.0.send(WsMessage::Binary(message)).await?)
    }

    /// Forgets the waker of the task that wrote last.
    ///
    /// The WebSocket keeps the waker of the last task that wrote to it until
    /// another write replaces it, and that waker keeps the writing task's
    /// memory alive. After set-up, that task (the caller of `connect`, or the
    /// server's admission task) is done with the socket, and an idle
    /// connection may not write again for a long time: swap its waker for
    /// one that does nothing. Only call this after a completed flush (nothing
    /// buffered): the flush it polls then completes at once.
    pub(crate) fn forget_waker(&mut self) {
        let mut context = Context::from_waker(Waker::noop());
        if let Poll::Ready(Err(error)) = Pin::new(&mut self.0).poll_flush(&mut context) {
            // The next write reports the failure to the writer.
            tracing::trace!(%error, "flush after set-up failed");
        }
    }

    /// Sends a WebSocket close with `code` and `reason`, and flushes.
    pub(crate) async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError> {
        let frame = CloseFrame {
            code: WsCloseCode::from(code),
            reason: reason.to_owned().into(),
        };
        self.0.send(WsMessage::Close(Some(frame))).await?;
        Ok(())
    }
}

impl Receiver {
    /// The next binary message, or how the WebSocket ended.
    ///
    /// # Errors
    /// [`TransportError::NotBinary`] for a text message; the others when the socket fails.
    ///
    /// # Cancel safety
    /// Cancel safe: a message is either returned or stays buffered.
    pub(crate) async fn recv(&mut self) -> Result<Incoming, TransportError> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next binary message, or how the WebSocket ended.
    ///
    /// # Errors
    /// As [`Receiver::recv`].
    pub(crate) fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Incoming, TransportError>> {
        loop {
            let Poll::Ready(next) = self.0.poll_next_unpin(cx) else {
                return Poll::Pending;
            };
            return Poll::Ready(match next {
                None => Ok(Incoming::Closed(None)),
                Some(Ok(WsMessage::Binary(bytes))) => Ok(Incoming::Binary(bytes)),
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                Some(Ok(WsMessage::Close(frame))) => {
                    Ok(Incoming::Closed(frame.map(|f| {
                        (u16::from(f.code), f.reason.as_str().to_owned())
                    })))
                }
                Some(Ok(WsMessage::Text(_) | WsMessage::Frame(_))) => {
                    Err(TransportError::NotBinary)
                }
                Some(Err(
                    tungstenite::Error::ConnectionClosed
                    | tungstenite::Error::AlreadyClosed
                    | tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                    ),
                )) => Ok(Incoming::Closed(None)),
                Some(Err(e)) => Err(e.into()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;

    /// A waker that does nothing; its reference count tells who holds it.
    struct Counted;

    impl Wake for Counted {
        fn wake(self: Arc<Self>) {}
    }

    #[tokio::test]
    async fn forget_waker_releases_the_last_writers_waker() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            accept(tcp, 1 << 16, &ServerTls::default()).await.unwrap()
        });
        let (mut sender, _receiver, _addr, _exporter) =
            connect(&url, &ClientTls::default()).await.unwrap();
        let (_server_sender, mut server_receiver, _) = server.await.unwrap();

        let counted = Arc::new(Counted);
        let waker = Waker::from(Arc::clone(&counted));
        let mut context = Context::from_waker(&waker);
        {
            let send = sender.send(Bytes::from_static(b"hello"));
            let mut send = std::pin::pin!(send);
            // A few bytes to a local socket: written at once.
            assert!(matches!(
                send.as_mut().poll(&mut context),
                Poll::Ready(Ok(()))
            ));
        }
        drop(waker);
        assert!(
            Arc::strong_count(&counted) > 1,
            "the websocket keeps the writer's waker"
        );
        sender.forget_waker();
        assert_eq!(Arc::strong_count(&counted), 1);

        // The socket still works.
        assert!(matches!(
            server_receiver.recv().await.unwrap(),
            Incoming::Binary(bytes) if bytes.as_ref() == b"hello"
        ));
        sender.send(Bytes::from_static(b"again")).await.unwrap();
        assert!(matches!(
            server_receiver.recv().await.unwrap(),
            Incoming::Binary(bytes) if bytes.as_ref() == b"again"
        ));
    }
}
