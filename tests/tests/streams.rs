//! Streams over real sockets (and the in-memory harness where a connection
//! must be cut): every shape and end, flow control holding a slow consumer
//! to its window at both ends while calls go on, cancellation reaching the
//! handler, 1,000 streams on one connection, `max_streams`, both overflow
//! policies of a `Topic`, a stream the server opens to a client-served
//! service, protocol closes for peers that break the flow-control rules,
//! and resubscribing streams across a server restart (the gap marked; the
//! end when the client closes or the new server refuses).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use sockets::__internal::crypto::FrameKind;
use sockets::__internal::protocol::codec;
use sockets::__internal::protocol::{Call, Half, Message};
use sockets::Reconnect;
use sockets::protocol::CloseCode;
use sockets::testing::Harness;
use sockets::{CallOptions, Context, Error, Feed, Server, Stream, Topic, Window};
use tests::raw::Raw;
use tests::{OnDrop, Remote, client, server, until, within};
use tokio::sync::{Notify, watch};

/// The service under test.
#[sockets::service]
pub trait Feeds {
    /// `0..n`, then the end.
    async fn count(&self, n: u64) -> Stream<u64>;
    /// Items of `size` bytes for as long as the caller reads; counts what it
    /// made, and says when the caller's stop dropped it.
    async fn firehose(&self, size: u32) -> Stream<sockets::serde_bytes::ByteBuf>;
    /// `0..n`, then a typed error, then the end.
    async fn failing(&self, n: u64) -> Stream<Result<u64, String>>;
    /// A handler that panics before it returns its stream.
    async fn panicking(&self) -> Stream<u64>;
    /// Prices, dropping the oldest for a slow subscriber.
    async fn prices(&self) -> Stream<Feed<u64>>;
    /// Prices, ending a slow subscriber.
    async fn prices_strict(&self) -> Stream<u64>;
    /// An ordinary call beside the streams.
    async fn add(&self, a: u64, b: u64) -> u64;
    /// A small window of its own.
    #[sockets(window(items = 3, bytes = 1024))]
    async fn narrow(&self, n: u64) -> Stream<u64>;
    /// Opens `count(n)` on the calling client's own `Feeds` and sums it.
    async fn relay(&self, cx: &Context, n: u64) -> u64;
    /// `0..3`, once the gate opens: a handler that waits before it returns
    /// its stream.
    async fn gated(&self) -> Stream<u64>;
}

#[derive(Clone)]
struct Feeder {
    /// Items the firehose made so far.
    produced: watch::Sender<u64>,
    /// Notified when a firehose's stream is dropped.
    dropped: Arc<Notify>,
    topic: Topic<u64>,
    /// Opens `gated`'s handlers.
    gate: watch::Sender<bool>,
}

impl Feeder {
    fn new() -> Self {
        Self {
            produced: watch::Sender::new(0),
            dropped: Arc::new(Notify::new()),
            topic: Topic::with_capacity(16),
            gate: watch::Sender::new(false),
        }
    }
}

impl Feeds for Feeder {
    async fn count(&self, n: u64) -> Stream<u64> {
        Stream::new(futures_util::stream::iter(0..n))
    }

    async fn firehose(&self, size: u32) -> Stream<sockets::serde_bytes::ByteBuf> {
        let produced = self.produced.clone();
        let guard = OnDrop(Arc::clone(&self.dropped));
        Stream::new(futures_util::stream::unfold(guard, move |guard| {
            produced.send_modify(|n| *n += 1);
            let item = sockets::serde_bytes::ByteBuf::from(vec![7u8; size as usize]);
            std::future::ready(Some((item, guard)))
        }))
    }

    async fn failing(&self, n: u64) -> Stream<Result<u64, String>> {
        let items = (0..n).map(Ok).chain([Err("boom".to_owned()), Ok(99)]);
        Stream::try_new(futures_util::stream::iter(items))
    }

    async fn panicking(&self) -> Stream<u64> {
        panic!("this handler panics")
    }

    async fn prices(&self) -> Stream<Feed<u64>> {
        self.topic.subscribe()
    }

    async fn prices_strict(&self) -> Stream<u64> {
        self.topic.subscribe_until_lag()
    }

