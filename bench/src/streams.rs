//! W7 and W8: streams.
//!
//! W7: one connection, one server → client stream of 32-byte items (and of
//! 1 KiB items), read as fast as the client can for the run's duration:
//! items/s (and MB/s). Measured for ours (AES-256-GCM, the default window;
//! and the other way, a client → server stream the server reads as fast as
//! it can, `sockets-upload`),
//! the bare tokio-tungstenite one-way firehose (binary messages of the same
//! size, sent in batches of 64 then flushed: the ceiling) and jsonrpsee
//! subscriptions (its server sends each item as a notification; its
//! client's per-subscription buffer is its default, 1,024), and tonic's
//! server streaming (`Echo::Firehose` in `proto/bench.proto`: gRPC over
//! HTTP/2, h2c, its default windows).
//!
//! W8: one `Topic` of 32-byte items, 1,000 subscribers on 50 connections
//! (20 each), the publisher publishing as fast as it can (yielding every
//! 64): deliveries/s (items that reached a subscriber), with the items the
//! subscribers missed because they lagged. Then the memory held while one
//! subscriber reads 10× slower than the publisher (publishing 10 items a
//! millisecond, the subscriber taking one a millisecond): the most items the
//! topic held for it, and the most its stream held at the client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use sockets::crypto::{Secret, generate_key};
use sockets::{Client, Feed, Server, Stream, Topic};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as Ws;

use crate::BoxError;
use crate::stats::Record;

/// What the stream server serves.
#[sockets::service]
pub trait Firehose {
    /// Items of `size` bytes, for as long as the caller reads.
    async fn items(&self, size: u32) -> Stream<Bytes>;
    /// The topic's items, dropping the oldest for a slow subscriber.
    async fn topic(&self) -> Stream<Feed<Bytes>>;
    /// Reads the items the caller sends; replies with how many came.
    async fn sink(&self, items: Stream<Bytes>) -> u64;
}

#[derive(Clone)]
struct Hose {
    topic: Topic<Bytes>,
}

impl Firehose for Hose {
    async fn items(&self, size: u32) -> Stream<Bytes> {
        let item = Bytes::from(vec![0x5a; size as usize]);
        Stream::new(futures_util::stream::repeat(item))
    }

    async fn topic(&self) -> Stream<Feed<Bytes>> {
        self.topic.subscribe()
    }

    async fn sink(&self, items: Stream<Bytes>) -> u64 {
        items
            .fold(0, |n, item| async move { n + u64::from(item.is_ok()) })
            .await
    }
}

async fn start(topic: Topic<Bytes>) -> Result<(Server, Secret), BoxError> {
    let secret = Secret::from_base64(&generate_key())?;
    let server = Server::builder()
        .address("127.0.0.1:0")
        .secret(secret.clone())
        .max_connections(1_000)
        .serve(FirehoseServer::new(Hose { topic }))
        .start()
        .await?;
    Ok((server, secret))
}

async fn connect(server: &Server, secret: &Secret) -> Result<Client, BoxError> {
    Ok(Client::builder()
        .url(format!("ws://{}/", server.local_addr()))
        .secret(secret.clone())
        .connect()
        .await?)
}

fn record(
    target: &str,
    workload: &'static str,
    items: u64,
    size: usize,
    elapsed: Duration,
) -> Record {
    let per_s = items as f64 / elapsed.as_secs_f64();
    Record {
        target: format!("{target}-{size}b"),
        workload,
        value: per_s,
        unit: "items_per_s",
        extra: vec![
            ("mb_per_s", per_s * size as f64 / 1e6),
            ("items", items as f64),
        ],
    }
}

