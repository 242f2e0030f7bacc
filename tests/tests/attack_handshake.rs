//! Attacks on admission, driven over real sockets: wrong secret, bad
//! credentials, a replayed handshake, downgrades rewritten in flight,
//! oversized and malformed messages before authentication. After each the
//! server keeps serving a well-behaved client.

use std::time::Duration;

use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use sockets::__internal::crypto::{ClientHandshake, FrameKind, Mode};
use sockets::__internal::protocol::codec;
use sockets::crypto::Suite;
use sockets::protocol::CloseCode;
use sockets::{AuthDecision, CallOptions, Client, Error};
use tests::mitm::{self, Dir, Mitm};
use tests::raw::{Raw, closed, socket};
use tests::services::Calc;
use tests::{client, next_disconnect, secret, server, within, wrong_secret};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message as Ws;

#[derive(Serialize, Deserialize)]
struct Login {
    user: String,
}

async fn calc_server() -> sockets::Server {
    let (calc, _control) = Calc::new();
    server()
        .serve(calc)
        .auth(|login: Login, _peer| async move {
            if login.user == "mallory" {
                AuthDecision::reject("mallory is banned")
            } else {
                AuthDecision::accept(login.user)
            }
        })
        .start()
        .await
        .unwrap()
}

fn alice() -> Login {
    Login {
        user: "alice".into(),
    }
}

/// A well-behaved client still gets its answer.
async fn good_client_is_served(server: &sockets::Server) {
    let good = within(client(server.local_addr()).credentials(&alice()).connect())
        .await
        .expect("a good client connects");
    let sum: i64 = within(
        good.peer()
            .call("calc.add", &(40, 2), CallOptions::default()),
    )
    .await
    .expect("a good client's call succeeds");
    assert_eq!(sum, 42);
    good.close().await;
    assert_eq!(
        tests::panics(),
        0,
        "nothing panics, in the server or the test"
    );
}

