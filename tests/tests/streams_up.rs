//! Streams the caller sends, over real sockets (and the in-memory harness
//! where a connection must be cut): a method that takes a stream and
//! replies once, a two-way stream, both served by a trait, a `#[handler]`
//! module and a `&Context` handler, and called by a client and by the
//! server (to a client-served service). Flow control holds a fast sender
//! to the handler's window while calls go on; a reply or a dropped stream
//! stops the sender's source; errors and lost connections reach the
//! handler; a call refused by a guard is sent no items, a handler that
//! panics stops the source; a thousand streams on one connection;
//! `max_streams`; a raw peer sees the documented envelopes and is closed
//! when it sends past its credit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use sockets::__internal::crypto::FrameKind;
use sockets::__internal::protocol::codec;
use sockets::__internal::protocol::{Call, Half, Message, Outcome};
use sockets::descriptor::MethodKind;
use sockets::protocol::CloseCode;
use sockets::testing::Harness;
use sockets::{CallOptions, Context, Error, Refusal, Server, Stream};
use tests::raw::Raw;
use tests::{OnDrop, client, server, until, within};
use tokio::sync::{Notify, Semaphore, watch};

/// The service under test.
#[sockets::service]
pub trait Uploads {
    /// The sum of the items the caller sends.
    async fn sum(&self, items: Stream<u64>) -> u64;
    /// Each item plus `offset`, sent back as it comes.
    async fn echo(&self, offset: u64, items: Stream<u64>) -> Stream<u64>;
    /// The first `n` items; replies without reading the rest.
    async fn take(&self, n: u64, items: Stream<u64>) -> Vec<u64>;
    /// Reads one item each time the test allows it; a small window.
    #[sockets(window(items = 4, bytes = 1024))]
    async fn slow(&self, items: Stream<u64>) -> u64;
    /// How the stream ended: the items, then its error if it had one.
    async fn until_end(&self, items: Stream<u64>) -> (u64, Option<String>);
    /// The caller's label and the bytes it sent.
    async fn measure(&self, cx: &Context, chunks: Stream<Vec<u8>>) -> (String, u64);
    /// An ordinary call beside the streams.
    async fn add(&self, a: u64, b: u64) -> u64;
    /// Sends `0..n` to the calling client's own `Uploads::sum`.
    async fn relay(&self, cx: &Context, n: u64) -> u64;
    /// Echoes `0..n` through the calling client's own `Uploads::echo`.
    async fn relay_echo(&self, cx: &Context, n: u64) -> Vec<u64>;
    /// Reads one item, then panics.
    async fn explode(&self, items: Stream<u64>) -> u64;
}

#[derive(Clone)]
struct Receiver {
    /// Permits for `slow` to read one item.
    reads: Arc<Semaphore>,
    /// The most items `slow`'s stream held unread.
    backlog: Arc<AtomicUsize>,
    /// Items `slow` read.
    read: watch::Sender<u64>,
    /// How the last `until_end` stream ended.
    ended: watch::Sender<Option<(u64, Option<String>)>>,
    /// Notified when an `echo` stream is dropped.
    echo_dropped: Arc<Notify>,
}

impl Receiver {
    fn new() -> Self {
        Self {
            reads: Arc::new(Semaphore::new(0)),
            backlog: Arc::new(AtomicUsize::new(0)),
            read: watch::Sender::new(0),
            ended: watch::Sender::new(None),
            echo_dropped: Arc::new(Notify::new()),
        }
    }
}

impl Uploads for Receiver {
    async fn sum(&self, items: Stream<u64>) -> u64 {
        items
            .map(|item| item.unwrap_or(0))
            .fold(0, |a, b| async move { a + b })
            .await
    }

    async fn echo(&self, offset: u64, items: Stream<u64>) -> Stream<u64> {
        let guard = OnDrop(Arc::clone(&self.echo_dropped));
        Stream::new(items.map(move |item| {
            let _ = &guard;
            item.map_or(u64::MAX, |item| item + offset)
        }))
    }

