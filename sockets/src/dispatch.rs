//! Incoming calls: routing by wire name, the guest and in-flight checks, and
//! the handler tasks with their deadline, cancellation and panic isolation.
//!
//! A call that cannot start is answered at once: `UNKNOWN_METHOD`,
//! `BAD_REQUEST` (arguments that do not decode, or a call to a notification
//! method, which never replies), `UNAUTHORIZED` (a guest calling a method not marked open),
//! `REJECTED` (the peer already has the maximum number of calls running),
//! `SHUTTING_DOWN`, or what a guard refused it with (`FORBIDDEN`, or
//! `REJECTED` for a rate limit): the side's guards run after these checks,
//! before the arguments are decoded. Otherwise the handler is polled once by the connection's
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
//!
//! This module decides; it never writes. [`Inbound`] is the inbound half of
//! a connection's state, which the connection owns: [`Inbound::call`]
//! returns the reply to send now, or the handler for the connection to run
//! in a task of its own ([`Inbound::run`]), whose reply the connection
//! queues when it ends ([`Inbound::finished`]).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::describe::{self, DescribeAccess, DescribeService};
use crate::error::DispatchError;
use crate::error::Error;
use crate::guard::{Guard, Guards};
use crate::observe::{CallOutcome, CallRecord};

use crate::protocol::codec::CodecError;
use crate::protocol::{
    Call, EncodedValue, ErrorCode, Message, Notify, Outcome, RemoteError, Reply,
};
use crate::service::{Context, HandlerFuture, MethodInfo, Service, StreamHandlerFuture};
use crate::signal::Signal;

/// A handler that did not finish on its first poll, with its deadline and
/// panic isolation applied: resolves to the reply to send.
pub(crate) type PendingReply = crate::service::BoxFuture<'static, Message>;

/// A notification handler to run to its end.
pub(crate) type PendingNotification = crate::service::BoxFuture<'static, ()>;

/// The services one side of a connection serves, by wire name.
#[derive(Default)]
pub(crate) struct Services {
    by_name: HashMap<&'static str, Arc<dyn Service>>,
    /// Notifications from peers that no handler ran for (no such method,
    /// closed to guests, a method that replies, undecodable arguments, too
    /// many running): a notification has no reply to say so.
    dropped_notifications: AtomicU64,
    /// Serves what no service does (`ClientBuilder::serve_fallback`).
    fallback: Option<Arc<dyn Service>>,
    /// The guards every call and notification to a user service passes.
    guards: Guards,
}

/// The method label of a call to a method that is not served: never the
/// name the peer sent, which would let it make up any number of series.
const UNKNOWN: &str = "unknown";

/// How the fallback service is reached: by a call, or a notification.
static FALLBACK_CALL: MethodInfo = MethodInfo {
    name: "*",
    open: false,
    notify: false,
    stream: false,
    stream_in: false,
};
static FALLBACK_NOTIFY: MethodInfo = MethodInfo {
    name: "*",
    open: false,
    notify: true,
    stream: false,
    stream_in: false,
};

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

    /// Adds a guard that every call and notification to these services
    /// passes, after the ones added before it.
    pub(crate) fn add_guard(&mut self, guard: Arc<dyn Guard>) {
        self.guards.push(guard);
    }

    /// Starts a call or notification of `method` on `service`, once this
    /// side's guards let it through; the reserved `sockets.describe` has its
    /// own access rule and is not guarded.
    fn start(
        &self,
        service: &Arc<dyn Service>,
        cx: Context,
        method: &str,
        args: &EncodedValue,
    ) -> Result<HandlerFuture, DispatchError> {
        if !self.guards.is_empty() && service.info().name != describe::SERVICE {
            self.guards.check(&cx, method)?;
        }
        // The arguments decode now, lent to the blobs among them.
        args.decode(|args| Arc::clone(service).dispatch(cx, method, args))
    }

    /// As [`Services::start`], for a streaming method.
    fn start_stream(
        &self,
        service: &Arc<dyn Service>,
        cx: Context,
        method: &str,
        args: &EncodedValue,
    ) -> Result<StreamHandlerFuture, DispatchError> {
        if !self.guards.is_empty() {
            self.guards.check(&cx, method)?;
        }
        args.decode(|args| Arc::clone(service).dispatch_stream(cx, method, args))
    }

    /// Notifications dropped so far, on every connection these services serve.
    pub(crate) fn dropped_notifications(&self) -> u64 {
        self.dropped_notifications.load(Ordering::Relaxed)
    }

    fn dropped(&self) {
        self.dropped_notifications.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds the reserved `sockets.describe`, describing the services added
    /// so far (none when `access` is off).
    ///
    /// # Errors
    /// [`Error::Config`] when a user service is named `sockets`.
    pub(crate) fn with_describe(mut self, access: DescribeAccess) -> Result<Self, Error> {
        if let Some(describe) = DescribeService::new(self.by_name.values(), access)? {
            self.add(Arc::new(describe)).map_err(|_| {
                Error::Config("the service name `sockets` is reserved (sockets.describe)".into())
            })?;
        }
        Ok(self)
    }

    /// Serves every call and notification no service serves with `service`.
    pub(crate) fn set_fallback(&mut self, service: Arc<dyn Service>) {
        self.fallback = Some(service);
    }

    /// The service and method a wire name (`service.method`) refers to, or
    /// the fallback service, as reached by a call or a notification.
    fn route(
        &self,
        method: &str,
        notify: bool,
    ) -> Option<(&Arc<dyn Service>, &'static MethodInfo)> {
        let found = method.rsplit_once('.').and_then(|(service, _)| {
            let service = self.by_name.get(service)?;
            Some((service, service.info().method(method)?))
        });
        found.or_else(|| {
            let info = if notify {
                &FALLBACK_NOTIFY
            } else {
                &FALLBACK_CALL
            };
            self.fallback.as_ref().map(|service| (service, info))
        })
    }
}

