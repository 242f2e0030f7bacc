//! Metrics through a recording recorder (`metrics-util`'s
//! `DebuggingRecorder`), one per test: installed for the test's thread only
//! (`metrics::with_local_recorder`) around a current-thread runtime, so every
//! task of the test records into it and tests do not see each other's
//! metrics. The names and label keys are snapshot-tested; the values are
//! checked against what the test did.

use std::collections::BTreeMap;
use std::future::Future;

use futures_util::StreamExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};
use sockets::__internal::crypto::FrameKind;
use sockets::observe::names;
use sockets::testing::Harness;
use sockets::{AuthDecision, Context, Error, Refusal, Server};
use tests::raw::Raw;
use tests::{next_disconnect, server, within};

/// The service under test.
#[sockets::service]
pub trait Shop {
    /// Anyone signed in.
    async fn price(&self, item: String) -> u64;
    /// Staff only.
    #[sockets(guard = staff_only)]
    async fn restock(&self, item: String) -> bool;
    /// The first `n` prices of an item, then the stream stays open.
    async fn ticks(&self, n: u64) -> sockets::Stream<u64>;
    /// How many items the caller sent.
    async fn tally(&self, items: sockets::Stream<u64>) -> u64;
    /// The items the caller sends, back.
    async fn echo(&self, items: sockets::Stream<u64>) -> sockets::Stream<u64>;
}

/// The auth hook stores the user's name; staff's start with `staff:`.
pub fn staff_only(cx: &Context, _method: &str) -> Result<(), Refusal> {
    match cx.meta::<String>() {
        Some(user) if user.starts_with("staff:") => Ok(()),
        _ => Err(Refusal::forbidden("staff only")),
    }
}

struct Store;

impl Shop for Store {
    async fn price(&self, item: String) -> u64 {
        item.len() as u64
    }

    async fn restock(&self, _item: String) -> bool {
        true
    }

    async fn ticks(&self, n: u64) -> sockets::Stream<u64> {
        let items = futures_util::stream::iter(0..n).chain(futures_util::stream::pending());
        sockets::Stream::new(items)
    }

    async fn tally(&self, items: sockets::Stream<u64>) -> u64 {
        items.count().await as u64
    }

    async fn echo(&self, items: sockets::Stream<u64>) -> sockets::Stream<u64> {
        sockets::Stream::new(items.map(|item| item.unwrap_or(u64::MAX)))
    }
}

/// Runs `test` on a current-thread runtime with `recorder` as the thread's recorder.
fn run<F: Future>(recorder: &DebuggingRecorder, test: F) -> F::Output {
    metrics::with_local_recorder(recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(test)
    })
}

/// A metric: its name and its labels, `key=value` sorted.
type Series = (String, Vec<String>);

/// What the recorder saw so far. A snapshot resets counters and gauges to
/// zero, so the values of successive snapshots are added up (the runtime's
/// gauges only go up and down by steps).
#[derive(Default)]
struct Tally {
    kinds: BTreeMap<Series, MetricKind>,
    sums: BTreeMap<Series, f64>,
    samples: BTreeMap<Series, Vec<f64>>,
}

impl Tally {
    fn take(&mut self, snapshotter: &Snapshotter) {
        for (key, _unit, _description, value) in snapshotter.snapshot().into_vec() {
            let series = series(&key);
            self.kinds.insert(series.clone(), key.kind());
            match value {
                DebugValue::Counter(n) => *self.sums.entry(series).or_default() += n as f64,
                DebugValue::Gauge(x) => *self.sums.entry(series).or_default() += x.into_inner(),
                DebugValue::Histogram(xs) => self
                    .samples
                    .entry(series)
                    .or_default()
                    .extend(xs.into_iter().map(|x| x.into_inner())),
            }
        }
    }

    /// The value of a counter or gauge, 0 if never seen.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.sums
            .get(&(name.to_owned(), sorted(labels)))
            .copied()
            .unwrap_or(0.0)
    }

    /// The samples of a histogram.
    fn samples(&self, name: &str, labels: &[(&str, &str)]) -> &[f64] {
        self.samples
            .get(&(name.to_owned(), sorted(labels)))
            .map_or(&[], Vec::as_slice)
    }

    /// Every metric's kind, name and label keys, sorted and deduplicated.
    fn shape(&self) -> Vec<String> {
        let mut shape: Vec<String> = self
            .kinds
            .iter()
            .map(|((name, labels), kind)| {
                let keys: Vec<&str> = labels
                    .iter()
                    .map(|label| label.split('=').next().unwrap_or_default())
                    .collect();
                format!("{kind:?} {name}{{{}}}", keys.join(","))
            })
            .collect();
        shape.sort();
        shape.dedup();
        shape
    }
}

fn series(key: &CompositeKey) -> Series {
    let labels: Vec<(&str, &str)> = key.key().labels().map(|l| (l.key(), l.value())).collect();
    (key.key().name().to_owned(), sorted(&labels))
}

