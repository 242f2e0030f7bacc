//! The core cases of the calls suite on every transport: WebSocket, raw TCP
//! (`tcp://`), a Unix domain socket (`unix://`) and the in-memory pairs of
//! `sockets::testing`. The handshake, frames, auth and everything above
//! them are the same on each; only how bytes move differs.

use std::time::Duration;

use sockets::testing::Harness;
use sockets::{
    CallOptions, Client, ClientBuilder, ClientState, Error, Reconnect, Server, ServerBuilder,
};
use tests::services::{Calc, CalcControl, Event, Inbox, InboxRequest, InboxResponse};
use tests::{secret, server, within};

/// A server on one transport, and how its clients reach it.
enum Setup {
    /// Listening on a url (`ws://`, `tcp://`, `unix://`).
    Listening(Server),
    /// In memory.
    Memory(Harness),
}

impl Setup {
    fn server(&self) -> &Server {
        match self {
            Self::Listening(server) => server,
            Self::Memory(harness) => harness.server(),
        }
    }

    fn client(&self) -> ClientBuilder {
        match self {
            Self::Listening(server) => Client::builder()
                .url(server.url().expect("the server listens"))
                .secret(secret()),
            Self::Memory(harness) => harness.client(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    WebSocket,
    Tcp,
    Unix,
    Memory,
}

async fn start(kind: Kind, configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> Setup {
    let builder = configure(server());
    match kind {
        Kind::WebSocket => Setup::Listening(builder.start().await.unwrap()),
        Kind::Tcp => Setup::Listening(builder.address("tcp://127.0.0.1:0").start().await.unwrap()),
        Kind::Unix => {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("sockets-t-{}-{n}.sock", std::process::id()));
            let address = format!("unix://{}", path.display());
            Setup::Listening(builder.address(address).start().await.unwrap())
        }
        Kind::Memory => Setup::Memory(Harness::new(builder).unwrap()),
    }
}

async fn calc(kind: Kind) -> (Setup, CalcControl) {
    let (calc, control) = Calc::new();
    (start(kind, |b| b.serve(calc)).await, control)
}

fn quick() -> Reconnect {
    Reconnect {
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        ..Reconnect::default()
    }
}

async fn add(client: &Client, a: i64, b: i64) -> Result<i64, Error> {
    within(
        client
            .peer()
            .call("calc.add", &(a, b), CallOptions::default()),
    )
    .await
}

async fn call_and_error(kind: Kind) {
    let (setup, _control) = calc(kind).await;
    let client = within(setup.client().connect()).await.unwrap();
    assert_eq!(add(&client, 40, 2).await.unwrap(), 42);
    let unknown = within(
        client
            .peer()
            .call::<_, ()>("calc.nope", &(), CallOptions::default()),
    )
    .await;
    assert!(
        matches!(unknown, Err(Error::UnknownMethod(_))),
        "{unknown:?}"
    );
    let panicked = within(
        client
            .peer()
            .call::<_, ()>("calc.panic", &(), CallOptions::default()),
    )
    .await;
    assert!(matches!(panicked, Err(Error::Internal(_))), "{panicked:?}");
    // A large message crosses as well (a MORE chain of several frames).
    let text = "x".repeat(3 << 20);
    let echoed: String = within(
        client
            .peer()
            .call("calc.echo", &(&text,), CallOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(echoed.len(), text.len());
    client.close().await;
}

async fn timeout_and_cancel(kind: Kind) {
    let (setup, mut control) = calc(kind).await;
    let client = within(setup.client().connect()).await.unwrap();
    // A call whose deadline passes ends with Timeout; the handler is dropped.
    let short = CallOptions::timeout(Duration::from_millis(200));
    let timed_out = within(client.peer().call::<_, ()>("calc.hang", &(1u32,), short)).await;
    assert!(matches!(timed_out, Err(Error::Timeout)), "{timed_out:?}");
    assert_eq!(control.next().await, Event::Started(1));
    assert_eq!(control.next().await, Event::Dropped(1));
    // A call whose future is dropped is cancelled on the server.
    let peer = client.peer();
    let pending = tokio::spawn(async move {
        peer.call::<_, ()>("calc.hang", &(2u32,), CallOptions::default())
            .await
    });
    assert_eq!(control.next().await, Event::Started(2));
    pending.abort();
    assert_eq!(control.next().await, Event::Dropped(2));
    client.close().await;
}

async fn server_calls_and_broadcast(kind: Kind) {
    let (setup, _control) = calc(kind).await;
    let (inbox, mut news) = Inbox::new("alice");
    let client = within(setup.client().serve(inbox).connect()).await.unwrap();
    let id = client.server_connection_id().expect("the server said");
    let server = setup.server();
    let reply = within(server.send_to(id, &InboxRequest::Hello("server".into())))
        .await
        .unwrap();
    assert_eq!(reply, InboxResponse::Hello("alice greets server".into()));
    let sent = within(server.broadcast(&InboxRequest::News("hi all".into())))
        .await
        .unwrap();
    assert_eq!(sent, 1);
    assert_eq!(within(news.recv()).await.as_deref(), Some("hi all"));
    client.close().await;
}

async fn reconnect(kind: Kind) {
    let (setup, _control) = calc(kind).await;
    let client = within(setup.client().reconnect(quick()).connect())
        .await
        .unwrap();
    let mut states = client.states();
    let first = client.server_connection_id().unwrap();
    setup.server().disconnect(first, "go away").unwrap();
    loop {
        // Disconnected on purpose: the session ended, the client gets a new one.
        if within(states.recv()).await.unwrap() == ClientState::SessionLost {
            break;
        }
    }
    assert_ne!(client.server_connection_id(), Some(first));
    assert_eq!(add(&client, 1, 2).await.unwrap(), 3);
    client.close().await;
}

macro_rules! on_every_transport {
    ($($case:ident),*) => {
        mod websocket { $( #[tokio::test] async fn $case() { super::$case(super::Kind::WebSocket).await } )* }
        mod tcp { $( #[tokio::test] async fn $case() { super::$case(super::Kind::Tcp).await } )* }
        #[cfg(unix)]
        mod unix { $( #[tokio::test] async fn $case() { super::$case(super::Kind::Unix).await } )* }
        mod memory { $( #[tokio::test] async fn $case() { super::$case(super::Kind::Memory).await } )* }
    };
}

on_every_transport!(
    call_and_error,
    timeout_and_cancel,
    server_calls_and_broadcast,
    reconnect
);

#[tokio::test(start_paused = true)]
async fn on_the_paused_clock_a_30_s_timeout_passes_at_once() {
    let (calc, mut control) = Calc::new();
    let harness = Harness::new(server().serve(calc)).unwrap();
    let client = harness.client().connect().await.unwrap();
    let started = tokio::time::Instant::now();
    let long = CallOptions::timeout(Duration::from_secs(30));
    let timed_out = client
        .peer()
        .call::<_, ()>("calc.hang", &(1u32,), long)
        .await;
    assert!(matches!(timed_out, Err(Error::Timeout)), "{timed_out:?}");
    // Thirty seconds of the test's clock, none of the machine's.
    assert!(started.elapsed() >= Duration::from_secs(30));
    assert_eq!(control.next().await, Event::Started(1));
    assert_eq!(control.next().await, Event::Dropped(1));
}

#[tokio::test]
async fn a_client_on_the_wrong_transport_is_told_so() {
    let (setup, _control) = calc(Kind::WebSocket).await;
    let addr = setup.server().local_addr();
    // A tcp:// client on a WebSocket port: the server answers HTTP.
    let wrong = within(
        Client::builder()
            .url(format!("tcp://{addr}"))
            .secret(secret())
            .connect(),
    )
    .await;
    match wrong {
        Err(Error::Protocol(why)) => assert!(why.contains("speaks HTTP"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A ws:// client on a tcp:// port: the server reads an HTTP request.
    let (setup, _control) = calc(Kind::Tcp).await;
    let addr = setup.server().local_addr();
    let wrong = within(
        Client::builder()
            .url(format!("ws://{addr}/"))
            .secret(secret())
            .connect(),
    )
    .await;
    assert!(wrong.is_err(), "{wrong:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_unix_socket_file_is_private_and_removed_at_shutdown() {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::temp_dir().join(format!("sockets-perm-{}.sock", std::process::id()));
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .address(format!("unix://{}", path.display()))
        .start()
        .await
        .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(server.url().unwrap(), format!("unix://{}", path.display()));
    server.shutdown(Duration::from_secs(1)).await;
    assert!(!path.exists(), "the socket file is gone");
}
