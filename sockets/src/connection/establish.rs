//! Setting a connection up: WebSocket upgrade, handshake, authentication.
//!
//! ```text
//!  client                                   server
//!    │── HS1 (ephemeral key, proof of psk) ──►│  Acceptor: wrong secret → close 1008 "", no HS2
//!    │◄── HS2 (proof of psk, echo of HS1) ────│
//!    │   verify HS2, or fail: HandshakeFailed │
//!    │── AUTH (credentials, sealed) ─────────►│  auth hook → accept(meta) / guest / reject(reason)
//!    │◄── AUTH_RESULT {ok, guest, reason} ────│  reject: CLOSE {4002, reason}
//! ```
//!
//! Nothing reaches a handler before the handshake proved the secret and the
//! auth hook admitted the peer; both steps together are bounded by the
//! handshake timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::ConnectionConfig;
use crate::crypto::session::AUTH_MAX_FRAME;
use crate::crypto::{
    Acceptor, ClientHandshake, FrameKind, Mode, Opened, Opener, Sealer, Secret, Suite,
};
use crate::error::{Disconnect, Error};
use crate::identity::{AuthDecision, Headers, PeerInfo};
use crate::identity::{ConnectionId, Meta, SessionKind};
use crate::protocol::payloads::{AuthResult, Close};
use crate::protocol::{CloseCode, Reason, codec};
use crate::service::BoxFuture;
use crate::transport::{self, ClientTls, Connector, Exporter, Incoming, Transport};

/// The type-erased hook the server runs: encoded credentials in, verdict out.
pub(crate) type AuthHook =
    Arc<dyn Fn(Bytes, PeerInfo) -> BoxFuture<'static, AuthDecision> + Send + Sync>;

/// A connection that passed the handshake and authentication.
pub(crate) struct Established {
    pub(crate) transport: Box<dyn Transport>,
    pub(crate) sealer: Sealer,
    pub(crate) opener: Opener,
    pub(crate) peer_addr: SocketAddr,
    pub(crate) session: SessionKind,
    pub(crate) meta: Meta,
    /// On a client: the id the server gave the connection, if it said.
    pub(crate) server_id: Option<ConnectionId>,
}

/// What a client needs to connect.
pub(crate) struct ClientSetup<'a> {
    pub(crate) connector: &'a Connector,
    pub(crate) secret: &'a Secret,
    pub(crate) suite: Suite,
    pub(crate) mode: Mode,
    pub(crate) credentials: &'a [u8],
    pub(crate) config: &'a ConnectionConfig,
    pub(crate) tls: &'a ClientTls,
}

async fn seal_and_send(
    transport: &mut dyn Transport,
    sealer: &mut Sealer,
    kind: FrameKind,
    plaintext: &[u8],
) -> Result<(), Error> {
    let mut wire = Vec::with_capacity(1);
    sealer
        .seal(kind, plaintext, &mut wire)
        .map_err(|e| Error::Protocol(e.to_string()))?;
    for frame in wire {
        std::future::poll_fn(|cx| transport.poll_ready(cx))
            .await
            .map_err(Error::from)?;
        transport.start_send(frame);
    }
    std::future::poll_fn(|cx| transport.poll_flush(cx))
        .await
        .map_err(Error::from)
}

/// Connects, runs the client handshake and authenticates, within the handshake timeout.
///
/// # Errors
/// `Io` (connect failed), `HandshakeFailed` (the server did not prove the
/// secret; no credentials were sent), `AuthRejected`, `Rejected` (server
/// full), `Timeout`, `Protocol`.
pub(crate) async fn client(setup: ClientSetup<'_>) -> Result<Established, Error> {
    let config = setup.config;
    tokio::time::timeout(config.handshake_timeout, client_steps(&setup))
        .await
        .map_err(|_| Error::Timeout)?
}

