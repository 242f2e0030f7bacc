//! The auth hook: what the server decides about a client's credentials.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::protocol::codec;
use crate::service::{BoxFuture, ConnectionId, Meta};

/// What the server knows of a connecting client when its auth hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The id the connection will keep.
    pub id: ConnectionId,
    /// The client's address.
    pub addr: SocketAddr,
}

/// The auth hook's verdict on a client's credentials.
#[derive(Debug)]
pub enum AuthDecision {
    /// Authenticated; handlers see `meta` in their [`Context`](crate::Context).
    Accept(Meta),
    /// A guest session: only methods marked open may be called.
    Guest,
    /// Refused: the connection closes with `AuthRejected` and this reason,
    /// which the client's `connect` reports as `Error::AuthRejected`.
    Reject(String),
}

impl AuthDecision {
    /// Authenticated, storing `meta` for the connection's handlers.
    pub fn accept<T: std::any::Any + Send + Sync>(meta: T) -> Self {
        Self::Accept(Meta::new(meta))
    }

    /// Refused with `reason` (sent to the client; keep secrets out of it).
    pub fn reject(reason: impl Into<String>) -> Self {
        Self::Reject(reason.into())
    }
}

/// The type-erased hook the server runs: encoded credentials in, verdict out.
pub(crate) type AuthHook =
    Arc<dyn Fn(Bytes, PeerInfo) -> BoxFuture<'static, AuthDecision> + Send + Sync>;

/// Wraps a typed hook: credentials that do not decode as `C` are rejected.
pub(crate) fn typed<C, F, Fut>(hook: F) -> AuthHook
where
    C: DeserializeOwned + Send + 'static,
    F: Fn(C, PeerInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AuthDecision> + Send + 'static,
{
    Arc::new(move |credentials: Bytes, peer: PeerInfo| {
        match codec::decode_value::<C>(&credentials) {
            Ok(credentials) => Box::pin(hook(credentials, peer)),
            Err(error) => {
                tracing::debug!(id = %peer.id, %error, "credentials did not decode");
                Box::pin(std::future::ready(AuthDecision::reject(
                    "credentials did not decode",
                )))
            }
        }
    })
}

/// The hook of a server that sets none: every client that proved the secret
/// is authenticated, with no metadata.
pub(crate) fn accept_all() -> AuthHook {
    Arc::new(|_credentials, _peer| Box::pin(std::future::ready(AuthDecision::Accept(Meta::none()))))
}
