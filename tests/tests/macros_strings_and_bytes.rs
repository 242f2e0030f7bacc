//! The conveniences of generated clients for strings and bytes (issue #10),
//! over real connections: a `String` parameter takes anything that converts
//! into a `String`.

// `Texts` spells `String` in full on purpose.
#![allow(unused_qualifications)]

use std::borrow::Cow;
use std::time::Duration;

use tests::{client, server, within};

/// Echoes text, declared with each spelling of `String`.
#[sockets::service]
pub trait Texts {
    /// `name`, greeted.
    async fn greet(&self, name: String) -> String;
    /// The two texts joined by `+`.
    async fn join(&self, a: std::string::String, b: ::std::string::String) -> String;
}

struct Echo;

impl Texts for Echo {
    async fn greet(&self, name: String) -> String {
        format!("hello, {name}")
    }

    async fn join(&self, a: String, b: String) -> String {
        format!("{a}+{b}")
    }
}

#[tokio::test]
async fn string_parameters_take_anything_that_converts_into_a_string() {
    let server = server()
        .serve(TextsServer::new(Echo))
        .start()
        .await
        .unwrap();
    let caller = within(client(server.local_addr()).connect()).await.unwrap();
    let texts = TextsClient::new(caller.peer());

    let name = String::from("ada");
    assert_eq!(within(texts.greet("ada")).await.unwrap(), "hello, ada");
    assert_eq!(within(texts.greet(&name)).await.unwrap(), "hello, ada");
    assert_eq!(
        within(texts.greet(name.clone())).await.unwrap(),
        "hello, ada"
    );
    assert_eq!(
        within(texts.greet(Cow::Borrowed("cow"))).await.unwrap(),
        "hello, cow"
    );
    assert_eq!(
        within(texts.greet(Box::<str>::from("box"))).await.unwrap(),
        "hello, box"
    );
    assert_eq!(within(texts.greet('x')).await.unwrap(), "hello, x");
    assert_eq!(within(texts.join("a", name)).await.unwrap(), "a+ada");

    caller.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}
