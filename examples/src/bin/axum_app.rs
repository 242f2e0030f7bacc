//! One axum application, one port: a JSON health route beside the RPC route.
//!
//! ```text
//! cargo run -p examples --bin axum_app            # runs the app, calls both routes, exits
//! cargo run -p examples --bin axum_app -- serve   # keeps serving on 127.0.0.1:3000 until Ctrl-C
//! ```
//!
//! The server listens on nothing of its own (`ServerBuilder::build`): axum
//! accepts the connections and `sockets::axum::upgrade` turns `GET /rpc`
//! into a `sockets` connection. The auth hook reads the bearer token from
//! the upgrade request's `Authorization` header, as an application that
//! issued the token over its REST routes would. A client reaches the RPC
//! route at `ws://127.0.0.1:3000/rpc`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use examples::greeter::{GreeterClient, GreeterServer, Greetings};
use sockets::crypto::{Secret, generate_key};
use sockets::{AuthDecision, Client, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_logging();
    let serve = std::env::args().nth(1).as_deref() == Some("serve");
    let secret = Secret::from_base64(&generate_key())?;
    let server = Server::builder()
        .secret(secret.clone())
        .serve(GreeterServer::new(Greetings))
        .auth(|(): (), peer| async move {
            match peer.headers.get("authorization") {
                Some("Bearer demo-token") => AuthDecision::accept("demo".to_owned()),
                _ => AuthDecision::reject("no valid bearer token"),
            }
        })
        .build()?;
    let app = Router::new()
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/rpc", get(sockets::axum::upgrade))
        .with_state(server.clone());
    let address = if serve {
        "127.0.0.1:3000"
    } else {
        "127.0.0.1:0"
    };
    let listener = tokio::net::TcpListener::bind(address).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}/health and ws://{addr}/rpc");
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let http = tokio::spawn(async move { axum::serve(listener, app).await });
    if serve {
        tokio::signal::ctrl_c().await?;
    } else {
        // One request to each route.
        let mut tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = String::new();
        tcp.read_to_string(&mut response).await?;
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        println!("GET /health -> {body}");
        let client = Client::builder()
            .url(format!("ws://{addr}/rpc"))
            .secret(secret)
            .header("Authorization", "Bearer demo-token")
            .connect()
            .await?;
        let greeter = GreeterClient::new(client.peer());
        println!("ws /rpc greet -> {:?}", greeter.greet("axum").await?);
        println!("ws /rpc whoami -> {}", greeter.whoami().await?);
        client.close().await;
    }
    server.shutdown(Duration::from_secs(1)).await;
    http.abort();
    Ok(())
}
