//! The runtime's metrics for Prometheus, on a route of an axum application.
//!
//! ```text
//! cargo run -p examples --bin metrics            # serves, calls, scrapes /metrics itself, exits
//! cargo run -p examples --bin metrics -- serve   # keeps serving on 127.0.0.1:3000 until Ctrl-C
//! ```
//!
//! The Prometheus recorder is installed first, before the server and the
//! client are built: they take their metric handles from the recorder
//! installed when they are built. `GET /metrics` renders what it recorded;
//! `GET /rpc` is the RPC route. The program makes a few calls (one of them
//! refused by the server's guard), fetches `/metrics` over HTTP like a
//! scraper would, checks that `sockets_calls_total` counted them, and prints
//! the calls' lines.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use examples::greeter::{GreeterClient, GreeterServer, Greetings};
use metrics_exporter_prometheus::PrometheusBuilder;
use sockets::crypto::{Secret, generate_key};
use sockets::{AuthDecision, Client, Context, Error, Refusal, Server, ServiceExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Only `greeter.sum` and `greeter.greet` for user `demo`; `whoami` is refused.
fn no_whoami(_cx: &Context, method: &str) -> Result<(), Refusal> {
    if method == "greeter.whoami" {
        Err(Refusal::forbidden("whoami is switched off here"))
    } else {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_logging();
    let serve = std::env::args().nth(1).as_deref() == Some("serve");
    // First: the servers and clients built after this record into it.
    let prometheus = PrometheusBuilder::new().install_recorder()?;

    let secret = Secret::from_base64(&generate_key())?;
    let server = Server::builder()
        .secret(secret.clone())
        .serve(GreeterServer::new(Greetings).with_guard(no_whoami))
        .auth(|token: String, _peer| async move {
            match token.as_str() {
                "demo-token" => AuthDecision::accept(token).label("demo"),
                _ => AuthDecision::reject("unknown token"),
            }
        })
        .build()?;
    let app = Router::new()
        .route(
            "/metrics",
            get(move || std::future::ready(prometheus.render())),
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
    println!("listening on http://{addr}/metrics and ws://{addr}/rpc");
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let http = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = Client::builder()
        .url(format!("ws://{addr}/rpc"))
        .secret(secret)
        .credentials("demo-token")
        .connect()
        .await?;
    let greeter = GreeterClient::new(client.peer());
    for numbers in [vec![1, 2], vec![3, 4, 5], vec![]] {
        greeter.sum(numbers).await?;
    }
    let _greeting = greeter.greet("metrics").await?;
    match greeter.whoami().await {
        Err(Error::Forbidden(reason)) => println!("whoami refused: {reason}"),
        other => return Err(format!("whoami should be refused, got {other:?}").into()),
    }

    if serve {
        println!("scrape http://{addr}/metrics; Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
    } else {
        let text = scrape(addr).await?;
        let calls: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("sockets_calls_total{"))
            .collect();
        let counted: f64 = calls
            .iter()
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        for line in &calls {
            println!("{line}");
        }
        if counted == 0.0 {
            return Err(format!("no calls counted in /metrics:\n{text}").into());
        }
        println!(
            "/metrics: {} lines, {} sockets_calls_total series, {counted} calls counted",
            text.lines().count(),
            calls.len()
        );
    }
    client.close().await;
    server.shutdown(Duration::from_secs(1)).await;
    http.abort();
    Ok(())
}

/// `GET /metrics` over HTTP/1.1, as a scraper sends it: the body.
async fn scrape(addr: SocketAddr) -> Result<String, Box<dyn std::error::Error>> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut response)).await??;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("GET /metrics: {head}").into());
    }
    Ok(body.to_owned())
}
