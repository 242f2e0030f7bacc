//! The points of docs/PROTOCOL.md that an implementation written from the
//! document alone had to guess at, each pinned on the wire by a peer that
//! speaks the protocol by hand (`tests/src/raw.rs`) against a real server.

use std::time::Duration;

use futures_util::SinkExt;
use serde::Deserialize;
use sockets::__internal::crypto::FrameKind;
use sockets::__internal::protocol::{Call, ErrorCode, Message, Outcome, Reply, codec};
use sockets::protocol::CloseCode;
use sockets::{AuthDecision, CallOptions, Client, ServerEvent};
use tests::raw::{Raw, closed, socket};
use tests::services::{Calc, Event};
use tests::{client, next_disconnect, secret, server, within};
use tokio_tungstenite::tungstenite::Message as Ws;

fn call(
    id: u64,
    method: &'static str,
    timeout_ms: Option<u32>,
    args: &impl serde::Serialize,
) -> Message {
    Message::Call(Call {
        id,
        method: method.into(),
        timeout_ms,
        args: codec::to_vec(args).unwrap().into(),
    })
}

/// The AUTH_RESULT payload, read in full.
#[derive(Debug, Deserialize, PartialEq)]
struct AuthResult {
    ok: bool,
    guest: bool,
    reason: String,
    id: Option<u64>,
}

async fn calc_server() -> (sockets::Server, tests::services::CalcControl) {
    let (calc, control) = Calc::new();
    let server = server()
        .serve(calc)
        .auth(|token: String, _peer| async move {
            if token == "open sesame" {
                AuthDecision::accept(token)
            } else {
                AuthDecision::reject("bad token")
            }
        })
        .start()
        .await
        .unwrap();
    (server, control)
}

#[tokio::test]
async fn a_frame_over_mf_after_authentication_is_frame_too_large_in_the_close_and_the_websocket_close()
 {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .max_frame(16 * 1024)
        .start()
        .await
        .unwrap();
    let (mut raw, result) = Raw::connect(server.local_addr(), &()).await;
    assert!(result.ok);
    raw.ws
        .send(Ws::Binary(vec![0u8; 16 * 1024 + 1].into()))
        .await
        .unwrap();
    let close = raw.close_frame().await.expect("an authenticated CLOSE");
    assert_eq!(
        (close.code, close.reason.as_str()),
        (1009, "frame too large")
    );
    // The WebSocket close that follows carries the same code, and no reason.
    assert_eq!(closed(&mut raw.ws).await, Some((1009, String::new())));
}

#[tokio::test]
async fn key_update_as_the_first_frame_is_refused_with_its_reason() {
    let (server, _control) = calc_server().await;
    let mut raw = Raw::handshake(server.local_addr(), &secret()).await;
    let key_update = raw.sealer.forge(0x11, 0, b"").unwrap();
    raw.ws.send(Ws::Binary(key_update)).await.unwrap();
    // Before authentication the reason travels in the WebSocket close.
    assert_eq!(
        closed(&mut raw.ws).await,
        Some((1002, "KEY_UPDATE before the first frame".to_owned()))
    );
}

#[tokio::test]
async fn a_rejection_is_auth_result_then_close_4002_then_a_websocket_close_4002() {
    let (server, _control) = calc_server().await;
    let mut raw = Raw::handshake(server.local_addr(), &secret()).await;
    raw.send(FrameKind::Auth, &codec::to_vec("guess").unwrap())
        .await;
    let (kind, body) = raw.recv().await.expect("AUTH_RESULT");
    assert_eq!(kind, FrameKind::AuthResult);
    let result: AuthResult = codec::decode_value(&body).unwrap();
    // `guest` is false when `ok` is, and no id is given.
    assert_eq!(
        result,
        AuthResult {
            ok: false,
            guest: false,
            reason: "bad token".into(),
            id: None
        }
    );
    let close = raw.close_frame().await.expect("CLOSE");
    assert_eq!((close.code, close.reason.as_str()), (4002, "bad token"));
    assert_eq!(closed(&mut raw.ws).await, Some((4002, String::new())));
}

#[tokio::test]
async fn credentials_that_do_not_decode_are_rejected_with_that_reason() {
    let (server, _control) = calc_server().await;
    let mut raw = Raw::handshake(server.local_addr(), &secret()).await;
    // A map, where the auth hook takes a string.
    raw.send(FrameKind::Auth, &codec::to_vec(&[("token", 1)]).unwrap())
        .await;
    let (_, body) = raw.recv().await.expect("AUTH_RESULT");
    let result: AuthResult = codec::decode_value(&body).unwrap();
    assert!(!result.ok && !result.guest);
    assert_eq!(result.reason, "credentials did not decode");
    let close = raw.close_frame().await.expect("CLOSE");
    assert_eq!(close.code, 4002);
}

#[tokio::test]
async fn data_pipelined_after_auth_runs_once_the_client_is_admitted() {
    let (server, _control) = calc_server().await;
    let mut raw = Raw::handshake(server.local_addr(), &secret()).await;
    // AUTH and a call back to back, without waiting for AUTH_RESULT.
    raw.send(FrameKind::Auth, &codec::to_vec("open sesame").unwrap())
        .await;
    raw.send_envelopes(&[call(1, "calc.add", None, &(40, 2))])
        .await;
    let (kind, body) = raw.recv().await.expect("AUTH_RESULT");
    assert_eq!(kind, FrameKind::AuthResult);
    let result: AuthResult = codec::decode_value(&body).unwrap();
    assert!(result.ok, "{result:?}");
    raw.opener.set_authenticated();
    let replies = raw.replies(1).await;
    let Message::Reply(Reply {
        id: 1,
        outcome: Outcome::Ok(value),
    }) = &replies[0]
    else {
        panic!("{replies:?}")
    };
    assert_eq!(codec::decode_value::<i64>(value).unwrap(), 42);
}

