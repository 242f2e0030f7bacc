//! A calculator declared with `#[sockets::service]` alone, served and called
//! over real sockets: typed calls and typed application errors, a
//! notification, the auth hook's metadata in the handler's context, guests
//! and open methods, per-call timeouts and methods the server does not serve.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sockets::{AuthDecision, Client, Context, Error, Server};
use tests::{client, server, within};
use tokio::sync::mpsc;

/// Why a division failed.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DivideError {
    /// The divisor was zero.
    ByZero,
    /// The quotient does not fit (`i64::MIN / -1`).
    Overflow,
}

/// The calculator the server serves.
#[sockets::service]
pub trait Calculator {
    /// Adds two numbers.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Divides `a` by `b`.
    async fn divide(&self, a: i64, b: i64) -> Result<i64, DivideError>;
    /// The service's version; guests may ask.
    #[sockets(open)]
    async fn version(&self) -> String;
    /// Appends a line to the server's log, signed by the caller; no reply.
    #[sockets(notify)]
    async fn log(&self, cx: &Context, line: String);
    /// The user the auth hook admitted for this connection.
    async fn whoami(&self, cx: &Context) -> String;
    /// Never answers; reports when it starts and when it is dropped.
    async fn stall(&self) -> u64;
}

/// What the handlers report to the test.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// `log` ran: the user and the line.
    Log(String, String),
    /// A `stall` handler started.
    Stalling,
    /// A `stall` handler was dropped before finishing.
    StallDropped,
}

struct Calc {
    seen: mpsc::UnboundedSender<Seen>,
}

/// Reports `StallDropped` when the handler holding it is dropped.
struct DropReport(mpsc::UnboundedSender<Seen>);

impl Drop for DropReport {
    fn drop(&mut self) {
        let _ = self.0.send(Seen::StallDropped);
    }
}

impl Calculator for Calc {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    async fn divide(&self, a: i64, b: i64) -> Result<i64, DivideError> {
        if b == 0 {
            return Err(DivideError::ByZero);
        }
        a.checked_div(b).ok_or(DivideError::Overflow)
    }

    async fn version(&self) -> String {
        "1.0".into()
    }

    async fn log(&self, cx: &Context, line: String) {
        let _ = self.seen.send(Seen::Log(user(cx), line));
    }

    async fn whoami(&self, cx: &Context) -> String {
        user(cx)
    }

    async fn stall(&self) -> u64 {
        let _guard = DropReport(self.seen.clone());
        let _ = self.seen.send(Seen::Stalling);
        std::future::pending().await
    }
}

/// The user the auth hook stored, or `guest`.
fn user(cx: &Context) -> String {
    cx.meta::<User>()
        .map_or_else(|| "guest".to_owned(), |u| u.0.clone())
}

/// What the auth hook stores for an authenticated connection.
struct User(String);

/// The credentials clients present.
#[derive(Serialize, Deserialize)]
struct Login {
    user: String,
}

/// A service the server does not serve at all.
#[sockets::service]
pub trait Weather {
    /// Tomorrow's forecast for `city`.
    async fn forecast(&self, city: String) -> String;
}

/// A newer calculator: same service name, one method the server lacks.
mod v2 {
    /// The calculator as a newer client knows it.
    #[sockets::service]
    pub trait Calculator {
        /// Adds two numbers (as in the served version).
        async fn add(&self, a: i64, b: i64) -> i64;
        /// Square root, added in version 2.
        async fn sqrt(&self, x: f64) -> f64;
    }
}

/// A server serving the calculator; `guest` logs in as a guest, anyone
/// else as themselves. Its handlers report to the receiver.
async fn start() -> (Server, mpsc::UnboundedReceiver<Seen>) {
    let (seen, events) = mpsc::unbounded_channel();
    let server = server()
        .serve(CalculatorServer::new(Calc { seen }))
        .auth(|login: Login, _peer| async move {
            if login.user == "guest" {
                AuthDecision::Guest
            } else {
                AuthDecision::accept(User(login.user))
            }
        })
        .start()
        .await
        .unwrap();
    (server, events)
}

async fn login(server: &Server, user: &str) -> Client {
    within(
        client(server.local_addr())
            .credentials(&Login { user: user.into() })
            .connect(),
    )
    .await
    .unwrap()
}

async fn next(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    within(seen.recv()).await.expect("the service is alive")
}

