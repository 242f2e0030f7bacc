//! The server against a peer that speaks the protocol by hand (the crypto
//! layer, the codec and tungstenite, no runtime): what it does with batched
//! envelopes, pings, stray replies, broken envelopes, text frames and a
//! socket closed without CLOSE.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use sockets::__internal::crypto::{ClientHandshake, FrameKind, Limits, Mode, Opener, Sealer};
use sockets::__internal::protocol::codec;
use sockets::__internal::protocol::{Call, Message, Outcome, Reply};
use sockets::crypto::Suite;
use sockets::protocol::CloseCode;
use sockets::server::ServerEvent;
use tests::services::Calc;
use tests::{secret, server, within};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

struct Raw {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    sealer: Sealer,
    opener: Opener,
}

#[derive(Deserialize, Debug)]
struct CloseBody {
    code: u16,
    reason: String,
}

impl Raw {
    /// Connects, runs the handshake and authenticates with no credentials.
    async fn connect(addr: std::net::SocketAddr) -> Self {
        let (mut ws, _) = tokio_tungstenite::connect_async(tests::url(addr))
            .await
            .unwrap();
        let (handshake, hs1) =
            ClientHandshake::start(&secret(), Suite::ChaCha20Poly1305, Mode::Encrypted, None)
                .unwrap();
        ws.send(Ws::Binary(hs1.into())).await.unwrap();
        let Some(Ok(Ws::Binary(hs2))) = ws.next().await else {
            panic!("expected HS2")
        };
        let (session, _hello) = handshake.finish(&hs2, Limits::default()).unwrap();
        let (sealer, opener) = session.split();
        let mut raw = Self { ws, sealer, opener };
        raw.send(FrameKind::Auth, &codec::to_vec(&()).unwrap())
            .await;
        let (kind, result) = raw.recv().await.expect("AUTH_RESULT");
        assert_eq!(kind, FrameKind::AuthResult);
        let result: HashMap<String, auth_result::Value> = codec::decode_value(&result).unwrap();
        assert_eq!(result.get("ok"), Some(&auth_result::Value::Bool(true)));
        // The server tells the client the id it gave the connection.
        assert!(
            matches!(result.get("id"), Some(auth_result::Value::Int(id)) if *id > 0),
            "{result:?}"
        );
        raw.opener.set_authenticated();
        raw
    }

    async fn send(&mut self, kind: FrameKind, plaintext: &[u8]) {
        let mut frames = Vec::new();
        self.sealer.seal(kind, plaintext, &mut frames).unwrap();
        for frame in frames {
            self.ws.send(Ws::Binary(frame)).await.unwrap();
        }
    }

    async fn send_envelopes(&mut self, envelopes: &[Message]) {
        let mut plaintext = Vec::new();
        for envelope in envelopes {
            codec::encode_message(envelope, &mut plaintext);
        }
        self.send(FrameKind::Data, &plaintext).await;
    }

