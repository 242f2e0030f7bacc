//! Hand-written services, as `#[sockets::service]` would generate them.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sockets::__internal::protocol::codec::{self, CodecError};
use sockets::error::Error;
use sockets::service::{
    Context, DispatchError, EncodedValue, HandlerFuture, MethodInfo, Service, ServiceInfo,
    ServiceRequest, ServiceResponse,
};
use tokio::sync::{mpsc, watch};

/// What the calc service's handlers report to the test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A `calc.hang` handler started, with its tag.
    Started(u32),
    /// A `calc.hang` handler was dropped (aborted) before finishing, with its tag.
    Dropped(u32),
}

/// The server's test service, wire name `calc`.
///
/// | method | open | does |
/// |---|---|---|
/// | `calc.add(a, b)` | no | `a + b` |
/// | `calc.echo(text)` | yes | `text` |
/// | `calc.whoami()` | yes | the auth hook's metadata as a string, if any |
/// | `calc.my_id()` | yes | the connection id the server gave this connection |
/// | `calc.gate(n)` | no | waits until the test opens gate `n`, returns `n` |
/// | `calc.hang(tag)` | no | never returns; reports `Started`/`Dropped` |
/// | `calc.deadline()` | no | milliseconds left until the caller's deadline |
/// | `calc.panic()` | no | panics |
#[derive(Clone)]
pub struct Calc {
    events: mpsc::UnboundedSender<Event>,
    gates: watch::Receiver<u32>,
}

/// The test's side of a [`Calc`]: its events, and the gates it opens.
pub struct CalcControl {
    /// Handler lifecycle events.
    pub events: mpsc::UnboundedReceiver<Event>,
    gates: watch::Sender<u32>,
}

impl CalcControl {
    /// Lets every `calc.gate(n)` with `n <= upto` return.
    pub fn open_gates(&self, upto: u32) {
        self.gates.send_replace(upto);
    }

    /// The next handler event.
    ///
    /// # Panics
    /// When none comes (see [`crate::within`]).
    pub async fn next(&mut self) -> Event {
        crate::within(self.events.recv())
            .await
            .expect("the service is alive")
    }
}

impl Calc {
    /// A service and its control.
    pub fn new() -> (Self, CalcControl) {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (gates_tx, gates) = watch::channel(0);
        (
            Self {
                events: events_tx,
                gates,
            },
            CalcControl {
                events,
                gates: gates_tx,
            },
        )
    }
}

const fn method(name: &'static str, open: bool) -> MethodInfo {
    MethodInfo {
        name,
        open,
        notify: false,
        stream: false,
        stream_in: false,
    }
}

static CALC: ServiceInfo = ServiceInfo {
    name: "calc",
    methods: &[
        method("calc.add", false),
        method("calc.echo", true),
        method("calc.whoami", true),
        method("calc.my_id", true),
        method("calc.gate", false),
        method("calc.hang", false),
        method("calc.deadline", false),
        method("calc.panic", false),
    ],
};

fn args<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DispatchError> {
    codec::decode_value(bytes).map_err(|e| DispatchError::BadRequest(e.to_string()))
}

fn reply<T: Serialize + Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> HandlerFuture {
    Box::pin(async move { EncodedValue::encode(&future.await) })
}

/// Reports `Dropped(tag)` when a handler is dropped before it finished.
struct DropSignal(u32, mpsc::UnboundedSender<Event>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.1.send(Event::Dropped(self.0));
    }
}

impl Service for Calc {
    fn info(&self) -> &'static ServiceInfo {
        &CALC
    }

    fn dispatch(
        self: Arc<Self>,
        cx: Context,
        method: &str,
        bytes: &[u8],
    ) -> Result<HandlerFuture, DispatchError> {
        Ok(match method {
            "calc.add" => {
                let (a, b): (i64, i64) = args(bytes)?;
                reply(async move { a + b })
            }
            "calc.echo" => {
                let (text,): (String,) = args(bytes)?;
                reply(async move { text })
            }
            "calc.whoami" => {
                let () = args(bytes)?;
                let who = cx.meta::<String>().cloned();
                reply(async move { who })
            }
            "calc.my_id" => {
                let () = args(bytes)?;
                let id = cx.connection_id();
                reply(async move { id })
            }
            "calc.gate" => {
                let (n,): (u32,) = args(bytes)?;
                let mut gates = self.gates.clone();
                reply(async move {
                    let _ = gates.wait_for(|open| *open >= n).await;
                    n
                })
            }
            "calc.hang" => {
                let (tag,): (u32,) = args(bytes)?;
                let events = self.events.clone();
                reply(async move {
                    let _signal = DropSignal(tag, events.clone());
                    let _ = events.send(Event::Started(tag));
                    std::future::pending::<()>().await
                })
            }
            "calc.deadline" => {
                let () = args(bytes)?;
                let left = cx
                    .deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()).as_millis() as u64);
                reply(async move { left })
            }
            "calc.panic" => {
                let () = args(bytes)?;
                reply(async move {
                    if std::hint::black_box(true) {
                        panic!("a handler bug");
                    }
                })
            }
            other => return Err(DispatchError::UnknownMethod(other.to_owned())),
        })
    }
}