fn sorted(labels: &[(&str, &str)]) -> Vec<String> {
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    labels
}

fn shop() -> Harness {
    Harness::new(
        Server::builder()
            .serve(ShopServer::new(Store))
            .auth(|user: String, _peer| async move { AuthDecision::accept(user) }),
    )
    .expect("the harness starts")
}

#[test]
fn calls_connections_and_bytes_are_counted_under_stable_names() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let mut tally = Tally::default();
    run(&recorder, async {
        let harness = shop();
        let mut events = harness.server().events();
        let client = within(harness.client().credentials("ada").connect())
            .await
            .expect("connects");
        tally.take(&snapshotter);
        assert_eq!(
            tally.value(names::CONNECTIONS_OPEN, &[]),
            2.0,
            "both ends of the connection are open"
        );

        let shop = ShopClient::new(client.peer());
        assert_eq!(within(shop.price("apple")).await.expect("ok"), 5);
        let refused = within(shop.restock("apple")).await;
        assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
        tally.take(&snapshotter);
        for direction in ["in", "out"] {
            let calls = |method, outcome| {
                let labels = [
                    ("method", method),
                    ("direction", direction),
                    ("outcome", outcome),
                ];
                tally.value(names::CALLS_TOTAL, &labels)
            };
            assert_eq!(calls("shop.price", "ok"), 1.0, "{direction}");
            assert_eq!(calls("shop.restock", "forbidden"), 1.0, "{direction}");
            assert_eq!(calls("shop.restock", "ok"), 0.0, "{direction}");
            let in_flight = tally.value(names::CALLS_IN_FLIGHT, &[("direction", direction)]);
            assert_eq!(in_flight, 0.0, "every call ended ({direction})");
            let labels = [("method", "shop.price"), ("direction", direction)];
            let durations = tally.samples(names::CALL_DURATION_SECONDS, &labels);
            assert_eq!(durations.len(), 1, "{direction}");
            assert!(durations[0] >= 0.0 && durations[0] < 10.0, "{durations:?}");
            let bytes = tally.value(names::BYTES_TOTAL, &[("direction", direction)]);
            assert!(bytes > 0.0, "bytes {direction}: {bytes}");
        }
        assert_eq!(
            tally.value(names::HANDSHAKES_TOTAL, &[("outcome", "ok")]),
            1.0
        );
        assert_eq!(
            tally.value(names::AUTH_TOTAL, &[("outcome", "authenticated")]),
            1.0
        );
        for side in ["server", "client"] {
            let total = tally.value(names::CONNECTIONS_TOTAL, &[("side", side)]);
            assert_eq!(total, 1.0, "{side}");
        }

        client.close().await;
        next_disconnect(&mut events).await;
        tally.take(&snapshotter);
        assert_eq!(
            tally.value(names::CONNECTIONS_OPEN, &[]),
            0.0,
            "both ends closed"
        );
    });

    assert_eq!(
        tally.shape(),
        [
            "Counter sockets_auth_total{outcome}",
            "Counter sockets_bytes_total{direction}",
            "Counter sockets_calls_total{direction,method,outcome}",
            "Counter sockets_connections_total{side}",
            "Counter sockets_handshakes_total{outcome}",
            "Gauge sockets_calls_in_flight{direction}",
            "Gauge sockets_connections_open{}",
            "Gauge sockets_streams_open{direction}",
            "Histogram sockets_call_duration_seconds{direction,method}",
            "Histogram sockets_heartbeat_rtt_seconds{}",
        ],
        "the metric names and label keys are part of the API (README \"Observability\")"
    );
}

#[test]
fn a_call_to_a_method_nobody_serves_is_counted_as_unknown() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let mut tally = Tally::default();
    run(&recorder, async {
        let harness = shop();
        let client = within(harness.client().credentials("ada").connect())
            .await
            .expect("connects");
        let options = sockets::CallOptions::default();
        let peer = client.peer();
        let outcome = within(peer.call::<_, u64>("made.up-by-the-peer", &(), options)).await;
        assert!(
            matches!(outcome, Err(Error::UnknownMethod(_))),
            "{outcome:?}"
        );
        tally.take(&snapshotter);
        let served = [
            ("method", "unknown"),
            ("direction", "in"),
            ("outcome", "unknown_method"),
        ];
        assert_eq!(tally.value(names::CALLS_TOTAL, &served), 1.0);
        let made = [
            ("method", "made.up-by-the-peer"),
            ("direction", "out"),
            ("outcome", "unknown_method"),
        ];
        assert_eq!(
            tally.value(names::CALLS_TOTAL, &made),
            1.0,
            "the caller names its own calls"
        );
        client.close().await;
    });
}