    /// The next opened frame, or `None` once the WebSocket ends.
    async fn recv(&mut self) -> Option<(FrameKind, Bytes)> {
        loop {
            match within(self.ws.next()).await {
                Some(Ok(Ws::Binary(wire))) => {
                    if let Some(opened) = self.opener.open(wire).unwrap() {
                        return Some((opened.kind, opened.plaintext));
                    }
                }
                Some(Ok(Ws::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Envelopes until `n` replies (or pongs) arrived; skips server pings.
    async fn answers(&mut self, n: usize) -> Vec<Message> {
        let mut answers = Vec::new();
        while answers.len() < n {
            let (kind, plaintext) = self.recv().await.expect("the connection is open");
            assert_eq!(kind, FrameKind::Data);
            for message in codec::messages(plaintext) {
                match message.unwrap() {
                    Message::Ping { .. } => {}
                    other => answers.push(other),
                }
            }
        }
        answers
    }

    /// The CLOSE the server sends.
    async fn close_frame(&mut self) -> CloseBody {
        loop {
            let (kind, plaintext) = self.recv().await.expect("a CLOSE before the end");
            if kind == FrameKind::Close {
                return codec::decode_value(&plaintext).unwrap();
            }
        }
    }
}

/// The values AUTH_RESULT holds, enough to read it as a map.
mod auth_result {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(untagged)]
    pub enum Value {
        Bool(bool),
        Text(String),
        Int(u64),
    }
}

fn call(id: u64, method: &str, args: &impl serde::Serialize) -> Message {
    Message::Call(Call {
        id,
        method: method.to_owned().into(),
        timeout_ms: Some(10_000),
        args: codec::to_vec(args).unwrap().into(),
    })
}

fn ok_value<T: serde::de::DeserializeOwned>(message: &Message) -> (u64, T) {
    match message {
        Message::Reply(Reply {
            id,
            outcome: Outcome::Ok(value),
        }) => (*id, codec::decode_value(value).unwrap()),
        other => panic!("expected a successful reply, got {other:?}"),
    }
}

#[tokio::test]
async fn every_envelope_of_a_batched_plaintext_is_answered() {
    let (calc, _control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let mut raw = Raw::connect(server.local_addr()).await;
    raw.send_envelopes(&[
        call(1, "calc.add", &(1, 2)),
        Message::Ping { nonce: 77 },
        call(2, "calc.add", &(10, 20)),
        // A reply nobody waits for is ignored.
        Message::Reply(Reply {
            id: 999,
            outcome: Outcome::Ok(Bytes::from_static(&[0xc0]).into()),
        }),
    ])
    .await;
    let answers = raw.answers(3).await;
    let mut sums: Vec<(u64, i64)> = answers
        .iter()
        .filter(|m| matches!(m, Message::Reply(_)))
        .map(ok_value)
        .collect();
    sums.sort_unstable();
    assert_eq!(sums, vec![(1, 3), (2, 30)]);
    assert!(answers.contains(&Message::Pong { nonce: 77 }));
}

#[tokio::test]
async fn a_malformed_envelope_closes_with_a_protocol_error() {
    let (calc, _control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let mut raw = Raw::connect(server.local_addr()).await;
    raw.send(FrameKind::Data, &[0x92, 0x09, 0x01]).await;
    let close = raw.close_frame().await;
    assert_eq!(close.code, CloseCode::ProtocolError.to_u16());
    assert_eq!(close.reason, "malformed envelope");
}

#[tokio::test]
async fn a_text_message_closes_with_a_protocol_error() {
    let (calc, _control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let mut raw = Raw::connect(server.local_addr()).await;
    raw.ws.send(Ws::Text("hello".into())).await.unwrap();
    let close = raw.close_frame().await;
    assert_eq!(close.code, CloseCode::ProtocolError.to_u16());
}

#[tokio::test]
async fn a_socket_closed_without_close_is_reported_as_a_lost_connection() {
    let (calc, _control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let mut events = server.events();
    let raw = Raw::connect(server.local_addr()).await;
    drop(raw);
    loop {
        if let ServerEvent::Disconnected { reason, .. } = within(events.recv()).await.unwrap() {
            assert_eq!(reason.code, CloseCode::ConnectionLost, "{reason}");
            assert!(reason.reason.starts_with("connection lost"), "{reason}");
            break;
        }
    }
}

#[tokio::test]
async fn a_websocket_close_without_close_is_told_apart_from_a_loss() {
    let (calc, _control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let mut events = server.events();
    let mut raw = Raw::connect(server.local_addr()).await;
    raw.ws
        .send(Ws::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: 1001.into(),
                reason: "proxy restarting".into(),
            },
        )))
        .await
        .unwrap();
    loop {
        if let ServerEvent::Disconnected { reason, .. } = within(events.recv()).await.unwrap() {
            assert_eq!(reason.code, CloseCode::GoingAway, "{reason}");
            assert_eq!(
                reason.reason,
                "closed by the transport without an authenticated CLOSE: proxy restarting"
            );
            break;
        }
    }
}

#[tokio::test]
async fn a_close_from_the_peer_is_answered_with_a_close() {
    let (calc, _control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let mut events = server.events();
    let mut raw = Raw::connect(server.local_addr()).await;
    let mut bye = Vec::new();
    close_body(&mut bye, 4006, "bye");
    raw.send(FrameKind::Close, &bye).await;
    let echo = raw.close_frame().await;
    assert_eq!((echo.code, echo.reason.as_str()), (4006, "bye"));
    loop {
        if let ServerEvent::Disconnected { reason, .. } = within(events.recv()).await.unwrap() {
            assert_eq!(reason.code, CloseCode::Disconnected);
            assert_eq!(reason.reason, "bye");
            break;
        }
    }
}

fn close_body(out: &mut Vec<u8>, code: u16, reason: &str) {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        code: u16,
        reason: &'a str,
    }
    codec::encode_value(&Body { code, reason }, out).unwrap();
}
