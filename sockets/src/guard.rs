//! Guards: checks that run before a handler and may refuse the call.
//!
//! A [`Guard`] sees the call's [`Context`] (the auth hook's metadata, the
//! peer's address, the session kind) and the method's wire name, and lets
//! the call through or refuses it with a [`Refusal`]. It runs after the
//! runtime's own checks (the method exists, a guest may call it, a slot is
//! free) and before the arguments are decoded, so a refused caller learns
//! nothing about the method's parameters and costs no decoding.
//!
//! Guards attach three ways, and all that apply run, outermost first:
//! - to every service one side serves: `Server::builder().guard(g)`, or
//!   `Client::builder().guard(g)` for the services a client serves;
//! - to one service: `.serve(CalculatorServer::new(calc).with_guard(g))`
//!   ([`ServiceExt::with_guard`]);
//! - to one method, in the trait: `#[sockets(guard = path::to::fn)]`.
//!
//! A guard is synchronous: it decides from what the connection already
//! holds. Anything that needs I/O (a database, a token introspection
//! endpoint) belongs in the auth hook, which stores its answer in the
//! connection's metadata, or in the handler. That keeps every call that is
//! let through on the runtime's fast path, where a handler that finishes at
//! once is answered without a task.
//!
//! Ready-made guards: [`RateLimit`], per connection or per user key.
//!
//! # Why not `tower::Layer`
//! A tower `Service` is an async `call(Request) -> Future<Response>`; our
//! dispatch path is a decode step, a typed handler and an encode step, with
//! deadlines, cancellation and the poll-once fast path owned by the runtime.
//! Wrapping that in tower would box a future per call and let a layer
//! reorder or drop what the protocol requires (every call gets exactly one
//! reply). The usual tower layers have a place here already: timeouts are
//! the call deadline, concurrency limits are `max_in_flight`, rate limits
//! are [`RateLimit`], auth is the auth hook plus guards, and tracing spans
//! come with the runtime. A guard is a plain function, so an existing
//! policy object is adapted with a closure.

mod rate_limit;

use std::sync::Arc;

use crate::error::DispatchError;
use crate::service::{Context, HandlerFuture, Service, ServiceInfo};

pub use rate_limit::RateLimit;

/// Why a guard refused a call: the caller gets it as
/// [`Error::Forbidden`](crate::Error::Forbidden) or
/// [`Error::Rejected`](crate::Error::Rejected), with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// This caller may not call the method (wire code 8, FORBIDDEN).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Not now: a limit was reached (wire code 4, REJECTED). Say when the
    /// call would pass, as [`RateLimit`] does ("retry in 250 ms").
    #[error("rejected: {0}")]
    Rejected(String),
}

impl Refusal {
    /// A [`Refusal::Forbidden`] with `reason`, which the caller reads.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::Forbidden(reason.into())
    }

    /// A [`Refusal::Rejected`] with `reason`, which the caller reads.
    pub fn rejected(reason: impl Into<String>) -> Self {
        Self::Rejected(reason.into())
    }
}

impl From<Refusal> for DispatchError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Forbidden(reason) => DispatchError::Forbidden(reason),
            Refusal::Rejected(reason) => DispatchError::Rejected(reason),
        }
    }
}

/// A check before a handler: lets a call through (`Ok`) or refuses it.
///
/// Any `Fn(&Context, &str) -> Result<(), Refusal>` is a guard; `method` is
/// the wire name (`"calculator.add"`). A guard also sees notifications: a
/// refused notification is dropped and counted, as one that no handler
/// runs for.
///
/// ```
/// use sockets::guard::Refusal;
/// use sockets::Context;
///
/// /// Only users the auth hook marked as admins may call `admin.*`.
/// fn admins_only(cx: &Context, method: &str) -> Result<(), Refusal> {
///     match cx.meta::<String>() {
///         Some(user) if user.starts_with("admin:") => Ok(()),
///         _ => Err(Refusal::forbidden(format!("{method} is for admins"))),
///     }
/// }
///
/// let cx = Context::builder().meta("ada".to_owned()).build();
/// assert_eq!(
///     admins_only(&cx, "admin.reset"),
///     Err(Refusal::forbidden("admin.reset is for admins")),
/// );
/// ```
pub trait Guard: Send + Sync + 'static {
    /// Decides about one call of `method` in `cx`.
    ///
    /// # Errors
    /// The [`Refusal`] the caller gets instead of a reply.
    fn check(&self, cx: &Context, method: &str) -> Result<(), Refusal>;
}