/// The handlers running for calls and notifications of the peer.
#[derive(Default)]
struct Running {
    /// By the peer's call id.
    calls: HashMap<u64, AbortHandle>,
    /// By a local counter; bounded like calls, but a notification over the
    /// bound is dropped (there is no reply to refuse it with).
    notifications: HashMap<u64, AbortHandle>,
    next_notification: u64,
}

/// A call from the peer as the dispatcher takes it: its method's name
/// borrowed from the frame it came in (a [`Call`] decoded whole owns it).
#[derive(Debug)]
pub(crate) struct CallRef<'a> {
    pub(crate) id: u64,
    pub(crate) method: &'a str,
    pub(crate) timeout_ms: Option<u32>,
    pub(crate) args: &'a EncodedValue,
}

impl<'a> From<&'a Call> for CallRef<'a> {
    fn from(call: &'a Call) -> Self {
        Self {
            id: call.id,
            method: &call.method,
            timeout_ms: call.timeout_ms,
            args: &call.args,
        }
    }
}

/// What came of a call from the peer.
pub(crate) enum Dispatched {
    /// The reply to send now: a refusal, or a handler that finished at once.
    Reply(Message),
    /// A handler to run in a task of its own ([`Inbound::run`]).
    Running(u64, PendingReply),
    /// The handler of a streaming method, for the connection to run and
    /// send the items of (it owns the stream's flow control).
    Stream(u64, StreamHandlerFuture),
}

/// The inbound half of a connection: what the peer may call, and the
/// handlers running for it.
pub(crate) struct Inbound {
    services: Arc<Services>,
    /// The peer may call only open methods (a server's guest connection).
    peer_is_guest: bool,
    max_in_flight: usize,
    /// The largest reply value a handler may return.
    max_reply: usize,
    running: Mutex<Running>,
    /// Handlers running; graceful shutdown waits for zero.
    count: Signal<usize>,
    /// New calls are refused with `SHUTTING_DOWN`.
    draining: AtomicBool,
}

impl Inbound {
    pub(crate) fn new(
        services: Arc<Services>,
        peer_is_guest: bool,
        max_in_flight: usize,
        max_message: usize,
    ) -> Self {
        Self {
            services,
            peer_is_guest,
            max_in_flight,
            max_reply: max_message.saturating_sub(64),
            running: Mutex::new(Running::default()),
            count: Signal::new(0),
            draining: AtomicBool::new(false),
        }
    }

    fn running(&self) -> MutexGuard<'_, Running> {
        // Plain data: a panic elsewhere cannot leave it half-written.
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes the number running; only [`Inbound::idle`] waits on it,
    /// for zero, so watchers are woken when it reaches or leaves zero.
    fn publish(&self, running: &Running) {
        let now = running.calls.len() + running.notifications.len();
        self.count.update(|current| {
            let crossed = (*current == 0) != (now == 0);
            *current = now;
            crossed
        });
    }

    /// New calls from the peer are refused with `SHUTTING_DOWN` from now on.
    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Waits until no handler runs.
    pub(crate) async fn idle(&self) {
        self.count.wait_for(|n| (*n == 0).then_some(())).await;
    }

