//! The accept loop and admitting one connection.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::limits::{Attempt, Outcome, Refusal};
use super::registry::{Refused, Released};
use super::{ACCEPT_BACKOFF, Inner, ServerEvent};
use crate::connection::establish::{self, Established, ServerSetup};
use crate::connection::{self, Handle, Params, Shared, Start};
use crate::crypto::ResumptionSecret;
use crate::crypto::session::AUTH_MAX_FRAME;
use crate::describe;
use crate::descriptor::ServiceDescriptor;
use crate::error::{Disconnect, Error};
use crate::identity::{ConnectionId, SessionKind};
use crate::observe::{self, SecurityEvent};
use crate::protocol::payloads::AuthResult;
use crate::protocol::{CloseCode, Reason, codec};
use crate::service::{Origin, Peer};
use crate::transport::{self, Accepted, Conn, Gauge, Listener, TransportError};

/// The longest a refused peer is given to send its upgrade request and read
/// the close that tells it why.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The address a peer without one (a Unix socket, a stream of the
/// application's) is known by: the unspecified address.
pub(super) const NO_ADDRESS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// Accepts until the server stops; each connection is admitted in a task of its own.
pub(super) async fn accept_loop(inner: Arc<Inner>, listener: Listener) {
    let mut stop = inner.stop.subscribe();
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((conn, addr)) => offer(&inner, conn, addr),
            Err(error) => {
                // Out of file descriptors and the like: keep serving the others.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Admits an accepted stream into the handshake, or refuses it, telling it why.
pub(super) fn offer(inner: &Arc<Inner>, conn: Conn, addr: Option<SocketAddr>) {
    // Every bound before authentication counts from here.
    let now = Instant::now();
    let deadline = now + inner.config.handshake_timeout;
    let attempt = match inner.admission.try_admit(addr.map(|a| a.ip()), now) {
        Ok(attempt) => attempt,
        Err(refusal) => {
            tracing::debug!(?addr, ?refusal, "refused at the accept");
            let lockout = matches!(
                refusal,
                Refusal::Failures { .. } | Refusal::Rejections { .. }
            );
            let reason = refusal.reason();
            if lockout {
                let peer = addr.unwrap_or(NO_ADDRESS);
                observe::security(SecurityEvent::Lockout, None, peer, &reason);
            }
            refuse(inner, conn, reason);
            return;
        }
    };
    let admitted = inner.open.send_if_modified(|open| {
        if *open >= inner.max_connections {
            return false;
        }
        *open += 1;
        true
    });
    if !admitted {
        tracing::debug!(?addr, "refused: too many connections");
        attempt.finish(Outcome::Settled);
        refuse(inner, conn, Reason::TooManyConnections.text().into());
        return;
    }
    let id = ConnectionId::next();
    let addr = addr.unwrap_or(NO_ADDRESS);
    let _ = inner.events.send(ServerEvent::Connected { id, addr });
    tokio::spawn(admit(
        Arc::clone(inner),
        conn,
        id,
        addr,
        (deadline, attempt),
    ));
}

/// Tells a refused peer why: after the upgrade, with a WebSocket close 4007
/// carrying `reason` (what a browser can read), or the length-prefixed
/// close. Past the refusals being answered that way at once, with what the
/// socket takes at once (an HTTP 503 carrying the reason, or the close): a
/// flood past the limits costs no task, and nobody is dropped without a word.
fn refuse(inner: &Arc<Inner>, conn: Conn, reason: String) {
    let Ok(permit) = Arc::clone(&inner.refusals).try_acquire_owned() else {
        conn.refuse_now(&inner.tls, &reason);
        return;
    };
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        let timeout = REFUSE_TIMEOUT.min(inner.config.handshake_timeout);
        let code = CloseCode::TooManyConnections.to_u16();
        let refuse = transport::refuse(conn, &inner.tls, &inner.http, code, &reason);
        let _ = tokio::time::timeout(timeout, refuse).await;
        drop(permit);
    });
}

/// What a connection that ended before authentication costs its address:
/// a failed handshake (rejected, stale, malformed, too large, too many
/// pings) a token of the failure budget, credentials rejected by the auth
/// hook a token of the rejection budget, an abandoned one (the peer hung
/// up, or the deadline passed) the time it held its slot.
fn outcome_of(reason: &Disconnect) -> Outcome {
    match reason.code {
        CloseCode::PolicyViolation
        | CloseCode::StaleHandshake
        | CloseCode::ProtocolError
        | CloseCode::TooBig => Outcome::Failed,
        CloseCode::AuthRejected => Outcome::Rejected,
        // Preempted by fair admission: its slot went elsewhere; not its fault.
        CloseCode::TooManyConnections => Outcome::Settled,
        _ => Outcome::Abandoned,
    }
}

