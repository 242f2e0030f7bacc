//! The wire protocol: envelopes, their encoding, and close codes.
//!
//! A connection is a sequence of binary WebSocket messages. The first two are
//! the handshake (the `crypto::handshake` module); every later one is a frame
//! (the `crypto::session` module) whose plaintext is either a frame-level payload
//! (AUTH, AUTH_RESULT, CLOSE) or an RPC envelope ([`Message`]) in MessagePack:
//!
//! ```text
//!  WebSocket binary message
//! ┌──────────────┬──────────────────────────────────────────────┐
//! │ frame header │ AEAD(plaintext) ─ or plaintext in P mode      │
//! │   8 bytes    │                                              │
//! └──────────────┴──────────────────────────────────────────────┘
//!                 plaintext of a DATA frame (one envelope):
//!                 [0, id, "svc.method", timeout_ms|nil, args]     call
//!                 [1, id, 0, value]                                reply, ok
//!                 [1, id, code, "message"]                         reply, error
//!                 [2, "svc.method", args]                          notify
//!                 [3, id]                                          cancel
//!                 [4, nonce] / [5, nonce]                          ping / pong
//! ```
//!
//! docs/PROTOCOL.md is the normative description.

pub mod codec;
pub mod message;

pub use message::{Call, ErrorCode, Message, Notify, Outcome, RemoteError, Reply};

/// The protocol version byte that opens every handshake message and frame header.
pub const VERSION: u8 = 0x01;

/// Why a connection was closed, as carried by a CLOSE frame or a WebSocket close.
///
/// Codes below 4000 are the WebSocket ones (RFC 6455 §7.4.1); 4000 and up are ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// 1000: the peer is done; nothing went wrong.
    Normal,
    /// 1001: the peer is going away (server shutdown, client dropped).
    GoingAway,
    /// 1002: the peer broke the protocol (bad frame, bad envelope, failed decryption).
    ProtocolError,
    /// 1008: the handshake failed; sent with an empty reason so it reveals nothing.
    PolicyViolation,
    /// 1009: a frame or a reassembled message exceeded the configured limit.
    TooBig,
    /// 1011: the peer hit an unexpected internal error.
    InternalError,
    /// 4001: a replayed or stale first handshake message.
    StaleHandshake,
    /// 4002: the application's auth hook rejected the credentials.
    AuthRejected,
    /// 4003: no traffic from the peer within the heartbeat timeout.
    HeartbeatTimeout,
    /// 4004: the peer did not read its socket fast enough; its write queue stayed full.
    SlowConsumer,
    /// 4005: the handshake or authentication did not finish in time.
    HandshakeTimeout,
    /// 4006: the application closed this connection on purpose.
    Disconnected,
    /// 4007: the server is at its connection limit.
    TooManyConnections,
    /// Any other code, kept so it can be reported.
    Other(u16),
}

impl CloseCode {
    /// The code's number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::GoingAway => 1001,
            Self::ProtocolError => 1002,
            Self::PolicyViolation => 1008,
            Self::TooBig => 1009,
            Self::InternalError => 1011,
            Self::StaleHandshake => 4001,
            Self::AuthRejected => 4002,
            Self::HeartbeatTimeout => 4003,
            Self::SlowConsumer => 4004,
            Self::HandshakeTimeout => 4005,
            Self::Disconnected => 4006,
            Self::TooManyConnections => 4007,
            Self::Other(code) => code,
        }
    }

    /// The code for a number from the wire.
    pub fn from_u16(code: u16) -> Self {
        match code {
            1000 => Self::Normal,
            1001 => Self::GoingAway,
            1002 => Self::ProtocolError,
            1008 => Self::PolicyViolation,
            1009 => Self::TooBig,
            1011 => Self::InternalError,
            4001 => Self::StaleHandshake,
            4002 => Self::AuthRejected,
            4003 => Self::HeartbeatTimeout,
            4004 => Self::SlowConsumer,
            4005 => Self::HandshakeTimeout,
            4006 => Self::Disconnected,
            4007 => Self::TooManyConnections,
            other => Self::Other(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CloseCode;

    #[test]
    fn close_codes_round_trip() {
        for code in [
            1000, 1001, 1002, 1008, 1009, 1011, 4001, 4002, 4003, 4004, 4005, 4006, 4007, 4999,
        ] {
            assert_eq!(CloseCode::from_u16(code).to_u16(), code);
        }
    }
}