#[tokio::test]
async fn data_pipelined_after_a_rejected_auth_is_never_read() {
    let (server, mut control) = calc_server().await;
    let mut raw = Raw::handshake(server.local_addr(), &secret()).await;
    raw.send(FrameKind::Auth, &codec::to_vec("guess").unwrap())
        .await;
    raw.send_envelopes(&[call(1, "calc.hang", None, &(7u32,))])
        .await;
    let close = raw.close_frame().await.expect("CLOSE");
    assert_eq!(close.code, 4002);
    // A handler started later on an admitted session is the first to start
    // (the events arrive in order): the pipelined call never ran.
    let good = within(
        client(server.local_addr())
            .credentials("open sesame")
            .connect(),
    )
    .await
    .unwrap();
    let peer = good.peer();
    let _hang = tokio::spawn(async move {
        peer.call::<_, ()>("calc.hang", &(8u32,), CallOptions::default())
            .await
    });
    assert_eq!(control.next().await, Event::Started(8));
}

#[tokio::test]
async fn a_timeout_of_zero_is_answered_timeout_without_running_the_handler() {
    let (server, mut control) = calc_server().await;
    let (mut raw, result) = Raw::connect(server.local_addr(), &"open sesame").await;
    assert!(result.ok);
    raw.send_envelopes(&[
        call(1, "calc.hang", Some(0), &(5u32,)),
        call(2, "calc.hang", None, &(6u32,)),
    ])
    .await;
    let replies = raw.replies(1).await;
    let Message::Reply(Reply {
        id: 1,
        outcome: Outcome::Err(error),
    }) = &replies[0]
    else {
        panic!("{replies:?}")
    };
    assert_eq!(error.code, ErrorCode::Timeout);
    // Call 2's handler is the first to start (the events arrive in order).
    assert_eq!(control.next().await, Event::Started(6));
}

#[tokio::test]
async fn both_sides_ping_and_a_pong_measures_the_round_trip() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .heartbeat(Duration::from_millis(50), Duration::from_secs(10))
        .start()
        .await
        .unwrap();
    let mut events = server.events();
    let (mut raw, result) = Raw::connect(server.local_addr(), &()).await;
    assert!(result.ok);
    let id = loop {
        if let ServerEvent::Authenticated { id, .. } = within(events.recv()).await.unwrap() {
            break id;
        }
    };
    // The server pings; the raw peer answers with the same nonce.
    let nonce = loop {
        let (kind, plaintext) = raw.recv().await.expect("open");
        assert_eq!(kind, FrameKind::Data);
        if let Some(Message::Ping { nonce }) =
            codec::messages(plaintext).filter_map(Result::ok).next()
        {
            break nonce;
        }
    };
    raw.send_envelopes(&[Message::Pong { nonce }]).await;
    let rtt = within(server.connection_rtt(id).unwrap().measured()).await;
    assert!(rtt < Duration::from_secs(10));
}

#[tokio::test]
async fn a_close_with_code_0_is_reported_as_a_malformed_close() {
    let (server, _control) = calc_server().await;
    let mut events = server.events();
    let (mut raw, result) = Raw::connect(server.local_addr(), &"open sesame").await;
    assert!(result.ok);
    let body = codec::to_vec(&sockets::__internal::protocol::payloads::Close {
        code: 0,
        reason: "zero".into(),
    })
    .unwrap();
    raw.send(FrameKind::Close, &body).await;
    let reason = next_disconnect(&mut events).await;
    assert_eq!(
        (reason.code, reason.reason.as_str()),
        (CloseCode::ProtocolError, "malformed CLOSE")
    );
}

#[tokio::test]
async fn a_reply_with_an_unknown_id_is_ignored() {
    let (server, _control) = calc_server().await;
    let (mut raw, result) = Raw::connect(server.local_addr(), &"open sesame").await;
    assert!(result.ok);
    raw.send_envelopes(&[
        Message::Reply(Reply {
            id: 999,
            outcome: Outcome::Ok(codec::to_vec(&1).unwrap().into()),
        }),
        call(1, "calc.add", None, &(2, 3)),
    ])
    .await;
    // The connection lives on and answers the call after it.
    let replies = raw.replies(1).await;
    assert!(matches!(
        &replies[0],
        Message::Reply(Reply {
            id: 1,
            outcome: Outcome::Ok(_)
        })
    ));
}

#[tokio::test]
async fn an_encrypted_client_gets_in_on_a_server_that_also_allows_plaintext() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .allow_plaintext(true)
        .start()
        .await
        .unwrap();
    let encrypted: Client = within(client(server.local_addr()).connect()).await.unwrap();
    let sum: i64 = within(
        encrypted
            .peer()
            .call("calc.add", &(1, 2), CallOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(sum, 3);
    let plaintext = within(
        client(server.local_addr())
            .plaintext(true)
            .plaintext_over_ws(true)
            .connect(),
    )
    .await
    .unwrap();
    let sum: i64 = within(
        plaintext
            .peer()
            .call("calc.add", &(3, 4), CallOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(sum, 7);
}

#[tokio::test]
async fn a_socket_that_only_upgrades_gets_the_4005_close_at_the_deadline() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .handshake_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let mut ws = socket(server.local_addr()).await;
    assert_eq!(
        closed(&mut ws).await,
        Some((4005, "handshake timed out".to_owned()))
    );
}
