//! Incoming calls: routing by wire name, the guest and in-flight checks, and
//! the handler tasks with their deadline, cancellation and panic isolation.
//!
//! A call that cannot start is answered at once: `UNKNOWN_METHOD`,
//! `BAD_REQUEST` (arguments that do not decode, or a call to a notification
//! method, which never replies), `UNAUTHORIZED` (a guest calling a method not marked open),
//! `REJECTED` (the peer already has the maximum number of calls running) or
//! `SHUTTING_DOWN`. Otherwise the handler is polled once by the connection's
//! task: one that is already done (most are) is answered at once, into the
//! batch being written, without a task of its own. One
//! that is not runs in its own task until it returns, the caller's deadline
//! passes (`TIMEOUT`), the caller cancels (no reply: nobody waits), or it
//! panics (`INTERNAL`; the connection lives on). A handler that blocks the
//! thread in its first poll therefore holds up its connection:
//! blocking work belongs in `tokio::task::spawn_blocking`.
//!
//! A notification that cannot start is dropped (there is nothing to reply
//! to): one for an unknown method, a closed method from a guest, a method
//! that is not a notification method (logged as a warning: the sender's
//! result would be lost), or arguments that do not decode.

use std::borrow::Cow;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use tokio::task::AbortHandle;

use crate::connection::{Shared, lock};
use crate::error::Error;
use crate::protocol::codec::CodecError;
use crate::protocol::{Call, ErrorCode, Message, Notify, Outcome, RemoteError, Reply};
use crate::service::{Context, DispatchError, HandlerFuture, MethodInfo, Service};
use crate::signal::Signal;

/// The services one side of a connection serves, by wire name.
#[derive(Default)]
pub(crate) struct Services {
    by_name: HashMap<&'static str, Arc<dyn Service>>,
}

impl Services {
    /// Adds a service.
    ///
    /// # Errors
    /// [`Error::Config`] when a service of that name is already served.
    pub(crate) fn add(&mut self, service: Arc<dyn Service>) -> Result<(), Error> {
        let name = service.info().name;
        if self.by_name.insert(name, service).is_some() {
            return Err(Error::Config(format!("service `{name}` is served twice")));
        }
        Ok(())
    }

    /// The service and method a wire name (`service.method`) refers to.
    fn route(&self, method: &str) -> Option<(&Arc<dyn Service>, &'static MethodInfo)> {
        let (service, _) = method.rsplit_once('.')?;
        let service = self.by_name.get(service)?;
        let info = service.info().method(method)?;
        Some((service, info))
    }
}

/// The handlers running for calls and notifications of the peer.
#[derive(Default)]
pub(crate) struct Running {
    /// By the peer's call id.
    tasks: HashMap<u64, AbortHandle>,
    /// By a local counter; bounded like calls, but a notification over the
    /// bound is dropped (there is no reply to refuse it with).
    notifications: HashMap<u64, AbortHandle>,
    next_notification: u64,
}

impl Running {
    fn publish(&self, count: &Signal<usize>) {
        let running = self.tasks.len() + self.notifications.len();
        // Only `Handle::idle` watches the count, waiting for zero: wake
        // watchers when it reaches or leaves zero, not twice per call.
        count.update(|current| {
            let crossed = (*current == 0) != (running == 0);
            *current = running;
            crossed
        });
    }

    fn insert(&mut self, id: u64, task: AbortHandle, count: &Signal<usize>) {
        self.tasks.insert(id, task);
        self.publish(count);
    }

    fn remove(&mut self, id: u64, count: &Signal<usize>) -> Option<AbortHandle> {
        let task = self.tasks.remove(&id);
        self.publish(count);
        task
    }

    pub(crate) fn abort_all(&mut self, count: &Signal<usize>) {
        for (_, task) in self.tasks.drain().chain(self.notifications.drain()) {
            task.abort();
        }
        self.publish(count);
    }
}

fn error_reply(id: u64, code: ErrorCode, message: impl Into<String>) -> Message {
    Message::Reply(Reply {
        id,
        outcome: Outcome::Err(RemoteError {
            code,
            message: message.into(),
        }),
    })
}

