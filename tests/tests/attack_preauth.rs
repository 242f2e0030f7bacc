//! Before authentication: WebSocket pings that must not stretch the deadline
//! or the server's memory, bursts of good clients from one address, plain
//! HTTP probes, refusals that always say why, and fair admission when every
//! handshake slot is taken. Several loopback addresses (127.0.0.x) stand for
//! several clients where a case needs them.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures_util::future::join_all;
use sockets::__internal::crypto::FrameKind;
use sockets::__internal::protocol::codec;
use sockets::protocol::CloseCode;
use sockets::{CallOptions, Client, Error, Server};
use tests::raw::{Raw, closed, socket, socket_from, tcp_from};
use tests::services::Calc;
use tests::{client, next_disconnect, panics, secret, server, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

async fn add(client: &Client) -> Result<i64, Error> {
    within(
        client
            .peer()
            .call("calc.add", &(40, 2), CallOptions::default()),
    )
    .await
}

async fn good_client_is_served(server: &Server) {
    let good = within(client(server.local_addr()).connect()).await.unwrap();
    assert_eq!(add(&good).await.unwrap(), 42);
    good.close().await;
    assert_eq!(panics(), 0, "nothing panics, in the server or the test");
}

/// A masked WebSocket ping frame with a 125-byte payload.
fn ping() -> Vec<u8> {
    let mut frame = vec![0x89, 0x80 | 125, 1, 2, 3, 4];
    frame.extend_from_slice(&[0x55; 125]);
    frame
}

/// Upgrades a raw TCP connection by hand and reads the 101.
async fn upgraded_tcp(tcp: &mut TcpStream) {
    tcp.write_all(UPGRADE.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        within(tcp.read_exact(&mut byte)).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "));
}

/// Reads what the server sends until it ends the socket.
async fn until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = within(tcp.read_to_end(&mut all)).await;
    all
}

#[tokio::test]
async fn attack_a_ping_flood_before_the_handshake_is_cut_and_costs_no_memory() {
    let (calc, _control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let addr = server.local_addr();
    let mut events = server.events();
    // Eight attackers (the per-address cap) each push 6 MiB of pings and
    // never read. Before, every ping queued a pong that was never written.
    let mut attackers = Vec::new();
    for _ in 0..8 {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        upgraded_tcp(&mut tcp).await;
        attackers.push(tokio::spawn(async move {
            let flood = ping().repeat(6 * 1024 * 1024 / 131);
            // The server hangs up long before the flood is out.
            let _ = tcp.write_all(&flood).await;
            tcp
        }));
    }
    for _ in 0..8 {
        let reason = next_disconnect(&mut events).await;
        assert_eq!(reason.code, CloseCode::ProtocolError, "{reason}");
        assert_eq!(
            reason.reason,
            "too many websocket pings before authentication"
        );
    }
    for attacker in attackers {
        let mut tcp = within(attacker).await.unwrap();
        // What the server wrote: its close, no pong.
        let written = until_closed(&mut tcp).await;
        assert!(
            !written.windows(2).any(|w| w == [0x8a, 125]),
            "no pong was sent"
        );
    }
    let stats = server.stats();
    assert_eq!((stats.handshakes, stats.pre_auth_bytes), (0, 0));
    // What the eight held at most, all together: a 4 KiB read buffer each
    // (pings are 131 bytes, so no read needs more) and a close frame. The
    // bound stated in docs/SECURITY.md is one 64 KiB message per connection.
    assert!(
        stats.pre_auth_bytes_peak <= 8 * 8 * 1024,
        "peak {} bytes",
        stats.pre_auth_bytes_peak
    );
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn attack_pings_under_the_budget_and_a_peer_that_never_reads_end_at_the_deadline() {
    let (calc, _control) = Calc::new();
    let timeout = Duration::from_millis(500);
    let server = server()
        .serve(calc)
        .handshake_timeout(timeout)
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    let mut events = server.events();
    // Seven pings (under the budget), then HS1, then nothing, and no reads.
    let mut raw = Raw::handshake(addr, &secret()).await;
    for _ in 0..7 {
        futures_util::SinkExt::send(
            &mut raw.ws,
            tokio_tungstenite::tungstenite::Message::Ping(vec![1; 125].into()),
        )
        .await
        .unwrap();
    }
    let reason = next_disconnect(&mut events).await;
    assert_eq!(reason.code, CloseCode::HandshakeTimeout, "{reason}");
    assert_eq!(
        closed(&mut raw.ws).await,
        Some((4005, "handshake timed out".to_owned()))
    );
    assert_eq!(server.stats().handshakes, 0, "its slot is free again");
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn attack_http_probes_are_answered_and_never_lock_the_address_out() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .health_route("/healthz")
        // Three failures would lock the address out for ten minutes.
        .handshake_failures_per_ip(3, Duration::from_secs(600))
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    for _ in 0..20 {
        // A monitor's health probe.
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let response = String::from_utf8(until_closed(&mut tcp).await).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.ends_with("\r\n\r\nok\n"), "{response}");
        // A browser or a load balancer asking for the root.
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let response = String::from_utf8(until_closed(&mut tcp).await).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{response}"
        );
        // A TCP check: connect, hang up.
        drop(TcpStream::connect(addr).await.unwrap());
    }
    // Bytes that are not HTTP get a 400 (and cost nothing either).
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"\x16\x03\x01 not http\r\n\r\n")
        .await
        .unwrap();
    let response = String::from_utf8_lossy(&until_closed(&mut tcp).await).into_owned();
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
    // Sixty probes later the address is still welcome.
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn a_burst_of_200_good_clients_from_one_address_all_get_in() {
    let (calc, _control) = Calc::new();
    // The failure budget stays at its default (10 per minute): it must not
    // limit how many handshakes run at once. Only the per-address cap does,
    // and it is off here, as behind a proxy.
    let server = server()
        .serve(calc)
        .max_handshakes_per_ip(0)
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    let connects = (0..200).map(|_| tokio::spawn(client(addr).connect()));
    let clients: Vec<Client> = within(join_all(connects))
        .await
        .into_iter()
        .map(|joined| joined.unwrap().expect("every good client gets in"))
        .collect();
    assert_eq!(server.connections().len(), 200);
    for client in &clients[..10] {
        assert_eq!(add(client).await.unwrap(), 42);
    }
    assert_eq!(panics(), 0);
}

#[tokio::test]
async fn past_the_per_address_cap_every_client_is_told_why() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .max_handshakes_per_ip(8)
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    // Eight peers in the handshake hold the address's eight slots.
    let mut holding = Vec::new();
    for _ in 0..8 {
        holding.push(Raw::handshake(addr, &secret()).await);
    }
    // A hundred clients at once: more than the server answers after an
    // upgrade at once (the rest get an HTTP 503), and none is dropped without
    // the reason.
    let connects = (0..100).map(|_| tokio::spawn(client(addr).connect()));
    for joined in within(join_all(connects)).await {
        let refused = joined.unwrap();
        assert!(
            matches!(&refused, Err(Error::Rejected(r)) if r == "too many handshakes from this address"),
            "{refused:?}"
        );
    }
    let mut ws = socket(addr).await;
    assert_eq!(
        closed(&mut ws).await,
        Some((4007, "too many handshakes from this address".to_owned()))
    );
    // One of the eight authenticates: its slot frees for a newcomer.
    let mut first = holding.remove(0);
    first
        .send(FrameKind::Auth, &codec::to_vec(&()).unwrap())
        .await;
    let (kind, _) = first.recv().await.expect("AUTH_RESULT");
    assert_eq!(kind, FrameKind::AuthResult);
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn a_full_server_gives_a_newcomer_the_slot_of_the_address_holding_most() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .max_handshakes(4)
        .max_handshakes_per_ip(0)
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    // 127.0.0.2 holds every slot with handshakes it never finishes.
    let mut hog = Vec::new();
    for _ in 0..4 {
        hog.push(Raw::handshake_over(socket_from(loopback(2), addr).await, &secret()).await);
    }
    // A client from 127.0.0.3 still gets a slot...
    let newcomer = Raw::handshake_over(socket_from(loopback(3), addr).await, &secret()).await;
    // ...because the oldest handshake of 127.0.0.2 made room, and was told.
    assert_eq!(
        closed(&mut hog[0].ws).await,
        Some((4007, "server busy".to_owned()))
    );
    // Full again, and 127.0.0.2 (three slots) may take none from 127.0.0.3 (one).
    let mut tcp = tcp_from(loopback(2), addr).await;
    tcp.write_all(UPGRADE.as_bytes()).await.unwrap();
    let refusal = String::from_utf8_lossy(&until_closed(&mut tcp).await).into_owned();
    assert!(refusal.contains("too many handshakes"), "{refusal}");
    // The newcomer authenticates and is served.
    let mut newcomer = newcomer;
    newcomer
        .send(FrameKind::Auth, &codec::to_vec(&()).unwrap())
        .await;
    let (kind, _) = newcomer.recv().await.expect("AUTH_RESULT");
    assert_eq!(kind, FrameKind::AuthResult);
    newcomer.opener.set_authenticated();
    newcomer
        .send_envelopes(&[sockets::__internal::protocol::Message::Call(
            sockets::__internal::protocol::Call {
                id: 1,
                method: "calc.add".into(),
                timeout_ms: None,
                args: codec::to_vec(&(40, 2)).unwrap().into(),
            },
        )])
        .await;
    assert_eq!(newcomer.replies(1).await.len(), 1);
    assert_eq!(panics(), 0);
}
