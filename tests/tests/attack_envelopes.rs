//! Attacks from a peer that holds the secret and a session: malformed
//! envelopes, deep nesting, lengths claiming gigabytes, oversized MORE
//! chains, calls above its privileges and floods past the in-flight limit.
//! The peer is driven by hand (the crypto layer and the codec, no runtime).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sockets::__internal::crypto::FrameKind;
use sockets::__internal::protocol::{Call, ErrorCode, Message, Outcome, Reply, codec};
use sockets::AuthDecision;
use sockets::protocol::CloseCode;
use tests::raw::Raw;
use tests::services::{Calc, CalcControl, Event};
use tests::{client, next_disconnect, server, within};

#[derive(Serialize, Deserialize)]
struct Login {
    user: String,
}

async fn calc_server(
    configure: impl FnOnce(sockets::ServerBuilder) -> sockets::ServerBuilder,
) -> (sockets::Server, CalcControl) {
    let (calc, control) = Calc::new();
    let builder = server().serve(calc).auth(|login: Login, _peer| async move {
        if login.user == "guest" {
            AuthDecision::Guest
        } else {
            AuthDecision::accept(login.user)
        }
    });
    (configure(builder).start().await.unwrap(), control)
}

fn user(name: &str) -> Login {
    Login { user: name.into() }
}

