//! Observability: the names of every span, log target and metric the
//! runtime emits (in one place, so they stay stable), the labels calls and
//! connections are counted under, and the rate limit on security log lines.
//!
//! Everything goes through facades: spans and log lines through `tracing`,
//! metrics through `metrics`. With no subscriber and no recorder installed
//! both cost a few relaxed loads and one clock read per call, within the
//! benchmark's noise (README "Observability" has the measurement).
//!
//! ```text
//!  sockets.connection   INFO   side id peer transport session user
//!  └─ sockets.call      DEBUG  method id direction timeout_ms outcome duration_us
//!  sockets::security    WARN/INFO lines, at most SECURITY_BURST at once, then
//!                       SECURITY_REFILL_PER_SECOND a second, each with `suppressed`
//! ```
//!
//! Metric handles are made when a server or client is built, and per
//! method at its first call, from the recorder installed then: install the
//! recorder (`metrics::set_global_recorder`, or an exporter's
//! `install_recorder`) before building servers and clients.
//!
//! Label values are never peer-controlled strings: a call to a method that
//! is not served is counted under the method `unknown`, so a peer cannot
//! grow the number of series.

use std::net::SocketAddr;

use tracing::Span;

use crate::error::{Disconnect, Error};
use crate::identity::{ConnectionId, SessionKind};
use crate::protocol::{CloseCode, ErrorCode, Reason};

mod limiter;
mod meter;
mod security;

pub(crate) use meter::{CallRecord, Meter};
pub(crate) use security::{SecurityEvent, handshake_ended, security};

/// The span around one connection's task, at INFO: fields `side`
/// (`server`, `client`), `id`, `peer`, `transport`, `session`
/// (`authenticated`, `guest`) and `user` (the label the auth hook set with
/// [`AuthDecision::label`](crate::AuthDecision::label), or empty).
pub const CONNECTION_SPAN: &str = "sockets.connection";

/// The span around one call, at DEBUG, inside its connection's span:
/// fields `method`, `id`, `direction` (`in`: served, `out`: made),
/// `timeout_ms` (the caller's deadline), and when it ends `outcome` (an
/// outcome label, as in [`names::CALLS_TOTAL`]) and `duration_us`.
pub const CALL_SPAN: &str = "sockets.call";

/// The log target of security-relevant failures (a failed handshake, a
/// rejected credential, a locked-out address, a slow consumer, a peer that
/// broke the protocol): one line per connection, at WARN or INFO, rate-limited
/// for the whole process.
pub const SECURITY_TARGET: &str = "sockets::security";

/// Security lines logged at once before the rate limit applies.
pub const SECURITY_BURST: u32 = 20;

/// Security lines a second once the burst is spent. A line logged after some
/// were suppressed says how many in its `suppressed` field.
pub const SECURITY_REFILL_PER_SECOND: u32 = 1;

/// The metric names, stable across releases; README "Observability" has
/// their types and labels.
pub mod names {
    /// Gauge: connections established (authenticated) and open now, both sides.
    pub const CONNECTIONS_OPEN: &str = "sockets_connections_open";
    /// Counter, label `side`: connections established since start.
    pub const CONNECTIONS_TOTAL: &str = "sockets_connections_total";
    /// Counter, label `outcome`: server-side handshakes by how they ended.
    pub const HANDSHAKES_TOTAL: &str = "sockets_handshakes_total";
    /// Counter, label `outcome` (`authenticated`, `guest`, `rejected`): the auth hook's verdicts.
    pub const AUTH_TOTAL: &str = "sockets_auth_total";
    /// Counter, labels `method`, `direction`, `outcome`: calls ended.
    pub const CALLS_TOTAL: &str = "sockets_calls_total";
    /// Histogram in seconds, labels `method`, `direction`: how long calls took.
    pub const CALL_DURATION_SECONDS: &str = "sockets_call_duration_seconds";
    /// Gauge, label `direction`: calls running now.
    pub const CALLS_IN_FLIGHT: &str = "sockets_calls_in_flight";
    /// Counter, label `direction` (`in`, `out`): bytes of frames, as on the transport.
    pub const BYTES_TOTAL: &str = "sockets_bytes_total";
    /// Counter, label `cause`: frames that closed the connection.
    pub const FRAMES_REJECTED_TOTAL: &str = "sockets_frames_rejected_total";
    /// Histogram in seconds: heartbeat round trips.
    pub const HEARTBEAT_RTT_SECONDS: &str = "sockets_heartbeat_rtt_seconds";
    /// Gauge, `direction`: streams open now (`in`, opened by the peer; `out`, by us).
    pub const STREAMS_OPEN: &str = "sockets_streams_open";
}

/// Which end of a connection this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

impl Side {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
        }
    }
}

/// Whether a call is served here or made from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    In,
    Out,
}

impl Direction {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

/// How a call ended, as counted: the reply's error code in lowercase, or
/// what ended it on this side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallOutcome {
    Ok,
    UnknownMethod,
    BadRequest,
    Unauthorized,
    Rejected,
    Timeout,
    Internal,
    ShuttingDown,
    Forbidden,
    /// A stream's reader fell too far behind (a stream's end; a call
    /// answered with it is counted so too).
    Lagged,
    /// An error code this implementation does not know.
    Other,
    /// The connection ended first.
    Disconnected,
    /// The caller stopped waiting (its future was dropped), or the peer cancelled.
    Cancelled,
    /// The peer broke the protocol, or the reply did not decode.
    Protocol,
}

impl CallOutcome {
    const COUNT: usize = 14;

