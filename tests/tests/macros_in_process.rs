//! The code `#[sockets::service]` generates, driven end to end in one process:
//! an in-process [`Caller`] encodes and decodes exactly as the wire does and
//! calls `Service::dispatch` directly, so no socket is involved.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sockets::__internal::protocol::codec;
use sockets::service::{
    BoxFuture, Caller, DispatchError, EncodedValue, HandlerFuture, ServiceRequest, ServiceResponse,
};
use sockets::{CallOptions, Context, Error, Peer, Service};

// ---------------------------------------------------------------- services

/// Why a division failed.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DivideError {
    /// The divisor was zero.
    ByZero,
}

/// A calculator, the example from the macro's docs.
#[sockets::service]
pub trait Calculator {
    /// Adds two numbers.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Divides `a` by `b`.
    async fn divide(&self, a: i64, b: i64) -> Result<i64, DivideError>;
    /// The service's version; guests may ask.
    #[sockets(open)]
    async fn version(&self) -> String;
    /// Appends a line to the log; no reply.
    #[sockets(notify)]
    async fn log(&self, line: String);
    /// Who is calling, as the handler sees it; asks the caller its name back.
    async fn whoami(&self, cx: &Context) -> String;
    /// Waits `millis` before answering.
    async fn sleep(&self, millis: u64) -> u64;
}

#[derive(Default)]
struct Calc {
    log: Mutex<Vec<String>>,
}

impl Calculator for Calc {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    async fn divide(&self, a: i64, b: i64) -> Result<i64, DivideError> {
        a.checked_div(b).ok_or(DivideError::ByZero)
    }

    async fn version(&self) -> String {
        "1.0".into()
    }

    async fn log(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }

    async fn whoami(&self, cx: &Context) -> String {
        let user = cx.meta::<User>().map_or("nobody", |u| u.0.as_str());
        // Call the same peer back, through the context's peer.
        let name = echo::EchoClient::new(cx.peer().clone())
            .echo("your name?")
            .await
            .unwrap_or_else(|e| e.to_string());
        format!("{} {} {user} {name}", cx.connection_id(), cx.peer_addr())
    }

    async fn sleep(&self, millis: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        millis
    }
}

/// What the auth hook stored for the test connection.
struct User(String);

/// A service made of free functions.
#[sockets::service]
pub mod echo {
    use sockets::Context;

    /// Returns `text` unchanged.
    #[sockets::handler]
    pub async fn echo(text: String) -> String {
        text
    }

    /// The caller's connection id, from the context the handler asked for.
    #[sockets::handler]
    pub async fn connection(cx: &Context) -> u64 {
        cx.connection_id().get()
    }

    /// Not a handler: a helper the module keeps to itself.
    pub fn shout(text: &str) -> String {
        text.to_uppercase()
    }

    /// Returns `text` in capitals.
    #[sockets::handler]
    #[sockets(open)]
    pub async fn loud(text: String) -> String {
        shout(&text)
    }
}

// ---------------------------------------------------------------- the in-process caller

/// One direction of an in-process connection: calls go straight into
/// `services`, routed by the wire name's service prefix as the runtime does.
struct InProcess {
    services: Vec<Arc<dyn Service>>,
    /// The other direction, handed to handlers as `Context::peer`.
    back: OnceLock<Peer>,
    /// The context every call of this direction gets, made once it is linked.
    cx: OnceLock<Context>,
    /// Every call's method and options, in order.
    calls: Mutex<Vec<(String, CallOptions)>>,
}

