//! The length-prefixed transports (`tcp://`, `unix://`) under hostile input:
//! lengths that claim gigabytes, garbage instead of the preamble, a close
//! that breaks the framing. Each peer gets a clear close with a reason, the
//! server allocates nothing past its limit, and a good client is served after.

use std::time::Duration;

use sockets::protocol::CloseCode;
use sockets::{CallOptions, Client, Server};
use tests::services::Calc;
use tests::{next_disconnect, panics, secret, server, within};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const PREAMBLE: &[u8] = b"RPCWS1\r\n";

async fn tcp_server() -> Server {
    let (calc, _control) = Calc::new();
    server()
        .serve(calc)
        .address("tcp://127.0.0.1:0")
        .start()
        .await
        .unwrap()
}

/// Reads the server's preamble and its close: the code and the reason.
async fn read_close<S: AsyncRead + Unpin>(stream: &mut S) -> (u16, String) {
    let mut all = Vec::new();
    within(stream.read_to_end(&mut all)).await.unwrap();
    assert!(all.starts_with(PREAMBLE), "{all:?}");
    let rest = &all[PREAMBLE.len()..];
    assert_eq!(&rest[..4], &[0, 0, 0, 0], "a close, and nothing before it");
    let code = u16::from_be_bytes([rest[4], rest[5]]);
    let reason = String::from_utf8(rest[7..7 + usize::from(rest[6])].to_vec()).unwrap();
    (code, reason)
}

async fn good_client_is_served(server: &Server) {
    let client = within(
        Client::builder()
            .url(server.url().unwrap())
            .secret(secret())
            .connect(),
    )
    .await
    .unwrap();
    let sum: i64 = within(
        client
            .peer()
            .call("calc.add", &(40, 2), CallOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(sum, 42);
    client.close().await;
    assert_eq!(panics(), 0);
}

async fn attack<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> (u16, String) {
    let _ = stream.write_all(bytes).await;
    read_close(stream).await
}

#[tokio::test]
async fn attack_a_length_claiming_4_gib_is_refused_on_its_four_bytes() {
    let server = tcp_server().await;
    let mut events = server.events();
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let mut wire = PREAMBLE.to_vec();
    wire.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        attack(&mut tcp, &wire).await,
        (1009, "frame too large".into())
    );
    assert_eq!(next_disconnect(&mut events).await.code, CloseCode::TooBig);
    // Nothing near the claimed size was allocated: the 64 KiB limit before
    // authentication bounds the read buffer.
    assert!(
        server.stats().pre_auth_bytes_peak <= 64 * 1024,
        "{:?}",
        server.stats()
    );
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn attack_garbage_instead_of_the_preamble_is_refused_with_a_reason() {
    let server = tcp_server().await;
    for garbage in [
        &b"\x00\x00\x00\x10garbage!"[..],
        b"GET / HTTP/1.1\r\n\r\n",
        b"RPCWS2\r\n",
    ] {
        let mut tcp = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        assert_eq!(
            attack(&mut tcp, garbage).await,
            (1002, "malformed transport framing".into()),
            "{garbage:?}"
        );
    }
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn attack_a_close_that_breaks_the_framing_is_refused() {
    let server = tcp_server().await;
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    // A close with code 0, then one whose reason is not UTF-8.
    let mut wire = PREAMBLE.to_vec();
    wire.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        attack(&mut tcp, &wire).await,
        (1002, "malformed transport framing".into())
    );
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let mut wire = PREAMBLE.to_vec();
    wire.extend_from_slice(&[0, 0, 0, 0, 0x03, 0xe8, 2, 0xff, 0xfe]);
    assert_eq!(
        attack(&mut tcp, &wire).await,
        (1002, "malformed transport framing".into())
    );
    good_client_is_served(&server).await;
}

#[tokio::test]
async fn attack_a_silent_stream_is_cut_at_the_deadline_with_4005() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .address("tcp://127.0.0.1:0")
        .handshake_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    tcp.write_all(PREAMBLE).await.unwrap();
    assert_eq!(
        read_close(&mut tcp).await,
        (4005, "handshake timed out".into())
    );
    good_client_is_served(&server).await;
}

#[cfg(unix)]
#[tokio::test]
async fn attack_the_same_on_a_unix_socket() {
    let path = std::env::temp_dir().join(format!("sockets-attack-{}.sock", std::process::id()));
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .address(format!("unix://{}", path.display()))
        .start()
        .await
        .unwrap();
    let mut unix = tokio::net::UnixStream::connect(&path).await.unwrap();
    let mut wire = PREAMBLE.to_vec();
    wire.extend_from_slice(&(1u32 << 30).to_be_bytes());
    assert_eq!(
        attack(&mut unix, &wire).await,
        (1009, "frame too large".into())
    );
    let mut unix = tokio::net::UnixStream::connect(&path).await.unwrap();
    assert_eq!(
        attack(&mut unix, b"hello").await,
        (1002, "malformed transport framing".into())
    );
    good_client_is_served(&server).await;
    server.shutdown(Duration::from_secs(1)).await;
}
