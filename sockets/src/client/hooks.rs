//! The client's connection hooks: the application's code that runs on each
//! new connection before anyone else may use it.

use std::future::Future;
use std::sync::Arc;

use crate::connection::Handle;
use crate::error::Error;
use crate::service::{BoxFuture, Peer};

/// Runs on the first connection.
type ConnectedHook = Arc<dyn Fn(Peer) -> BoxFuture<'static, Result<(), Error>> + Send + Sync>;

/// Runs on every later connection, with whether the session was resumed.
type ReconnectedHook =
    Arc<dyn Fn(Peer, bool) -> BoxFuture<'static, Result<(), Error>> + Send + Sync>;

/// The hooks a client runs; none by default.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    on_connected: Option<ConnectedHook>,
    on_reconnected: Option<ReconnectedHook>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("on_connected", &self.on_connected.is_some())
            .field("on_reconnected", &self.on_reconnected.is_some())
            .finish()
    }
}

impl Hooks {
    pub(crate) fn set_on_connected<F, Fut>(&mut self, hook: F)
    where
        F: Fn(Peer) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.on_connected = Some(Arc::new(move |peer| Box::pin(hook(peer))));
    }

    pub(crate) fn set_on_reconnected<F, Fut>(&mut self, hook: F)
    where
        F: Fn(Peer, bool) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.on_reconnected = Some(Arc::new(move |peer, resumed| Box::pin(hook(peer, resumed))));
    }

    /// Runs `on_connected` on the first connection.
    pub(crate) async fn connected(&self, handle: &Handle) -> Result<(), Error> {
        match &self.on_connected {
            Some(hook) => hook(peer_on(handle)).await,
            None => Ok(()),
        }
    }

    /// Runs `on_reconnected` on a later connection.
    pub(crate) async fn reconnected(&self, handle: &Handle, resumed: bool) -> Result<(), Error> {
        match &self.on_reconnected {
            Some(hook) => hook(peer_on(handle), resumed).await,
            None => Ok(()),
        }
    }
}

/// A peer bound to this one connection.
fn peer_on(handle: &Handle) -> Peer {
    Peer::new(Arc::new(handle.clone()))
}