#[tokio::test]
async fn attack_wrong_secret_gets_1008_with_no_reason_and_no_hs2() {
    let server = calc_server().await;
    let mut events = server.events();
    let mut ws = socket(server.local_addr()).await;
    let (_handshake, hs1) =
        ClientHandshake::start(&wrong_secret(), Suite::Aes256Gcm, Mode::Encrypted, None).unwrap();
    ws.send(Ws::Binary(hs1.into())).await.unwrap();
    // `closed` skips nothing but pings: an HS2 before the close would be a
    // binary message, which it ignores, so read the first message ourselves.
    let first = within(futures_util::StreamExt::next(&mut ws)).await;
    match first {
        Some(Ok(Ws::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1008);
            assert_eq!(frame.reason.as_str(), "");
        }
        other => panic!("expected a close with no HS2, got {other:?}"),
    }
    let reason = next_disconnect(&mut events).await;
    assert_eq!(reason.code, CloseCode::PolicyViolation);
    // The runtime's client reports it as a failed handshake.
    let wrong = within(
        Client::builder()
            .url(tests::url(server.local_addr()))
            .secret(wrong_secret())
            .connect(),
    )
    .await;
    assert!(matches!(wrong, Err(Error::HandshakeFailed)), "{wrong:?}");
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn attack_rejected_credentials_close_with_4002_and_the_reason() {
    let server = calc_server().await;
    let mut events = server.events();
    let mallory = Login {
        user: "mallory".into(),
    };
    let (mut raw, result) = Raw::connect(server.local_addr(), &mallory).await;
    assert!(!result.ok);
    assert_eq!(result.reason, "mallory is banned");
    let close = raw.close_frame().await.expect("an authenticated CLOSE");
    assert_eq!(close.code, CloseCode::AuthRejected.to_u16());
    assert_eq!(close.reason, "mallory is banned");
    assert_eq!(
        next_disconnect(&mut events).await.code,
        CloseCode::AuthRejected
    );
    // Credentials that do not decode as the hook's type are rejected too.
    let (_raw, result) = Raw::connect(server.local_addr(), &[1u8, 2, 3]).await;
    assert!(!result.ok);
    let via_client = within(
        client(server.local_addr())
            .credentials(&Login {
                user: "mallory".into(),
            })
            .connect(),
    )
    .await;
    assert!(
        matches!(&via_client, Err(Error::AuthRejected(reason)) if reason == "mallory is banned"),
        "{via_client:?}"
    );
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn attack_replayed_handshake_is_stale_and_gets_no_session() {
    let server = calc_server().await;
    let mut events = server.events();
    // Record a real client's session through a man in the middle.
    let recorder = Mitm::start(server.local_addr(), mitm::pass(), mitm::pass()).await;
    let victim = within(client(recorder.addr).credentials(&alice()).connect())
        .await
        .unwrap();
    let _: i64 = within(
        victim
            .peer()
            .call("calc.add", &(1, 1), CallOptions::default()),
    )
    .await
    .unwrap();
    let recorded = recorder.recorded();
    let upstream: Vec<_> = recorded
        .iter()
        .filter(|(dir, _)| *dir == Dir::Up)
        .map(|(_, m)| m.clone())
        .collect();
    assert!(upstream.len() >= 3, "HS1, AUTH and a call were recorded");
    // Replay HS1, AUTH and the call on a new connection.
    let mut ws = socket(server.local_addr()).await;
    for message in &upstream {
        // The server may already have closed; later sends may fail.
        let _ = ws.send(Ws::Binary(message.clone())).await;
    }
    let close = closed(&mut ws).await;
    assert_eq!(close, Some((4001, "stale handshake".to_owned())));
    loop {
        let reason = next_disconnect(&mut events).await;
        if reason.code == CloseCode::StaleHandshake {
            break;
        }
    }
    // The victim's own session is unharmed.
    let sum: i64 = within(
        victim
            .peer()
            .call("calc.add", &(2, 3), CallOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(sum, 5);
    good_client_is_served(&server).await;
}

/// Rewrites byte `at` of HS1 (or HS2) in flight and reports how the client
/// and the server saw it.
async fn rewrite_handshake(
    dir: Dir,
    at: usize,
    value: u8,
    plaintext_server: bool,
) -> (Result<Client, Error>, sockets::error::Disconnect) {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .allow_plaintext(plaintext_server)
        .handshake_timeout(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    let mut events = server.events();
    let rule = mitm::at(0, move |message| {
        let mut bytes = message.to_vec();
        if let Some(b) = bytes.get_mut(at) {
            *b = value;
        }
        vec![bytes.into()]
    });
    let (up, down) = match dir {
        Dir::Up => (rule, mitm::pass()),
        Dir::Down => (mitm::pass(), rule),
    };
    let mitm = Mitm::start(server.local_addr(), up, down).await;
    let outcome = within(
        client(mitm.addr)
            .suite(Suite::Aes256Gcm)
            .reconnect(sockets::Reconnect::disabled())
            .connect(),
    )
    .await;
    let reason = next_disconnect(&mut events).await;
    good_client_is_served(&server).await;
    (outcome, reason)
}

#[tokio::test]
async fn attack_downgrades_rewritten_in_flight_fail_and_nothing_falls_back() {
    // (direction, byte, new value, server allows mode P, expected close)
    let cases: [(Dir, usize, u8, bool, CloseCode, &str); 6] = [
        // Version 1 → 2.
        (
            Dir::Up,
            0,
            0x02,
            false,
            CloseCode::PolicyViolation,
            "unsupported version",
        ),
        // AES-256-GCM → ChaCha20-Poly1305: both allowed, the transcript breaks.
        (Dir::Up, 2, 0x02, false, CloseCode::PolicyViolation, ""),
        // Mode E → P on a server that refuses P.
        (
            Dir::Up,
            3,
            0x02,
            false,
            CloseCode::PolicyViolation,
            "plaintext mode not allowed",
        ),
        // Mode E → P on a server that allows P: the transcript breaks.
        (Dir::Up, 3, 0x02, true, CloseCode::PolicyViolation, ""),
        // Set the TLS-binding flag: the server has no exporter.
        (
            Dir::Up,
            4,
            0x01,
            false,
            CloseCode::PolicyViolation,
            "tls channel binding unavailable",
        ),
        // HS2's echoed suite rewritten: the client refuses, sends nothing
        // more (no AUTH, no close reason) and drops the socket.
        (
            Dir::Down,
            2,
            0x02,
            false,
            CloseCode::ConnectionLost,
            "closed during the handshake",
        ),
    ];
    for (dir, at, value, plaintext_server, code, reason) in cases {
        let (outcome, disconnect) = rewrite_handshake(dir, at, value, plaintext_server).await;
        // The client fails and reports what the server said: the refused
        // setting, or nothing (the transcript broke, or HS2 did not verify).
        match &outcome {
            Err(Error::HandshakeFailed) => {}
            Err(Error::HandshakeRefused(said)) => assert_eq!(said, reason, "byte {at} ({dir:?})"),
            other => panic!("byte {at} → {value:#x} ({dir:?}): {other:?}"),
        }
        assert_eq!(disconnect.code, code, "byte {at} ({dir:?}): {disconnect}");
        assert_eq!(disconnect.reason, reason, "byte {at} ({dir:?})");
    }
}

#[tokio::test]
async fn attack_oversized_frame_before_the_handshake_is_refused_from_its_header() {
    let server = calc_server().await;
    let mut events = server.events();
    let mut ws = socket(server.local_addr()).await;
    // A masked binary WebSocket frame header that announces 1 GiB, and no
    // payload: the server must refuse it from the header alone, neither
    // allocating nor waiting for the gigabyte (the handshake timeout is 10 s).
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    let tcp = match ws.get_mut() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp,
        _ => panic!("a plain socket"),
    };
    tcp.write_all(&header).await.unwrap();
    let started = std::time::Instant::now();
    let reason = next_disconnect(&mut events).await;
    assert_eq!(reason.code, CloseCode::TooBig, "{reason}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A whole message of twice the limit is refused the same way: a
    // WebSocket message is one frame (docs/PROTOCOL.md §6.3).
    let mut ws = socket(server.local_addr()).await;
    let _ = ws.send(Ws::Binary(vec![0u8; 2 << 20].into())).await;
    assert_eq!(
        closed(&mut ws).await,
        Some((1009, "frame too large".to_owned()))
    );
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn attack_junk_before_authentication_closes_with_a_reason() {
    let server = calc_server().await;
    let addr = server.local_addr();
    let hs1_of = |len: usize| Ws::Binary(vec![0x01; len].into());
    // (what, expected close)
    let cases: Vec<(Ws, (u16, &str))> = vec![
        (
            Ws::Text("hello".into()),
            (1002, "non-binary websocket message"),
        ),
        (
            Ws::Binary(Vec::new().into()),
            (1002, "bad handshake length"),
        ),
        (hs1_of(1025), (1002, "bad handshake length")),
        (hs1_of(55), (1002, "bad handshake length")),
        // Right length, every byte 0x01: the type byte says HS1, the
        // reserved bytes are set.
        (hs1_of(100), (1002, "reserved bytes set")),
    ];
    for (message, expected) in cases {
        let mut ws = socket(addr).await;
        let _ = ws.send(message).await;
        let close = closed(&mut ws).await;
        assert_eq!(
            close.as_ref().map(|(c, r)| (*c, r.as_str())),
            Some(expected)
        );
    }
    // Bytes that are not even HTTP: the upgrade fails and the socket closes.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"\x00\xff garbage \r\n\r\n\x16\x03\x01")
        .await
        .unwrap();
    let mut sink = Vec::new();
    // `within` fails the test unless the server ends the socket (EOF or reset).
    let _ = within(tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut sink)).await;
    assert!(!String::from_utf8_lossy(&sink).contains("101 Switching"));
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn attack_junk_between_handshake_and_auth_closes_with_a_reason() {
    let server = calc_server().await;
    let addr = server.local_addr();
    // An empty frame instead of AUTH.
    let mut raw = Raw::handshake(addr, &secret()).await;
    raw.ws.send(Ws::Binary(Vec::new().into())).await.unwrap();
    assert_eq!(
        closed(&mut raw.ws).await,
        Some((1002, "frame too short".to_owned()))
    );
    // A frame over the 64 KiB limit before authentication.
    let mut raw = Raw::handshake(addr, &secret()).await;
    raw.ws
        .send(Ws::Binary(vec![0u8; 65_537].into()))
        .await
        .unwrap();
    assert_eq!(
        closed(&mut raw.ws).await,
        Some((1009, "frame too large".to_owned()))
    );
    // An AUTH whose type byte was rewritten to DATA: a call before
    // authentication. It fails as a decryption failure; nothing runs.
    let mut raw = Raw::handshake(addr, &secret()).await;
    let mut frames = Vec::new();
    raw.sealer
        .seal(
            FrameKind::Auth,
            &codec::to_vec(&alice()).unwrap(),
            &mut frames,
        )
        .unwrap();
    let frame = mitm::flip(&frames[0], 1, 2); // 0x14 AUTH → 0x10 DATA
    assert_eq!(frame[1], 0x10);
    raw.ws.send(Ws::Binary(frame)).await.unwrap();
    assert_eq!(
        closed(&mut raw.ws).await,
        Some((1002, "decryption failed".to_owned()))
    );
    // Garbage of a plausible size.
    let mut raw = Raw::handshake(addr, &secret()).await;
    raw.ws
        .send(Ws::Binary(vec![0x5a; 200].into()))
        .await
        .unwrap();
    let close = closed(&mut raw.ws).await;
    assert!(matches!(close, Some((1002, _))), "{close:?}");
    good_client_is_served(&server).await;
}
