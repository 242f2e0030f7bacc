//! Setting a connection up: WebSocket upgrade, handshake, authentication.
//!
//! ```text
//!  client                                   server
//!    │── HS1 (ephemeral key, proof of psk) ──►│  Acceptor: wrong secret → close 1008 "", no HS2
//!    │◄── HS2 (proof of psk, echo of HS1) ────│
//!    │   verify HS2, or fail: HandshakeFailed │
//!    │── AUTH (credentials, sealed) ─────────►│  auth hook → accept(meta) / guest / reject(reason)
//!    │    [+ resumption request]              │  (the server layer resolves a resumption)
//!    │◄── AUTH_RESULT {ok, guest, reason,  ───│  reject: CLOSE {4002, reason}
//!    │      id, resumable, resumed, missed}   │
//! ```
//!
//! Nothing reaches a handler before the handshake proved the secret and the
//! auth hook admitted the peer; both steps together are bounded by the
//! handshake timeout. A client that holds a [`Ticket`] from an earlier
//! connection asks to resume its session (HS1 flags bit 1, the proof in
//! AUTH; docs/PROTOCOL.md §9.6). On the server, [`server`] hands the request
//! up with the admitted connection; the server decides, and the admitting
//! AUTH_RESULT is the connection task's first frame (`Start::auth_result`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::config::ConnectionConfig;
use crate::crypto::session::AUTH_MAX_FRAME;
use crate::crypto::{
    Acceptor, ClientHandshake, FrameKind, Mode, Opened, Opener, ResumptionSecret, Sealer, Secret,
    Suite,
};
use crate::error::{Disconnect, Error};
use crate::identity::{AuthDecision, Headers, PeerInfo};
use crate::identity::{ConnectionId, Meta, SessionKind};
use crate::observe;
use crate::protocol::payloads::{AuthResult, Close, Resume};
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
    pub(crate) resumption: Resumption,
}

/// How a connection stands to sessions before and after it (docs/PROTOCOL.md §9.6).
pub(crate) struct Resumption {
    /// This connection's resumption secret: the key of a later connection's proof.
    pub(crate) secret: ResumptionSecret,
    /// This connection's handshake hash: what a proof on it is bound to.
    pub(crate) handshake_hash: [u8; 32],
    /// On a server: the session the client asked to resume, with its proof.
    pub(crate) request: Option<Resume>,
    /// On a client: the server keeps the session for resumption.
    pub(crate) resumable: bool,
    /// On a client: the connection resumed the ticket's session.
    pub(crate) resumed: bool,
    /// On a client, when resumed: notifications the session's buffer dropped.
    pub(crate) missed: u64,
}

/// What a client keeps to resume its session on a later connection: the
/// session's id and the last connection's resumption secret (never sent).
#[derive(Debug)]
pub(crate) struct Ticket {
    pub(crate) id: u64,
    pub(crate) secret: ResumptionSecret,
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
    /// The session to resume, if the client holds a ticket.
    pub(crate) resume: Option<&'a Ticket>,
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
    let start = if setup.resume.is_some() {
        ClientHandshake::start_resuming
    } else {
        ClientHandshake::start
    };
    let (handshake, hs1) = start(setup.secret, setup.suite, setup.mode, exporter.as_ref())
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
    let secret = session.resumption_secret();
    let handshake_hash = session.handshake_hash();
    let (mut sealer, mut opener) = session.split();
    let auth = match setup.resume {
        None => setup.credentials.to_vec(),
        Some(ticket) => resuming_auth(setup.credentials, ticket, &handshake_hash)?,
    };
    seal_and_send(&mut *transport, &mut sealer, FrameKind::Auth, &auth).await?;
    loop {
        let wire = match transport.recv().await.map_err(Error::from)? {
            Incoming::Binary(wire) => wire,
            Incoming::Closed(frame) => return Err(Error::closed_during_setup(frame)),
        };
        let opened = opener
            .open_owned(wire)
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
            resumption: Resumption {
                secret,
                handshake_hash,
                request: None,
                resumable: result.resumable && result.id.is_some(),
                resumed: result.resumed && setup.resume.is_some(),
                missed: result.missed,
            },
        });
    }
}

/// AUTH's plaintext when resuming: `[credentials, {"id", "proof"}]`, the
/// proof bound to this connection's handshake.
fn resuming_auth(
    credentials: &[u8],
    ticket: &Ticket,
    handshake_hash: &[u8; 32],
) -> Result<Vec<u8>, Error> {
    let request = Resume {
        id: ticket.id,
        proof: serde_bytes::ByteBuf::from(ticket.secret.proof(handshake_hash, ticket.id).to_vec()),
    };
    let mut auth = Vec::with_capacity(1 + credentials.len() + 48);
    auth.push(0x92);
    auth.extend_from_slice(credentials);
    codec::encode_value(&request, &mut auth)?;
    Ok(auth)
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
    let (sealer, opener, admitted) = match outcome {
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
        session: admitted.session,
        meta: admitted.meta,
        server_id: Some(setup.id),
        resumption: admitted.resumption,
    })
}

/// What the server side learnt before admitting the client.
struct Admitted {
    session: SessionKind,
    meta: Meta,
    resumption: Resumption,
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