async fn good_client_is_served(server: &sockets::Server) {
    let good = within(
        client(server.local_addr())
            .credentials(&user("alice"))
            .connect(),
    )
    .await
    .unwrap();
    let sum: i64 = within(
        good.peer()
            .call("calc.add", &(40, 2), sockets::CallOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(sum, 42);
    good.close().await;
    assert_eq!(
        tests::panics(),
        0,
        "nothing panics, in the server or the test"
    );
}

fn call(id: u64, method: &str, args: Bytes) -> Message {
    Message::Call(Call {
        id,
        method: method.to_owned().into(),
        timeout_ms: Some(10_000),
        args: args.into(),
    })
}

fn args(value: &impl Serialize) -> Bytes {
    codec::to_vec(value).unwrap().into()
}

fn error_code(message: &Message) -> (u64, ErrorCode) {
    match message {
        Message::Reply(Reply {
            id,
            outcome: Outcome::Err(error),
        }) => (*id, error.code),
        other => panic!("expected an error reply, got {other:?}"),
    }
}

/// Sends `plaintext` as one DATA message and expects the server's CLOSE.
async fn closes_with(plaintext: &[u8], code: CloseCode, reason: &str) {
    let (server, _control) = calc_server(|b| b).await;
    let mut events = server.events();
    let (mut raw, result) = Raw::connect(server.local_addr(), &user("alice")).await;
    assert!(result.ok);
    raw.send(FrameKind::Data, plaintext).await;
    let close = raw.close_frame().await.expect("an authenticated CLOSE");
    assert_eq!(
        (close.code, close.reason.as_str()),
        (code.to_u16(), reason),
        "plaintext starting {:02x?}",
        plaintext.get(..plaintext.len().min(8))
    );
    assert_eq!(next_disconnect(&mut events).await.code, code);
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn attack_garbage_and_empty_data_close_with_malformed_envelope() {
    closes_with(
        &[0xc1, 0xff, 0x00, 0x13],
        CloseCode::ProtocolError,
        "malformed envelope",
    )
    .await;
    closes_with(&[], CloseCode::ProtocolError, "malformed envelope").await;
    // A valid MessagePack value that is not an envelope.
    closes_with(
        &[0xa3, b'a', b'b', b'c'],
        CloseCode::ProtocolError,
        "malformed envelope",
    )
    .await;
}

#[tokio::test]
async fn attack_deeply_nested_messagepack_costs_nothing() {
    // As an envelope: 100 000 nested arrays.
    let mut nested = vec![0x91u8; 100_000];
    nested.push(0xc0);
    closes_with(&nested, CloseCode::ProtocolError, "malformed envelope").await;
    // As a call's arguments: the envelope is fine, the arguments are refused
    // with BAD_REQUEST and the connection lives on.
    let (server, _control) = calc_server(|b| b).await;
    let (mut raw, _) = Raw::connect(server.local_addr(), &user("alice")).await;
    raw.send_envelopes(&[call(1, "calc.echo", nested.into())])
        .await;
    let replies = raw.replies(1).await;
    assert_eq!(error_code(&replies[0]), (1, ErrorCode::BadRequest));
    raw.send_envelopes(&[call(2, "calc.add", args(&(1, 2)))])
        .await;
    let replies = raw.replies(1).await;
    assert!(matches!(
        &replies[0],
        Message::Reply(Reply {
            id: 2,
            outcome: Outcome::Ok(_)
        })
    ));
}

#[tokio::test]
async fn attack_lengths_claiming_gigabytes_are_refused_before_allocation() {
    // A call whose args claim a 4 GiB bin: [0, 1, "calc.echo", nil, bin32(0xffffffff)].
    let mut bin = vec![0x95, 0x00, 0x01, 0xa9];
    bin.extend_from_slice(b"calc.echo");
    bin.extend_from_slice(&[0xc0, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00]);
    closes_with(&bin, CloseCode::ProtocolError, "malformed envelope").await;
    // A method name claiming 4 GiB (str32).
    let huge_str = [0x95, 0x00, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff, b'x'];
    closes_with(&huge_str, CloseCode::ProtocolError, "malformed envelope").await;
    // An array claiming 4 billion elements (array32).
    let huge_array = [0xdd, 0xff, 0xff, 0xff, 0xff, 0x00];
    closes_with(&huge_array, CloseCode::ProtocolError, "malformed envelope").await;
    // A map claiming 4 billion entries inside a call's arguments: BAD_REQUEST.
    let (server, _control) = calc_server(|b| b).await;
    let (mut raw, _) = Raw::connect(server.local_addr(), &user("alice")).await;
    let map = Bytes::from_static(&[0xdf, 0xff, 0xff, 0xff, 0xff]);
    raw.send_envelopes(&[call(1, "calc.add", map)]).await;
    assert_eq!(
        error_code(&raw.replies(1).await[0]),
        (1, ErrorCode::BadRequest)
    );
}

#[tokio::test]
async fn attack_more_chain_past_max_message_is_refused() {
    let (server, _control) = calc_server(|b| b.max_frame(16 * 1024).max_message(64 * 1024)).await;
    let mut events = server.events();
    let (mut raw, _) = Raw::connect(server.local_addr(), &user("alice")).await;
    // Our own sealer cuts the message into 16 KiB frames (the server's mf).
    let big = vec![0x00u8; 200 * 1024];
    raw.send(FrameKind::Data, &big).await;
    let close = raw.close_frame().await.expect("an authenticated CLOSE");
    assert_eq!(
        (close.code, close.reason.as_str()),
        (1009, "message too large")
    );
    assert_eq!(next_disconnect(&mut events).await.code, CloseCode::TooBig);
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn attack_guest_calls_to_protected_methods_are_unauthorized_and_run_nothing() {
    let (server, mut control) = calc_server(|b| b).await;
    let (mut raw, result) = Raw::connect(server.local_addr(), &user("guest")).await;
    assert!(result.ok && result.guest);
    raw.send_envelopes(&[
        call(1, "calc.hang", args(&(9u32,))),
        call(2, "calc.add", args(&(1, 2))),
        call(3, "calc.echo", args(&("open",))),
    ])
    .await;
    let mut replies = raw.replies(3).await;
    replies.sort_by_key(|m| match m {
        Message::Reply(r) => r.id,
        _ => 0,
    });
    assert_eq!(error_code(&replies[0]), (1, ErrorCode::Unauthorized));
    assert_eq!(error_code(&replies[1]), (2, ErrorCode::Unauthorized));
    assert!(matches!(
        &replies[2],
        Message::Reply(Reply {
            id: 3,
            outcome: Outcome::Ok(_)
        })
    ));
    assert!(
        control.events.try_recv().is_err(),
        "no protected handler ran"
    );
    // Credentials that decode as no user at all are rejected outright.
    let (_raw, result) = Raw::connect(server.local_addr(), &()).await;
    assert!(!result.ok);
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn attack_flood_past_the_in_flight_limit_is_rejected_at_once() {
    let (server, mut control) = calc_server(|b| b.max_in_flight(8)).await;
    let (mut raw, _) = Raw::connect(server.local_addr(), &user("alice")).await;
    let flood: Vec<Message> = (1..=500)
        .map(|id| call(id, "calc.hang", args(&(id as u32,))))
        .collect();
    raw.send_envelopes(&flood).await;
    let rejected = raw.replies(492).await;
    assert!(
        rejected
            .iter()
            .all(|m| error_code(m).1 == ErrorCode::Rejected),
        "every call past the limit is rejected"
    );
    let mut started = 0;
    while started < 8 {
        if let Event::Started(_) = control.next().await {
            started += 1;
        }
    }
    assert!(control.events.try_recv().is_err(), "only 8 handlers ran");
    // The connection and the server still work; the flooder's 8 calls hang on.
    good_client_is_served(&server).await;
    raw.send_envelopes(&[Message::Ping { nonce: 5 }]).await;
}
