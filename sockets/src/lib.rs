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
//! | `transport` (private) | WebSocket binary messages in and out; the only user of tungstenite |
//! | [`crypto`] | the handshake, key schedule and frame protection (sans-IO) |
//! | [`protocol`] | envelopes, their MessagePack encoding, close codes |
//! | `connection` (private) | handshake + auth, then one reader and one writer task per connection |
//! | `correlation`, `heartbeat`, `dispatch` (private) | in-flight calls, ping/timeout, incoming calls |
//! | [`service`] | the contract generated services implement; handler context; peers |
//! | [`server`] | [`Server`]: accept, admit, registry, rooms, calls to clients, shutdown |
//! | [`client`] | [`Client`]: connect, reconnect, state stream, calls to the server |
//! | [`config`] | the `SOCKETS_*` environment variables |
//! | [`error`] | the one error type callers see |
//!
//! Every call ends in exactly one outcome: the typed reply, the remote's
//! typed error, or one [`Error`] variant (`Timeout`, `Disconnected`,
//! `UnknownMethod`, `Unauthorized`, `Rejected`, `Protocol`, ...). Dropping a
//! call's future cancels it on the other side.

pub mod client;
pub mod config;
mod connection;
mod correlation;
pub mod crypto;
mod dispatch;
pub mod error;
mod heartbeat;
pub mod protocol;
pub mod server;
pub mod service;
mod transport;

pub use client::{Client, ClientBuilder, ClientState, Reconnect};
pub use error::{Disconnect, Error, Result};
pub use server::{AuthDecision, ConnectionInfo, PeerInfo, Server, ServerBuilder, ServerEvent};
pub use service::{CallOptions, ConnectionId, Context, Meta, Peer, Rtt, Service, SessionKind};

/// What generated code names; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use bytes;
    pub use serde;
    pub use serde_bytes;
}