    /// Aborts every running handler (the connection is closing).
    pub(crate) fn abort_all(&self) {
        let mut running = self.running();
        let running = &mut *running;
        for (_, task) in running.calls.drain().chain(running.notifications.drain()) {
            task.abort();
        }
        self.publish(running);
    }

    /// The service that serves a call (`routed`), its method's info and
    /// whether a call with its id is already running, or the reply that
    /// refuses it.
    fn admit<'s>(
        &self,
        id: u64,
        method: &str,
        routed: Option<(&'s Arc<dyn Service>, &'static MethodInfo)>,
    ) -> Result<(&'s Arc<dyn Service>, &'static MethodInfo, bool), Message> {
        if self.draining.load(Ordering::Acquire) {
            return Err(error_reply(id, ErrorCode::ShuttingDown, "shutting down"));
        }
        let Some((service, info)) = routed else {
            return Err(error_reply(id, ErrorCode::UnknownMethod, method));
        };
        if self.peer_is_guest && !info.open {
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
            let running = self.running();
            (running.calls.len(), running.calls.contains_key(&id))
        };
        if running >= self.max_in_flight {
            return Err(error_reply(
                id,
                ErrorCode::Rejected,
                "too many calls in flight",
            ));
        }
        Ok((service, info, recorded))
    }

    /// A call from the peer: the reply to send now, or its handler to run.
    ///
    /// The handler is polled once here: most finish at once and are
    /// answered without a task, a map entry or a timer. The call's deadline
    /// counts from `received`, when its frame arrived; `context` makes the
    /// handler's context with that deadline, for that method (opening the
    /// stream a method that takes one reads, or refusing the call). `observe` starts the call's
    /// record, given the label of the method (the served method's name, or
    /// `unknown`); the handler runs in its span, and the record ends with
    /// the reply (or as cancelled, when the handler is aborted).
    pub(crate) fn call<'m>(
        &self,
        call: CallRef<'_>,
        received: Instant,
        context: impl FnOnce(
            Option<std::time::Instant>,
            &'static MethodInfo,
        ) -> Result<Context, DispatchError>,
        observe: impl FnOnce(&'static str) -> CallRecord<'m>,
    ) -> Dispatched {
        let CallRef {
            id,
            method,
            timeout_ms,
            args,
        } = call;
        let routed = self.services.route(method, false);
        let record = observe(routed.map_or(UNKNOWN, |(_, info)| info.name));
        let (service, info, recorded) = match self.admit(id, method, routed) {
            Ok(admitted) => admitted,
            Err(refusal) => return Dispatched::Reply(answered(record, refusal)),
        };
        if timeout_ms == Some(0) {
            // The caller stopped waiting when it sent the call.
            let late = error_reply(
                id,
                ErrorCode::Timeout,
                "the deadline had passed when the call arrived",
            );
            return Dispatched::Reply(answered(record, late));
        }
        if info.stream {
            // A stream has no deadline once open: it ends when either side ends it.
            // Its record ends with the opening: the call part of a stream.
            let span = record.span().clone();
            let started = span.in_scope(|| {
                let cx = context(None, info)?;
                self.services.start_stream(service, cx, method, args)
            });
            return match started {
                Ok(handler) => {
                    record.finish(CallOutcome::Ok);
                    Dispatched::Stream(id, handler)
                }
                Err(error) => {
                    let refusal = Message::Reply(Reply {
                        id,
                        outcome: Outcome::Err(RemoteError::from(error)),
                    });
                    Dispatched::Reply(answered(record, refusal))
                }
            };
        }
        let deadline = timeout_ms.map(|ms| received + Duration::from_millis(u64::from(ms)));
        let span = record.span().clone();
        let dispatched = span.in_scope(|| {
            let cx = context(deadline.map(Instant::into_std), info)?;
            self.services.start(service, cx, method, args)
        });
        let handler = match dispatched {
            Ok(handler) => handler,
            Err(error) => {
                let refusal = Message::Reply(Reply {
                    id,
                    outcome: Outcome::Err(RemoteError::from(error)),
                });
                return Dispatched::Reply(answered(record, refusal));
            }
        };
        let max_reply = self.max_reply;
        let mut run = AssertUnwindSafe(handler).catch_unwind();
        // A call whose id is already running is refused by `run` instead.
        if !recorded && let Some(result) = span.in_scope(|| (&mut run).now_or_never()) {
            let outcome = outcome(Some(result), max_reply, method);
            return Dispatched::Reply(answered(record, Message::Reply(Reply { id, outcome })));
        }
        let record = record.detach();
        let pending = async move {
            let result = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, run).await.ok(),
                None => Some(run.await),
            };
            // Routed: the method's own name is the one called.
            let outcome = outcome(result, max_reply, info.name);
            answered(record, Message::Reply(Reply { id, outcome }))
        };
        if span.is_disabled() {
            return Dispatched::Running(id, Box::pin(pending));
        }
        Dispatched::Running(id, Box::pin(pending.instrument(span)))
    }

    /// Registers call `id`'s handler as running; `spawn` starts its task.
    /// The registration happens under the same lock that checks for a
    /// duplicate id, and before the task can finish: on a multi-threaded
    /// runtime a fast handler would otherwise find itself unregistered, drop
    /// its reply (the caller waits for its timeout) and leave a stale slot.
    ///
    /// Returns the refusal to send instead, for an id that is already running.
    pub(crate) fn run(&self, id: u64, spawn: impl FnOnce() -> AbortHandle) -> Option<Message> {
        let mut running = self.running();
        if running.calls.contains_key(&id) {
            return Some(error_reply(id, ErrorCode::Rejected, "duplicate call id"));
        }
        running.calls.insert(id, spawn());
        self.publish(&running);
        None
    }

    /// Call `id`'s handler ended; whether its reply is still wanted (the
    /// call was not cancelled meanwhile).
    pub(crate) fn finished(&self, id: u64) -> bool {
        let mut running = self.running();
        let wanted = running.calls.remove(&id).is_some();
        self.publish(&running);
        wanted
    }

    /// The peer no longer waits for call `id`: abort its handler.
    pub(crate) fn cancel(&self, id: u64) {
        let task = {
            let mut running = self.running();
            let task = running.calls.remove(&id);
            self.publish(&running);
            task
        };
        if let Some(task) = task {
            task.abort();
        }
    }

    /// A notification from the peer: its handler to run, or `None` when it
    /// is dropped (see the module's docs).
    pub(crate) fn notify(
        &self,
        notify: Notify,
        context: impl FnOnce() -> Context,
    ) -> Option<PendingNotification> {
        let Notify { method, args } = notify;
        let dropped = |why: &str| {
            tracing::debug!(%method, why, "notification dropped");
            self.services.dropped();
        };
        let Some((service, info)) = self.services.route(&method, true) else {
            dropped("no such method is served");
            return None;
        };
        if self.peer_is_guest && !info.open {
            dropped("the method is not open to guests");
            return None;
        }
        if !info.notify {
            tracing::warn!(
                %method,
                "notification dropped: the method replies, so it must be called"
            );
            self.services.dropped();
            return None;
        }
        let cx = context();
        let dispatched = self.services.start(service, cx, &method, &args);
        let handler = match dispatched {
            Ok(handler) => handler,
            Err(error) => {
                dropped(&error.to_string());
                return None;
            }
        };
        Some(Box::pin(async move {
            if AssertUnwindSafe(handler).catch_unwind().await.is_err() {
                tracing::error!(%method, "notification handler panicked");
            }
        }))
    }

    /// Registers a notification's handler as running, unless too many run;
    /// `spawn` gets its key, for [`Inbound::notification_finished`].
    pub(crate) fn run_notification(&self, spawn: impl FnOnce(u64) -> AbortHandle) {
        let mut running = self.running();
        if running.notifications.len() >= self.max_in_flight {
            tracing::warn!("notification dropped: too many running");
            self.services.dropped();
            return;
        }
        let key = running.next_notification;
        running.next_notification += 1;
        running.notifications.insert(key, spawn(key));
        self.publish(&running);
    }

    /// A notification's handler ended.
    pub(crate) fn notification_finished(&self, key: u64) {
        let mut running = self.running();
        running.notifications.remove(&key);
        self.publish(&running);
    }
}

/// Ends a call's record with the outcome of `reply`, which answers it.
fn answered(record: CallRecord<'_>, reply: Message) -> Message {
    let outcome = match &reply {
        Message::Reply(Reply {
            outcome: Outcome::Err(error),
            ..
        }) => CallOutcome::of_code(error.code),
        _ => CallOutcome::Ok,
    };
    record.finish(outcome);
    reply
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

/// The reply to a call: the handler's result, or `None` when its deadline passed.
fn outcome(
    result: Option<std::thread::Result<Result<EncodedValue, CodecError>>>,
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
        Some(Ok(Ok(value))) => Outcome::Ok(value),
    }
}
