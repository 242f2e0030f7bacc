//! `sockets serve-echo`: a throwaway server with one method per kind of
//! argument, to try the other commands on.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sockets::{AuthDecision, Context, DescribeAccess, Server};

/// A shape: an enum with a variant of each form.
#[derive(Debug, Serialize, Deserialize)]
pub enum Shape {
    /// Nothing at all.
    Empty,
    /// A circle of this radius.
    Circle(f64),
    /// A rectangle.
    Rect {
        /// Its width.
        width: f64,
        /// Its height.
        height: f64,
    },
    /// A triangle by its three sides.
    Triangle(f64, f64, f64),
}

/// How loud a record is.
#[derive(Debug, Serialize, Deserialize)]
pub enum Level {
    /// Quiet.
    Low,
    /// Loud.
    High,
}

/// A point.
#[derive(Debug, Serialize, Deserialize)]
pub struct Point {
    /// Across.
    pub x: i32,
    /// Down.
    pub y: i32,
}

/// A record with nested, optional, byte and enum fields.
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    /// A name.
    pub name: String,
    /// Tags, returned sorted.
    pub tags: Vec<String>,
    /// Somewhere, or nowhere.
    pub point: Option<Point>,
    /// Raw bytes (`bin` on the wire, base64 in JSON).
    #[serde(with = "serde_bytes")]
    pub blob: Vec<u8>,
    /// How loud.
    pub level: Level,
}

/// Why `double` refuses.
#[derive(Debug, Serialize, Deserialize)]
pub enum EchoError {
    /// The double does not fit in a byte.
    TooLarge {
        /// The largest `n` that does.
        max: u8,
    },
}

/// A throwaway service for trying the `sockets` tool: one method per kind of argument.
#[sockets::service]
pub trait Echo {
    /// Returns `text` as it came.
    async fn echo(&self, text: String) -> String;
    /// The sum of two integers.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// `n` doubled; a declared error when that does not fit in a byte.
    async fn double(&self, n: u8) -> Result<u8, EchoError>;
    /// The bytes reversed; both travel as MessagePack `bin`.
    async fn reverse(&self, data: Vec<u8>) -> Vec<u8>;
    /// The area of a shape.
    async fn area(&self, shape: Shape) -> f64;
    /// How often each word occurs.
    async fn words(&self, text: String) -> BTreeMap<String, u32>;
    /// The record back, its tags sorted.
    async fn record(&self, record: Record) -> Record;
    /// `pong`; guests may call it.
    #[sockets(open)]
    async fn ping(&self) -> String;
    /// Sends `text` to every authenticated client as the notification
    /// `events.said`; returns how many it was sent to.
    async fn say(&self, cx: &Context, text: String) -> u32;
    /// Fire and forget: the server prints the line.
    #[sockets(notify)]
    async fn log(&self, line: String);
    /// Answers after `ms` milliseconds.
    async fn sleep(&self, ms: u64) -> u64;
    /// `0..n` as a stream (which `sockets call` does not open).
    async fn count(&self, n: u64) -> sockets::Stream<u64>;
    /// The sum of a stream of numbers the caller sends (which `sockets call` does not send).
    async fn sum(&self, numbers: sockets::Stream<i64>) -> i64;
}

/// What the server pushes to its clients (`sockets listen` prints it).
#[sockets::service]
pub trait Events {
    /// Someone said `text` through `echo.say`.
    #[sockets(notify)]
    async fn said(&self, text: String);
}

/// The implementation.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoService;

impl Echo for EchoService {
    async fn echo(&self, text: String) -> String {
        text
    }

    async fn add(&self, a: i64, b: i64) -> i64 {
        a.saturating_add(b)
    }

    async fn double(&self, n: u8) -> Result<u8, EchoError> {
        n.checked_mul(2)
            .ok_or(EchoError::TooLarge { max: u8::MAX / 2 })
    }

    async fn reverse(&self, mut data: Vec<u8>) -> Vec<u8> {
        data.reverse();
        data
    }

    async fn area(&self, shape: Shape) -> f64 {
        match shape {
            Shape::Empty => 0.0,
            Shape::Circle(r) => std::f64::consts::PI * r * r,
            Shape::Rect { width, height } => width * height,
            Shape::Triangle(a, b, c) => {
                let s = (a + b + c) / 2.0;
                (s * (s - a) * (s - b) * (s - c)).max(0.0).sqrt()
            }
        }
    }

    async fn words(&self, text: String) -> BTreeMap<String, u32> {
        let mut counts = BTreeMap::new();
        for word in text.split_whitespace() {
            *counts.entry(word.to_owned()).or_insert(0) += 1;
        }
        counts
    }

    async fn record(&self, mut record: Record) -> Record {
        record.tags.sort();
        record
    }

    async fn ping(&self) -> String {
        "pong".into()
    }

    async fn say(&self, cx: &Context, text: String) -> u32 {
        let Some(server) = cx.server() else { return 0 };
        let sent = server
            .broadcast(&EventsRequest::Said { text })
            .await
            .unwrap_or(0);
        u32::try_from(sent).unwrap_or(u32::MAX)
    }

    async fn log(&self, line: String) {
        println!("log: {line}");
    }

    async fn sleep(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
        ms
    }

    async fn count(&self, n: u64) -> sockets::Stream<u64> {
        sockets::Stream::new(futures_util::stream::iter(0..n))
    }

    async fn sum(&self, numbers: sockets::Stream<i64>) -> i64 {
        use futures_util::StreamExt;
        numbers
            .fold(
                0i64,
                |sum, n| async move { sum.saturating_add(n.unwrap_or(0)) },
            )
            .await
    }
}

/// The server: `echo` served to anyone with the secret; the credentials
/// `"guest"` make a guest session (which may call only `echo.ping` and
/// `sockets.describe`); `describe` is open to guests.
pub fn server() -> sockets::ServerBuilder {
    Server::builder()
        .serve(EchoServer::new(EchoService))
        .describe(DescribeAccess::Guests)
        .auth(|credentials: Option<String>, _peer| async move {
            match credentials.as_deref() {
                Some("guest") => AuthDecision::Guest,
                Some(user) => AuthDecision::accept(user.to_owned()),
                None => AuthDecision::accept(String::new()),
            }
        })
}