fn context(shared: &Arc<Shared>, deadline: Option<std::time::Instant>) -> Context {
    Context::new(
        shared.id,
        shared.peer_addr,
        shared.session,
        shared.meta.clone(),
        shared.rtt.clone(),
        deadline,
        shared.peer(),
        shared.origin.clone(),
    )
}

/// The service that serves a call and whether a call with its id is already
/// running, or the reply that refuses it.
fn admit<'a>(
    shared: &'a Shared,
    id: u64,
    method: &str,
) -> Result<(&'a Arc<dyn Service>, bool), Message> {
    if shared.is_draining() {
        return Err(error_reply(id, ErrorCode::ShuttingDown, "shutting down"));
    }
    let Some((service, info)) = shared.services.route(method) else {
        return Err(error_reply(id, ErrorCode::UnknownMethod, method));
    };
    if shared.peer_is_guest && !info.open {
        return Err(error_reply(
            id,
            ErrorCode::Unauthorized,
            "method not open to guests",
        ));
    }
    if info.notify {
        return Err(error_reply(
            id,
            ErrorCode::BadRequest,
            format!(
                "`{method}` is a notification method: it never replies, send it as a notification"
            ),
        ));
    }
    let (running, recorded) = {
        let running = lock(&shared.running);
        (running.tasks.len(), running.tasks.contains_key(&id))
    };
    if running >= shared.config.max_in_flight {
        return Err(error_reply(
            id,
            ErrorCode::Rejected,
            "too many calls in flight",
        ));
    }
    Ok((service, recorded))
}

/// Handles a call from the peer: answers at once or starts its handler.
///
/// Returns the reply to send now, if there is one: a refusal, or the result of
/// a handler that finished on its first poll. A handler that did not runs in
/// its own task, which queues its reply when it ends.
///
/// The call's deadline counts from `received`, when its frame arrived.
pub(crate) fn call(
    shared: &Arc<Shared>,
    call: Call,
    received: tokio::time::Instant,
) -> Option<Message> {
    let Call {
        id,
        method,
        timeout_ms,
        args,
    } = call;
    let (service, recorded) = match admit(shared, id, &method) {
        Ok(admitted) => admitted,
        Err(refusal) => return Some(refusal),
    };
    let deadline = timeout_ms.map(|ms| received.into_std() + Duration::from_millis(u64::from(ms)));
    let handler = match Arc::clone(service).dispatch(context(shared, deadline), &method, &args) {
        Ok(handler) => handler,
        Err(error) => {
            return Some(match error {
                DispatchError::UnknownMethod(name) => {
                    error_reply(id, ErrorCode::UnknownMethod, name)
                }
                DispatchError::BadRequest(detail) => error_reply(id, ErrorCode::BadRequest, detail),
            });
        }
    };
    let max_reply = shared.config.max_message.saturating_sub(64);
    let mut run = AssertUnwindSafe(handler).catch_unwind();
    // Most handlers finish on their first poll: answer those here, without a
    // task, a map entry or a timer. (A call whose id is already running is
    // refused below instead.)
    if !recorded && let Some(result) = (&mut run).now_or_never() {
        let outcome = outcome(Some(result), max_reply, &method);
        return Some(Message::Reply(Reply { id, outcome }));
    }
    let task_shared = Arc::clone(shared);
    // The handler is registered under the same lock that checks for a
    // duplicate and before its task can finish: on a multi-threaded runtime a
    // fast handler would otherwise find itself unregistered, drop its reply
    // (the caller waits for its timeout) and leave a stale in-flight slot.
    let mut running = lock(&shared.running);
    if running.tasks.contains_key(&id) {
        return Some(error_reply(id, ErrorCode::Rejected, "duplicate call id"));
    }
    let handler = Pending {
        run,
        deadline: deadline.map(tokio::time::Instant::from_std),
        max_reply,
    };
    let task = tokio::spawn(run_handler(task_shared, id, method, handler));
    running.insert(id, task.abort_handle(), &shared.running_count);
    None
}