impl<F> Guard for F
where
    F: Fn(&Context, &str) -> Result<(), Refusal> + Send + Sync + 'static,
{
    fn check(&self, cx: &Context, method: &str) -> Result<(), Refusal> {
        self(cx, method)
    }
}

impl Guard for Arc<dyn Guard> {
    fn check(&self, cx: &Context, method: &str) -> Result<(), Refusal> {
        (**self).check(cx, method)
    }
}

/// A service whose every call and notification passes a guard first: see
/// [`ServiceExt::with_guard`].
pub struct Guarded<S, G> {
    service: Arc<S>,
    guard: G,
}

impl<S: Service, G: Guard> Service for Guarded<S, G> {
    fn info(&self) -> &'static ServiceInfo {
        self.service.info()
    }

    fn descriptor(&self) -> Option<&'static crate::descriptor::ServiceDescriptor> {
        self.service.descriptor()
    }

    fn dispatch(
        self: Arc<Self>,
        cx: Context,
        method: &str,
        args: &[u8],
    ) -> Result<HandlerFuture, DispatchError> {
        self.guard.check(&cx, method)?;
        Arc::clone(&self.service).dispatch(cx, method, args)
    }
}

/// Adds [`with_guard`](Self::with_guard) to every [`Service`].
pub trait ServiceExt: Service + Sized {
    /// This service, with `guard` checking each call and notification
    /// before its handler runs (and before its arguments are decoded).
    ///
    /// ```no_run
    /// # #[sockets::service] pub trait Admin { async fn reset(&self) -> bool; }
    /// # struct Impl;
    /// # impl Admin for Impl { async fn reset(&self) -> bool { true } }
    /// use sockets::guard::{Refusal, ServiceExt};
    ///
    /// let builder = sockets::Server::builder().serve(AdminServer::new(Impl).with_guard(
    ///     |cx: &sockets::Context, _method: &str| match cx.meta::<String>() {
    ///         Some(user) if user == "root" => Ok(()),
    ///         _ => Err(Refusal::forbidden("root only")),
    ///     },
    /// ));
    /// ```
    fn with_guard<G: Guard>(self, guard: G) -> Guarded<Self, G> {
        Guarded {
            service: Arc::new(self),
            guard,
        }
    }
}

impl<S: Service> ServiceExt for S {}

/// The guards every service of one side passes, in the order added.
#[derive(Default, Clone)]
pub(crate) struct Guards(Vec<Arc<dyn Guard>>);

impl Guards {
    pub(crate) fn push(&mut self, guard: Arc<dyn Guard>) {
        self.0.push(guard);
    }

    /// Runs every guard; the first refusal wins.
    pub(crate) fn check(&self, cx: &Context, method: &str) -> Result<(), Refusal> {
        self.0.iter().try_for_each(|guard| guard.check(cx, method))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny(_: &Context, method: &str) -> Result<(), Refusal> {
        Err(Refusal::forbidden(format!("no {method}")))
    }

    #[test]
    fn the_first_refusal_wins_and_maps_to_its_dispatch_error() {
        let mut guards = Guards::default();
        assert!(guards.is_empty());
        guards.push(Arc::new(|_: &Context, _: &str| Ok(())));
        guards.push(Arc::new(deny));
        guards.push(Arc::new(|_: &Context, _: &str| {
            Err(Refusal::rejected("never reached"))
        }));
        let cx = Context::builder().build();
        let refusal = guards.check(&cx, "A.b").unwrap_err();
        assert_eq!(refusal, Refusal::forbidden("no A.b"));
        assert!(matches!(
            DispatchError::from(refusal),
            DispatchError::Forbidden(reason) if reason == "no A.b"
        ));
        assert!(matches!(
            DispatchError::from(Refusal::rejected("later")),
            DispatchError::Rejected(reason) if reason == "later"
        ));
    }
}
