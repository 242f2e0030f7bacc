//! A peer that speaks the protocol by hand — the crypto layer, the codec and
//! tungstenite, no runtime — so attack tests can send exactly the bytes they
//! want over a real socket.

use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use sockets::__internal::crypto::{ClientHandshake, FrameKind, Limits, Mode, Opener, Sealer};
use sockets::__internal::protocol::{Message, codec};
use sockets::crypto::{Secret, Suite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::within;

/// A raw WebSocket to a server.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Upgrades a connection to `addr` with no message limit of our own (an
/// attacker sends what it likes).
///
/// # Panics
/// When the upgrade fails.
pub async fn socket(addr: SocketAddr) -> Socket {
    let config = WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let (ws, _) = within(tokio_tungstenite::connect_async_with_config(
        crate::url(addr),
        Some(config),
        false,
    ))
    .await
    .expect("the websocket upgrade succeeds");
    ws
}

/// A TCP connection to `addr` from the loopback address `from` (any of
/// 127.0.0.0/8 on Linux), so tests can be several clients' addresses.
///
/// # Panics
/// When the connection fails.
pub async fn tcp_from(from: std::net::IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::new(from, 0))
        .expect("bind a loopback address");
    within(socket.connect(addr)).await.expect("connect")
}

/// As [`socket`], from the loopback address `from`.
///
/// # Panics
/// When the upgrade fails.
pub async fn socket_from(from: std::net::IpAddr, addr: SocketAddr) -> Socket {
    let tcp = tcp_from(from, addr).await;
    let config = WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let (ws, _) = within(tokio_tungstenite::client_async_with_config(
        crate::url(addr),
        MaybeTlsStream::Plain(tcp),
        Some(config),
    ))
    .await
    .expect("the websocket upgrade succeeds");
    ws
}

/// How a raw socket ended: the close code and reason of the server's
/// WebSocket close, or `None` when it ended without one.
pub async fn closed(ws: &mut Socket) -> Option<(u16, String)> {
    loop {
        match within(ws.next()).await {
            Some(Ok(Ws::Close(frame))) => {
                return frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned()));
            }
            None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// The body of a CLOSE frame.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq, Eq)]
pub struct CloseBody {
    /// The close code.
    pub code: u16,
    /// Why.
    pub reason: String,
}

/// The body of an AUTH_RESULT frame.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AuthResult {
    /// Admitted.
    pub ok: bool,
    /// As a guest.
    #[serde(default)]
    pub guest: bool,
    /// Why not.
    #[serde(default)]
    pub reason: String,
}

/// A hand-driven session with a server.
pub struct Raw {
    /// The socket.
    pub ws: Socket,
    /// Seals our frames.
    pub sealer: Sealer,
    /// Opens the server's frames.
    pub opener: Opener,
}

impl Raw {
    /// Upgrades and runs the handshake (HS1, HS2) with `secret`; no AUTH yet.
    ///
    /// # Panics
    /// When the server does not answer with a valid HS2.
    pub async fn handshake(addr: SocketAddr, secret: &Secret) -> Self {
        Self::handshake_over(socket(addr).await, secret).await
    }

    /// As [`Raw::handshake`], over a socket already upgraded.
    ///
    /// # Panics
    /// When the server does not answer with a valid HS2.
    pub async fn handshake_over(mut ws: Socket, secret: &Secret) -> Self {
        let (handshake, hs1) =
            ClientHandshake::start(secret, Suite::ChaCha20Poly1305, Mode::Encrypted, None)
                .expect("HS1");
        ws.send(Ws::Binary(hs1.into())).await.expect("send HS1");
        let Some(Ok(Ws::Binary(hs2))) = within(ws.next()).await else {
            panic!("expected HS2")
        };
        let (session, _hello) = handshake
            .finish(&hs2, Limits::default())
            .expect("HS2 verifies");
        let (sealer, opener) = session.split();
        Self { ws, sealer, opener }
    }

    /// Handshake, then AUTH with `credentials`; returns the AUTH_RESULT.
    ///
    /// # Panics
    /// When the server does not answer with AUTH_RESULT.
    pub async fn connect(addr: SocketAddr, credentials: &impl Serialize) -> (Self, AuthResult) {
        Self::connect_over(socket(addr).await, credentials).await
    }

    /// As [`Raw::connect`], over a socket already upgraded.
    ///
    /// # Panics
    /// When the server does not answer with AUTH_RESULT.
    pub async fn connect_over(ws: Socket, credentials: &impl Serialize) -> (Self, AuthResult) {
        let mut raw = Self::handshake_over(ws, &crate::secret()).await;
        raw.send(
            FrameKind::Auth,
            &codec::to_vec(credentials).expect("encode"),
        )
        .await;
        let (kind, body) = raw.recv().await.expect("AUTH_RESULT");
        assert_eq!(kind, FrameKind::AuthResult);
        let result: AuthResult = codec::decode_value(&body).expect("AUTH_RESULT decodes");
        if result.ok {
            raw.opener.set_authenticated();
        }
        (raw, result)
    }

    /// Seals and sends one message of `kind` (several frames if it must).
    ///
    /// # Panics
    /// When sealing fails or the socket is gone.
    pub async fn send(&mut self, kind: FrameKind, plaintext: &[u8]) {
        let mut frames = Vec::new();
        self.sealer
            .seal(kind, plaintext, &mut frames)
            .expect("seal");
        for frame in frames {
            self.ws.send(Ws::Binary(frame)).await.expect("send");
        }
    }

    /// Sends envelopes back to back in one DATA message.
    pub async fn send_envelopes(&mut self, envelopes: &[Message]) {
        let mut plaintext = Vec::new();
        for envelope in envelopes {
            codec::encode_message(envelope, &mut plaintext);
        }
        self.send(FrameKind::Data, &plaintext).await;
    }

    /// The next opened frame, or `None` once the WebSocket ends (or a frame
    /// fails to open).
    pub async fn recv(&mut self) -> Option<(FrameKind, Bytes)> {
        loop {
            match within(self.ws.next()).await {
                Some(Ok(Ws::Binary(wire))) => match self.opener.open(wire) {
                    Ok(Some(opened)) => return Some((opened.kind, opened.plaintext)),
                    Ok(None) => {}
                    Err(_) => return None,
                },
                Some(Ok(Ws::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Reads until the server's CLOSE frame and returns it; `None` if the
    /// socket ended without one.
    pub async fn close_frame(&mut self) -> Option<CloseBody> {
        loop {
            let (kind, plaintext) = self.recv().await?;
            if kind == FrameKind::Close {
                return codec::decode_value(&plaintext).ok();
            }
        }
    }

    /// DATA envelopes until `n` replies arrived (pings are skipped).
    ///
    /// # Panics
    /// When the connection ends first.
    pub async fn replies(&mut self, n: usize) -> Vec<Message> {
        let mut replies = Vec::new();
        while replies.len() < n {
            let (kind, plaintext) = self.recv().await.expect("the connection is open");
            assert_eq!(kind, FrameKind::Data);
            for message in codec::messages(plaintext) {
                if let message @ Message::Reply(_) = message.expect("a valid envelope") {
                    replies.push(message);
                }
            }
        }
        replies
    }
}