    async fn add(&self, a: u64, b: u64) -> u64 {
        a + b
    }

    async fn narrow(&self, n: u64) -> Stream<u64> {
        self.count(n).await
    }

    async fn relay(&self, cx: &Context, n: u64) -> u64 {
        let client = FeedsClient::new(cx.peer().clone());
        let Ok(items) = client.count(n).await else {
            return u64::MAX;
        };
        items
            .map(|item| item.unwrap_or(u64::MAX))
            .fold(0, |a, b| async move { a + b })
            .await
    }

    async fn gated(&self) -> Stream<u64> {
        let mut gate = self.gate.subscribe();
        let _ = gate.wait_for(|open| *open).await;
        self.count(3).await
    }
}

async fn serve(feeder: &Feeder) -> (Server, FeedsClient, sockets::Client) {
    let server = server()
        .serve(FeedsServer::new(feeder.clone()))
        .start()
        .await
        .unwrap();
    let client = within(client(server.local_addr()).connect()).await.unwrap();
    let feeds = FeedsClient::new(client.peer());
    (server, feeds, client)
}

#[tokio::test]
async fn every_shape_ends_as_it_should() {
    let feeder = Feeder::new();
    let (server, feeds, client) = serve(&feeder).await;

    // A stream that finishes: every item, then the end.
    let items: Vec<u64> = within(feeds.count(5).await.unwrap().map(Result::unwrap).collect()).await;
    assert_eq!(items, [0, 1, 2, 3, 4]);
    let empty: Vec<_> = within(feeds.count(0).await.unwrap().collect()).await;
    assert!(empty.is_empty());

    // A typed error is an item; the stream ends after it.
    let failing: Vec<_> = within(feeds.failing(2).await.unwrap().collect()).await;
    assert!(
        matches!(&failing[..], [Ok(Ok(0)), Ok(Ok(1)), Ok(Err(e))] if e == "boom"),
        "{failing:?}"
    );

    // A panicking handler ends its stream with `Internal`; the connection lives on.
    let panicked: Vec<_> = within(feeds.panicking().await.unwrap().collect()).await;
    assert!(
        matches!(&panicked[..], [Err(Error::Internal(_))]),
        "{panicked:?}"
    );

    // A refused opening call is the stream's one error.
    let unknown: Vec<Result<u64, Error>> = within(
        client
            .peer()
            .stream("feeds.nothing", &(), CallOptions::default())
            .await
            .unwrap()
            .collect(),
    )
    .await;
    assert!(
        matches!(&unknown[..], [Err(Error::UnknownMethod(_))]),
        "{unknown:?}"
    );

    // A method's window applies, and the stream still completes.
    let narrow: Vec<u64> = within(
        feeds
            .narrow(50)
            .await
            .unwrap()
            .map(Result::unwrap)
            .collect(),
    )
    .await;
    assert_eq!(narrow, (0..50).collect::<Vec<_>>());

    // A stream that is not opened as one is refused without waiting for a reply.
    let request = FeedsRequest::Count { n: 1 };
    assert!(matches!(
        client
            .peer()
            .request(&request, CallOptions::default())
            .await,
        Err(Error::Protocol(_))
    ));
    assert_eq!(feeds.add(2, 3).await.unwrap(), 5);
    client.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_server_streams_from_a_client_served_service() {
    let feeder = Feeder::new();
    let server = server()
        .serve(FeedsServer::new(feeder.clone()))
        .start()
        .await
        .unwrap();
    let client = within(
        client(server.local_addr())
            .serve(FeedsServer::new(Feeder::new()))
            .connect(),
    )
    .await
    .unwrap();
    let feeds = FeedsClient::new(client.peer());
    assert_eq!(
        within(feeds.relay(100)).await.unwrap(),
        (0..100).sum::<u64>()
    );
    client.close().await;
}

#[tokio::test]
async fn a_slow_consumer_holds_both_ends_to_its_window_while_calls_go_on() {
    let feeder = Feeder::new();
    let (_server, feeds, client) = serve(&feeder).await;
    let window = Window::new(8, 1024 * 1024);
    let mut hose = feeds.with_window(window).firehose(32).await.unwrap();
    let mut produced = feeder.produced.subscribe();

    // The handler's stream is polled until the window is granted away, then not at all.
    within(produced.wait_for(|n| *n >= 8)).await.unwrap();
    until(|| hose.backlog() == 8).await;
    // Calls on the same connection are not held up by the saturated stream.
    for i in 0..20 {
        assert_eq!(within(feeds.add(i, 1)).await.unwrap(), i + 1);
    }
    assert_eq!(*produced.borrow(), 8, "no item is made without credit");
    assert_eq!(hose.backlog(), 8, "the receiver holds at most its window");

    // Reading gives credit back; neither end ever holds more than the window.
    let mut consumed = 0u64;
    for _ in 0..200 {
        let item = within(hose.next()).await.unwrap().unwrap();
        assert_eq!(item.len(), 32);
        consumed += 1;
        let made = *produced.borrow();
        assert!(made <= consumed + 8, "made {made}, consumed {consumed}");
        assert!(hose.backlog() <= 8);
    }
    drop(hose);
    within(feeder.dropped.notified()).await;
    client.close().await;
}

#[tokio::test]
async fn a_handler_that_waits_before_its_stream_holds_up_nothing_else() {
    let feeder = Feeder::new();
    let (_server, feeds, client) = serve(&feeder).await;
    // The call is answered when the handler starts; its items wait for the gate.
    let mut gated = within(feeds.gated()).await.unwrap();
    until(|| feeder.gate.receiver_count() == 1).await;
    // Its connection goes on meanwhile: calls, and another stream.
    assert_eq!(within(feeds.add(2, 3)).await.unwrap(), 5);
    let counted: Vec<u64> =
        within(feeds.count(4).await.unwrap().map(Result::unwrap).collect()).await;
    assert_eq!(counted, [0, 1, 2, 3]);
    feeder.gate.send_replace(true);
    let items: Vec<u64> = within((&mut gated).map(Result::unwrap).collect()).await;
    assert_eq!(
        items,
        [0, 1, 2],
        "woken, the handler's stream is sent in full"
    );
    client.close().await;
}

#[tokio::test]
async fn dropping_the_stream_stops_the_handler_within_a_round_trip() {
    let feeder = Feeder::new();
    let (_server, feeds, client) = serve(&feeder).await;
    let dropped = feeder.dropped.notified();
    tokio::pin!(dropped);
    dropped.as_mut().enable();
    let mut hose = feeds.firehose(8).await.unwrap();
    within(hose.next()).await.unwrap().unwrap();
    drop(hose);
    within(dropped).await;
    // The connection goes on.
    assert_eq!(feeds.add(1, 1).await.unwrap(), 2);
    client.close().await;
}

#[tokio::test]
async fn a_lost_connection_ends_every_open_stream_with_disconnected() {
    let feeder = Feeder::new();
    let harness = Harness::new(Server::builder().serve(FeedsServer::new(feeder.clone()))).unwrap();
    let client = within(harness.client().connect()).await.unwrap();
    let feeds = FeedsClient::new(client.peer());
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut hose = feeds.firehose(8).await.unwrap();
        within(hose.next()).await.unwrap().unwrap();
        streams.push(hose);
    }
    assert_eq!(harness.cut_connections(), 1);
    for mut hose in streams {
        let end = within(async {
            loop {
                match hose.next().await {
                    Some(Ok(_)) => continue,
                    other => break other,
                }
            }
        })
        .await;
        assert!(matches!(end, Some(Err(Error::Disconnected(_)))), "{end:?}");
        assert!(hose.next().await.is_none());
    }
}

