//! Serving `sockets` from a route of an axum application (feature `axum`):
//! one port for the application's HTTP routes and for RPC.
//!
//! ```no_run
//! use std::net::SocketAddr;
//!
//! use axum::Router;
//! use axum::routing::get;
//!
//! # async fn run(secret: sockets::crypto::Secret) -> Result<(), Box<dyn std::error::Error>> {
//! // A server that listens on nothing of its own: axum brings the connections.
//! let server = sockets::Server::builder().secret(secret).build()?;
//! let app = Router::new()
//!     .route("/health", get(|| async { "ok" }))
//!     .route("/rpc", get(sockets::axum::upgrade))
//!     .with_state(server);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! // With the connect info, the per-address limits and handlers see the
//! // client's address; without it, connections count under the global limits.
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! Clients connect to `ws://host:3000/rpc`. The request's headers reach the
//! auth hook in [`PeerInfo::headers`](crate::PeerInfo::headers), so it can
//! check a cookie or a bearer token the application issued. An application
//! with a state of its own implements `FromRef<AppState> for Server`.
//!
//! **Why hyper's upgrade, not axum's `WebSocket`.** The route answers the
//! upgrade itself and takes the raw stream hyper hands over
//! (`hyper::upgrade::on`); the connection then runs on the same WebSocket
//! framing as every other `sockets` connection. axum's `WebSocket` would
//! put a second WebSocket stack in front, with its own limits and its own
//! answers to pings, and the pre-authentication bounds (a 64 KiB message
//! limit, no pongs for an unauthenticated peer) would not hold on this path.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use crate::identity::Headers;
use crate::server::Server;
use crate::transport::http::{accept_key, lists, valid_key};

/// An axum handler that upgrades the request into a connection served by
/// the [`Server`] in the router's state: `.route("/rpc", get(upgrade))`.
///
/// A request that is not a WebSocket upgrade gets `426 Upgrade Required`
/// (or `400 Bad Request` for a malformed one), like the server's own port.
pub async fn upgrade(State(server): State<Server>, mut request: Request) -> Response {
    if let Err(refusal) = check(request.method(), request.headers()) {
        return refusal;
    }
    let key = request.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let Some(key) = key.filter(|key| valid_key(key.as_bytes())) else {
        return (
            StatusCode::BAD_REQUEST,
            "missing or malformed Sec-WebSocket-Key\n",
        )
            .into_response();
    };
    let peer_addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let headers = Headers::new(
        request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))),
    );
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                server.serve_upgraded(Box::new(TokioIo::new(upgraded)), headers, peer_addr)
            }
            Err(error) => tracing::debug!(%error, "the upgrade did not complete"),
        }
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    response_headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept_key(key.as_bytes())) {
        response_headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// Whether the request is a WebSocket upgrade this server can answer.
#[allow(clippy::result_large_err)]
fn check(method: &Method, headers: &HeaderMap) -> Result<(), Response> {
    let value = |name| headers.get(name).map(HeaderValue::as_bytes);
    let upgrade =
        lists(value(header::UPGRADE), "websocket") && lists(value(header::CONNECTION), "upgrade");
    if !upgrade {
        let response = (
            StatusCode::UPGRADE_REQUIRED,
            [(header::UPGRADE, "websocket")],
            "this endpoint speaks WebSocket only\n",
        );
        return Err(response.into_response());
    }
    if method != Method::GET {
        return Err((StatusCode::BAD_REQUEST, "a WebSocket upgrade is a GET\n").into_response());
    }
    if value(header::SEC_WEBSOCKET_VERSION) != Some(b"13") {
        let response = (
            StatusCode::UPGRADE_REQUIRED,
            [(header::SEC_WEBSOCKET_VERSION, "13")],
            "WebSocket version 13 only\n",
        );
        return Err(response.into_response());
    }
    Ok(())
}
