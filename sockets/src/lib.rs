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
//! | [`service`](mod@service) | the contract generated services implement; handler context; peers |
//! | [`crypto`] | the handshake, key schedule and frame protection (sans-IO) |
//! | [`error`] | the one error type callers see |
//!
//! Services are declared with [`service`](macro@service) (on a trait, or on a module of
//! [`handler`] functions), which generates typed request and response enums,
//! a server the runtime dispatches to, and a typed client.

pub mod crypto;
pub mod error;
mod macro_support;
pub mod protocol;
pub mod service;

pub use error::{Disconnect, Error, Result};
pub use service::{CallOptions, ConnectionId, Context, Meta, Peer, Service, SessionKind};

#[doc = include_str!("../docs/service.md")]
pub use sockets_macros::service;

#[doc = include_str!("../docs/handler.md")]
pub use sockets_macros::handler;

/// What generated code names; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use bytes;
    pub use serde;
    pub use serde_bytes;

    pub use crate::macro_support::*;

    pub use core::clone::Clone;
    pub use core::convert::From;
    pub use core::default::Default;
    pub use core::fmt::Debug;
    pub use core::future::Future;
    pub use core::marker::{Copy, Send, Sync};
    pub use core::option::Option::{self, None, Some};
    pub use core::result::Result::{self, Err, Ok};
    pub use core::time::Duration;
    pub use std::string::String;
    pub use std::sync::Arc;
    pub use std::vec::Vec;
}