#[tokio::test]
async fn a_thousand_streams_share_one_connection() {
    let feeder = Feeder::new();
    let (_server, feeds, client) = serve(&feeder).await;
    let streams = (0..1000u64).map(|i| {
        let feeds = feeds.clone();
        async move {
            let items = feeds.count(i % 20).await.unwrap();
            items.map(Result::unwrap).collect::<Vec<_>>().await
        }
    });
    let all = within(futures_util::future::join_all(streams)).await;
    for (i, items) in all.into_iter().enumerate() {
        assert_eq!(items, (0..(i as u64 % 20)).collect::<Vec<_>>());
    }
    client.close().await;
}

#[tokio::test]
async fn opening_more_than_max_streams_is_rejected() {
    let feeder = Feeder::new();
    let server = server()
        .max_streams(2)
        .serve(FeedsServer::new(feeder.clone()))
        .start()
        .await
        .unwrap();
    let client = within(client(server.local_addr()).connect()).await.unwrap();
    let feeds = FeedsClient::new(client.peer());
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut hose = feeds.firehose(8).await.unwrap();
        within(hose.next()).await.unwrap().unwrap();
        open.push(hose);
    }
    let third: Vec<_> = within(feeds.count(3).await.unwrap().collect()).await;
    assert!(matches!(&third[..], [Err(Error::Rejected(_))]), "{third:?}");
    // Once one ends, another opens.
    open.pop();
    within(feeder.dropped.notified()).await;
    let items: Vec<_> = within(feeds.count(3).await.unwrap().map(Result::unwrap).collect()).await;
    assert_eq!(items, [0, 1, 2]);
    client.close().await;
}