/// W7 for ours: one stream of `size`-byte items.
async fn w7_ours(size: usize, duration: Duration) -> Result<Record, BoxError> {
    let (server, secret) = start(Topic::new()).await?;
    let client = connect(&server, &secret).await?;
    let hose = FirehoseClient::new(client.peer());
    let mut items = hose.items(size as u32).await?;
    // Warm-up: the first window.
    for _ in 0..256 {
        items.next().await.ok_or("the stream ended")??;
    }
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < duration {
        for _ in 0..256 {
            let item = items.next().await.ok_or("the stream ended")??;
            if item.len() != size {
                return Err("an item of the wrong size".into());
            }
        }
        count += 256;
    }
    let elapsed = start.elapsed();
    drop(items);
    client.close().await;
    server.shutdown(Duration::from_secs(1)).await;
    Ok(record("sockets-aes-256-gcm", "W7", count, size, elapsed))
}

/// W7 the other way, for ours: the client sends `size`-byte items for
/// `duration`; the server counts them, and its reply ends the run.
async fn w7_upload(size: usize, duration: Duration) -> Result<Record, BoxError> {
    let (server, secret) = start(Topic::new()).await?;
    let client = connect(&server, &secret).await?;
    let hose = FirehoseClient::new(client.peer());
    let item = Bytes::from(vec![0x5a; size]);
    let start = Instant::now();
    // The clock is read every 256 items, as the reader of `w7_ours` does.
    let mut sent = 0u64;
    let items = futures_util::stream::repeat(item).take_while(move |_| {
        sent += 1;
        std::future::ready(!sent.is_multiple_of(256) || start.elapsed() < duration)
    });
    let count = hose
        .with_timeout(duration + Duration::from_secs(30))
        .sink(Stream::new(items))
        .await?;
    let elapsed = start.elapsed();
    client.close().await;
    server.shutdown(Duration::from_secs(1)).await;
    Ok(record(
        "sockets-upload-aes-256-gcm",
        "W7",
        count,
        size,
        elapsed,
    ))
}

