//! The auth hook: what the server decides about a client's credentials.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::connection::establish::AuthHook;
use crate::identity::Meta;
pub use crate::identity::{AuthDecision, Headers, PeerInfo};
use crate::protocol::codec;

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