/// A handler that did not finish on its first poll.
struct Pending {
    run: CatchUnwind<AssertUnwindSafe<HandlerFuture>>,
    deadline: Option<tokio::time::Instant>,
    max_reply: usize,
}

/// Runs a call's handler to its end and queues the reply, unless the call
/// was cancelled (no longer registered) meanwhile.
async fn run_handler(
    task_shared: Arc<Shared>,
    id: u64,
    method: Cow<'static, str>,
    handler: Pending,
) {
    let Pending {
        run,
        deadline,
        max_reply,
    } = handler;
    let result = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, run).await.ok(),
        None => Some(run.await),
    };
    let outcome = outcome(result, max_reply, &method);
    let still_running = {
        lock(&task_shared.running)
            .remove(id, &task_shared.running_count)
            .is_some()
    };
    if still_running {
        let _ = task_shared
            .queue
            .send(Message::Reply(Reply { id, outcome }))
            .await;
    }
}

/// The reply to a call: the handler's result, or `None` when its deadline passed.
fn outcome(
    result: Option<std::thread::Result<Result<Vec<u8>, CodecError>>>,
    max_reply: usize,
    method: &str,
) -> Outcome {
    match result {
        None => Outcome::Err(RemoteError {
            code: ErrorCode::Timeout,
            message: "the deadline passed before the handler finished".into(),
        }),
        Some(Err(_panic)) => {
            tracing::error!(method = %method, "handler panicked");
            Outcome::Err(RemoteError {
                code: ErrorCode::Internal,
                message: "the handler panicked".into(),
            })
        }
        Some(Ok(Err(error))) => Outcome::Err(RemoteError {
            code: ErrorCode::Internal,
            message: format!("the result could not be encoded: {error}"),
        }),
        Some(Ok(Ok(value))) if value.len() > max_reply => Outcome::Err(RemoteError {
            code: ErrorCode::Internal,
            message: "the result exceeds the maximum message size".into(),
        }),
        Some(Ok(Ok(value))) => Outcome::Ok(value.into()),
    }
}

/// Handles a notification: runs the handler, answers nothing.
pub(crate) fn notify(shared: &Arc<Shared>, notify: Notify) {
    let Notify { method, args } = notify;
    let Some((service, info)) = shared.services.route(&method) else {
        tracing::debug!(id = %shared.id, %method, "notification for an unknown method");
        return;
    };
    if shared.peer_is_guest && !info.open {
        tracing::debug!(id = %shared.id, %method, "guest notification for a closed method");
        return;
    }
    if !info.notify {
        tracing::warn!(
            id = %shared.id,
            %method,
            "notification dropped: the method replies, so it must be called"
        );
        return;
    }
    let handler = match Arc::clone(service).dispatch(context(shared, None), &method, &args) {
        Ok(handler) => handler,
        Err(error) => {
            tracing::debug!(id = %shared.id, %error, "notification not dispatched");
            return;
        }
    };
    let mut running = lock(&shared.running);
    if running.notifications.len() >= shared.config.max_in_flight {
        tracing::warn!(id = %shared.id, %method, "notification dropped: too many running");
        return;
    }
    let key = running.next_notification;
    running.next_notification += 1;
    let task_shared = Arc::clone(shared);
    let task = tokio::spawn(async move {
        if AssertUnwindSafe(handler).catch_unwind().await.is_err() {
            tracing::error!(%method, "notification handler panicked");
        }
        let mut running = lock(&task_shared.running);
        running.notifications.remove(&key);
        running.publish(&task_shared.running_count);
    });
    running.notifications.insert(key, task.abort_handle());
    running.publish(&shared.running_count);
}

/// The peer no longer waits for call `id`: abort its handler.
pub(crate) fn cancel(shared: &Arc<Shared>, id: u64) {
    let task = lock(&shared.running).remove(id, &shared.running_count);
    if let Some(task) = task {
        task.abort();
    }
}