/// The AUTH_RESULT that admits a client to session `id` (resumed, with
/// the notifications it missed, when `resumed` is `Some`).
fn admitting(id: ConnectionId, guest: bool, resumable: bool, resumed: Option<u64>) -> Vec<u8> {
    let result = AuthResult {
        ok: true,
        guest,
        reason: String::new(),
        id: Some(id.get()),
        resumable,
        resumed: resumed.is_some(),
        missed: resumed.unwrap_or(0),
    };
    // Plain fields always encode; were it not so, the client would report a
    // malformed AUTH_RESULT rather than wait.
    codec::to_vec(&result).unwrap_or_default()
}

/// A connection that never served a session ended.
fn closed(inner: &Inner, id: ConnectionId, reason: Disconnect) {
    inner
        .open
        .send_modify(|open| *open = open.saturating_sub(1));
    let _ = inner.events.send(ServerEvent::Disconnected { id, reason });
}

/// Whether a session whose connection ended this way waits for its client:
/// unless it was ended on purpose (the client closed, the application
/// disconnected it, the server or the client is going away).
fn worth_waiting(reason: &Disconnect) -> bool {
    !matches!(
        reason.code,
        CloseCode::Normal | CloseCode::Disconnected | CloseCode::GoingAway
    )
}

/// The connection serving a session ended: the session waits for its
/// client, or ends; unless a newer connection serves it already.
fn connection_ended(inner: &Arc<Inner>, handle: &Handle, reason: Disconnect) {
    let id = handle.id();
    closed(inner, id, reason.clone());
    let wait = worth_waiting(&reason) && !inner.stopping.load(Ordering::Acquire);
    match inner.registry.release(handle, wait) {
        Released::Superseded => return,
        Released::Waiting { generation } => expire_later(inner, id, generation),
        Released::Ended => {
            let _ = inner.events.send(ServerEvent::SessionEnded { id });
        }
    }
    inner.hooks.disconnected(handle, reason);
}

/// Ends wait `generation` of session `id` when the resumption window passes.
fn expire_later(inner: &Arc<Inner>, id: ConnectionId, generation: u64) {
    let server = Arc::downgrade(inner);
    let window = inner.registry.config().window;
    let task = tokio::spawn(async move {
        tokio::time::sleep(window).await;
        if let Some(inner) = server.upgrade()
            && inner.registry.expire(id, generation)
        {
            tracing::debug!(%id, "the resumption window passed: the session ends");
            let _ = inner.events.send(ServerEvent::SessionEnded { id });
        }
    });
    if !inner
        .registry
        .set_expiry(id, generation, task.abort_handle())
    {
        task.abort();
    }
}