#[tokio::test]
async fn a_lagging_subscriber_is_told_what_it_missed_or_ended() {
    let feeder = Feeder::new();
    let (_server, feeds, client) = serve(&feeder).await;
    let window = Window::new(4, 64 * 1024);
    let mut relaxed = feeds.with_window(window).prices().await.unwrap();
    let mut strict = feeds.with_window(window).prices_strict().await.unwrap();
    until(|| feeder.topic.subscribers() == 2).await;
    // Nobody reads: publishing never waits.
    for price in 0..1000 {
        feeder.topic.publish(&price).unwrap();
    }
    // Drop oldest: every price is either received or counted as missed, in order.
    let (mut seen, mut missed, mut last) = (0u64, 0u64, None);
    while last != Some(999) {
        match within(relaxed.next()).await.unwrap().unwrap() {
            Feed::Item(price) => {
                assert!(last.is_none_or(|l| price > l));
                last = Some(price);
                seen += 1;
            }
            Feed::Lagged(n) => missed += n,
            Feed::Gap => panic!("no reconnect, no gap"),
        }
    }
    assert!(missed > 0);
    assert_eq!(seen + missed, 1000);
    // End: a few items made it, then `Lagged`, then the end.
    let mut items = 0;
    let end = within(async {
        loop {
            match strict.next().await {
                Some(Ok(_)) => items += 1,
                other => break other,
            }
        }
    })
    .await;
    assert!(matches!(end, Some(Err(Error::Lagged(_)))), "{end:?}");
    assert!(items < 1000);
    assert!(strict.next().await.is_none());
    client.close().await;
}

/// A raw peer opens a stream and grants credit that overflows.
#[tokio::test]
async fn an_overflowing_or_empty_credit_closes_the_connection() {
    for (items, bytes) in [(u32::MAX, 1), (0, 0)] {
        let feeder = Feeder::new();
        let server = server()
            .serve(FeedsServer::new(feeder))
            .start()
            .await
            .unwrap();
        let (mut raw, result) = Raw::connect(server.local_addr(), &"token").await;
        assert!(result.ok);
        let args = codec::to_vec(&(1_000_000u64,)).unwrap();
        let call = Message::Call(Call {
            id: 1,
            method: "feeds.count".into(),
            timeout_ms: None,
            args: args.into(),
        });
        let credit = Message::Credit {
            id: 1,
            half: Half::Down,
            items,
            bytes,
        };
        raw.send_envelopes(&[call, credit.clone(), credit]).await;
        let close = raw.close_frame().await.expect("an authenticated CLOSE");
        assert_eq!(
            (close.code, close.reason.as_str()),
            (CloseCode::ProtocolError.to_u16(), "bad stream credit")
        );
    }
}

/// The service a raw client pretends to serve is streamed from by the server.
#[sockets::service]
pub trait Puller {
    /// Opens `raw.feed` on the caller with a window of two items, holds it.
    async fn pull(&self, cx: &Context) -> u64;
}

struct Pull;

impl Puller for Pull {
    async fn pull(&self, cx: &Context) -> u64 {
        let options = CallOptions::default().with_window(Window::new(2, 1024));
        let Ok(stream) = cx.peer().stream::<_, u64>("raw.feed", &(), options).await else {
            return 0;
        };
        // Holds the stream without reading it.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
        1
    }
}

