//! The service of the `server` / `client` pair: both binaries name it from here.

use serde::{Deserialize, Serialize};
use sockets::Context;

/// Why the greeter refuses a name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GreetError {
    /// The name was empty.
    EmptyName,
}

impl std::fmt::Display for GreetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EmptyName => f.write_str("the name is empty"),
        }
    }
}

/// A small service: greetings, arithmetic, and who is calling.
#[sockets::service]
pub trait Greeter {
    /// A greeting for `name`; an empty name is the service's own error.
    async fn greet(&self, name: String) -> Result<String, GreetError>;
    /// The sum of the numbers.
    async fn sum(&self, numbers: Vec<i64>) -> i64;
    /// The caller's connection id, address and the user its token names.
    async fn whoami(&self, cx: &Context) -> String;
}

/// The server's implementation of [`Greeter`].
#[derive(Clone, Debug, Default)]
pub struct Greetings;

impl Greeter for Greetings {
    async fn greet(&self, name: String) -> Result<String, GreetError> {
        if name.trim().is_empty() {
            Err(GreetError::EmptyName)
        } else {
            Ok(format!("hello, {name}"))
        }
    }

    async fn sum(&self, numbers: Vec<i64>) -> i64 {
        numbers.iter().fold(0i64, |acc, n| acc.saturating_add(*n))
    }

    async fn whoami(&self, cx: &Context) -> String {
        let user = cx.meta::<String>().map_or("(no user)", String::as_str);
        format!(
            "connection {} from {} as {user}",
            cx.connection_id(),
            cx.peer_addr()
        )
    }
}
