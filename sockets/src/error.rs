//! The error every fallible public API of this crate returns.

use std::fmt;

use crate::identity::ConnectionId;
use crate::protocol::CloseCode;
use crate::protocol::codec::CodecError;

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
    /// A limit was reached (calls in flight, connections); the call was not run.
    #[error("rejected: {0}")]
    Rejected(String),
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

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
