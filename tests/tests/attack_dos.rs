//! Resource attacks: handshakes that never finish (slowloris), many of them
//! at once, connections past the limits, and a client that never reads. Each
//! peer is cut off within its bound while authenticated sessions keep working.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use sockets::__internal::crypto::FrameKind;
use sockets::__internal::protocol::{Call, Message, codec};
use sockets::protocol::CloseCode;
use sockets::{CallOptions, Client, Error};
use tests::raw::{Raw, closed, socket};
use tests::services::Calc;
use tests::{client, next_disconnect, secret, server, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;

const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

async fn add(client: &Client) -> Result<i64, Error> {
    within(
        client
            .peer()
            .call("calc.add", &(40, 2), CallOptions::default()),
    )
    .await
}

async fn good_client_is_served(server: &sockets::Server) {
    let good = within(client(server.local_addr()).connect()).await.unwrap();
    assert_eq!(add(&good).await.unwrap(), 42);
    good.close().await;
    assert_eq!(
        tests::panics(),
        0,
        "nothing panics, in the server or the test"
    );
}

/// Reads until the server ends the socket (EOF or reset).
async fn until_closed(tcp: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match within(tcp.read(&mut buf)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn attack_slowloris_each_stage_is_cut_at_the_handshake_timeout() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .handshake_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let mut events = server.events();
    let addr = server.local_addr();
    let authenticated = within(client(addr).connect()).await.unwrap();
    // (a) TCP open, no upgrade.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    until_closed(&mut tcp).await;
    assert_eq!(
        next_disconnect(&mut events).await.code,
        CloseCode::HandshakeTimeout
    );
    // (b) Upgraded, no HS1.
    let mut ws = socket(addr).await;
    assert_eq!(
        closed(&mut ws).await,
        Some((4005, "handshake timed out".to_owned()))
    );
    // (c) HS1 and HS2, no AUTH.
    let mut raw = Raw::handshake(addr, &secret()).await;
    assert_eq!(
        closed(&mut raw.ws).await,
        Some((4005, "handshake timed out".to_owned()))
    );
    // (d) AUTH dripped a byte at a time, never finished.
    let mut raw = Raw::handshake(addr, &secret()).await;
    let mut frames = Vec::new();
    raw.sealer
        .seal(FrameKind::Auth, &[0xc0], &mut frames)
        .unwrap();
    let tcp = match raw.ws.get_mut() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp,
        _ => panic!("a plain socket"),
    };
    // A masked binary frame header for the AUTH frame, then the drip.
    let len = frames[0].len() as u8;
    let mut wire = vec![0x82, 0x80 | len, 0, 0, 0, 0];
    wire.extend_from_slice(&frames[0]);
    for byte in &wire[..wire.len() - 1] {
        if tcp.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    until_closed(tcp).await;
    loop {
        let reason = next_disconnect(&mut events).await;
        if reason.code == CloseCode::HandshakeTimeout {
            break;
        }
    }
    // The authenticated session never noticed.
    assert_eq!(add(&authenticated).await.unwrap(), 42);
    assert_eq!(tests::panics(), 0);
}

#[tokio::test]
async fn attack_slowloris_upgrade_and_handshake_share_one_deadline() {
    let (calc, _control) = Calc::new();
    let timeout = Duration::from_millis(2000);
    let server = server()
        .serve(calc)
        .handshake_timeout(timeout)
        .start()
        .await
        .unwrap();
    let started = Instant::now();
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    // Drip the upgrade request over about 1.4 s, then send nothing.
    for chunk in UPGRADE.chunks(UPGRADE.len().div_ceil(10)) {
        tcp.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(140)).await;
    }
    until_closed(&mut tcp).await;
    let elapsed = started.elapsed();
    // One deadline for everything before authentication: not a second full
    // timeout after a slow upgrade (that would close at 1.4 s + 2 s at the
    // earliest). The margin between the two is for a loaded machine.
    assert!(
        elapsed < timeout + Duration::from_millis(1200),
        "closed after {elapsed:?}"
    );
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn attack_many_slowloris_at_once_are_all_cut_and_others_get_in() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .handshake_timeout(Duration::from_millis(300))
        // The point is the global bounds; the attacker and the good client
        // share 127.0.0.1 here, so the per-address limits (attack_per_ip.rs)
        // would refuse both.
        .max_handshakes_per_ip(0)
        .handshake_failures_per_ip(0, Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    let mut idle_tcp = Vec::new();
    for _ in 0..100 {
        idle_tcp.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut idle_ws = Vec::new();
    for _ in 0..100 {
        idle_ws.push(socket(addr).await);
    }
    // Meanwhile a good client gets in and is served.
    good_client_is_served(&server).await;
    for tcp in &mut idle_tcp {
        until_closed(tcp).await;
    }
    for ws in &mut idle_ws {
        assert_eq!(closed(ws).await.map(|(code, _)| code), Some(4005));
    }
}

#[tokio::test]
async fn attack_connections_past_the_limit_are_refused_with_4007() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .max_connections(4)
        .handshake_timeout(Duration::from_millis(1500))
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    let authenticated = within(client(addr).connect()).await.unwrap();
    // Three peers that never finish fill the rest of the limit.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(socket(addr).await);
    }
    let refused = within(client(addr).connect()).await;
    assert!(matches!(refused, Err(Error::Rejected(_))), "{refused:?}");
    for _ in 0..20 {
        let mut ws = socket(addr).await;
        assert_eq!(
            closed(&mut ws).await,
            Some((4007, "too many connections".to_owned()))
        );
    }
    // The admitted session is unaffected.
    assert_eq!(add(&authenticated).await.unwrap(), 42);
    // Once the idle peers are cut, new clients get in again.
    for ws in &mut idle {
        assert_eq!(closed(ws).await.map(|(code, _)| code), Some(4005));
    }
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn attack_handshakes_past_the_pre_auth_cap_are_refused_while_sessions_work() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .max_handshakes(4)
        .handshake_timeout(Duration::from_millis(1500))
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    let authenticated = within(client(addr).connect()).await.unwrap();
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(socket(addr).await);
    }
    // The fifth unauthenticated peer is refused at once.
    let mut ws = socket(addr).await;
    assert_eq!(
        closed(&mut ws).await,
        Some((4007, "too many handshakes".to_owned()))
    );
    let refused = within(client(addr).connect()).await;
    assert!(matches!(refused, Err(Error::Rejected(_))), "{refused:?}");
    // Authenticated sessions keep working; they hold no handshake slot.
    assert_eq!(add(&authenticated).await.unwrap(), 42);
    for ws in &mut idle {
        assert_eq!(closed(ws).await.map(|(code, _)| code), Some(4005));
    }
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn attack_a_peer_that_never_reads_is_cut_as_a_slow_consumer() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .write_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let mut events = server.events();
    let (raw, result) = Raw::connect(server.local_addr(), &()).await;
    assert!(result.ok);
    let Raw {
        mut ws, mut sealer, ..
    } = raw;
    // Ask for large echoes without ever reading the answers.
    let text = "x".repeat(256 * 1024);
    let flooder = tokio::spawn(async move {
        for id in 1..=400u64 {
            let mut plaintext = Vec::new();
            codec::encode_message(
                &Message::Call(Call {
                    id,
                    method: "calc.echo".into(),
                    timeout_ms: None,
                    args: codec::to_vec(&(&text,)).unwrap().into(),
                }),
                &mut plaintext,
            );
            let mut frames = Vec::new();
            if sealer
                .seal(FrameKind::Data, &plaintext, &mut frames)
                .is_err()
            {
                return;
            }
            for frame in frames {
                if ws.send(Ws::Binary(frame)).await.is_err() {
                    return;
                }
            }
        }
        // Keep the socket open (and unread) until the server gives up.
        let _ = futures_util::StreamExt::next(&mut futures_util::stream::pending::<()>()).await;
    });
    let reason = next_disconnect(&mut events).await;
    assert_eq!(reason.code, CloseCode::SlowConsumer, "{reason}");
    good_client_is_served(&server).await;
    flooder.abort();
}
