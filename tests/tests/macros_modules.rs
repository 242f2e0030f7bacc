//! A service made of `#[sockets::handler]` functions in a `#[sockets::service]`
//! module, served over real sockets beside a trait service on the same
//! server, and by a client to the server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sockets::{AuthDecision, Client, ConnectionId, Error, Server};
use tests::{client, server, within};

/// Why a number did not parse.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParseError {
    /// Not a number at all.
    NotANumber(String),
}

/// What the auth hook stores: the user's name.
pub struct User(pub String);

/// Text utilities, as free functions.
#[sockets::service]
pub mod text {
    use sockets::{ConnectionId, Context};

    use super::{ParseError, User};

    /// `s` in capitals.
    #[sockets::handler]
    pub async fn upper(s: String) -> String {
        s.to_uppercase()
    }

    /// `s` cut at every `sep`.
    #[sockets::handler]
    pub async fn split(s: String, sep: char) -> Vec<String> {
        s.split(sep).map(str::to_owned).collect()
    }

    /// `s` as a number, or the reason it is not one.
    #[sockets::handler]
    pub async fn parse(s: String) -> Result<i64, ParseError> {
        s.trim().parse().map_err(|_| ParseError::NotANumber(s))
    }

    /// Who is calling, from the auth hook's metadata; guests may ask.
    #[sockets::handler]
    #[sockets(open)]
    pub async fn caller(cx: &Context) -> Option<String> {
        cx.meta::<User>().map(|u| u.0.clone())
    }

    /// The caller's connection id as this side knows it; guests may ask.
    #[sockets::handler]
    #[sockets(open)]
    pub async fn my_id(cx: &Context) -> ConnectionId {
        cx.connection_id()
    }
}

/// A counter, as a trait.
#[sockets::service]
pub trait Counter {
    /// Adds `n`; returns the new total.
    async fn add(&self, n: u64) -> u64;
    /// The total.
    #[sockets(open)]
    async fn total(&self) -> u64;
}

#[derive(Default)]
struct Tally(AtomicU64);

impl Counter for Tally {
    async fn add(&self, n: u64) -> u64 {
        self.0.fetch_add(n, Ordering::Relaxed) + n
    }

    async fn total(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Serialize, Deserialize)]
struct Login {
    user: String,
}

/// A server serving both services; `guest` logs in as a guest.
async fn start() -> Server {
    server()
        .serve(text::TextServer)
        .serve(CounterServer::new(Tally::default()))
        .auth(|login: Login, _peer| async move {
            if login.user == "guest" {
                AuthDecision::Guest
            } else {
                AuthDecision::accept(User(login.user))
            }
        })
        .start()
        .await
        .unwrap()
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

#[tokio::test]
async fn a_module_service_and_a_trait_service_share_a_server_and_a_connection() {
    let server = start().await;
    let alice = login(&server, "alice").await;
    let text = text::TextClient::new(alice.peer());
    let counter = CounterClient::from(alice.peer());

    assert_eq!(within(text.upper("hello")).await.unwrap(), "HELLO");
    assert_eq!(
        within(text.split("a,b,,c", ',')).await.unwrap(),
        ["a", "b", "", "c"]
    );
    assert_eq!(within(text.parse(" 42 ")).await.unwrap(), Ok(42));
    assert_eq!(
        within(text.parse("forty")).await.unwrap(),
        Err(ParseError::NotANumber("forty".into()))
    );
    assert_eq!(within(text.caller()).await.unwrap(), Some("alice".into()));

    // Calls to both services at once, on the one connection.
    let (up, first, second, parsed) = within(async {
        tokio::join!(
            text.upper("mixed"),
            counter.add(2),
            counter.add(3),
            text.parse("-7"),
        )
    })
    .await;
    assert_eq!(up.unwrap(), "MIXED");
    let mut totals = [first.unwrap(), second.unwrap()];
    totals.sort_unstable();
    assert!(totals == [2, 5] || totals == [3, 5], "{totals:?}");
    assert_eq!(parsed.unwrap(), Ok(-7));
    assert_eq!(within(counter.total()).await.unwrap(), 5);

    // Another client sees the same counter and its own context.
    let bob = login(&server, "bob").await;
    assert_eq!(
        within(CounterClient::new(bob.peer()).add(10))
            .await
            .unwrap(),
        15
    );
    assert_eq!(
        within(text::TextClient::new(bob.peer()).caller())
            .await
            .unwrap(),
        Some("bob".into())
    );

    alice.close().await;
    bob.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn open_handlers_serve_guests_and_the_rest_refuse_them() {
    let server = start().await;
    let guest = login(&server, "guest").await;
    let text = text::TextClient::new(guest.peer());
    let counter = CounterClient::new(guest.peer());

    // Open handlers answer, and see a guest's context: no metadata.
    assert_eq!(within(text.caller()).await.unwrap(), None);
    assert_eq!(within(counter.total()).await.unwrap(), 0);
    let refused = within(text.upper("x")).await;
    assert!(matches!(refused, Err(Error::Unauthorized)), "{refused:?}");
    let refused = within(counter.add(1)).await;
    assert!(matches!(refused, Err(Error::Unauthorized)), "{refused:?}");
    // Nothing was added.
    assert_eq!(within(counter.total()).await.unwrap(), 0);

    guest.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_client_serves_the_module_to_the_server() {
    let server = start().await;
    let alice = within(
        client(server.local_addr())
            .credentials(&Login {
                user: "alice".into(),
            })
            .serve(text::TextServer)
            .connect(),
    )
    .await
    .unwrap();
    let id: ConnectionId = within(text::TextClient::new(alice.peer()).my_id())
        .await
        .unwrap();

    // The generated request enum of a module service, sent to one client.
    let reply = within(server.send_to(id, &text::TextRequest::Upper { s: "up".into() })).await;
    assert!(matches!(&reply, Ok(text::TextResponse::Upper(s)) if s == "UP"));
    let reply = within(server.send_to(id, &text::TextRequest::Parse { s: "x".into() })).await;
    assert!(matches!(
        &reply,
        Ok(text::TextResponse::Parse(Err(ParseError::NotANumber(s)))) if s == "x"
    ));
    // On the client, the server is the peer: it has no user metadata, and
    // the connection has the client's own id for it.
    let to_alice = text::TextClient::new(server.peer(id).unwrap());
    assert_eq!(within(to_alice.caller()).await.unwrap(), None);
    let seen_by_alice = within(to_alice.my_id()).await.unwrap();
    assert_eq!(Some(seen_by_alice), alice.connection_id());

    alice.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}
