//! The tour: one process, nothing to configure.
//!
//! ```text
//! cargo run -p examples --bin demo
//! cargo run -p examples --bin demo -- --describe   # its services' descriptors, as JSON
//! ```
//!
//! It generates a random key in-process, starts a server on `127.0.0.1:0`,
//! connects an authenticated client that serves a service of its own, and
//! walks through: typed calls, an application error, a timeout, a push from
//! the server (broadcast), a server → client call made from inside a
//! handler, and a graceful shutdown. Every line it prints is in a fixed
//! order. Set `RUST_LOG=debug` to watch the runtime underneath.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sockets::crypto::{Secret, generate_key};
use sockets::{AuthDecision, Client, Context, Error, Server};
use tokio::sync::mpsc;

/// An error the shop itself answers with: part of the method's declared type.
#[derive(Debug, Serialize, Deserialize)]
pub enum ShopError {
    /// No such item.
    UnknownItem(String),
}

/// What the server serves.
#[sockets::service]
pub trait Shop {
    /// The price of an item in cents, or the shop's own error.
    async fn price(&self, item: String) -> Result<u32, ShopError>;
    /// Takes `millis` to answer: long enough for the caller to give up.
    async fn slow(&self, millis: u64) -> String;
    /// Buys an item: the server asks the caller to confirm (a call back to the client).
    async fn buy(&self, cx: &Context, item: String) -> String;
}

/// What the client serves: the server calls it.
#[sockets::service]
pub trait Desk {
    /// A notice pushed by the server; no reply.
    #[sockets(notify)]
    async fn notice(&self, text: String);
    /// The server asks a question and waits for the answer.
    async fn confirm(&self, question: String) -> bool;
}

struct Counter;

impl Shop for Counter {
    async fn price(&self, item: String) -> Result<u32, ShopError> {
        match item.as_str() {
            "tea" => Ok(250),
            "cake" => Ok(420),
            _ => Err(ShopError::UnknownItem(item)),
        }
    }

    async fn slow(&self, millis: u64) -> String {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        "finally".into()
    }

    async fn buy(&self, cx: &Context, item: String) -> String {
        let user = cx.meta::<String>().cloned().unwrap_or_default();
        println!("server: {user} wants to buy {item}; asking them to confirm");
        let desk = DeskClient::new(cx.peer().clone());
        match desk.confirm(format!("pay for one {item}?")).await {
            Ok(true) => format!("{item} sold to {user}"),
            Ok(false) => format!("{user} changed their mind"),
            Err(error) => format!("could not ask {user}: {error}"),
        }
    }
}

/// The client's desk: hands notices to `main` so they print in order.
struct Inbox {
    notices: mpsc::UnboundedSender<String>,
}

impl Desk for Inbox {
    async fn notice(&self, text: String) {
        let _ = self.notices.send(text);
    }

    async fn confirm(&self, question: String) -> bool {
        println!("client: the server asks {question:?}; answering yes");
        true
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if examples::describe(&[ShopClient::descriptor(), DeskClient::descriptor()]) {
        return Ok(());
    }
    examples::init_logging();

    // A fresh random key; in a deployment both sides read it from SOCKETS_SECRET.
    let secret = Secret::from_base64(&generate_key())?;

    let server = Server::builder()
        .address("127.0.0.1:0")
        .secret(secret.clone())
        .serve(ShopServer::new(Counter))
        .auth(|token: String, _peer| async move {
            match token.as_str() {
                "token-of-ada" => AuthDecision::accept("ada".to_owned()),
                _ => AuthDecision::reject("unknown token"),
            }
        })
        .start()
        .await?;
    println!("server: listening on {}", server.local_addr());

    let url = format!("ws://{}/", server.local_addr());
    let intruder = Client::builder()
        .url(url.clone())
        .secret(secret.clone())
        .credentials("token-of-nobody")
        .connect()
        .await;
    match intruder {
        Err(Error::AuthRejected(reason)) => println!("client: a wrong token is refused: {reason}"),
        other => return Err(format!("a wrong token was not refused: {other:?}").into()),
    }

    let (notices, mut notices_rx) = mpsc::unbounded_channel();
    let client = Client::builder()
        .url(url)
        .secret(secret)
        .credentials("token-of-ada")
        .serve(DeskServer::new(Inbox { notices }))
        .connect()
        .await?;
    println!("client: connected; handshake and authentication done");

    let shop = ShopClient::new(client.peer());
    println!("client: price(tea) = {:?}", shop.price("tea").await?);
    // The outer `?` is the call (network, timeout...); the inner Result is the shop's answer.
    match shop.price("caviar").await? {
        Ok(cents) => println!("client: caviar costs {cents}"),
        Err(ShopError::UnknownItem(item)) => {
            println!("client: price(caviar) is the shop's own error: unknown item {item:?}")
        }
    }
    let impatient = shop.with_timeout(Duration::from_millis(100));
    match impatient.slow(5_000).await {
        Err(Error::Timeout) => {
            println!("client: slow(5000) with a 100 ms timeout ends in Error::Timeout")
        }
        other => return Err(format!("expected a timeout, got {other:?}").into()),
    }

    let reached = server
        .broadcast(&DeskRequest::Notice {
            text: "the shop closes soon".into(),
        })
        .await?;
    println!("server: broadcast a notice to {reached} client(s)");
    let notice = tokio::time::timeout(Duration::from_secs(5), notices_rx.recv())
        .await?
        .ok_or("the client stopped")?;
    println!("client: notice received: {notice:?}");

    let receipt = shop.buy("cake").await?;
    println!("client: buy(cake) = {receipt:?}");

    client.close().await;
    println!("client: closed");
    server.shutdown(Duration::from_secs(1)).await;
    println!("server: shut down");
    Ok(())
}