#[tokio::test]
async fn an_item_past_its_credit_closes_the_connection() {
    let server = server()
        .serve(PullerServer::new(Pull))
        .start()
        .await
        .unwrap();
    let (mut raw, _) = Raw::connect(server.local_addr(), &"token").await;
    let args = codec::to_vec(&[(); 0]).unwrap();
    raw.send_envelopes(&[Message::Call(Call {
        id: 1,
        method: "puller.pull".into(),
        timeout_ms: None,
        args: args.into(),
    })])
    .await;
    // The server opens `raw.feed` and grants two items.
    let (id, granted) = within(async {
        let mut opened = None;
        loop {
            let (kind, plaintext) = raw.recv().await.expect("open");
            assert_eq!(kind, FrameKind::Data);
            for message in codec::messages(plaintext) {
                match message.unwrap() {
                    Message::Call(call) if call.method == "raw.feed" => opened = Some(call.id),
                    Message::Credit { id, items, .. } if Some(id) == opened => {
                        return (id, items);
                    }
                    _ => {}
                }
            }
        }
    })
    .await;
    assert_eq!(granted, 2);
    let item = |n: u8| Message::Item {
        id,
        half: Half::Down,
        item: vec![n].into(),
    };
    raw.send_envelopes(&[item(1), item(2), item(3)]).await;
    let close = raw.close_frame().await.expect("an authenticated CLOSE");
    assert_eq!(
        (close.code, close.reason.as_str()),
        (
            CloseCode::ProtocolError.to_u16(),
            "stream item past its credit"
        )
    );
}

