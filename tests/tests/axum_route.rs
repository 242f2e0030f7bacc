//! `sockets::axum::upgrade`: one axum application on one port serving an
//! HTTP route and the RPC route, with the auth hook reading a header of the
//! upgrade request. Real sockets on 127.0.0.1.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use sockets::{AuthDecision, CallOptions, Client, Error, Server};
use tests::services::Calc;
use tests::{secret, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An axum app with `/health` and `/rpc` on a free port; its address.
async fn app() -> (SocketAddr, Server) {
    let (calc, _control) = Calc::new();
    let server = Server::builder()
        .secret(secret())
        .serve(calc)
        .auth(|(): (), peer| async move {
            // The bearer token the application issued, from the upgrade request.
            match peer.headers.get("authorization") {
                Some("Bearer let-me-in") => AuthDecision::accept(peer.addr),
                _ => AuthDecision::reject("no valid bearer token"),
            }
        })
        .build()
        .unwrap();
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/rpc", get(sockets::axum::upgrade))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });
    (addr, server)
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    within(tcp.read_to_string(&mut response)).await.unwrap();
    response
}

#[tokio::test]
async fn one_port_serves_an_http_route_and_rpc_with_auth_from_a_header() {
    let (addr, server) = app().await;
    let health = http_get(addr, "/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok"), "{health}");
    // A plain GET of the RPC route is told to upgrade.
    let plain = http_get(addr, "/rpc").await;
    assert!(plain.starts_with("HTTP/1.1 426"), "{plain}");

    let url = format!("ws://{addr}/rpc");
    let client = within(
        Client::builder()
            .url(&url)
            .secret(secret())
            .header("Authorization", "Bearer let-me-in")
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
    // The connect info reached the server: the client's own address.
    let info = server.connections();
    assert_eq!(info.len(), 1);
    assert!(info[0].peer_addr.ip().is_loopback(), "{info:?}");

    let refused = within(Client::builder().url(&url).secret(secret()).connect()).await;
    assert!(
        matches!(&refused, Err(Error::AuthRejected(reason)) if reason == "no valid bearer token"),
        "{refused:?}"
    );
    client.close().await;
}

#[tokio::test]
async fn a_wrong_secret_through_axum_fails_the_handshake_and_the_app_lives_on() {
    let (addr, _server) = app().await;
    let wrong = within(
        Client::builder()
            .url(format!("ws://{addr}/rpc"))
            .secret(tests::wrong_secret())
            .connect(),
    )
    .await;
    assert!(matches!(wrong, Err(Error::HandshakeFailed)), "{wrong:?}");
    assert!(http_get(addr, "/health").await.starts_with("HTTP/1.1 200"));
}
