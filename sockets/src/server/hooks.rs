//! Lifecycle hooks: the application's code that runs when a session starts,
//! when it is resumed on a new connection, and when its connection ends.
//!
//! Each hook runs in a task of its own, with the connection's
//! [`Context`], concurrently with the calls the client makes meanwhile; a
//! hook that panics is logged and does not affect the connection. A hook may
//! call the client through [`Context::peer`], join rooms and replace the
//! metadata through [`Context::server`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;

use crate::connection::Handle;
use crate::error::Disconnect;
use crate::service::{BoxFuture, Context};

/// A hook that gets the connection's context.
type Hook = Arc<dyn Fn(Context) -> BoxFuture<'static, ()> + Send + Sync>;

/// A hook that gets the context and why the connection ended.
type DisconnectHook = Arc<dyn Fn(Context, Disconnect) -> BoxFuture<'static, ()> + Send + Sync>;

/// The hooks a server runs; none by default.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    on_connect: Option<Hook>,
    on_resume: Option<Hook>,
    on_disconnect: Option<DisconnectHook>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("on_connect", &self.on_connect.is_some())
            .field("on_resume", &self.on_resume.is_some())
            .field("on_disconnect", &self.on_disconnect.is_some())
            .finish()
    }
}

fn hook<F, Fut>(hook: F) -> Hook
where
    F: Fn(Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |cx| Box::pin(hook(cx)))
}

impl Hooks {
    pub(crate) fn set_on_connect<F, Fut>(&mut self, f: F)
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_connect = Some(hook(f));
    }

    pub(crate) fn set_on_resume<F, Fut>(&mut self, f: F)
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_resume = Some(hook(f));
    }

    pub(crate) fn set_on_disconnect<F, Fut>(&mut self, f: F)
    where
        F: Fn(Context, Disconnect) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_disconnect = Some(Arc::new(move |cx, reason| Box::pin(f(cx, reason))));
    }

    /// A new session started on `handle`.
    pub(crate) fn connected(&self, handle: &Handle) {
        if let Some(hook) = &self.on_connect {
            run("on_connect", hook(handle.context()));
        }
    }

    /// A session was resumed on `handle`.
    pub(crate) fn resumed(&self, handle: &Handle) {
        if let Some(hook) = &self.on_resume {
            run("on_resume", hook(handle.context()));
        }
    }

    /// The connection serving a session ended.
    pub(crate) fn disconnected(&self, handle: &Handle, reason: Disconnect) {
        if let Some(hook) = &self.on_disconnect {
            run("on_disconnect", hook(handle.context(), reason));
        }
    }
}

/// Runs a hook in a task of its own; a panic is logged.
fn run(name: &'static str, hook: BoxFuture<'static, ()>) {
    tokio::spawn(async move {
        if AssertUnwindSafe(hook).catch_unwind().await.is_err() {
            tracing::error!(hook = name, "lifecycle hook panicked");
        }
    });
}