    async fn take(&self, n: u64, items: Stream<u64>) -> Vec<u64> {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        items
            .take(n)
            .map(|item| item.unwrap_or(u64::MAX))
            .collect()
            .await
    }

    async fn slow(&self, mut items: Stream<u64>) -> u64 {
        let mut sum = 0;
        loop {
            let Ok(permit) = self.reads.acquire().await else {
                return sum;
            };
            permit.forget();
            self.backlog.fetch_max(items.backlog(), Ordering::Relaxed);
            match items.next().await {
                Some(Ok(item)) => sum += item,
                _ => return sum,
            }
            self.read.send_modify(|n| *n += 1);
        }
    }

    async fn until_end(&self, mut items: Stream<u64>) -> (u64, Option<String>) {
        let mut count = 0;
        let end = loop {
            match items.next().await {
                Some(Ok(_)) => count += 1,
                Some(Err(error)) => break Some(error.to_string()),
                None => break None,
            }
        };
        self.ended.send_replace(Some((count, end.clone())));
        (count, end)
    }

    async fn measure(&self, cx: &Context, chunks: Stream<Vec<u8>>) -> (String, u64) {
        let bytes = chunks
            .map(|chunk| chunk.map_or(0, |c| c.len() as u64))
            .fold(0, |a, b| async move { a + b })
            .await;
        (format!("{}", cx.connection_id()), bytes)
    }

    async fn add(&self, a: u64, b: u64) -> u64 {
        a + b
    }

    async fn relay(&self, cx: &Context, n: u64) -> u64 {
        let client = UploadsClient::new(cx.peer().clone());
        let items = Stream::new(futures_util::stream::iter(0..n));
        client.sum(items).await.unwrap_or(u64::MAX)
    }

    async fn explode(&self, mut items: Stream<u64>) -> u64 {
        let first = items.next().await;
        panic!("the handler fails after {first:?}")
    }

    async fn relay_echo(&self, cx: &Context, n: u64) -> Vec<u64> {
        let client = UploadsClient::new(cx.peer().clone());
        let items = Stream::new(futures_util::stream::iter(0..n));
        let Ok(echoed) = client.echo(1, items).await else {
            return Vec::new();
        };
        echoed.map(|item| item.unwrap_or(u64::MAX)).collect().await
    }
}

/// A service of free functions that takes a stream.
#[sockets::service]
pub mod files {
    use futures_util::StreamExt;
    use sockets::Stream;

    /// The number of bytes sent, and the number of chunks.
    #[sockets::handler]
    pub async fn size(name: String, chunks: Stream<Vec<u8>>) -> (String, u64, u64) {
        let (count, bytes) = chunks
            .fold((0, 0), |(count, bytes), chunk| async move {
                (count + 1, bytes + chunk.map_or(0, |c| c.len() as u64))
            })
            .await;
        (name, count, bytes)
    }

    /// Chunks back, reversed.
    #[sockets::handler]
    pub async fn reverse(chunks: Stream<Vec<u8>>) -> Stream<Vec<u8>> {
        Stream::new(chunks.map(|chunk| {
            let mut chunk = chunk.unwrap_or_default();
            chunk.reverse();
            chunk
        }))
    }
}

async fn serve(receiver: &Receiver) -> (Server, UploadsClient, sockets::Client) {
    let server = server()
        .serve(UploadsServer::new(receiver.clone()))
        .serve(files::FilesServer)
        .start()
        .await
        .unwrap();
    let client = within(client(server.local_addr()).connect()).await.unwrap();
    let uploads = UploadsClient::new(client.peer());
    (server, uploads, client)
}

/// A stream of `0..`, counting the items taken from it, that tells
/// `dropped` when it is dropped.
fn counting(taken: Arc<AtomicU64>, dropped: Arc<Notify>) -> Stream<u64> {
    let guard = OnDrop(dropped);
    Stream::new(futures_util::stream::unfold(
        (0u64, guard),
        move |(n, guard)| {
            taken.fetch_add(1, Ordering::Relaxed);
            std::future::ready(Some((n, (n + 1, guard))))
        },
    ))
}