impl InProcess {
    fn new(services: Vec<Arc<dyn Service>>) -> Arc<Self> {
        Arc::new(Self {
            services,
            back: OnceLock::new(),
            cx: OnceLock::new(),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn context(&self) -> Context {
        self.cx
            .get_or_init(|| {
                Context::builder()
                    .peer_addr("127.0.0.1:4000".parse().unwrap())
                    .meta(User("ada".into()))
                    .peer(self.back.get().expect("linked").clone())
                    .build()
            })
            .clone()
    }

    fn start(&self, method: &str, args: &[u8]) -> Result<HandlerFuture, Error> {
        let prefix = method
            .split_once('.')
            .map_or(method, |(service, _)| service);
        let service = self
            .services
            .iter()
            .find(|s| s.info().name == prefix)
            .ok_or_else(|| Error::UnknownMethod(method.into()))?;
        Arc::clone(service)
            .dispatch(self.context(), method, args)
            .map_err(|e| match e {
                DispatchError::UnknownMethod(m) => Error::UnknownMethod(m),
                DispatchError::BadRequest(m) => Error::BadRequest(m),
                other => Error::Protocol(other.to_string()),
            })
    }
}

impl Caller for InProcess {
    fn call(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        options: CallOptions,
    ) -> BoxFuture<'static, Result<EncodedValue, Error>> {
        self.calls
            .lock()
            .unwrap()
            .push((method.to_string(), options));
        let started = self.start(&method, &args);
        Box::pin(async move {
            let handler = started?;
            let run = async { handler.await.map_err(|e| Error::Internal(e.to_string())) };
            let value = match options.timeout {
                Some(limit) => tokio::time::timeout(limit, run)
                    .await
                    .map_err(|_| Error::Timeout)??,
                None => run.await?,
            };
            Ok(value)
        })
    }

    /// Runs the handler to completion before resolving, so a test can look
    /// at its effect right after; the real runtime only queues it.
    fn notify(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
    ) -> BoxFuture<'static, Result<(), Error>> {
        let started = self.start(&method, &args);
        Box::pin(async move {
            started?.await.map_err(|e| Error::Internal(e.to_string()))?;
            Ok(())
        })
    }
}

/// Two directions wired to each other: what the "client" side calls reaches
/// `server`, and handlers there call back into `client`.
fn link(server: Vec<Arc<dyn Service>>, client: Vec<Arc<dyn Service>>) -> (Peer, Arc<InProcess>) {
    let to_server = InProcess::new(server);
    let to_client = InProcess::new(client);
    to_server
        .back
        .set(Peer::new(Arc::clone(&to_client) as Arc<dyn Caller>))
        .ok();
    to_client
        .back
        .set(Peer::new(Arc::clone(&to_server) as Arc<dyn Caller>))
        .ok();
    (
        Peer::new(Arc::clone(&to_server) as Arc<dyn Caller>),
        to_server,
    )
}

/// A context for calling `dispatch` directly: its peer leads nowhere.
fn lone_context() -> Context {
    let (_, to_server) = link(vec![], vec![]);
    to_server.context()
}

fn calculator() -> (
    Arc<CalculatorServer<Calc>>,
    CalculatorClient,
    Arc<InProcess>,
) {
    let server = Arc::new(CalculatorServer::new(Calc::default()));
    let (peer, to_server) = link(vec![server.clone()], vec![Arc::new(echo::EchoServer)]);
    (server, CalculatorClient::new(peer), to_server)
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn typed_calls_reach_the_implementation_and_return_typed_values() {
    let (server, calc, _) = calculator();
    assert_eq!(calc.add(2, 3).await.unwrap(), 5);
    assert_eq!(calc.version().await.unwrap(), "1.0");
    // A declared `Result` arrives whole, inside the call's own `Result`.
    assert_eq!(calc.divide(10, 2).await.unwrap(), Ok(5));
    assert_eq!(calc.divide(1, 0).await.unwrap(), Err(DivideError::ByZero));

    calc.log("first").await.unwrap();
    calc.log("second").await.unwrap();
    assert_eq!(*server.inner().log.lock().unwrap(), ["first", "second"]);
}

#[tokio::test]
async fn the_handler_sees_its_context_and_can_call_the_peer_back() {
    let (_, calc, to_server) = calculator();
    let id = to_server.context().connection_id();
    // The echo service on the calling side answers the handler's call back.
    assert_eq!(
        calc.whoami().await.unwrap(),
        format!("{id} 127.0.0.1:4000 ada your name?")
    );
    let (peer, to_echo) = link(vec![Arc::new(echo::EchoServer)], vec![]);
    assert_eq!(
        echo::EchoClient::new(peer).connection().await.unwrap(),
        to_echo.context().connection_id().get()
    );
}

#[tokio::test(start_paused = true)]
async fn per_call_options_reach_the_caller() {
    let (_, calc, to_server) = calculator();
    let quick = calc.with_timeout(Duration::from_millis(50));
    assert!(matches!(quick.sleep(1_000).await, Err(Error::Timeout)));
    assert_eq!(quick.sleep(10).await.unwrap(), 10);
    assert_eq!(calc.sleep(1_000).await.unwrap(), 1_000);

    let waiting = calc.with_options(CallOptions {
        timeout: None,
        wait_for_connection: true,
        ..CallOptions::default()
    });
    waiting.add(1, 1).await.unwrap();

    let calls = to_server.calls.lock().unwrap();
    let seen: Vec<_> = calls.iter().map(|(m, o)| (m.as_str(), *o)).collect();
    let fifty = CallOptions::timeout(Duration::from_millis(50));
    assert_eq!(
        seen,
        [
            ("calculator.sleep", fifty),
            ("calculator.sleep", fifty),
            ("calculator.sleep", CallOptions::default()),
            (
                "calculator.add",
                CallOptions {
                    timeout: None,
                    wait_for_connection: true,
                    ..CallOptions::default()
                }
            ),
        ]
    );
}

#[tokio::test]
async fn unknown_methods_and_bad_requests_are_dispatch_errors() {
    let (server, calc, _) = calculator();
    let cx = lone_context;

    let unknown = Arc::clone(&server).dispatch(cx(), "calculator.nope", &[0x90]);
    assert!(matches!(unknown, Err(DispatchError::UnknownMethod(m)) if m == "calculator.nope"));

    let wrong_type = codec::to_vec(&("two", 3)).unwrap();
    let bad = Arc::clone(&server).dispatch(cx(), "calculator.add", &wrong_type);
    assert!(matches!(bad, Err(DispatchError::BadRequest(m)) if m.contains("calculator.add")));

    let too_few = codec::to_vec(&(1,)).unwrap();
    let bad = Arc::clone(&server).dispatch(cx(), "calculator.add", &too_few);
    assert!(matches!(bad, Err(DispatchError::BadRequest(_))));

    let no_args_with_one = codec::to_vec(&(1,)).unwrap();
    let bad = Arc::clone(&server).dispatch(cx(), "calculator.version", &no_args_with_one);
    assert!(matches!(bad, Err(DispatchError::BadRequest(_))));

    // Through a peer, the same outcomes reach the caller as `sockets::Error`s.
    let peer = calc.peer();
    let err = peer
        .call::<_, i64>("calculator.nope", &(1, 2), CallOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownMethod(m) if m == "calculator.nope"));
    let err = peer
        .call::<_, i64>("calculator.add", &("1", "2"), CallOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadRequest(_)));
    // A reply that is not the declared type is the peer's fault.
    let err = peer
        .call::<_, String>("calculator.add", &(1, 2), CallOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Protocol(_)));
}