async fn client_steps(setup: &ClientSetup<'_>) -> Result<Established, Error> {
    let config = setup.config;
    let connected = transport::connect(setup.connector, setup.tls, AUTH_MAX_FRAME).await;
    let (mut transport, peer_addr, exporter) = connected.map_err(Error::from)?;
    // A Unix socket or a stream of the application's has no address.
    let peer_addr = peer_addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    let (handshake, hs1) =
        ClientHandshake::start(setup.secret, setup.suite, setup.mode, exporter.as_ref())
            .map_err(|e| Error::Config(e.to_string()))?;
    transport
        .send(Bytes::from(hs1))
        .await
        .map_err(Error::from)?;
    let hs2 = match transport.recv().await.map_err(Error::from)? {
        Incoming::Binary(hs2) => hs2,
        Incoming::Closed(frame) => return Err(Error::closed_during_setup(frame)),
    };
    let Ok((session, hello)) = handshake.finish(&hs2, config.limits()) else {
        // Nothing more goes to a server that did not prove the secret, not
        // even a close frame: the socket is dropped.
        tracing::warn!("the server did not prove knowledge of the shared secret");
        return Err(Error::HandshakeFailed);
    };
    let (mut sealer, mut opener) = session.split();
    seal_and_send(
        &mut *transport,
        &mut sealer,
        FrameKind::Auth,
        setup.credentials,
    )
    .await?;
    loop {
        let wire = match transport.recv().await.map_err(Error::from)? {
            Incoming::Binary(wire) => wire,
            Incoming::Closed(frame) => return Err(Error::closed_during_setup(frame)),
        };
        let opened = opener
            .open(wire)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        let Some(Opened { kind, plaintext }) = opened else {
            continue;
        };
        if kind != FrameKind::AuthResult {
            return Err(Error::Protocol("expected AUTH_RESULT".into()));
        }
        let result: AuthResult = codec::decode_value(&plaintext)
            .map_err(|e| Error::Protocol(format!("malformed AUTH_RESULT: {e}")))?;
        if !result.ok {
            return Err(Error::AuthRejected(result.reason));
        }
        opener.set_authenticated();
        // The server's frames are bounded by the `mf` it announced.
        transport.authenticated(hello.max_frame as usize);
        return Ok(Established {
            transport,
            sealer,
            opener,
            peer_addr,
            session: if result.guest {
                SessionKind::Guest
            } else {
                SessionKind::Authenticated
            },
            meta: Meta::none(),
            server_id: result.id.map(ConnectionId::from_u64),
        });
    }
}

/// What the server side needs to admit a connection.
pub(crate) struct ServerSetup<'a> {
    pub(crate) id: ConnectionId,
    pub(crate) peer_addr: SocketAddr,
    pub(crate) acceptor: &'a Acceptor,
    pub(crate) auth: &'a AuthHook,
    pub(crate) config: &'a ConnectionConfig,
    /// The TLS session's channel binding, if the server terminates TLS itself.
    pub(crate) tls_exporter: Exporter,
    /// The upgrade request's headers, for the auth hook.
    pub(crate) headers: Headers,
    /// When everything before authentication must be done (counted from the
    /// TCP accept, so a slow upgrade leaves less time for the handshake).
    pub(crate) deadline: tokio::time::Instant,
}

/// Runs the server side of the handshake and authentication on an upgraded
/// socket, by the deadline of [`ServerSetup`]. On failure the peer has been told
/// (as far as the protocol allows) and the reason is returned.
///
/// Every wait here ends by the deadline, the closes included: a peer that
/// stops reading cannot hold the connection past it. When `preempted`
/// resolves first, the server gave this connection's slot to another
/// address: it closes with 4007 "server busy".
pub(crate) async fn server(
    setup: ServerSetup<'_>,
    mut transport: Box<dyn Transport>,
    preempted: impl Future<Output = ()>,
) -> Result<Established, Disconnect> {
    let steps = server_steps(&setup, &mut *transport);
    let outcome = tokio::time::timeout_at(setup.deadline, async {
        tokio::select! {
            outcome = steps => outcome,
            () = preempted => Err(SetupFailure::close(Reason::ServerBusy)),
        }
    })
    .await;
    let (sealer, opener, session, meta) = match outcome {
        Ok(Ok(admitted)) => admitted,
        Ok(Err(failure)) => {
            let close = async {
                if let Some(reason) = failure.websocket_close {
                    let _ = transport
                        .close(reason.code().websocket(), reason.text())
                        .await;
                } else {
                    let _ = std::future::poll_fn(|cx| transport.poll_shutdown(cx)).await;
                }
            };
            let _ = tokio::time::timeout_at(setup.deadline, close).await;
            return Err(failure.reason);
        }
        Err(_) => {
            // The time is up: the close goes out only if the socket takes it now.
            let reason = Reason::HandshakeTimeout;
            transport.close_now(reason.code().websocket(), reason.text());
            return Err(reason.into());
        }
    };
    transport.authenticated(setup.config.max_frame);
    Ok(Established {
        transport,
        sealer,
        opener,
        peer_addr: setup.peer_addr,
        session,
        meta,
        server_id: Some(setup.id),
    })
}

/// Why set-up failed, and the WebSocket close to send for it (if one is still due).
struct SetupFailure {
    reason: Disconnect,
    websocket_close: Option<Reason>,
}

impl SetupFailure {
    fn close(reason: Reason) -> Self {
        Self {
            reason: reason.into(),
            websocket_close: Some(reason),
        }
    }

    fn gone(detail: impl Into<String>) -> Self {
        Self {
            reason: Disconnect::lost(detail),
            websocket_close: None,
        }
    }
}