fn items(range: std::ops::Range<u64>) -> Stream<u64> {
    Stream::iter(range)
}

#[tokio::test]
async fn every_shape_with_a_stream_argument_works() {
    let receiver = Receiver::new();
    let (server, uploads, client) = serve(&receiver).await;

    // Takes a stream, replies once: every item arrives, then the end.
    assert_eq!(within(uploads.sum(items(0..1000))).await.unwrap(), 499_500);
    assert_eq!(within(uploads.sum(Stream::empty())).await.unwrap(), 0);
    // More items than a window: credit comes back as the handler reads.
    assert_eq!(
        within(uploads.sum(items(0..5000))).await.unwrap(),
        (0..5000).sum::<u64>()
    );

    // Both ways: every item comes back changed, in order, then the end.
    let echoed: Vec<u64> = within(
        uploads
            .echo(10, items(0..600))
            .await
            .unwrap()
            .map(Result::unwrap)
            .collect(),
    )
    .await;
    assert_eq!(echoed, (10..610).collect::<Vec<_>>());

    // A `&Context` handler, with bytes.
    let chunks = Stream::new(futures_util::stream::iter(vec![vec![1u8; 100]; 30]));
    let (connection, bytes) = within(uploads.measure(chunks)).await.unwrap();
    assert!(!connection.is_empty());
    assert_eq!(bytes, 3000);

    // A `#[handler]` module, one shape each.
    let files = files::FilesClient::new(client.peer());
    let chunks = Stream::new(futures_util::stream::iter(vec![vec![0u8; 10]; 7]));
    assert_eq!(
        within(files.size("a.bin", chunks)).await.unwrap(),
        ("a.bin".to_owned(), 7, 70)
    );
    let chunks = Stream::new(futures_util::stream::iter([vec![1u8, 2, 3], vec![4, 5]]));
    let reversed: Vec<Vec<u8>> = within(
        files
            .reverse(chunks)
            .await
            .unwrap()
            .map(Result::unwrap)
            .collect(),
    )
    .await;
    assert_eq!(reversed, [vec![3, 2, 1], vec![5, 4]]);

    // Through `Peer`, without the generated client.
    let sum: u64 = within(client.peer().upload(
        "uploads.sum",
        &[(); 0],
        items(0..10),
        CallOptions::default(),
    ))
    .await
    .unwrap();
    assert_eq!(sum, 45);
    let echoed: Stream<u64> = within(client.peer().duplex(
        "uploads.echo",
        &(1u64,),
        items(0..3),
        CallOptions::default(),
    ))
    .await
    .unwrap();
    let echoed: Vec<u64> = within(echoed.map(Result::unwrap).collect()).await;
    assert_eq!(echoed, [1, 2, 3]);

    client.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn both_halves_of_a_two_way_stream_move_at_once() {
    let receiver = Receiver::new();
    let (_server, uploads, client) = serve(&receiver).await;
    // The caller sends the next item only once the previous one came back:
    // neither half waits for the other to end.
    let (tx, outgoing) = Stream::channel(1);
    let mut echoed = within(uploads.echo(100, outgoing)).await.unwrap();
    for i in 0..50 {
        within(tx.send(i)).await.unwrap();
        assert_eq!(within(echoed.next()).await.unwrap().unwrap(), i + 100);
    }
    drop(tx);
    assert!(
        within(echoed.next()).await.is_none(),
        "ends after the caller's end"
    );
    client.close().await;
}

#[tokio::test]
async fn a_fast_sender_is_held_to_the_handlers_window_while_calls_go_on() {
    let receiver = Receiver::new();
    let (_server, uploads, client) = serve(&receiver).await;
    let taken = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(Notify::new());
    let source = counting(Arc::clone(&taken), Arc::clone(&dropped));
    let upload = tokio::spawn({
        let uploads = uploads.clone();
        async move {
            uploads
                .with_timeout(Duration::from_secs(60))
                .slow(source)
                .await
        }
    });

    // The window is 4 items: the sender takes 4 from its source, then none.
    until(|| taken.load(Ordering::Relaxed) == 4).await;
    for i in 0..20 {
        assert_eq!(within(uploads.add(i, 1)).await.unwrap(), i + 1);
    }
    assert_eq!(
        taken.load(Ordering::Relaxed),
        4,
        "nothing is sent without credit"
    );

    // Reading gives credit back; the sender never runs more than the window ahead.
    let mut read = receiver.read.subscribe();
    for consumed in 1..=100u64 {
        receiver.reads.add_permits(1);
        within(read.wait_for(|n| *n >= consumed)).await.unwrap();
        let sent = taken.load(Ordering::Relaxed);
        assert!(sent <= consumed + 4, "sent {sent}, consumed {consumed}");
    }
    assert!(
        receiver.backlog.load(Ordering::Relaxed) <= 4,
        "the handler holds at most its window"
    );

    // The handler replying ends the call and drops the caller's source.
    receiver.reads.close();
    let sum = within(upload).await.unwrap().unwrap();
    assert_eq!(sum, (0..100).sum::<u64>());
    within(dropped.notified()).await;
    client.close().await;
}

#[tokio::test]
async fn a_reply_before_the_end_stops_the_senders_source() {
    let receiver = Receiver::new();
    let (_server, uploads, client) = serve(&receiver).await;
    let dropped = Arc::new(Notify::new());
    let notified = dropped.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let source = counting(Arc::new(AtomicU64::new(0)), Arc::clone(&dropped));
    assert_eq!(within(uploads.take(3, source)).await.unwrap(), [0, 1, 2]);
    within(notified).await;
    // The connection goes on.
    assert_eq!(within(uploads.sum(items(0..4))).await.unwrap(), 6);
    client.close().await;
}

#[tokio::test]
async fn dropping_a_two_way_stream_stops_the_handler_and_the_source() {
    let receiver = Receiver::new();
    let (_server, uploads, client) = serve(&receiver).await;
    let handler_dropped = receiver.echo_dropped.notified();
    tokio::pin!(handler_dropped);
    handler_dropped.as_mut().enable();
    let source_dropped = Arc::new(Notify::new());
    let source_notified = source_dropped.notified();
    tokio::pin!(source_notified);
    source_notified.as_mut().enable();
    let source = counting(Arc::new(AtomicU64::new(0)), Arc::clone(&source_dropped));
    let mut echoed = within(uploads.echo(0, source)).await.unwrap();
    assert_eq!(within(echoed.next()).await.unwrap().unwrap(), 0);
    drop(echoed);
    within(handler_dropped).await;
    within(source_notified).await;
    assert_eq!(within(uploads.add(2, 2)).await.unwrap(), 4);
    client.close().await;
}

#[tokio::test]
async fn a_failing_source_ends_the_handlers_stream_with_an_error() {
    let receiver = Receiver::new();
    let (_server, uploads, client) = serve(&receiver).await;
    // A source that panics after three items.
    let source = Stream::new(futures_util::stream::iter(0..4u64).map(|n| {
        assert!(n < 3, "the source fails");
        n
    }));
    let (count, end) = within(uploads.until_end(source)).await.unwrap();
    assert_eq!(count, 3);
    let end = end.expect("an error end");
    assert!(end.contains("the stream panicked"), "{end}");
    // A source that ends with an error: its message reaches the handler.
    let (count, end) =
        within(uploads.until_end(Stream::error(Error::Internal("disk full".into()))))
            .await
            .unwrap();
    assert_eq!(count, 0);
    assert!(end.is_some_and(|end| end.contains("disk full")));
    client.close().await;
}

/// A lost connection ends the call on the caller's side with
/// `Disconnected`, and drops the handler (and with it the stream it
/// reads), as it does every handler of that connection.
#[tokio::test]
async fn a_lost_connection_ends_both_sides_of_a_stream() {
    let receiver = Receiver::new();
    let harness =
        Harness::new(Server::builder().serve(UploadsServer::new(receiver.clone()))).unwrap();
    let client = within(harness.client().connect()).await.unwrap();
    let uploads = UploadsClient::new(client.peer());
    let handler_dropped = receiver.echo_dropped.notified();
    tokio::pin!(handler_dropped);
    handler_dropped.as_mut().enable();
    // Sources that send two items, then wait.
    let source = || {
        Stream::new(futures_util::stream::iter([1u64, 2]).chain(futures_util::stream::pending()))
    };
    let mut echoed = within(uploads.echo(0, source())).await.unwrap();
    assert_eq!(within(echoed.next()).await.unwrap().unwrap(), 1);
    let taken = Arc::new(AtomicU64::new(0));
    let counted = {
        let taken = Arc::clone(&taken);
        source().inspect(move |_| {
            taken.fetch_add(1, Ordering::Relaxed);
        })
    };
    let upload = tokio::spawn({
        let uploads = uploads.clone();
        async move {
            uploads
                .until_end(Stream::new(counted.map(Result::unwrap)))
                .await
        }
    });
    // The upload is open once the handler granted credit and its items went.
    until(|| taken.load(Ordering::Relaxed) == 2).await;
    assert_eq!(harness.cut_connections(), 1);
    let end = within(async {
        loop {
            match echoed.next().await {
                Some(Ok(_)) => continue,
                other => break other,
            }
        }
    })
    .await;
    assert!(matches!(end, Some(Err(Error::Disconnected(_)))), "{end:?}");
    let outcome = within(upload).await.unwrap();
    assert!(
        matches!(outcome, Err(Error::Disconnected(_))),
        "{outcome:?}"
    );
    within(handler_dropped).await;
    assert!(
        receiver.ended.borrow().is_none(),
        "the handler was dropped, not finished"
    );
}

#[tokio::test]
async fn the_server_sends_streams_to_a_client_served_service() {
    let receiver = Receiver::new();
    let server = server()
        .serve(UploadsServer::new(receiver.clone()))
        .start()
        .await
        .unwrap();
    let client = within(
        client(server.local_addr())
            .serve(UploadsServer::new(Receiver::new()))
            .connect(),
    )
    .await
    .unwrap();
    let uploads = UploadsClient::new(client.peer());
    assert_eq!(
        within(uploads.relay(100)).await.unwrap(),
        (0..100).sum::<u64>()
    );
    assert_eq!(
        within(uploads.relay_echo(5)).await.unwrap(),
        [1, 2, 3, 4, 5]
    );
    client.close().await;
}

#[tokio::test]
async fn opening_more_than_max_streams_is_rejected() {
    let receiver = Receiver::new();
    let server = server()
        .max_streams(2)
        .serve(UploadsServer::new(receiver.clone()))
        .start()
        .await
        .unwrap();
    let client = within(client(server.local_addr()).connect()).await.unwrap();
    let uploads = UploadsClient::new(client.peer());
    let taken = Arc::new(AtomicU64::new(0));
    let mut held = Vec::new();
    for _ in 0..2 {
        let source = counting(Arc::clone(&taken), Arc::new(Notify::new()));
        let uploads = uploads.clone();
        held.push(tokio::spawn(async move { uploads.slow(source).await }));
    }
    // Both are open once both sources filled their windows.
    until(|| taken.load(Ordering::Relaxed) == 8).await;
    let third = within(uploads.sum(items(0..3))).await;
    assert!(
        matches!(&third, Err(Error::Rejected(message)) if message.contains("too many streams")),
        "{third:?}"
    );
    // Once they end, another opens.
    receiver.reads.close();
    for upload in held {
        within(upload).await.unwrap().unwrap();
    }
    assert_eq!(within(uploads.sum(items(0..3))).await.unwrap(), 3);
    client.close().await;
}

#[tokio::test]
async fn resubscribe_is_refused_for_a_two_way_stream() {
    let receiver = Receiver::new();
    let (_server, uploads, client) = serve(&receiver).await;
    let options = CallOptions::default().with_resubscribe();
    let refused = client
        .peer()
        .duplex::<_, u64, u64>("uploads.echo", &(0u64,), items(0..3), options)
        .await;
    assert!(matches!(refused, Err(Error::Config(_))), "{refused:?}");
    assert_eq!(within(uploads.add(1, 1)).await.unwrap(), 2);
    client.close().await;
}

#[test]
fn the_descriptor_names_the_stream_kinds_and_item_types() {
    let descriptor = UploadsRequest::descriptor();
    let method = |name: &str| {
        descriptor
            .methods
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let sum = method("uploads.sum");
    assert_eq!(sum.kind, MethodKind::ClientStream);
    assert!(sum.params.is_empty(), "the stream is not a parameter");
    assert!(sum.stream_in.is_some() && sum.stream_out.is_none() && sum.returns.is_some());
    let echo = method("uploads.echo");
    assert_eq!(echo.kind, MethodKind::BidiStream);
    assert_eq!(echo.params.len(), 1);
    assert!(echo.stream_in.is_some() && echo.stream_out.is_some() && echo.returns.is_none());
    assert_eq!(
        echo.signature(),
        "uploads.echo(offset: u64) <- stream<u64> -> stream<u64>"
    );
}

/// Reads envelopes from a raw peer until `pick` returns something.
async fn next_envelope<T>(raw: &mut Raw, mut pick: impl FnMut(Message) -> Option<T>) -> T {
    within(async {
        loop {
            let (kind, plaintext) = raw.recv().await.expect("an envelope");
            assert_eq!(kind, FrameKind::Data);
            for message in codec::messages(plaintext) {
                if let Some(found) = pick(message.unwrap()) {
                    return found;
                }
            }
        }
    })
    .await
}

/// The envelopes of docs/PROTOCOL.md §9.7, written by hand: a peer that
/// knows the document alone can send a stream.
#[tokio::test]
async fn a_raw_peer_sends_a_stream_with_the_documented_envelopes() {
    let server = server()
        .serve(UploadsServer::new(Receiver::new()))
        .start()
        .await
        .unwrap();
    let (mut raw, result) = Raw::connect(server.local_addr(), &"token").await;
    assert!(result.ok);
    raw.send_envelopes(&[Message::Call(Call {
        id: 5,
        method: "uploads.sum".into(),
        timeout_ms: Some(10_000),
        args: codec::to_vec(&[(); 0]).unwrap().into(),
    })])
    .await;
    // The callee grants half 1 its window.
    let (items, bytes) = next_envelope(&mut raw, |message| match message {
        Message::Credit {
            id: 5,
            half: Half::Up,
            items,
            bytes,
        } => Some((items, bytes)),
        _ => None,
    })
    .await;
    assert_eq!((items, bytes), (8192, 262_144));
    let item = |n: u64| Message::Item {
        id: 5,
        half: Half::Up,
        item: codec::to_vec(&n).unwrap().into(),
    };
    let end = Message::End {
        id: 5,
        half: Half::Up,
        error: None,
    };
    raw.send_envelopes(&[item(20), item(22), end]).await;
    let reply = next_envelope(&mut raw, |message| match message {
        Message::Reply(reply) if reply.id == 5 => Some(reply.outcome),
        _ => None,
    })
    .await;
    let Outcome::Ok(value) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(codec::decode_value::<u64>(&value).unwrap(), 42);
}

#[tokio::test]
async fn a_raw_peer_sending_past_its_credit_is_closed() {
    let receiver = Receiver::new();
    let server = server()
        .serve(UploadsServer::new(receiver))
        .start()
        .await
        .unwrap();
    let (mut raw, _) = Raw::connect(server.local_addr(), &"token").await;
    raw.send_envelopes(&[Message::Call(Call {
        id: 1,
        method: "uploads.slow".into(),
        timeout_ms: None,
        args: codec::to_vec(&[(); 0]).unwrap().into(),
    })])
    .await;
    // `slow` has a window of 4 items, and reads none.
    let granted = next_envelope(&mut raw, |message| match message {
        Message::Credit {
            id: 1,
            half: Half::Up,
            items,
            ..
        } => Some(items),
        _ => None,
    })
    .await;
    assert_eq!(granted, 4);
    let item = |n: u8| Message::Item {
        id: 1,
        half: Half::Up,
        item: vec![n].into(),
    };
    raw.send_envelopes(&[item(1), item(2), item(3), item(4), item(5)])
        .await;
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
async fn a_refused_call_is_sent_no_items_and_a_panic_stops_the_source() {
    let receiver = Receiver::new();
    let server = server()
        .guard(|_: &Context, method: &str| {
            if method == "uploads.sum" {
                Err(Refusal::forbidden("no uploads today"))
            } else {
                Ok(())
            }
        })
        .serve(UploadsServer::new(receiver))
        .start()
        .await
        .unwrap();
    let client = within(client(server.local_addr()).connect()).await.unwrap();
    let uploads = UploadsClient::new(client.peer());

    // Refused before the handler runs: no credit, so not one item is made.
    let taken = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(Notify::new());
    let notified = dropped.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let refused = within(uploads.sum(counting(Arc::clone(&taken), Arc::clone(&dropped)))).await;
    assert!(
        matches!(&refused, Err(Error::Forbidden(reason)) if reason == "no uploads today"),
        "{refused:?}"
    );
    within(notified).await;
    assert_eq!(taken.load(Ordering::Relaxed), 0);

    // A handler that panics is answered `Internal`, and the source stops.
    let notified = dropped.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let failed = within(uploads.explode(counting(Arc::clone(&taken), Arc::clone(&dropped)))).await;
    assert!(matches!(&failed, Err(Error::Internal(_))), "{failed:?}");
    within(notified).await;
    // The connection goes on.
    assert_eq!(within(uploads.add(2, 3)).await.unwrap(), 5);
    client.close().await;
}

/// Many streams at once on one connection, each with its own credit:
/// 800 two-way streams and 200 uploads, a thousand streams the server
/// receives (`max_streams` is 1,024; the uploads are calls in flight too,
/// under 256).
#[tokio::test]
async fn a_thousand_streams_to_the_server_share_one_connection() {
    let receiver = Receiver::new();
    let (_server, uploads, client) = serve(&receiver).await;
    let echoes = (0..800u64).map(|i| {
        let uploads = uploads.clone();
        async move {
            let echoed = uploads.echo(i, items(0..i % 20)).await.unwrap();
            echoed.map(Result::unwrap).collect::<Vec<_>>().await
        }
    });
    let sums = (0..200u64).map(|i| {
        let uploads = uploads.clone();
        async move { uploads.sum(items(0..i)).await.unwrap() }
    });
    let (echoed, summed) = within(futures_util::future::join(
        futures_util::future::join_all(echoes),
        futures_util::future::join_all(sums),
    ))
    .await;
    for (i, items) in (0u64..).zip(echoed) {
        assert_eq!(items, (i..i + i % 20).collect::<Vec<_>>());
    }
    for (i, sum) in (0u64..).zip(summed) {
        assert_eq!(sum, (0..i).sum::<u64>());
    }
    client.close().await;
}

/// A typed request cannot carry a stream: sending one for a method that
/// takes a stream is refused before anything is sent.
#[tokio::test]
async fn a_typed_request_for_a_method_that_takes_a_stream_is_refused() {
    let receiver = Receiver::new();
    let (_server, uploads, client) = serve(&receiver).await;
    let refused = client
        .peer()
        .request(&UploadsRequest::Sum, CallOptions::default())
        .await;
    assert!(
        matches!(&refused, Err(Error::Protocol(message)) if message.contains("`uploads.sum` streams")),
        "{refused:?}"
    );
    let refused = client
        .peer()
        .request(&UploadsRequest::Echo { offset: 1 }, CallOptions::default())
        .await;
    assert!(matches!(refused, Err(Error::Protocol(_))), "{refused:?}");
    assert_eq!(within(uploads.add(1, 2)).await.unwrap(), 3);
    client.close().await;
}