#[tokio::test]
async fn a_handler_runs_only_once_its_future_is_polled() {
    let (server, _, _) = calculator();
    let cx = lone_context();
    let args = codec::to_vec(&("kept".to_string(),)).unwrap();
    let running = Arc::clone(&server)
        .dispatch(cx, "calculator.log", &args)
        .unwrap();
    assert!(server.inner().log.lock().unwrap().is_empty());
    assert_eq!(
        running.await.unwrap()[..],
        [0xc0],
        "a unit return encodes as nil"
    );
    assert_eq!(*server.inner().log.lock().unwrap(), ["kept"]);
}

#[test]
fn requests_and_responses_round_trip_through_their_encoding() {
    let request = CalculatorRequest::Add { a: -4, b: 9 };
    assert_eq!(request.method(), "calculator.add");
    let mut args = Vec::new();
    request.encode_args(&mut args).unwrap();
    assert_eq!(args, codec::to_vec(&(-4i64, 9i64)).unwrap());
    match CalculatorRequest::decode("calculator.add", &args).unwrap() {
        CalculatorRequest::Add { a, b } => assert_eq!((a, b), (-4, 9)),
        _ => panic!("decoded the wrong variant"),
    }

    let mut args = Vec::new();
    CalculatorRequest::Version.encode_args(&mut args).unwrap();
    assert_eq!(args, [0x90], "no arguments is an empty array");
    assert!(matches!(
        CalculatorRequest::decode("calculator.version", &args).unwrap(),
        CalculatorRequest::Version
    ));
    assert!(matches!(
        CalculatorRequest::decode("calculator.sub", &args),
        Err(DispatchError::UnknownMethod(_))
    ));

    let reply = codec::to_vec(&Err::<i64, _>(DivideError::ByZero)).unwrap();
    match CalculatorResponse::decode("calculator.divide", &reply).unwrap() {
        CalculatorResponse::Divide(result) => assert_eq!(result, Err(DivideError::ByZero)),
        _ => panic!("decoded the wrong variant"),
    }
    assert!(matches!(
        CalculatorResponse::decode("calculator.add", &codec::to_vec("x").unwrap()),
        Err(Error::Protocol(_))
    ));
    assert!(matches!(
        CalculatorResponse::decode("echo.echo", &reply),
        Err(Error::UnknownMethod(_))
    ));
}

