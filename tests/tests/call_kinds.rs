//! Calls and notifications are not interchangeable: the sender refuses to
//! send a request the wrong way, and the receiver answers a call to a
//! notification method with `BAD_REQUEST` and drops a notification to a
//! method that replies. Typed calls to every client take per-call options
//! (`call_all_with`).

use sockets::{CallOptions, Client, ConnectionId, Error, Server};
use tests::services::Calc;
use tests::{client, server, within};
use tokio::sync::mpsc;

/// What every client serves: work the server asks for, and pings.
#[sockets::service]
pub trait Worker {
    /// Does `job`; returns its length.
    async fn work(&self, job: String) -> usize;
    /// A ping that needs no answer.
    #[sockets(notify)]
    async fn ping(&self, note: String);
}

/// Reports every handler that runs, in order.
struct Recorder(mpsc::UnboundedSender<String>);

impl Worker for Recorder {
    async fn work(&self, job: String) -> usize {
        let _ = self.0.send(format!("work {job}"));
        job.len()
    }

    async fn ping(&self, note: String) {
        let _ = self.0.send(format!("ping {note}"));
    }
}

struct Setup {
    server: Server,
    _client: Client,
    id: ConnectionId,
    ran: mpsc::UnboundedReceiver<String>,
}

async fn setup() -> Setup {
    let (calc, _control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let (tx, ran) = mpsc::unbounded_channel();
    let client = within(
        client(server.local_addr())
            .serve(WorkerServer::new(Recorder(tx)))
            .connect(),
    )
    .await
    .unwrap();
    let id: ConnectionId = within(
        client
            .peer()
            .call("calc.my_id", &(), CallOptions::default()),
    )
    .await
    .unwrap();
    server.join(id, "workers").unwrap();
    Setup {
        server,
        _client: client,
        id,
        ran,
    }
}

fn work() -> WorkerRequest {
    WorkerRequest::Work { job: "x".into() }
}

fn ping() -> WorkerRequest {
    WorkerRequest::Ping { note: "x".into() }
}

fn is_mismatch<T>(result: &Result<T, Error>, notify: bool) -> bool {
    matches!(result, Err(Error::KindMismatch { method, notify: n }) if *n == notify
        && method == if notify { "worker.ping" } else { "worker.work" })
}

#[tokio::test]
async fn the_server_refuses_to_notify_a_method_that_replies() {
    let mut s = setup().await;
    assert!(is_mismatch(&s.server.broadcast(&work()).await, false));
    assert!(is_mismatch(
        &s.server.broadcast_to("workers", &work()).await,
        false
    ));
    assert!(is_mismatch(&s.server.notify(s.id, &work()).await, false));
    // Nothing reached the client: the next thing it runs is this ping.
    within(s.server.notify(s.id, &ping())).await.unwrap();
    assert_eq!(within(s.ran.recv()).await.unwrap(), "ping x");
}

#[tokio::test]
async fn the_server_refuses_to_call_a_notification_method() {
    let mut s = setup().await;
    assert!(is_mismatch(&s.server.send_to(s.id, &ping()).await, true));
    let options = CallOptions::default();
    assert!(is_mismatch(
        &s.server.send_to_with(s.id, &ping(), options).await,
        true
    ));
    assert!(is_mismatch(&s.server.call_all(&ping()).await, true));
    let peer = s.server.peer(s.id).unwrap();
    assert!(is_mismatch(&peer.request(&ping(), options).await, true));
    // Nothing reached the client: the next thing it runs is this call.
    let reply = within(s.server.send_to(s.id, &work())).await.unwrap();
    assert!(matches!(reply, WorkerResponse::Work(1)));
    assert_eq!(within(s.ran.recv()).await.unwrap(), "work x");
}

#[tokio::test]
async fn a_call_to_a_notification_method_is_answered_with_bad_request() {
    let mut s = setup().await;
    let peer = s.server.peer(s.id).unwrap();
    // Untyped, so the sender cannot tell; the receiver refuses it.
    let reply: Result<(), Error> =
        within(peer.call("worker.ping", &("lost",), CallOptions::default())).await;
    match reply {
        Err(Error::BadRequest(message)) => {
            assert!(message.contains("notification method"), "{message}");
        }
        other => panic!("expected BadRequest, got {other:?}"),
    }
    within(s.server.notify(s.id, &ping())).await.unwrap();
    assert_eq!(within(s.ran.recv()).await.unwrap(), "ping x");
}

#[tokio::test]
async fn a_notification_to_a_method_that_replies_is_dropped() {
    let mut s = setup().await;
    let peer = s.server.peer(s.id).unwrap();
    within(peer.notify("worker.work", &("lost",)))
        .await
        .unwrap();
    // Messages on one connection are handled in order: had the notification
    // started `work`, its handler would have run first.
    let reply = within(s.server.send_to(s.id, &work())).await.unwrap();
    assert!(matches!(reply, WorkerResponse::Work(1)));
    assert_eq!(within(s.ran.recv()).await.unwrap(), "work x");
}

/// What a client serves for `call_all_with`: how long its caller waits.
#[sockets::service]
pub trait Patience {
    /// Milliseconds left until the caller's deadline, if it gave one.
    async fn left(&self, cx: &sockets::Context) -> Option<u64>;
}

struct Patient;

impl Patience for Patient {
    async fn left(&self, cx: &sockets::Context) -> Option<u64> {
        cx.deadline().map(|d| {
            let left = d.saturating_duration_since(std::time::Instant::now());
            u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
        })
    }
}

#[tokio::test]
async fn call_all_with_applies_its_options_to_every_call() {
    use std::time::Duration;
    let server = server()
        .call_timeout(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let connect = client(server.local_addr())
            .serve(PatienceServer::new(Patient))
            .connect();
        clients.push(within(connect).await.unwrap());
    }
    let options = CallOptions::timeout(Duration::from_millis(1500));
    let results = within(server.call_all_with(&PatienceRequest::Left, options))
        .await
        .unwrap();
    assert_eq!(results.len(), 2);
    for (id, result) in results {
        match result {
            Ok(PatienceResponse::Left(Some(ms))) => assert!(ms <= 1500, "{id}: {ms} ms"),
            other => panic!("{id}: {other:?}"),
        }
    }
    // Without options, the server's default applies.
    let results = within(server.call_all(&PatienceRequest::Left))
        .await
        .unwrap();
    for (id, result) in results {
        match result {
            Ok(PatienceResponse::Left(Some(ms))) => assert!(ms > 1500, "{id}: {ms} ms"),
            other => panic!("{id}: {other:?}"),
        }
    }
}