/// A client's test service, wire name `inbox`: the server calls and notifies it.
///
/// | method | does |
/// |---|---|
/// | `inbox.hello(name)` | `"<label> greets <name>"` |
/// | `inbox.news(text)` | (notification) forwards `text` to the test |
pub struct Inbox {
    label: String,
    news: mpsc::UnboundedSender<String>,
}

impl Inbox {
    /// A service labelled `label`, and the receiver of its news.
    pub fn new(label: &str) -> (Self, mpsc::UnboundedReceiver<String>) {
        let (news, rx) = mpsc::unbounded_channel();
        (
            Self {
                label: label.to_owned(),
                news,
            },
            rx,
        )
    }
}

static INBOX: ServiceInfo = ServiceInfo {
    name: "inbox",
    methods: &[
        method("inbox.hello", false),
        MethodInfo {
            name: "inbox.news",
            open: false,
            notify: true,
            stream: false,
            stream_in: false,
        },
    ],
};

impl Service for Inbox {
    fn info(&self) -> &'static ServiceInfo {
        &INBOX
    }

    fn dispatch(
        self: Arc<Self>,
        _cx: Context,
        method: &str,
        bytes: &[u8],
    ) -> Result<HandlerFuture, DispatchError> {
        Ok(match method {
            "inbox.hello" => {
                let (name,): (String,) = args(bytes)?;
                let greeting = format!("{} greets {name}", self.label);
                reply(async move { greeting })
            }
            "inbox.news" => {
                let (text,): (String,) = args(bytes)?;
                let _ = self.news.send(text);
                reply(async {})
            }
            other => return Err(DispatchError::UnknownMethod(other.to_owned())),
        })
    }
}

/// The typed request enum of [`Inbox`], as the macro would generate it.
#[derive(Clone, Debug)]
pub enum InboxRequest {
    /// `inbox.hello(name)`.
    Hello(String),
    /// `inbox.news(text)`.
    News(String),
}

/// The typed response enum of [`Inbox`].
#[derive(Debug, PartialEq, Eq)]
pub enum InboxResponse {
    /// The greeting.
    Hello(String),
    /// Nothing.
    News,
}

impl ServiceRequest for InboxRequest {
    type Response = InboxResponse;

    fn method(&self) -> &'static str {
        match self {
            Self::Hello(_) => "inbox.hello",
            Self::News(_) => "inbox.news",
        }
    }

    fn is_notify(&self) -> bool {
        matches!(self, Self::News(_))
    }

    fn encode_args(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self {
            Self::Hello(name) => codec::encode_value(&(name,), out),
            Self::News(text) => codec::encode_value(&(text,), out),
        }
    }

    fn decode(method: &str, bytes: &[u8]) -> Result<Self, DispatchError> {
        match method {
            "inbox.hello" => args::<(String,)>(bytes).map(|(name,)| Self::Hello(name)),
            "inbox.news" => args::<(String,)>(bytes).map(|(text,)| Self::News(text)),
            other => Err(DispatchError::UnknownMethod(other.to_owned())),
        }
    }
}

impl ServiceResponse for InboxResponse {
    fn decode(method: &str, value: &[u8]) -> Result<Self, Error> {
        match method {
            "inbox.hello" => Ok(Self::Hello(codec::decode_value(value)?)),
            "inbox.news" => {
                let () = codec::decode_value(value)?;
                Ok(Self::News)
            }
            other => Err(Error::UnknownMethod(other.to_owned())),
        }
    }
}