async fn recv_binary(transport: &mut dyn Transport) -> Result<Bytes, SetupFailure> {
    match transport.recv().await {
        Ok(Incoming::Binary(bytes)) => Ok(bytes),
        Ok(Incoming::Closed(_)) => Err(SetupFailure::gone("closed during the handshake")),
        Err(error) => Err(match error.reason() {
            Some(reason) => SetupFailure::close(reason),
            None => SetupFailure::gone(error.to_string()),
        }),
    }
}

async fn server_steps(
    setup: &ServerSetup<'_>,
    transport: &mut dyn Transport,
) -> Result<(Sealer, Opener, SessionKind, Meta), SetupFailure> {
    let hs1 = recv_binary(transport).await?;
    let (session, hs2) =
        match setup
            .acceptor
            .accept(&hs1, setup.tls_exporter.as_ref(), setup.config.limits())
        {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(id = %setup.id, peer = %setup.peer_addr, "handshake refused");
                return Err(SetupFailure::close(error.reason()));
            }
        };
    transport
        .send(Bytes::from(hs2))
        .await
        .map_err(|e| SetupFailure::gone(e.to_string()))?;
    let (mut sealer, mut opener) = session.split();
    let credentials = loop {
        let wire = recv_binary(transport).await?;
        match opener.open(wire) {
            Ok(Some(Opened {
                kind: FrameKind::Auth,
                plaintext,
            })) => break plaintext,
            // The opener lets nothing but AUTH open the session.
            Ok(Some(_)) => return Err(SetupFailure::close(Reason::FirstNotAuth)),
            Ok(None) => {}
            Err(error) => return Err(SetupFailure::close(error.reason())),
        }
    };
    let peer = PeerInfo {
        id: setup.id,
        addr: setup.peer_addr,
        headers: setup.headers.clone(),
    };
    let decision = (setup.auth)(credentials, peer).await;
    let (session, meta, rejected) = match decision {
        AuthDecision::Accept(meta) => (SessionKind::Authenticated, meta, None),
        AuthDecision::Guest => (SessionKind::Guest, Meta::none(), None),
        AuthDecision::Reject(reason) => (SessionKind::Guest, Meta::none(), Some(reason)),
    };
    let result = AuthResult {
        ok: rejected.is_none(),
        guest: rejected.is_none() && session == SessionKind::Guest,
        reason: rejected.clone().unwrap_or_default(),
        id: rejected.is_none().then_some(setup.id.get()),
    };
    let body = codec::to_vec(&result).map_err(|e| SetupFailure::gone(e.to_string()))?;
    let send = |e: Error| SetupFailure::gone(e.to_string());
    seal_and_send(transport, &mut sealer, FrameKind::AuthResult, &body)
        .await
        .map_err(send)?;
    if let Some(reason) = rejected {
        let close = Close {
            code: CloseCode::AuthRejected.to_u16(),
            reason: reason.clone(),
        };
        if let Ok(body) = codec::to_vec(&close) {
            let _ = seal_and_send(transport, &mut sealer, FrameKind::Close, &body).await;
        }
        // The WebSocket close after a CLOSE carries the same code, no reason.
        let _ = transport
            .close(CloseCode::AuthRejected.websocket(), "")
            .await;
        return Err(SetupFailure {
            reason: Disconnect::new(CloseCode::AuthRejected, reason),
            websocket_close: None,
        });
    }
    opener.set_authenticated();
    Ok((sealer, opener, session, meta))
}

#[cfg(test)]
mod tests {
    use crate::protocol::codec;
    use crate::protocol::payloads::AuthResult;

    /// docs/PROTOCOL.md §9.2's example, as an older server sends it.
    const WITHOUT_ID: &str = "83a26f6bc3a56775657374c2a6726561736f6ea0";

    fn unhex(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_id_is_optional_in_auth_result() {
        let old: AuthResult = codec::decode_value(&unhex(WITHOUT_ID)).unwrap();
        assert_eq!(old.id, None);
        assert!(old.ok && !old.guest);
        let new = AuthResult {
            ok: true,
            guest: false,
            reason: String::new(),
            id: Some(42),
        };
        let bytes = codec::to_vec(&new).unwrap();
        assert_eq!(codec::decode_value::<AuthResult>(&bytes).unwrap(), new);
        // §9.2's example with the id 5.
        let five = AuthResult { id: Some(5), ..new };
        assert_eq!(
            codec::to_vec(&five).unwrap(),
            unhex("84a26f6bc3a56775657374c2a6726561736f6ea0a2696405")
        );
        let rejected = AuthResult {
            ok: false,
            guest: false,
            reason: "no".into(),
            id: None,
        };
        // Without an id the body is the three keys of §9.2, as before.
        let bytes = codec::to_vec(&rejected).unwrap();
        assert_eq!(bytes.first(), Some(&0x83));
    }
}
