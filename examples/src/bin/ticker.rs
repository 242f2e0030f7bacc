//! A `Topic` of price ticks streamed to subscribers reading at different speeds.
//!
//! ```text
//! cargo run -p examples --bin ticker
//! ```
//!
//! The server publishes 3,000 ticks in bursts (never waiting for anyone)
//! to a topic whose subscribers each buffer 64. Three clients subscribe:
//! a fast one reads everything; a slow one reads one tick a millisecond,
//! falls behind and is told how many ticks it missed (`Feed::Lagged`)
//! where they were; a strict one reads as slowly but asked to be ended
//! instead (`Error::Lagged`). Each prints what it got; the program checks
//! the accounts add up and exits by itself within seconds.

use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sockets::crypto::{Secret, generate_key};
use sockets::{Client, Error, Feed, Server, Stream, Topic};

/// One price tick.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tick {
    /// Its number, from 0.
    pub seq: u64,
    /// The price, in cents.
    pub cents: u64,
    /// The last tick of the session.
    pub last: bool,
}

/// What the server serves.
#[sockets::service]
pub trait Ticker {
    /// Every tick from now on; a reader that falls behind is told how many it missed.
    #[sockets(window(items = 16, bytes = 16384))]
    async fn prices(&self) -> Stream<Feed<Tick>>;
    /// Every tick from now on; a reader that falls behind is ended with `Lagged`.
    #[sockets(window(items = 16, bytes = 16384))]
    async fn prices_or_nothing(&self) -> Stream<Tick>;
}

struct Market {
    topic: Topic<Tick>,
}

impl Ticker for Market {
    async fn prices(&self) -> Stream<Feed<Tick>> {
        self.topic.subscribe()
    }

    async fn prices_or_nothing(&self) -> Stream<Tick> {
        self.topic.subscribe_until_lag()
    }
}

const TICKS: u64 = 3_000;

/// What one subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    items: u64,
    missed: u64,
    markers: u64,
    ended_by: Option<String>,
}

/// Reads `prices` until the last tick, pausing `pause` after each.
async fn relaxed(client: TickerClient, pause: Duration) -> Result<Seen, Error> {
    let mut prices = client.prices().await?;
    let mut seen = Seen::default();
    while let Some(feed) = prices.next().await {
        match feed? {
            Feed::Item(tick) => {
                seen.items += 1;
                if tick.last {
                    break;
                }
            }
            Feed::Lagged(n) => {
                seen.missed += n;
                seen.markers += 1;
            }
            // Only a resubscribing stream yields gaps.
            Feed::Gap => {}
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(seen)
}

/// Reads `prices_or_nothing` until the last tick or its end.
async fn strict(client: TickerClient, pause: Duration) -> Result<Seen, Error> {
    let mut prices = client.prices_or_nothing().await?;
    let mut seen = Seen::default();
    while let Some(tick) = prices.next().await {
        match tick {
            Ok(tick) => {
                seen.items += 1;
                if tick.last {
                    break;
                }
            }
            Err(error) => {
                seen.ended_by = Some(error.to_string());
                break;
            }
        }
        tokio::time::sleep(pause).await;
    }
    Ok(seen)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if examples::describe(&[TickerClient::descriptor()]) {
        return Ok(());
    }
    examples::init_logging();
    let secret = Secret::from_base64(&generate_key())?;
    let topic = Topic::with_capacity(64);
    let server = Server::builder()
        .address("127.0.0.1:0")
        .secret(secret.clone())
        .serve(TickerServer::new(Market {
            topic: topic.clone(),
        }))
        .start()
        .await?;
    let url = format!("ws://{}/", server.local_addr());
    let mut clients = Vec::new();
    for _ in 0..3 {
        let client = Client::builder()
            .url(url.clone())
            .secret(secret.clone())
            .connect()
            .await?;
        clients.push(client);
    }
    let ticker = |i: usize| TickerClient::new(clients[i].peer());
    let fast = tokio::spawn(relaxed(ticker(0), Duration::ZERO));
    let slow = tokio::spawn(relaxed(ticker(1), Duration::from_millis(1)));
    let ender = tokio::spawn(strict(ticker(2), Duration::from_millis(1)));
    // Wait until all three are subscribed, then publish in bursts.
    while topic.subscribers() < 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    for seq in 0..TICKS {
        if seq % 5 == 0 {
            interval.tick().await;
        }
        let tick = Tick {
            seq,
            cents: 10_000 + (seq * 7919) % 500,
            last: seq + 1 == TICKS,
        };
        topic.publish(&tick)?;
    }
    println!(
        "published {TICKS} ticks; the topic holds {} now",
        topic.buffered()
    );

    let fast = fast.await??;
    let slow = slow.await??;
    let ender = ender.await??;
    println!("fast:   {} ticks, {} missed", fast.items, fast.missed);
    println!(
        "slow:   {} ticks, {} missed, told so {} times (Feed::Lagged)",
        slow.items, slow.missed, slow.markers
    );
    println!(
        "strict: {} ticks, then {}",
        ender.items,
        ender.ended_by.as_deref().unwrap_or("the last tick")
    );
    for (name, seen) in [("fast", &fast), ("slow", &slow)] {
        if seen.items + seen.missed != TICKS {
            return Err(format!("{name}: {seen:?} does not add up to {TICKS}").into());
        }
    }
    if slow.missed == 0 {
        return Err("the slow reader never lagged".into());
    }
    if !ender
        .ended_by
        .as_deref()
        .is_some_and(|e| e.starts_with("lagged"))
    {
        return Err(format!("the strict reader was not ended: {ender:?}").into());
    }
    for client in &clients {
        client.close().await;
    }
    server.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
