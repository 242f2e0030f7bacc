//! The accept loop and admitting one connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::limits::{Attempt, Outcome};
use super::{ACCEPT_BACKOFF, Inner, ServerEvent, WeakServer};
use crate::connection::establish::{self, ServerSetup};
use crate::connection::{self, Handle, Params, Shared};
use crate::error::Disconnect;
use crate::protocol::CloseCode;
use crate::service::{ConnectionId, SessionKind};
use crate::transport;

/// Accepts until the server stops; each connection is admitted in a task of its own.
pub(super) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut stop = inner.stop.subscribe();
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: keep serving the others.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Every bound before authentication counts from here.
        let now = Instant::now();
        let deadline = now + inner.config.handshake_timeout;
        // Per address first: a refused address takes no global slot.
        let attempt = match inner.per_ip.try_admit(addr.ip(), now) {
            Ok(attempt) => attempt,
            Err(refusal) => {
                tracing::debug!(%addr, ?refusal, "refused by the per-address limits");
                refuse(&inner, tcp, refusal.reason());
                continue;
            }
        };
        let Ok(handshake) = Arc::clone(&inner.handshakes).try_acquire_owned() else {
            tracing::debug!(%addr, "refused: too many handshakes");
            refuse(&inner, tcp, "too many handshakes");
            continue;
        };
        let admitted = inner.open.send_if_modified(|open| {
            if *open >= inner.max_connections {
                return false;
            }
            *open += 1;
            true
        });
        if !admitted {
            tracing::debug!(%addr, "refused: too many connections");
            refuse(&inner, tcp, "too many connections");
            continue;
        }
        let id = connection::next_id();
        let _ = inner.events.send(ServerEvent::Connected { id, addr });
        tokio::spawn(admit(
            Arc::clone(&inner),
            tcp,
            id,
            addr,
            (deadline, handshake, attempt),
        ));
    }
}

/// Tells a refused peer why (close 4007 with `reason`), unless too many
/// refusals are under way already: then the socket is just dropped.
fn refuse(inner: &Arc<Inner>, tcp: TcpStream, reason: &'static str) {
    let Ok(permit) = Arc::clone(&inner.refusals).try_acquire_owned() else {
        return;
    };
    let config = Arc::clone(&inner.config);
    let tls = inner.tls.clone();
    tokio::spawn(async move {
        establish::refuse(tcp, config, tls, CloseCode::TooManyConnections, reason).await;
        drop(permit);
    });
}

/// Whether a connection that was not admitted counts as a failed handshake:
/// rejected (wrong secret, tampered), stale, malformed, too large, timed out or
/// rejected by the auth hook. A peer that hung up (1006) does not count.
fn outcome_of(reason: &Disconnect) -> Outcome {
    match reason.code {
        CloseCode::PolicyViolation
        | CloseCode::StaleHandshake
        | CloseCode::ProtocolError
        | CloseCode::TooBig
        | CloseCode::HandshakeTimeout
        | CloseCode::AuthRejected => Outcome::Failed,
        _ => Outcome::Gone,
    }
}

fn closed(inner: &Inner, id: ConnectionId, reason: Disconnect) {
    inner.registry.remove(id);
    inner
        .open
        .send_modify(|open| *open = open.saturating_sub(1));
    let _ = inner.events.send(ServerEvent::Disconnected { id, reason });
}

async fn admit(
    inner: Arc<Inner>,
    tcp: TcpStream,
    id: ConnectionId,
    addr: SocketAddr,
    (deadline, handshake, attempt): (Instant, OwnedSemaphorePermit, Attempt),
) {
    let config = &inner.config;
    let upgraded = tokio::time::timeout_at(
        deadline,
        transport::accept(tcp, config.max_frame, &inner.tls),
    )
    .await;
    let (sender, receiver, tls_exporter) = match upgraded {
        Ok(Ok(halves)) => halves,
        Ok(Err(error)) => {
            // A peer that hung up is gone; a broken upgrade is a failure.
            attempt.finish(if matches!(error, transport::TransportError::Io(_)) {
                Outcome::Gone
            } else {
                Outcome::Failed
            });
            closed(
                &inner,
                id,
                Disconnect::new(CloseCode::ProtocolError, error.to_string()),
            );
            return;
        }
        Err(_) => {
            attempt.finish(Outcome::Failed);
            closed(
                &inner,
                id,
                Disconnect::new(CloseCode::HandshakeTimeout, "handshake timed out"),
            );
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
        deadline,
    };
    let established = establish::server(setup, sender, receiver).await;
    // Authenticated (or gone): the connection no longer holds a handshake slot.
    drop(handshake);
    attempt.finish(match &established {
        Ok(_) => Outcome::Admitted,
        Err(reason) => outcome_of(reason),
    });
    let established = match established {
        Ok(established) => established,
        Err(reason) => {
            tracing::debug!(%id, %addr, %reason, "not admitted");
            closed(&inner, id, reason);
            return;
        }
    };
    let session = established.session;
    let shared = Shared::new(Params {
        id,
        peer_addr: addr,
        session,
        peer_is_guest: session == SessionKind::Guest,
        meta: established.meta,
        config: Arc::clone(config),
        services: Arc::clone(&inner.services),
        server: Some(WeakServer::of(&inner)),
        server_id: Some(id),
    });
    let handle = Handle(Arc::clone(&shared));
    inner.registry.insert(handle.clone());
    let _ = inner
        .events
        .send(ServerEvent::Authenticated { id, session });
    let done_inner = Arc::clone(&inner);
    connection::spawn(
        shared,
        (established.sender, established.sealer),
        (established.receiver, established.opener),
        move |reason| closed(&done_inner, id, reason),
    );
    if inner.stopping.load(Ordering::Acquire) {
        handle.close(CloseCode::GoingAway, "server shutting down");
    }
}