    /// A frame broke the protocol before authentication: counted as a
    /// rejected frame, and closed with `reason`.
    fn rejected(reason: Reason) -> Self {
        observe::frame_rejected(observe::reason_label(reason));
        Self::close(reason)
    }

    fn gone(detail: impl Into<String>) -> Self {
        Self {
            reason: Disconnect::lost(detail),
            websocket_close: None,
        }
    }
}

async fn recv_binary(transport: &mut dyn Transport) -> Result<BytesMut, SetupFailure> {
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
) -> Result<(Sealer, Opener, Admitted), SetupFailure> {
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
    let resuming = session.resuming();
    let secret = session.resumption_secret();
    let handshake_hash = session.handshake_hash();
    let (mut sealer, mut opener) = session.split();
    let auth = loop {
        let wire = recv_binary(transport).await?;
        match opener.open_owned(wire) {
            Ok(Some(Opened {
                kind: FrameKind::Auth,
                plaintext,
            })) => break plaintext,
            // The opener lets nothing but AUTH open the session.
            Ok(Some(_)) => return Err(SetupFailure::rejected(Reason::FirstNotAuth)),
            Ok(None) => {}
            Err(error) => return Err(SetupFailure::rejected(error.reason())),
        }
    };
    let (credentials, request) = if resuming {
        let (credentials, request) = resumption_request(&auth)
            .ok_or_else(|| SetupFailure::close(Reason::MalformedResume))?;
        (credentials, Some(request))
    } else {
        (auth, None)
    };
    let peer = PeerInfo {
        id: setup.id,
        addr: setup.peer_addr,
        headers: setup.headers.clone(),
    };
    let decision = (setup.auth)(credentials, peer).await;
    let (session, meta) = match decision {
        AuthDecision::Accept(meta) => (SessionKind::Authenticated, meta),
        AuthDecision::Guest => (SessionKind::Guest, Meta::none()),
        AuthDecision::Reject(reason) => {
            return Err(reject(transport, &mut sealer, reason).await);
        }
    };
    opener.set_authenticated();
    let resumption = Resumption {
        secret,
        handshake_hash,
        request,
        resumable: false,
        resumed: false,
        missed: 0,
    };
    Ok((
        sealer,
        opener,
        Admitted {
            session,
            meta,
            resumption,
        },
    ))
}

/// The credentials and the resumption request of a resuming AUTH, or `None`
/// if it is not `[credentials, {"id", "proof"}]`.
fn resumption_request(auth: &Bytes) -> Option<(Bytes, Resume)> {
    let (credentials, request) = codec::split_pair(auth).ok()?;
    let request: Resume = codec::decode_value(request).ok()?;
    Some((auth.slice_ref(credentials), request))
}

/// Tells a client its credentials were rejected: AUTH_RESULT, CLOSE 4002
/// with the reason, then the WebSocket close.
async fn reject(
    transport: &mut dyn Transport,
    sealer: &mut Sealer,
    reason: String,
) -> SetupFailure {
    let result = AuthResult {
        ok: false,
        guest: false,
        reason: reason.clone(),
        id: None,
        resumable: false,
        resumed: false,
        missed: 0,
    };
    let sent = match codec::to_vec(&result) {
        Ok(body) => seal_and_send(transport, sealer, FrameKind::AuthResult, &body).await,
        Err(error) => Err(error.into()),
    };
    if let Err(error) = sent {
        return SetupFailure::gone(error.to_string());
    }
    {
        let close = Close {
            code: CloseCode::AuthRejected.to_u16(),
            reason: reason.clone(),
        };
        if let Ok(body) = codec::to_vec(&close) {
            let _ = seal_and_send(transport, sealer, FrameKind::Close, &body).await;
        }
    }
    // The WebSocket close after a CLOSE carries the same code, no reason.
    let _ = transport
        .close(CloseCode::AuthRejected.websocket(), "")
        .await;
    SetupFailure {
        reason: Disconnect::new(CloseCode::AuthRejected, reason),
        websocket_close: None,
    }
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
            resumable: false,
            resumed: false,
            missed: 0,
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
            resumable: false,
            resumed: false,
            missed: 0,
        };
        // Without an id the body is the three keys of §9.2, as before.
        let bytes = codec::to_vec(&rejected).unwrap();
        assert_eq!(bytes.first(), Some(&0x83));
    }

    /// docs/PROTOCOL.md §9.6's examples of AUTH_RESULT with the resumption keys.
    #[test]
    fn resumption_keys_are_sent_only_when_they_say_something() {
        let resumed = AuthResult {
            ok: true,
            guest: false,
            reason: String::new(),
            id: Some(5),
            resumable: true,
            resumed: true,
            missed: 3,
        };
        let bytes = codec::to_vec(&resumed).unwrap();
        assert_eq!(
            hex(&bytes),
            "87a26f6bc3a56775657374c2a6726561736f6ea0a2696405a9726573756d61626c65c3a7726573756d6564c3a66d697373656403"
        );
        assert_eq!(codec::decode_value::<AuthResult>(&bytes).unwrap(), resumed);
        let fresh = AuthResult {
            resumed: false,
            missed: 0,
            ..resumed
        };
        assert_eq!(
            hex(&codec::to_vec(&fresh).unwrap()),
            "85a26f6bc3a56775657374c2a6726561736f6ea0a2696405a9726573756d61626c65c3"
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