#[test]
fn failed_handshakes_and_rejected_frames_are_counted_by_cause() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let mut tally = Tally::default();
    run(&recorder, async {
        let server = server()
            .auth(|user: String, _peer| async move {
                if user == "mallory" {
                    AuthDecision::reject("banned")
                } else {
                    AuthDecision::accept(user)
                }
            })
            .start()
            .await
            .expect("the server starts");
        let mut events = server.events();

        let wrong = tests::client(server.local_addr())
            .secret(tests::wrong_secret())
            .connect();
        assert!(matches!(within(wrong).await, Err(Error::HandshakeFailed)));
        next_disconnect(&mut events).await;

        let banned = tests::client(server.local_addr())
            .credentials("mallory")
            .connect();
        assert!(matches!(within(banned).await, Err(Error::AuthRejected(_))));
        next_disconnect(&mut events).await;

        // An authenticated raw peer sends a DATA frame that is no envelope.
        let (mut raw, _) = Raw::connect(server.local_addr(), &"eve").await;
        raw.send(FrameKind::Data, &[0xc1]).await;
        next_disconnect(&mut events).await;

        tally.take(&snapshotter);
        let handshakes = |outcome| tally.value(names::HANDSHAKES_TOTAL, &[("outcome", outcome)]);
        assert_eq!(handshakes("bad_secret"), 1.0);
        assert_eq!(handshakes("ok"), 2.0, "mallory's and eve's");
        let auth = |outcome| tally.value(names::AUTH_TOTAL, &[("outcome", outcome)]);
        assert_eq!(auth("rejected"), 1.0);
        assert_eq!(auth("authenticated"), 1.0);
        let rejected = [("cause", "malformed_envelope")];
        assert_eq!(tally.value(names::FRAMES_REJECTED_TOTAL, &rejected), 1.0);
        server.shutdown(std::time::Duration::from_secs(1)).await;
    });
}

#[test]
fn open_streams_are_counted_each_way_until_stopped_or_disconnected() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let mut tally = Tally::default();
    run(&recorder, async {
        let harness = shop();
        let mut events = harness.server().events();
        let client = within(harness.client().credentials("ada").connect())
            .await
            .expect("connects");
        let shop = ShopClient::new(client.peer());
        let open = |tally: &Tally, direction| {
            tally.value(names::STREAMS_OPEN, &[("direction", direction)])
        };

        let mut ticks = within(shop.ticks(1)).await.expect("opens");
        assert_eq!(within(ticks.next()).await.map(Result::ok), Some(Some(0)));
        tally.take(&snapshotter);
        assert_eq!(open(&tally, "out"), 1.0, "the client opened one");
        assert_eq!(open(&tally, "in"), 1.0, "the server sends one");

        // Dropping it sends a STOP; the server handles it before the next
        // call on the connection, so the call's answer means it was counted.
        drop(ticks);
        assert_eq!(within(shop.price("pear")).await.expect("ok"), 4);
        tally.take(&snapshotter);
        assert_eq!(open(&tally, "out"), 0.0);
        assert_eq!(open(&tally, "in"), 0.0);

        let _held = within(shop.ticks(0)).await.expect("opens");
        assert_eq!(within(shop.price("fig")).await.expect("ok"), 3);
        tally.take(&snapshotter);
        assert_eq!(open(&tally, "out"), 1.0);
        assert_eq!(open(&tally, "in"), 1.0);
        client.close().await;
        next_disconnect(&mut events).await;
        tally.take(&snapshotter);
        assert_eq!(
            open(&tally, "out"),
            0.0,
            "a closed connection ends its streams"
        );
        assert_eq!(
            open(&tally, "in"),
            0.0,
            "a closed connection ends its streams"
        );
    });
}

/// A stream the caller sends counts once each way, whether the method
/// replies once or streams back (a two-way stream is one stream).
#[test]
fn streams_the_caller_sends_are_counted_once_each_way() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let mut tally = Tally::default();
    run(&recorder, async {
        let harness = shop();
        let client = within(harness.client().credentials("ada").connect())
            .await
            .expect("connects");
        let shop = ShopClient::new(client.peer());
        let open = |tally: &Tally, direction| {
            tally.value(names::STREAMS_OPEN, &[("direction", direction)])
        };
        // Sources that send one item, then wait.
        let source = || {
            let items = futures_util::stream::iter([1u64]).chain(futures_util::stream::pending());
            sockets::Stream::new(items)
        };

        let upload = tokio::spawn({
            let shop = shop.clone();
            async move { shop.tally(source()).await }
        });
        let mut echoed = within(shop.echo(source())).await.expect("opens");
        // The echo's first item came back, and the upload was sent before it.
        assert_eq!(within(echoed.next()).await.map(Result::ok), Some(Some(1)));
        assert_eq!(within(shop.price("fig")).await.expect("ok"), 3);
        tally.take(&snapshotter);
        assert_eq!(open(&tally, "out"), 2.0, "the client opened two");
        assert_eq!(open(&tally, "in"), 2.0, "the server receives two");

        drop(echoed);
        upload.abort();
        let _ = upload.await;
        assert_eq!(within(shop.price("pear")).await.expect("ok"), 4);
        tally.take(&snapshotter);
        assert_eq!(open(&tally, "out"), 0.0);
        assert_eq!(open(&tally, "in"), 0.0);
        client.close().await;
    });
}
