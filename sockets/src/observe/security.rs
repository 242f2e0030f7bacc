//! Security-relevant events: counted, and logged under
//! [`SECURITY_TARGET`] through one process-wide [`LogLimiter`].

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::limiter::LogLimiter;
use super::{
    SECURITY_BURST, SECURITY_REFILL_PER_SECOND, SECURITY_TARGET, handshake_class, names,
    session_label,
};
use crate::error::Disconnect;
use crate::identity::{ConnectionId, SessionKind};
use crate::protocol::CloseCode;

/// A server-side connection got through the handshake and the auth hook
/// (`Ok`, with its session), or did not (`Err`, with how it ended): counted,
/// and a failure that says something about the peer is a security line.
pub(crate) fn handshake_ended(
    outcome: Result<SessionKind, &Disconnect>,
    id: ConnectionId,
    peer: SocketAddr,
) {
    let reason = match outcome {
        Ok(session) => {
            handshakes("ok");
            auth(session_label(session));
            return;
        }
        Err(reason) => reason,
    };
    if reason.code == CloseCode::AuthRejected {
        handshakes("ok");
        auth("rejected");
        security(SecurityEvent::AuthRejected, Some(id), peer, &reason.reason);
        return;
    }
    let class = handshake_class(reason);
    handshakes(class);
    // Not the peer's doing, or nothing to tell: no line.
    if !matches!(class, "abandoned" | "preempted" | "shutting_down") {
        // A reason from the close table, never anything the peer sent.
        security(
            SecurityEvent::HandshakeFailed(class),
            Some(id),
            peer,
            &reason.reason,
        );
    }
}

fn handshakes(outcome: &'static str) {
    metrics::counter!(names::HANDSHAKES_TOTAL, "outcome" => outcome).increment(1);
}

fn auth(outcome: &'static str) {
    metrics::counter!(names::AUTH_TOTAL, "outcome" => outcome).increment(1);
}

/// A security-relevant event, logged under [`SECURITY_TARGET`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SecurityEvent {
    /// The handshake failed; the label is its class (`close_label` of the close code).
    HandshakeFailed(&'static str),
    /// The auth hook rejected the credentials.
    AuthRejected,
    /// The address spent its failure or rejection budget and is refused for a while.
    Lockout,
    /// The peer did not read its socket within the write timeout.
    SlowConsumer,
    /// The peer broke the protocol after authentication; the label is the cause.
    ProtocolClose(&'static str),
}

impl SecurityEvent {
    fn label(self) -> &'static str {
        match self {
            Self::HandshakeFailed(_) => "handshake_failed",
            Self::AuthRejected => "auth_rejected",
            Self::Lockout => "lockout",
            Self::SlowConsumer => "slow_consumer",
            Self::ProtocolClose(_) => "protocol_close",
        }
    }

    fn cause(self) -> &'static str {
        match self {
            Self::HandshakeFailed(cause) | Self::ProtocolClose(cause) => cause,
            Self::AuthRejected => "auth_rejected",
            Self::Lockout => "lockout",
            Self::SlowConsumer => "slow_consumer",
        }
    }
}

/// The process's one limiter of security lines.
static SECURITY_LIMITER: Mutex<LogLimiter> = Mutex::new(LogLimiter::new(
    SECURITY_BURST,
    Duration::from_secs(1),
    SECURITY_REFILL_PER_SECOND,
));

/// Logs `event` for a connection (`id`, when it has one) from `peer`, unless
/// the rate limit holds it back. `detail` is a reason text from the close
/// table or the auth hook's own reason: never credentials or keys.
pub(crate) fn security(
    event: SecurityEvent,
    id: Option<ConnectionId>,
    peer: SocketAddr,
    detail: &str,
) {
    if !tracing::enabled!(target: SECURITY_TARGET, tracing::Level::INFO) {
        return;
    }
    let admitted = SECURITY_LIMITER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .admit(Instant::now());
    let Some(suppressed) = admitted else { return };
    let id = id.map(ConnectionId::get);
    let kind = event.label();
    let cause = event.cause();
    match event {
        SecurityEvent::AuthRejected | SecurityEvent::HandshakeFailed("timeout") => tracing::info!(
            target: SECURITY_TARGET,
            event = kind, cause, id, %peer, detail, suppressed,
            "{}", message(event)
        ),
        _ => tracing::warn!(
            target: SECURITY_TARGET,
            event = kind, cause, id, %peer, detail, suppressed,
            "{}", message(event)
        ),
    }
}

fn message(event: SecurityEvent) -> &'static str {
    match event {
        SecurityEvent::HandshakeFailed(_) => "handshake failed",
        SecurityEvent::AuthRejected => "credentials rejected",
        SecurityEvent::Lockout => "address locked out",
        SecurityEvent::SlowConsumer => "slow consumer disconnected",
        SecurityEvent::ProtocolClose(_) => "peer broke the protocol",
    }
}
