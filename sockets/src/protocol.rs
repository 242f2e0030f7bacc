//! The wire protocol: envelopes, their encoding, and close codes.
//!
//! What a user of this crate meets from here is [`CloseCode`], in every
//! [`Disconnect`](crate::Disconnect). The rest is the runtime's.
//!
//! A connection is a sequence of binary WebSocket messages. The first two are
//! the handshake (the `crypto::handshake` module); every later one is a frame
//! (the `crypto::session` module) whose plaintext is either a frame-level payload
//! (AUTH, AUTH_RESULT, CLOSE) or an RPC envelope (`Message`) in MessagePack:
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
//! The other payloads (inside the handshake, AUTH_RESULT, CLOSE) are in
//! `payloads`; close codes and every fixed close reason in `close`.
//! docs/PROTOCOL.md is the normative description.

pub(crate) mod blob;
pub(crate) mod close;
pub(crate) mod codec;
pub(crate) mod encoded_value;
pub(crate) mod message;
pub(crate) mod payloads;

pub use blob::Blob;
pub use close::CloseCode;
pub(crate) use close::Reason;
pub use encoded_value::EncodedValue;
pub(crate) use message::{Call, ErrorCode, Half, Message, Notify, Outcome, RemoteError, Reply};

/// The protocol version byte that opens every handshake message and frame header.
pub(crate) const VERSION: u8 = 0x01;