#[tokio::test]
async fn typed_calls_and_typed_application_errors() {
    let (server, _seen) = start().await;
    let alice = login(&server, "alice").await;
    let calc = CalculatorClient::new(alice.peer());

    assert_eq!(within(calc.add(2, 3)).await.unwrap(), 5);
    assert_eq!(within(calc.add(-7, 7)).await.unwrap(), 0);
    assert_eq!(within(calc.version()).await.unwrap(), "1.0");
    // The declared `Result` arrives whole inside the call's own `Result`.
    assert_eq!(within(calc.divide(10, 3)).await.unwrap(), Ok(3));
    assert_eq!(
        within(calc.divide(1, 0)).await.unwrap(),
        Err(DivideError::ByZero)
    );
    assert_eq!(
        within(calc.divide(i64::MIN, -1)).await.unwrap(),
        Err(DivideError::Overflow)
    );
    // Concurrent calls share the connection and each gets its own reply.
    let (a, b, c) =
        within(async { tokio::join!(calc.add(1, 1), calc.divide(9, 3), calc.whoami()) }).await;
    assert_eq!(
        (a.unwrap(), b.unwrap(), c.unwrap()),
        (2, Ok(3), "alice".into())
    );

    alice.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_context_carries_the_auth_hooks_meta_and_notifications_arrive() {
    let (server, mut seen) = start().await;
    let alice = login(&server, "alice").await;
    let bob = login(&server, "bob").await;
    let alice_calc = CalculatorClient::new(alice.peer());
    let bob_calc = CalculatorClient::new(bob.peer());

    assert_eq!(within(alice_calc.whoami()).await.unwrap(), "alice");
    assert_eq!(within(bob_calc.whoami()).await.unwrap(), "bob");

    // A notification resolves once queued; the handler runs on the server
    // and knows who sent it.
    within(alice_calc.log("first")).await.unwrap();
    assert_eq!(
        next(&mut seen).await,
        Seen::Log("alice".into(), "first".into())
    );
    within(bob_calc.log("second")).await.unwrap();
    assert_eq!(
        next(&mut seen).await,
        Seen::Log("bob".into(), "second".into())
    );

    alice.close().await;
    bob.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_guest_may_call_open_methods_only() {
    let (server, mut seen) = start().await;
    let guest = login(&server, "guest").await;
    assert_eq!(guest.session(), Some(sockets::SessionKind::Guest));
    let calc = CalculatorClient::new(guest.peer());

    assert_eq!(within(calc.version()).await.unwrap(), "1.0");
    let refused = within(calc.add(1, 2)).await;
    assert!(matches!(refused, Err(Error::Unauthorized)), "{refused:?}");
    let refused = within(calc.divide(1, 0)).await;
    assert!(matches!(refused, Err(Error::Unauthorized)), "{refused:?}");
    let refused = within(calc.whoami()).await;
    assert!(matches!(refused, Err(Error::Unauthorized)), "{refused:?}");

    // A guest's notification to a closed method is dropped without a word:
    // the first line the server logs is the one an authenticated user sent
    // after it.
    within(calc.log("from the guest")).await.unwrap();
    // A round trip on the guest's connection: the notification, read
    // before this call, has been handled (dropped) by now.
    assert_eq!(within(calc.version()).await.unwrap(), "1.0");
    let alice = login(&server, "alice").await;
    within(CalculatorClient::new(alice.peer()).log("from alice"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut seen).await,
        Seen::Log("alice".into(), "from alice".into())
    );
    assert!(seen.try_recv().is_err(), "the guest's line was not logged");

    guest.close().await;
    alice.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_per_call_timeout_ends_the_call_and_its_handler() {
    let (server, mut seen) = start().await;
    let alice = login(&server, "alice").await;
    let calc = CalculatorClient::new(alice.peer());

    let quick = calc.with_timeout(Duration::from_millis(200));
    let outcome = within(quick.stall()).await;
    assert!(matches!(outcome, Err(Error::Timeout)), "{outcome:?}");
    // The handler started, and was ended by the deadline or the cancel.
    assert_eq!(next(&mut seen).await, Seen::Stalling);
    assert_eq!(next(&mut seen).await, Seen::StallDropped);

    // The copy keeps its timeout for fast calls too; the original has none.
    assert_eq!(within(quick.add(20, 22)).await.unwrap(), 42);
    assert_eq!(within(calc.add(1, 2)).await.unwrap(), 3);

    // Dropping a call's future cancels it on the server.
    {
        let stalled = calc.stall();
        tokio::pin!(stalled);
        tokio::select! {
            outcome = &mut stalled => panic!("stall answered: {outcome:?}"),
            event = next(&mut seen) => assert_eq!(event, Seen::Stalling),
        }
    }
    assert_eq!(next(&mut seen).await, Seen::StallDropped);
    assert_eq!(within(calc.add(2, 2)).await.unwrap(), 4);

    alice.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn methods_the_server_does_not_serve_are_unknown_and_harmless() {
    let (server, _seen) = start().await;
    let alice = login(&server, "alice").await;

    // A whole service the server does not serve.
    let weather = WeatherClient::new(alice.peer());
    let outcome = within(weather.forecast("Lisbon")).await;
    assert!(
        matches!(&outcome, Err(Error::UnknownMethod(m)) if m == "weather.forecast"),
        "{outcome:?}"
    );

    // A newer client of the served service: what both know still works,
    // the method the server lacks is unknown.
    let newer = v2::CalculatorClient::new(alice.peer());
    assert_eq!(within(newer.add(3, 4)).await.unwrap(), 7);
    let outcome = within(newer.sqrt(2.0)).await;
    assert!(
        matches!(&outcome, Err(Error::UnknownMethod(m)) if m == "calculator.sqrt"),
        "{outcome:?}"
    );

    // The connection lives on.
    assert!(alice.is_connected());
    let calc = CalculatorClient::new(alice.peer());
    assert_eq!(within(calc.add(40, 2)).await.unwrap(), 42);
    assert_eq!(within(calc.whoami()).await.unwrap(), "alice");

    alice.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}