#[tokio::test]
async fn a_topic_delivers_to_many_subscribers_and_forgets_dropped_ones() {
    let topic: Topic<u64> = Topic::new();
    let subscribers: Vec<_> = (0..10).map(|_| topic.subscribe_until_lag()).collect();
    let counted = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = subscribers
        .into_iter()
        .map(|mut sub| {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                while let Some(Ok(_)) = sub.next().await {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for i in 0..100 {
        assert_eq!(topic.publish(&i).unwrap(), 10);
    }
    drop(topic);
    for reader in readers {
        within(reader).await.unwrap();
    }
    assert_eq!(counted.load(Ordering::Relaxed), 1000);
}

/// A client of `addr` that reconnects quickly.
async fn reconnecting_client(addr: std::net::SocketAddr) -> sockets::Client {
    let reconnect = Reconnect {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        ..Reconnect::default()
    };
    within(client(addr).reconnect(reconnect).connect())
        .await
        .unwrap()
}

/// A `Feeds` server started again on `addr`, with a topic of its own.
async fn restart(addr: std::net::SocketAddr) -> (Server, Topic<u64>) {
    let feeder = Feeder::new();
    let topic = feeder.topic.clone();
    let server = within(
        server()
            .address(addr.to_string())
            .serve(FeedsServer::new(feeder))
            .start(),
    )
    .await
    .unwrap();
    (server, topic)
}

#[tokio::test]
async fn a_resubscribing_stream_reopens_after_a_server_restart_and_marks_the_gap() {
    let feeder = Feeder::new();
    let topic = feeder.topic.clone();
    let remote = Remote::start(move || server().serve(FeedsServer::new(feeder)));
    let addr = remote.addr;
    let client = reconnecting_client(addr).await;
    let feeds = FeedsClient::new(client.peer());
    let mut resubscribing = feeds.with_resubscribe().prices().await.unwrap();
    let mut plain = feeds.prices().await.unwrap();
    until(|| topic.subscribers() == 2).await;
    for price in [1, 2] {
        topic.publish(&price).unwrap();
    }
    for prices in [&mut resubscribing, &mut plain] {
        assert_eq!(within(prices.next()).await.unwrap().unwrap(), Feed::Item(1));
        assert_eq!(within(prices.next()).await.unwrap().unwrap(), Feed::Item(2));
    }

    // The server dies: a stream opened without `resubscribe` ends.
    remote.kill();
    let end = within(plain.next()).await;
    assert!(matches!(end, Some(Err(Error::Disconnected(_)))), "{end:?}");
    assert!(plain.next().await.is_none());

    // A new server comes back on the same port: the resubscribing stream
    // re-opened itself there, and says where the gap is.
    let (_restarted, topic) = restart(addr).await;
    assert_eq!(
        within(resubscribing.next()).await.unwrap().unwrap(),
        Feed::Gap
    );
    // Open on the client once sent; subscribed once the new server ran it.
    until(|| topic.subscribers() == 1).await;
    for price in [3, 4] {
        topic.publish(&price).unwrap();
    }
    assert_eq!(
        within(resubscribing.next()).await.unwrap().unwrap(),
        Feed::Item(3)
    );
    assert_eq!(
        within(resubscribing.next()).await.unwrap().unwrap(),
        Feed::Item(4)
    );

    // Closing the client ends it.
    client.close().await;
    let end = within(resubscribing.next()).await;
    assert!(matches!(end, Some(Err(Error::Disconnected(_)))), "{end:?}");
    assert!(resubscribing.next().await.is_none());
}

#[tokio::test]
async fn a_resubscribing_stream_ends_when_the_client_is_closed_while_it_waits() {
    let feeder = Feeder::new();
    let topic = feeder.topic.clone();
    let remote = Remote::start(move || server().serve(FeedsServer::new(feeder)));
    let client = reconnecting_client(remote.addr).await;
    let mut states = client.states();
    let feeds = FeedsClient::new(client.peer());
    let mut prices = feeds.with_resubscribe().prices().await.unwrap();
    until(|| topic.subscribers() == 1).await;
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(item) = prices.next().await {
            seen.push(item);
        }
        seen
    });

    // No server comes back: the client keeps failing to reconnect, and the
    // stream waits for it.
    remote.kill();
    within(async {
        while !matches!(
            states.recv().await.unwrap(),
            sockets::client::ClientState::AttemptFailed { .. }
        ) {}
    })
    .await;
    assert!(!reader.is_finished());
    client.close().await;
    let seen = within(reader).await.unwrap();
    assert!(
        matches!(seen[..], [Err(Error::Disconnected(_))]),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_resubscribing_stream_ends_with_the_refusal_of_the_restarted_server() {
    let feeder = Feeder::new();
    let topic = feeder.topic.clone();
    let remote = Remote::start(move || server().serve(FeedsServer::new(feeder)));
    let addr = remote.addr;
    let client = reconnecting_client(addr).await;
    let feeds = FeedsClient::new(client.peer());
    let mut prices = feeds.with_resubscribe().prices().await.unwrap();
    until(|| topic.subscribers() == 1).await;

    // The server comes back without the method.
    remote.kill();
    let _restarted = within(server().address(addr.to_string()).start())
        .await
        .unwrap();
    assert_eq!(within(prices.next()).await.unwrap().unwrap(), Feed::Gap);
    let end = within(prices.next()).await;
    assert!(matches!(end, Some(Err(Error::UnknownMethod(_)))), "{end:?}");
    assert!(prices.next().await.is_none());
    client.close().await;
}

#[tokio::test]
async fn resubscribe_is_refused_for_items_that_cannot_mark_a_gap() {
    let feeder = Feeder::new();
    let (_server, feeds, client) = serve(&feeder).await;
    // Not a `Feed`: no room for the marker. The stream ends at once.
    let mut counted = feeds.with_resubscribe().count(3).await.unwrap();
    let refused = within(counted.next()).await;
    assert!(
        matches!(refused, Some(Err(Error::Config(_)))),
        "{refused:?}"
    );
    assert!(counted.next().await.is_none());
    let mut counted = client
        .peer()
        .stream::<_, u64>(
            "feeds.count",
            &(3u64,),
            CallOptions::default().with_resubscribe(),
        )
        .await
        .unwrap();
    let refused = within(counted.next()).await;
    assert!(
        matches!(refused, Some(Err(Error::Config(_)))),
        "{refused:?}"
    );
    // Over a connection that stays up, a resubscribing stream is any stream.
    let mut prices = feeds.with_resubscribe().prices().await.unwrap();
    until(|| feeder.topic.subscribers() == 1).await;
    feeder.topic.publish(&7).unwrap();
    assert_eq!(within(prices.next()).await.unwrap().unwrap(), Feed::Item(7));
    client.close().await;
}
