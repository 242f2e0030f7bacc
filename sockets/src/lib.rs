//! Typed, authenticated, encrypted RPC over WebSockets, in both directions.
//!
//! `sockets` connects two processes that share a secret: each side proves it
//! knows the secret without sending it, every frame after that is encrypted
//! with fresh per-connection keys, and both sides can call typed methods on
//! the other.
//!
//! The layers, from the socket up (data flows one way through them):
//!
//! | module | job |
//! |---|---|
//! | [`protocol`] | envelopes, their MessagePack encoding, close codes |
//! | [`service`] | the contract generated services implement; handler context; peers |
//! | [`crypto`] | the handshake, key schedule and frame protection (sans-IO) |
//! | [`error`] | the one error type callers see |

pub mod crypto;
pub mod error;
pub mod protocol;
pub mod service;

pub use error::{Disconnect, Error, Result};
pub use service::{CallOptions, ConnectionId, Context, Meta, Peer, Service, SessionKind};

/// What generated code names; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use bytes;
    pub use serde;
    pub use serde_bytes;
}