#[tokio::test]
async fn a_typed_request_goes_through_peer_request() {
    let (_, calc, _) = calculator();
    let reply = calc
        .peer()
        .request(
            &CalculatorRequest::Add { a: 20, b: 22 },
            CallOptions::default(),
        )
        .await
        .unwrap();
    assert!(matches!(reply, CalculatorResponse::Add(42)));
}

#[test]
fn service_info_names_every_method_with_its_flags() {
    let info = CalculatorServer::new(Calc::default()).info();
    assert_eq!(info.name, "calculator");
    let names: Vec<_> = info.methods.iter().map(|m| m.name).collect();
    assert_eq!(
        names,
        [
            "calculator.add",
            "calculator.divide",
            "calculator.version",
            "calculator.log",
            "calculator.whoami",
            "calculator.sleep",
        ]
    );
    let version = info.method("calculator.version").unwrap();
    assert!(version.open && !version.notify);
    let log = info.method("calculator.log").unwrap();
    assert!(log.notify && !log.open);
    assert!(
        info.method("calculator.add")
            .is_some_and(|m| !m.open && !m.notify)
    );

    let echo = echo::EchoServer.info();
    assert_eq!(echo.name, "echo");
    let names: Vec<_> = echo.methods.iter().map(|m| (m.name, m.open)).collect();
    assert_eq!(
        names,
        [
            ("echo.echo", false),
            ("echo.connection", false),
            ("echo.loud", true)
        ]
    );
}

#[tokio::test]
async fn two_services_share_one_connection() {
    let (peer, _) = link(
        vec![
            Arc::new(CalculatorServer::new(Calc::default())),
            Arc::new(echo::EchoServer),
        ],
        vec![Arc::new(echo::EchoServer)],
    );
    let calc = CalculatorClient::new(peer.clone());
    let echo = echo::EchoClient::from(peer);
    let (sum, loud, same) = tokio::join!(calc.add(1, 2), echo.loud("hi"), echo.echo("x"));
    assert_eq!(
        (sum.unwrap(), loud.unwrap(), same.unwrap()),
        (3, "HI".into(), "x".into())
    );
    // A free function stays an ordinary function too.
    assert_eq!(echo::echo("direct".into()).await, "direct");
}

#[test]
fn generated_futures_and_types_are_send() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<CalculatorClient>();
    send_sync::<CalculatorServer<Calc>>();
    send_sync::<echo::EchoClient>();
    let (_, calc, _) = calculator();
    send(&calc.add(1, 2));
    // The trait's futures are `Send`, including one that borrows the context.
    let cx = lone_context();
    let imp = Calc::default();
    send(&imp.whoami(&cx));
    send(&echo::connection(&cx));
}
