//! The error every fallible public API of this crate returns, and every
//! conversion between errors and what travels on the wire: reply error
//! codes ([`ErrorCode`]) to and from [`Error`] and [`DispatchError`], and
//! close codes and reasons to [`Disconnect`] and to the errors a client's
//! set-up reports.

use std::fmt;

use crate::identity::ConnectionId;
/// Why a value did not encode or decode as MessagePack.
pub use crate::protocol::codec::CodecError;
use crate::protocol::{CloseCode, ErrorCode, Reason, RemoteError};

/// Everything that can go wrong for a caller: one variant per outcome.
///
/// A call ends in exactly one of: its typed reply, or one of these.
/// Display strings are lowercase and never contain secret material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer did not prove knowledge of the shared secret: the secrets
    /// differ, or someone in the middle answered. Nothing was sent after it.
    #[error(
        "handshake failed: the peer does not know the shared secret, or a man in the middle answered"
    )]
    HandshakeFailed,
    /// The server refused the handshake for a reason it named: the client's
    /// settings do not match the server's ("plaintext mode not allowed",
    /// "unsupported suite", "tls channel binding unavailable") or its clock
    /// is too far off ("stale handshake"). Unlike [`Error::HandshakeFailed`],
    /// both sides know the secret; retrying with the same settings fails again.
    #[error("handshake refused by the server: {0}")]
    HandshakeRefused(String),
    /// The server's auth hook rejected the credentials, with its reason.
    #[error("authentication rejected: {0}")]
    AuthRejected(String),
    /// The network failed (connect refused, reset, WebSocket upgrade error).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The deadline passed: a call's timeout, or connecting and authenticating took too long.
    #[error("timed out")]
    Timeout,
    /// The connection is gone; calls pending on it end with this at once.
    #[error("disconnected: {0}")]
    Disconnected(Disconnect),
    /// No connection with that id is open on this server.
    #[error("unknown connection {0}")]
    UnknownConnection(ConnectionId),
    /// The peer serves no method of that name.
    #[error("unknown method `{0}`")]
    UnknownMethod(String),
    /// The peer could not decode the arguments as the method's parameters.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The connection is a guest session and the method is not open to guests.
    #[error("unauthorized: the method is not open to guest sessions")]
    Unauthorized,
    /// A guard on the peer refused the call, with its reason: this caller
    /// may not call the method ([`Guard`](crate::Guard)). Retrying the same
    /// call on the same connection fails again.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A limit was reached (calls in flight, connections); the call was not run.
    #[error("rejected: {0}")]
    Rejected(String),
    /// A stream from a [`Topic`](crate::Topic) ended because its subscriber
    /// fell further behind than its buffer holds
    /// ([`Topic::subscribe_until_lag`](crate::Topic::subscribe_until_lag));
    /// the message says how many items it missed.
    #[error("lagged: {0}")]
    Lagged(String),
    /// The peer's handler panicked or its result could not be encoded.
    #[error("remote internal error: {0}")]
    Internal(String),
    /// The peer answered with an error code this implementation does not know
    /// (docs/PROTOCOL.md §10.2: reported, not treated as a protocol error).
    #[error("remote error {code}: {message}")]
    Remote {
        /// The reply's error code.
        code: u16,
        /// The reply's message.
        message: String,
    },
    /// The peer broke the protocol (an undecodable reply, an unexpected frame).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A value of ours could not be encoded, or a reply could not be decoded as the expected type.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A typed request was sent the wrong way, and nothing was sent: a
    /// notification method (`#[sockets(notify)]`, `notify` is `true`) as a
    /// call, which would never be answered; or a method that replies
    /// (`notify` is `false`) as a notification, whose result would be lost.
    #[error("{}", kind_mismatch(method, *notify))]
    KindMismatch {
        /// The method's wire name.
        method: String,
        /// Whether the method is a notification method.
        notify: bool,
    },
    /// The configuration is invalid (missing secret, bad variable, bad address).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The peer's services are not what this side expects
    /// ([`ClientBuilder::expect_services`](crate::ClientBuilder::expect_services)):
    /// a service or method is missing, or a signature differs in a way that
    /// breaks; each difference is listed. Also when the peer does not answer
    /// `sockets.describe`.
    #[error("incompatible services: {0}")]
    Incompatible(crate::descriptor::Incompatible),
}

impl Error {
    /// The field errors of a call refused by the callee's argument
    /// validation (`#[sockets(validate)]`): `Some` for an
    /// [`Error::BadRequest`] that lists them, `None` otherwise.
    ///
    /// ```
    /// let error = sockets::Error::BadRequest(
    ///     r#"{"invalid":[{"path":"user.email","message":"not a valid email"}]}"#.into(),
    /// );
    /// let invalid = error.invalid_arguments().unwrap_or_default();
    /// assert_eq!(invalid[0].path, "user.email");
    /// ```
    pub fn invalid_arguments(&self) -> Option<Vec<crate::validate::InvalidArgument>> {
        match self {
            Error::BadRequest(message) => crate::validate::parse(message),
            _ => None,
        }
    }
}