/// W7's ceiling: a bare WebSocket server sending binary messages of `size`
/// bytes in batches of 64, and a client counting them.
async fn w7_bare(size: usize, duration: Duration) -> Result<Record, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let server_stop = Arc::clone(&stop);
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let mut ws = tokio_tungstenite::accept_async(tcp).await?;
        let item = Bytes::from(vec![0x5a; size]);
        while !server_stop.load(Ordering::Relaxed) {
            for _ in 0..64 {
                ws.feed(Ws::Binary(item.clone())).await?;
            }
            ws.flush().await?;
        }
        Ok::<_, BoxError>(())
    });
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await?;
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < duration {
        for _ in 0..256 {
            match ws.next().await {
                Some(Ok(Ws::Binary(item))) if item.len() == size => count += 1,
                other => return Err(format!("unexpected {other:?}").into()),
            }
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    drop(ws);
    let _ = server.await;
    Ok(record("bare-ws-firehose", "W7", count, size, elapsed))
}

/// W7 for jsonrpsee: one subscription whose server sends `size`-byte strings.
async fn w7_jsonrpsee(size: usize, duration: Duration) -> Result<Record, BoxError> {
    use jsonrpsee::RpcModule;
    use jsonrpsee::core::client::SubscriptionClientT;
    use jsonrpsee::server::{ServerBuilder, ServerConfig};
    use jsonrpsee::ws_client::WsClientBuilder;

    let config = ServerConfig::builder().set_tcp_no_delay(true).build();
    let server = ServerBuilder::default()
        .set_config(config)
        .build("127.0.0.1:0")
        .await?;
    let addr = server.local_addr()?;
    let mut module = RpcModule::new(());
    module.register_subscription("sub", "item", "unsub", move |_, pending, _, _| async move {
        let sink = pending.accept().await?;
        let item = jsonrpsee::core::to_json_raw_value(&"Z".repeat(size))?;
        loop {
            sink.send(item.clone()).await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), jsonrpsee::core::SubscriptionError>(())
    })?;
    let handle = server.start(module);
    let client = WsClientBuilder::default()
        .set_tcp_no_delay(true)
        .build(format!("ws://{addr}"))
        .await?;
    let mut sub = client
        .subscribe::<String, _>("sub", jsonrpsee::rpc_params![], "unsub")
        .await?;
    let start = Instant::now();
    let mut count = 0u64;
    let mut dropped = false;
    while start.elapsed() < duration {
        match sub.next().await {
            Some(Ok(item)) if item.len() == size => count += 1,
            Some(other) => return Err(format!("unexpected {other:?}").into()),
            None => {
                // Its client drops a subscription whose buffer filled.
                dropped = true;
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    drop(sub);
    drop(client);
    let _ = handle.stop();
    let mut record = record("jsonrpsee-subscription", "W7", count, size, elapsed);
    record.extra.push(("dropped", f64::from(u8::from(dropped))));
    Ok(record)
}

/// W8: one topic, 1,000 subscribers on 50 connections.
async fn w8_fanout(duration: Duration) -> Result<Record, BoxError> {
    let topic: Topic<Bytes> = Topic::new();
    let (server, secret) = start(topic.clone()).await?;
    let delivered = Arc::new(AtomicU64::new(0));
    let missed = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..50 {
        let client = connect(&server, &secret).await?;
        let hose = FirehoseClient::new(client.peer());
        for _ in 0..20 {
            let mut feed = hose.topic().await?;
            let (delivered, missed) = (Arc::clone(&delivered), Arc::clone(&missed));
            readers.push(tokio::spawn(async move {
                while let Some(Ok(item)) = feed.next().await {
                    match item {
                        Feed::Item(_) => delivered.fetch_add(1, Ordering::Relaxed),
                        Feed::Lagged(n) => missed.fetch_add(n, Ordering::Relaxed),
                        Feed::Gap => 0,
                    };
                }
            }));
        }
        clients.push(client);
    }
    while topic.subscribers() < 1_000 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let item = Bytes::from(vec![0x5a; 32]);
    let start = Instant::now();
    let mut published = 0u64;
    while start.elapsed() < duration {
        for _ in 0..64 {
            topic.publish(&item)?;
        }
        published += 64;
        tokio::task::yield_now().await;
    }
    let elapsed = start.elapsed();
    let (delivered, missed) = (
        delivered.load(Ordering::Relaxed),
        missed.load(Ordering::Relaxed),
    );
    for client in &clients {
        client.close().await;
    }
    for reader in readers {
        reader.abort();
    }
    server.shutdown(Duration::from_secs(1)).await;
    let secs = elapsed.as_secs_f64();
    Ok(Record {
        target: "sockets-aes-256-gcm-topic".into(),
        workload: "W8",
        value: delivered as f64 / secs,
        unit: "deliveries_per_s",
        extra: vec![
            ("published_per_s", published as f64 / secs),
            ("missed_per_s", missed as f64 / secs),
        ],
    })
}

/// W8's memory figure: one subscriber 10× slower than the publisher.
async fn w8_slow(duration: Duration) -> Result<Record, BoxError> {
    let topic: Topic<Bytes> = Topic::new();
    let (server, secret) = start(topic.clone()).await?;
    let client = connect(&server, &secret).await?;
    let mut feed = FirehoseClient::new(client.peer()).topic().await?;
    while topic.subscribers() < 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rss_before = crate::rss_kib().unwrap_or(0);
    let publisher = {
        let topic = topic.clone();
        tokio::spawn(async move {
            let item = Bytes::from(vec![0x5a; 32]);
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            let start = Instant::now();
            while start.elapsed() < duration {
                tick.tick().await;
                for _ in 0..10 {
                    let _ = topic.publish(&item);
                }
            }
        })
    };
    let (mut held_topic, mut held_client, mut read, mut missed) = (0usize, 0usize, 0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while !publisher.is_finished() {
        tick.tick().await;
        match feed.next().await {
            Some(Ok(Feed::Item(_))) => read += 1,
            Some(Ok(Feed::Lagged(n))) => missed += n,
            Some(Ok(Feed::Gap)) => {}
            _ => break,
        }
        held_topic = held_topic.max(topic.buffered());
        held_client = held_client.max(feed.backlog());
    }
    let rss_after = crate::rss_kib().unwrap_or(0);
    drop(feed);
    client.close().await;
    server.shutdown(Duration::from_secs(1)).await;
    Ok(Record {
        target: "sockets-aes-256-gcm-topic-slow".into(),
        workload: "W8",
        value: held_topic as f64,
        unit: "max_items_held",
        extra: vec![
            ("max_items_at_client", held_client as f64),
            ("read", read as f64),
            ("missed", missed as f64),
            (
                "rss_growth_kib",
                rss_after.saturating_sub(rss_before) as f64,
            ),
        ],
    })
}

/// The stream targets, as `--stream-target` names them: W7's `bare`
/// (the firehose), `ours` (server → client), `upload` (client → server),
/// `jsonrpsee` and `tonic`; W8's `fanout` and `slow`.
pub const TARGETS: [&str; 7] = [
    "bare",
    "ours",
    "upload",
    "jsonrpsee",
    "tonic",
    "fanout",
    "slow",
];

/// W7's item sizes, in bytes.
pub const SIZES: [usize; 2] = [32, 1024];

/// The part of a stream workload to run: every target and size by default.
pub struct Only<'a> {
    /// The targets to run ([`TARGETS`]); all when empty.
    pub targets: &'a [&'a str],
    /// W7's one item size to run; both when `None`.
    pub size: Option<usize>,
}

/// Runs `workload` (W7 or W8) for each of its targets that `only` names;
/// prints nothing.
pub async fn run(
    workload: &str,
    duration: Duration,
    only: &Only<'_>,
) -> Result<Vec<Record>, BoxError> {
    let wanted = |name: &str| only.targets.is_empty() || only.targets.contains(&name);
    let mut records = Vec::new();
    match workload {
        "W7" => {
            for size in SIZES
                .into_iter()
                .filter(|s| only.size.is_none_or(|o| o == *s))
            {
                if wanted("bare") {
                    records.push(w7_bare(size, duration).await?);
                }
                if wanted("ours") {
                    records.push(w7_ours(size, duration).await?);
                }
                if wanted("upload") {
                    records.push(w7_upload(size, duration).await?);
                }
                if wanted("jsonrpsee") {
                    records.push(w7_jsonrpsee(size, duration).await?);
                }
                if wanted("tonic") {
                    let (count, elapsed) = crate::peer_tonic::stream(size, duration).await?;
                    records.push(record("tonic-server-streaming", "W7", count, size, elapsed));
                }
            }
        }
        _ => {
            if wanted("fanout") {
                records.push(w8_fanout(duration).await?);
            }
            if wanted("slow") {
                records.push(w8_slow(duration).await?);
            }
        }
    }
    Ok(records)
}

/// Prints the ratios of W7's figures to the bare firehose of the same size.
pub fn print(records: &[Record]) {
    println!();
    println!("| W7 target | items/s | MB/s | ratio to the bare firehose |");
    println!("|---|---:|---:|---:|");
    for record in records.iter().filter(|r| r.workload == "W7") {
        let size = record.target.rsplit('-').next().unwrap_or("");
        let ceiling = records
            .iter()
            .find(|r| r.target == format!("bare-ws-firehose-{size}"))
            .map_or(f64::NAN, |c| c.value);
        let mb = record
            .extra
            .iter()
            .find(|(name, _)| *name == "mb_per_s")
            .map_or(0.0, |(_, v)| *v);
        println!(
            "| {} | {:.0} | {:.1} | {:.2}× |",
            record.target,
            record.value,
            mb,
            record.value / ceiling
        );
    }
}