    /// The label value (`sockets_calls_total{outcome}`, the span's `outcome`).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::UnknownMethod => "unknown_method",
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Rejected => "rejected",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
            Self::ShuttingDown => "shutting_down",
            Self::Forbidden => "forbidden",
            Self::Lagged => "lagged",
            Self::Other => "other",
            Self::Disconnected => "disconnected",
            Self::Cancelled => "cancelled",
            Self::Protocol => "protocol",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The outcome of a reply with this error code.
    pub(crate) fn of_code(code: ErrorCode) -> Self {
        match code {
            ErrorCode::UnknownMethod => Self::UnknownMethod,
            ErrorCode::BadRequest => Self::BadRequest,
            ErrorCode::Unauthorized => Self::Unauthorized,
            ErrorCode::Rejected => Self::Rejected,
            ErrorCode::Timeout => Self::Timeout,
            ErrorCode::Internal => Self::Internal,
            ErrorCode::ShuttingDown => Self::ShuttingDown,
            ErrorCode::Forbidden => Self::Forbidden,
            ErrorCode::Lagged => Self::Lagged,
            _ => Self::Other,
        }
    }

    /// The outcome of a call we made that ended in `result`.
    pub(crate) fn of_result<T>(result: &Result<T, Error>) -> Self {
        let Err(error) = result else {
            return Self::Ok;
        };
        match error {
            Error::UnknownMethod(_) => Self::UnknownMethod,
            Error::BadRequest(_) => Self::BadRequest,
            Error::Unauthorized => Self::Unauthorized,
            Error::Forbidden(_) => Self::Forbidden,
            Error::Rejected(_) => Self::Rejected,
            Error::Lagged(_) => Self::Lagged,
            Error::Timeout => Self::Timeout,
            Error::Internal(_) => Self::Internal,
            Error::Disconnected(_) => Self::Disconnected,
            Error::Remote { .. } => Self::Other,
            _ => Self::Protocol,
        }
    }
}

/// The label of a close code: the cause of a rejected frame, the class of a
/// failed handshake.
pub(crate) fn close_label(code: CloseCode) -> &'static str {
    match code {
        CloseCode::Normal => "normal",
        CloseCode::GoingAway => "going_away",
        CloseCode::ProtocolError => "protocol_error",
        CloseCode::ConnectionLost => "connection_lost",
        CloseCode::PolicyViolation => "policy_violation",
        CloseCode::TooBig => "too_big",
        CloseCode::InternalError => "internal_error",
        CloseCode::StaleHandshake => "stale_handshake",
        CloseCode::AuthRejected => "auth_rejected",
        CloseCode::HeartbeatTimeout => "heartbeat_timeout",
        CloseCode::SlowConsumer => "slow_consumer",
        CloseCode::HandshakeTimeout => "handshake_timeout",
        CloseCode::Disconnected => "disconnected",
        CloseCode::TooManyConnections => "too_many_connections",
        CloseCode::Other(_) => "other",
    }
}

/// The cause of a rejected frame: its close code's label, more precise
/// for the causes worth telling apart (a frame that did not authenticate,
/// an oversized one, an undecodable envelope).
pub(crate) fn reason_label(reason: Reason) -> &'static str {
    match reason {
        Reason::DecryptionFailed => "decryption_failed",
        Reason::FrameTooLarge | Reason::MessageTooLarge => "too_large",
        Reason::MalformedEnvelope => "malformed_envelope",
        Reason::MalformedClose => "malformed_close",
        Reason::AuthTwice => "auth_twice",
        Reason::NonBinary | Reason::MalformedTransport => "transport_framing",
        other => close_label(other.code()),
    }
}

/// A frame broke the protocol and closed its connection.
pub(crate) fn frame_rejected(cause: &'static str) {
    metrics::counter!(names::FRAMES_REJECTED_TOTAL, "cause" => cause).increment(1);
}

/// The class of a failed server-side handshake (`sockets_handshakes_total`'s
/// `outcome`, the security line's `cause`), from how it closed.
pub(crate) fn handshake_class(reason: &Disconnect) -> &'static str {
    match reason.code {
        // The one refusal without a reason: the peer did not prove the secret.
        CloseCode::PolicyViolation if reason.reason.is_empty() => "bad_secret",
        CloseCode::PolicyViolation => "refused",
        CloseCode::StaleHandshake => "stale",
        CloseCode::ProtocolError => "malformed",
        CloseCode::TooBig => "too_big",
        CloseCode::HandshakeTimeout => "timeout",
        CloseCode::ConnectionLost => "abandoned",
        CloseCode::TooManyConnections => "preempted",
        CloseCode::GoingAway => "shutting_down",
        _ => "other",
    }
}

/// The label of a session kind.
pub(crate) fn session_label(session: SessionKind) -> &'static str {
    match session {
        SessionKind::Authenticated => "authenticated",
        SessionKind::Guest => "guest",
    }
}

/// The span of a connection; `transport` is recorded once known.
pub(crate) fn connection_span(
    side: Side,
    id: ConnectionId,
    peer: SocketAddr,
    session: SessionKind,
    user: Option<&str>,
) -> Span {
    tracing::info_span!(
        CONNECTION_SPAN,
        side = side.label(),
        id = id.get(),
        %peer,
        transport = tracing::field::Empty,
        session = session_label(session),
        user = user.unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_labels_are_the_error_codes_in_lowercase() {
        let codes = [
            (1, "unknown_method"),
            (2, "bad_request"),
            (3, "unauthorized"),
            (4, "rejected"),
            (5, "timeout"),
            (6, "internal"),
            (7, "shutting_down"),
            (8, "forbidden"),
            (9, "lagged"),
            (99, "other"),
        ];
        for (code, label) in codes {
            let code = ErrorCode::from_u16(code).expect("not 0");
            assert_eq!(CallOutcome::of_code(code).label(), label);
        }
        assert_eq!(CallOutcome::Protocol.index(), CallOutcome::COUNT - 1);
    }
}