fn kind_mismatch(method: &str, notify: bool) -> String {
    if notify {
        format!("`{method}` is a notification method: send it as a notification, not as a call")
    } else {
        format!(
            "`{method}` is not a notification method: call it, do not send it as a notification"
        )
    }
}

/// Why a connection ended: the close code and the reason text that came with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnect {
    /// The code from the CLOSE frame or WebSocket close.
    pub code: CloseCode,
    /// A short, human-readable reason; may be empty.
    pub reason: String,
}

impl Disconnect {
    /// A disconnect with the given code and reason.
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code.to_u16();
        if self.reason.is_empty() {
            write!(f, "close code {code}")
        } else {
            write!(f, "{} (close code {code})", self.reason)
        }
    }
}

impl From<Reason> for Disconnect {
    fn from(reason: Reason) -> Self {
        Self::new(reason.code(), reason.text())
    }
}

impl Disconnect {
    /// The connection ended without a close frame (the socket reset, or the
    /// peer's process died): [`CloseCode::ConnectionLost`], which no close
    /// ever carries.
    pub(crate) fn lost(detail: impl Into<String>) -> Self {
        Self::new(CloseCode::ConnectionLost, detail)
    }
}

/// Why a call could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The service has no method of that name.
    #[error("unknown method `{0}`")]
    UnknownMethod(String),
    /// The arguments did not decode as the method's parameters, or did not
    /// pass the method's validation.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A guard refused the call: the caller may not call the method.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A guard refused the call for now (a rate limit); it did not run.
    #[error("rejected: {0}")]
    Rejected(String),
}

impl From<DispatchError> for RemoteError {
    /// The error reply that refuses a call that could not start.
    fn from(error: DispatchError) -> Self {
        match error {
            DispatchError::UnknownMethod(name) => RemoteError {
                code: ErrorCode::UnknownMethod,
                message: name,
            },
            DispatchError::BadRequest(detail) => RemoteError {
                code: ErrorCode::BadRequest,
                message: detail,
            },
            DispatchError::Forbidden(reason) => RemoteError {
                code: ErrorCode::Forbidden,
                message: reason,
            },
            DispatchError::Rejected(reason) => RemoteError {
                code: ErrorCode::Rejected,
                message: reason,
            },
        }
    }
}

impl From<RemoteError> for Error {
    /// The caller's error for the callee's framework-level failure.
    fn from(error: RemoteError) -> Self {
        let RemoteError { code, message } = error;
        match code {
            ErrorCode::UnknownMethod => Error::UnknownMethod(message),
            ErrorCode::BadRequest => Error::BadRequest(message),
            ErrorCode::Unauthorized => Error::Unauthorized,
            ErrorCode::Forbidden => Error::Forbidden(message),
            ErrorCode::Lagged => Error::Lagged(message),
            ErrorCode::Rejected => Error::Rejected(message),
            ErrorCode::Timeout => Error::Timeout,
            ErrorCode::Internal => Error::Internal(message),
            ErrorCode::ShuttingDown => {
                Error::Rejected(format!("the peer is shutting down: {message}"))
            }
            other => Error::Remote {
                code: other.to_u16(),
                message,
            },
        }
    }
}

impl Error {
    /// What a client reports when the server closed the WebSocket during
    /// set-up, with this code and reason (or without a close frame).
    pub(crate) fn closed_during_setup(frame: Option<(u16, String)>) -> Self {
        let Some((code, reason)) = frame else {
            return Error::Disconnected(Disconnect::lost(
                "the server closed the connection during the handshake",
            ));
        };
        match CloseCode::from_u16(code) {
            // The empty reason of a secret that did not verify reveals nothing;
            // any other reason names a setting the two sides disagree on.
            CloseCode::PolicyViolation | CloseCode::StaleHandshake if reason.is_empty() => {
                Error::HandshakeFailed
            }
            CloseCode::PolicyViolation | CloseCode::StaleHandshake => {
                Error::HandshakeRefused(reason)
            }
            CloseCode::AuthRejected => Error::AuthRejected(reason),
            CloseCode::TooManyConnections => Error::Rejected(if reason.is_empty() {
                Reason::TooManyConnections.text().into()
            } else {
                reason
            }),
            CloseCode::HandshakeTimeout => Error::Timeout,
            other => Error::Disconnected(Disconnect::new(other, reason)),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