async fn admit(
    inner: Arc<Inner>,
    conn: Conn,
    id: ConnectionId,
    addr: SocketAddr,
    (deadline, mut attempt): (Instant, Attempt),
) {
    let config = &inner.config;
    let gauge = Gauge::new(Arc::clone(&inner.pre_auth));
    let upgrade = transport::accept(conn, &inner.tls, &inner.http, AUTH_MAX_FRAME, Some(gauge));
    let upgraded = tokio::select! {
        upgraded = tokio::time::timeout_at(deadline, upgrade) => upgraded,
        () = attempt.preempted() => Ok(Err(TransportError::Http("server busy"))),
    };
    let (transport, tls_exporter, headers) = match upgraded {
        Ok(Ok(Accepted::Upgraded(transport, exporter, headers))) => (transport, exporter, headers),
        Ok(Ok(Accepted::Answered(status))) => {
            attempt.finish(Outcome::Settled);
            let reason = format!("a plain HTTP request, answered with {status}");
            closed(&inner, id, Disconnect::new(CloseCode::Normal, reason));
            return;
        }
        Ok(Err(error)) => {
            // A peer that hung up, a TLS failure, or a preempted upgrade.
            attempt.finish(Outcome::Abandoned);
            let reason = Disconnect::lost(error.to_string());
            observe::handshake_ended(Err(&reason), id, addr);
            closed(&inner, id, reason);
            return;
        }
        Err(_) => {
            attempt.finish(Outcome::Abandoned);
            let reason: Disconnect = Reason::HandshakeTimeout.into();
            observe::handshake_ended(Err(&reason), id, addr);
            closed(&inner, id, reason);
            return;
        }
    };
    let setup = ServerSetup {
        id,
        peer_addr: addr,
        acceptor: &inner.acceptor,
        auth: &inner.auth,
        config,
        tls_exporter,
        headers,
        deadline,
    };
    let established = establish::server(setup, transport, attempt.preempted()).await;
    // Authenticated (or gone): the connection no longer holds a handshake slot.
    attempt.finish(match &established {
        Ok(_) => Outcome::Settled,
        Err(reason) => outcome_of(reason),
    });
    let established = match established {
        Ok(established) => established,
        Err(reason) => {
            tracing::debug!(%id, %addr, %reason, "not admitted");
            observe::handshake_ended(Err(&reason), id, addr);
            closed(&inner, id, reason);
            return;
        }
    };
    observe::handshake_ended(Ok(established.session), id, addr);
    let Established {
        transport,
        sealer,
        opener,
        session,
        meta,
        resumption,
        ..
    } = established;
    let shared_for = |id: ConnectionId| {
        Shared::new(Params {
            id,
            peer_addr: addr,
            session,
            peer_is_guest: session == SessionKind::Guest,
            meta: meta.clone(),
            config: Arc::clone(config),
            services: Arc::clone(&inner.services),
            origin: Some(Origin::new(&inner)),
            server_id: Some(id),
            meter: Arc::clone(&inner.meter),
        })
    };
    let resumable = inner.registry.config().enabled();
    let guest = session == SessionKind::Guest;
    let fresh = |secret| {
        let shared = shared_for(id);
        inner.registry.insert(Handle::of(&shared), secret);
        let _ = inner
            .events
            .send(ServerEvent::Authenticated { id, session });
        let start = Start {
            auth_result: Some(admitting(id, guest, resumable, None)),
            backlog: Vec::new(),
        };
        (shared, start, false)
    };
    let (shared, start, resumed) = match resumption.request.filter(|_| resumable) {
        None => fresh(resumption.secret),
        Some(request) => {
            let session_id = ConnectionId::from_u64(request.id);
            let shared = shared_for(session_id);
            let h = resumption.handshake_hash;
            let verify = |held: &ResumptionSecret| held.verify(&h, request.id, &request.proof);
            let outcome =
                inner
                    .registry
                    .resume(session_id, verify, Handle::of(&shared), resumption.secret);
            match outcome {
                Ok(resumed) => {
                    tracing::debug!(%id, session = %session_id, missed = resumed.missed, renewal = resumed.superseded.is_some(), "session resumed");
                    let _ = inner.events.send(ServerEvent::Resumed {
                        id: session_id,
                        connection: id,
                        missed: resumed.missed,
                    });
                    let start = Start {
                        auth_result: Some(admitting(
                            session_id,
                            guest,
                            resumable,
                            Some(resumed.missed),
                        )),
                        backlog: resumed.backlog,
                    };
                    (shared, start, true)
                }
                Err((Refused::BadProof, secret)) => {
                    tracing::warn!(%id, %addr, session = %session_id, "a resumption proof did not verify: a new session instead");
                    fresh(secret)
                }
                Err((Refused::Unknown, secret)) => {
                    tracing::debug!(%id, session = %session_id, "no such session to resume: a new session instead");
                    fresh(secret)
                }
            }
        }
    };
    let handle = Handle::of(&shared);
    let done_inner = Arc::clone(&inner);
    let done_handle = handle.clone();
    connection::spawn(shared, transport, (sealer, opener), start, move |reason| {
        connection_ended(&done_inner, &done_handle, reason)
    });
    if resumed {
        inner.hooks.resumed(&handle);
    } else {
        inner.hooks.connected(&handle);
    }
    if inner.stopping.load(Ordering::Acquire) {
        handle.close(Reason::ServerShuttingDown);
    }
    if !inner.expected_clients.is_empty() {
        tokio::spawn(require_services(
            handle,
            Arc::clone(&inner.expected_clients),
        ));
    }
}

/// Disconnects the client unless it serves `expected` compatibly.
async fn require_services(handle: Handle, expected: Arc<[&'static ServiceDescriptor]>) {
    let peer = Peer::new(Arc::new(handle.clone()));
    match describe::check(&peer, &expected, false).await {
        Ok(()) => {}
        Err(Error::Incompatible(incompatible)) => {
            tracing::debug!(id = %handle.id(), %incompatible, "client disconnected: incompatible services");
            let reason = format!("incompatible services: {incompatible}");
            handle.close(Disconnect::new(CloseCode::Disconnected, truncate(reason)));
        }
        Err(error) => {
            tracing::debug!(id = %handle.id(), %error, "could not check the client's services")
        }
    }
}

/// A close reason short enough for a WebSocket close frame (123 bytes).
fn truncate(mut reason: String) -> String {
    const MAX: usize = 120;
    if reason.len() > MAX {
        let mut end = MAX - 3;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push_str("...");
    }
    reason
}
