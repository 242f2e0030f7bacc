//! Streams of items between the two sides of a connection: [`Stream<T>`],
//! what a method returns to stream to its caller, and [`Topic<T>`], a
//! fan-out to every subscriber of a topic.
//!
//! A method declared `async fn ticks(&self, every_ms: u64) -> sockets::Stream<Tick>`
//! returns any stream of ticks, made with [`Stream::new`] from a
//! `futures::Stream<Item = Tick>`, or with [`Stream::try_new`] from one whose
//! items are `Result<Tick, E>`: an `Err` item is sent, then the stream ends.
//! Its caller gets a `Stream<Tick>` too, which is a
//! `futures::Stream<Item = Result<Tick, sockets::Error>>`: it ends (`None`)
//! when the handler's stream ends, after an `Err` when the stream ended
//! abnormally (the connection was lost: [`Error::Disconnected`], unless
//! the stream re-opens itself, see
//! [`CallOptions::resubscribe`](crate::CallOptions::resubscribe); the
//! subscriber lagged: [`Error::Lagged`]; the handler panicked or an item did
//! not fit in a message: [`Error::Internal`]).
//!
//! A method may also take a `Stream<T>` as its last parameter: its caller
//! passes one (made the same way, or with [`Stream::iter`] from items at
//! hand, or [`Stream::channel`] to send them as they come), whose items are
//! sent as the handler
//! reads them; the handler gets a `Stream<T>` that yields them and ends
//! when the caller's stream ends (after an `Err` when it failed, or the
//! connection was lost). Such a method replies once (the reply stops the
//! items not sent yet), or returns a stream too: a two-way stream, which
//! ends when the handler's stream ends.
//!
//! Flow control is per stream half and credit-based (docs/PROTOCOL.md
//! §9.7): the receiver grants a window of items and bytes ([`Window`]), the
//! sender's stream is polled only while there is credit, so a slow reader
//! holds the sender's items in the sender's own stream, never in the
//! connection's queue, and other calls and streams on the connection go on.

mod topic;

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream as FuturesStream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::credit::Window;
use crate::error::Error;
use crate::protocol::codec;

pub use topic::{Overflow, Topic};

/// A stream of encoded items, each one MessagePack value: what travels.
/// An `Err` ends the stream.
///
/// The runtime implements it for the caller's end of a stream; a
/// [`Caller`](crate::service::Caller) that opens streams returns one.
pub trait RawItems: FuturesStream<Item = Result<Bytes, Error>> + Send {
    /// Items received and not yet taken by the application (0 when the
    /// items are made on demand).
    fn backlog(&self) -> usize {
        0
    }

    /// For the stream of items a handler receives from its caller: the
    /// handler takes it, so grant the sender its window now, `window` if
    /// given, else the default (otherwise it is granted at the first
    /// read). Nothing for other streams.
    fn open(self: Pin<&mut Self>, window: Option<Window>) {
        let _ = window;
    }

    /// Polls for the next item as `poll_next` does, for the sender's batch
    /// `out`: a stream that encodes its items as it makes them writes them
    /// straight into `out` ([`Encoded::Appended`]); the default passes on
    /// what `poll_next` yields, already encoded, as it is ([`Encoded::Own`]).
    /// On `Err` or `None`, `out` is unchanged.
    fn poll_encode(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Poll<Option<Result<Encoded, Error>>> {
        let _ = out;
        self.poll_next(cx)
            .map(|item| item.map(|item| item.map(Encoded::Own)))
    }
}

/// An item [`RawItems::poll_encode`] polled.
#[derive(Debug)]
#[non_exhaustive]
pub enum Encoded {
    /// Encoded at the end of the batch: this many bytes.
    Appended(usize),
    /// Already encoded in a buffer of its own (a [`Topic`]'s item, shared by
    /// its subscribers; an item received and passed on), not copied.
    Own(Bytes),
}

/// A boxed [`RawItems`].
pub type RawStream = Pin<Box<dyn RawItems>>;

/// A stream made on demand has nothing buffered.
struct Local<S>(S);

impl<S: FuturesStream<Item = Result<Bytes, Error>> + Send + Unpin> FuturesStream for Local<S> {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_next_unpin(cx)
    }
}

impl<S: FuturesStream<Item = Result<Bytes, Error>> + Send + Unpin> RawItems for Local<S> {}

type Typed<T> = Pin<Box<dyn FuturesStream<Item = Result<T, Error>> + Send>>;

/// A handler's stream of values, encoded as they are sent: each straight
/// into the sender's batch ([`RawItems::poll_encode`]), not into a buffer
/// of its own.
struct Encode<T>(Typed<T>);

impl<T: Serialize> Encode<T> {
    fn poll_value<R>(
        &mut self,
        cx: &mut Context<'_>,
        encode: impl FnOnce(&T) -> Result<R, Error>,
    ) -> Poll<Option<Result<R, Error>>> {
        self.0
            .poll_next_unpin(cx)
            .map(|item| item.map(|item| item.and_then(|value| encode(&value))))
    }
}

impl<T: Serialize> FuturesStream for Encode<T> {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_value(cx, |value| Ok(Bytes::from(codec::to_vec(value)?)))
    }
}

impl<T: Serialize + Send> RawItems for Encode<T> {
    fn poll_encode(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Poll<Option<Result<Encoded, Error>>> {
        let start = out.len();
        self.poll_value(cx, |value| match codec::encode_value(value, out) {
            Ok(()) => Ok(Encoded::Appended(out.len() - start)),
            Err(error) => {
                out.truncate(start);
                Err(error.into())
            }
        })
    }
}

enum Inner<T> {
    /// Items as values: what a handler made.
    Typed(Typed<T>),
    /// Items already encoded: from the peer, or from a [`Topic`].
    Encoded(RawStream),
}

/// A typed stream of items: what a streaming method returns, and what its
/// caller receives (see the [module docs](self)).
///
/// As a `futures::Stream` it yields `Result<T, Error>`: `Ok` items, then
/// `None` when the sender finished, or one `Err` and then `None` when the
/// stream ended abnormally.
///
/// # Cancel safety
/// Dropping a stream received from a peer stops it: the peer is told, and
/// drops the stream its handler returned within one round trip.
pub struct Stream<T> {
    inner: Inner<T>,
    done: bool,
    /// Opened with `CallOptions::resubscribe`: `T` must hold the gap
    /// marker, checked at the first poll (where `T` is known to decode).
    check_gap: bool,
    _item: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Stream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner {
            Inner::Typed(_) => "local",
            Inner::Encoded(_) => "encoded",
        };
        f.debug_struct("Stream")
            .field("kind", &kind)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Stream<T> {
    /// A stream of the items of `items`.
    ///
    /// ```
    /// let ticks = sockets::Stream::new(futures_util::stream::iter([1u64, 2, 3]));
    /// # drop(ticks);
    /// ```
    pub fn new(items: impl FuturesStream<Item = T> + Send + 'static) -> Self {
        Self::typed(Box::pin(items.map(Ok)))
    }

    /// A stream of the items of `items`, an iterator: what a caller sends
    /// when it has them all at hand.
    ///
    /// ```
    /// let numbers = sockets::Stream::iter([1u64, 2, 3]);
    /// # drop(numbers);
    /// ```
    pub fn iter<I>(items: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Self::new(futures_util::stream::iter(items))
    }

    /// A stream fed through a channel of `capacity` items: send items with
    /// the returned sender as they come (waiting while the channel is
    /// full); the stream ends when every sender is dropped. What a caller
    /// of a two-way stream uses to send its next item after reading an
    /// answer, or a handler to stream what another task produces.
    ///
    /// ```
    /// # async fn run() {
    /// let (lines, stream) = sockets::Stream::<String>::channel(16);
    /// lines.send("hello".to_owned()).await.expect("the stream is still there");
    /// drop(lines); // the stream ends after "hello"
    /// # drop(stream);
    /// # }
    /// ```
    ///
    /// # Panics
    /// When `capacity` is 0 (as `tokio::sync::mpsc::channel`).
    pub fn channel(capacity: usize) -> (tokio::sync::mpsc::Sender<T>, Self) {
        let (sender, receiver) = tokio::sync::mpsc::channel(capacity);
        let items = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        (sender, Self::new(items))
    }

    /// A stream that ends at once.
    pub fn empty() -> Self {
        Self::typed(Box::pin(futures_util::stream::empty()))
    }

    /// A stream that ends with `error` without any item.
    pub fn error(error: Error) -> Self {
        Self::typed(Box::pin(futures_util::stream::iter([Err(error)])))
    }

    fn typed(items: Typed<T>) -> Self {
        Self {
            inner: Inner::Typed(items),
            done: false,
            check_gap: false,
            _item: PhantomData,
        }
    }

    /// A stream of already-encoded items: for [`Caller`](crate::service::Caller)
    /// implementations and [`Topic`]. Each item must be one MessagePack
    /// encoding of a `T`.
    pub fn from_raw(raw: RawStream) -> Self {
        Self {
            inner: Inner::Encoded(raw),
            done: false,
            check_gap: false,
            _item: PhantomData,
        }
    }

    /// This stream, which ends at once with [`Error::Config`] if `check`
    /// and its items cannot hold a [`Feed::Gap`] (not a [`Feed`]): what a
    /// stream opened with `CallOptions::resubscribe` is.
    pub(crate) fn checking_gap(mut self, check: bool) -> Self {
        self.check_gap = check;
        self
    }

    /// This stream, granting its sender `window` (else the default) now,
    /// if it is the stream of items a handler receives: see [`RawItems::open`].
    pub(crate) fn opened(mut self, window: Option<Window>) -> Self {
        if let Inner::Encoded(raw) = &mut self.inner {
            raw.as_mut().open(window);
        }
        self
    }

    /// Items received from the peer and not yet taken; at most the stream's
    /// window. Always 0 for a stream made on this side.
    pub fn backlog(&self) -> usize {
        match &self.inner {
            Inner::Typed(_) => 0,
            Inner::Encoded(raw) => raw.backlog(),
        }
    }
}

impl<U: Send + 'static, E: Send + 'static> Stream<Result<U, E>> {
    /// A stream of the items of a fallible stream: `Ok` and `Err` items both
    /// reach the caller as items (the method's item type is `Result<U, E>`),
    /// and the stream ends after the first `Err`.
    pub fn try_new(items: impl FuturesStream<Item = Result<U, E>> + Send + 'static) -> Self {
        let items = items.scan(false, |failed, item| {
            let next = if *failed {
                None
            } else {
                *failed = item.is_err();
                Some(Ok(item))
            };
            std::future::ready(next)
        });
        Self::typed(Box::pin(items))
    }
}

impl<T: DeserializeOwned> FuturesStream for Stream<T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.check_gap {
            self.check_gap = false;
            if codec::decode_value::<T>(GAP).is_err() {
                // Dropped now: stopped on the peer.
                self.inner = Inner::Encoded(Box::pin(Local(futures_util::stream::empty())));
                self.done = true;
                return Poll::Ready(Some(Err(Error::Config(format!(
                    "resubscribe needs a stream of `sockets::Feed<T>` items, to mark gaps, not of `{}`",
                    std::any::type_name::<T>()
                )))));
            }
        }
        let next = match &mut self.inner {
            Inner::Typed(items) => items.poll_next_unpin(cx),
            Inner::Encoded(raw) => raw.poll_next_unpin(cx).map(|next| {
                next.map(|item| {
                    item.and_then(|bytes| {
                        codec::decode_value(&bytes).map_err(|e| {
                            Error::Protocol(format!("a stream item did not decode: {e}"))
                        })
                    })
                })
            }),
        };
        match next {
            Poll::Ready(Some(Err(error))) => {
                self.done = true;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

impl<T: Serialize + Send + 'static> Stream<T> {
    /// The items encoded, for the runtime to send; an `Err` ends the stream.
    pub(crate) fn into_raw(self) -> RawStream {
        match self.inner {
            Inner::Encoded(raw) => raw,
            Inner::Typed(items) => Box::pin(Encode(items)),
        }
    }
}

/// The encoding of [`Feed::Gap`] a resubscribing stream yields: the
/// one-entry map `{"Gap": nil}`, which decodes as `Feed::Gap` (as does the
/// plain string `"Gap"`, how a `Feed::Gap` encodes) but, unlike the string,
/// not as a `String` item of another stream.
pub(crate) const GAP: &[u8] = &[0x81, 0xa3, b'G', b'a', b'p', 0xc0];

/// An item of a [`Topic`] subscription made with [`Topic::subscribe`]: an
/// item, or the number of items this subscriber missed at this point
/// because it fell behind (its buffer was full and the oldest were dropped).
///
/// A stream opened with [`CallOptions::resubscribe`](crate::CallOptions::resubscribe)
/// yields [`Feed::Gap`] where a reconnect interrupted it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Feed<T> {
    /// The next item.
    Item(T),
    /// This many items were dropped here because the subscriber was too slow.
    Lagged(u64),
    /// The connection was lost here and the stream re-opened on a new one:
    /// items published meanwhile were missed, how many is unknown.
    Gap,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_encode(raw: &mut RawStream, out: &mut Vec<u8>) -> Option<Result<Encoded, Error>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match raw.as_mut().poll_encode(&mut cx, out) {
            Poll::Ready(item) => item,
            Poll::Pending => panic!("the stream is ready"),
        }
    }

    #[test]
    fn a_handlers_values_are_encoded_straight_into_the_batch() {
        let values = vec![
            Ok("a".to_owned()),
            Ok("bc".into()),
            Err(Error::Lagged("x".into())),
        ];
        let mut raw =
            Stream::<String>::typed(Box::pin(futures_util::stream::iter(values))).into_raw();
        let mut out = b"head".to_vec();
        for value in ["a", "bc"] {
            let before = out.len();
            let Some(Ok(Encoded::Appended(len))) = poll_encode(&mut raw, &mut out) else {
                panic!("an item, appended");
            };
            assert_eq!(out[before..], codec::to_vec(value).unwrap()[..]);
            assert_eq!(len, out.len() - before);
        }
        let length = out.len();
        assert!(matches!(
            poll_encode(&mut raw, &mut out),
            Some(Err(Error::Lagged(_)))
        ));
        assert!(poll_encode(&mut raw, &mut out).is_none());
        assert_eq!(
            out.len(),
            length,
            "nothing appended for an error or the end"
        );
    }

    #[test]
    fn items_already_encoded_are_passed_on_as_they_are() {
        let item = Bytes::from_static(&[0xa1, b'x']);
        let mut raw: RawStream = Box::pin(Local(futures_util::stream::iter([Ok(item.clone())])));
        let mut out = Vec::new();
        let Some(Ok(Encoded::Own(own))) = poll_encode(&mut raw, &mut out) else {
            panic!("the item, as it was");
        };
        assert_eq!(own.as_ptr(), item.as_ptr(), "not copied");
        assert!(out.is_empty());
        assert!(poll_encode(&mut raw, &mut out).is_none());
    }

    #[tokio::test]
    async fn a_channel_stream_yields_what_was_sent_and_ends_with_the_senders() {
        let (sender, stream) = Stream::<u8>::channel(2);
        let second = sender.clone();
        sender.send(1).await.unwrap();
        second.send(2).await.unwrap();
        drop((sender, second));
        let items: Vec<_> = stream.collect().await;
        assert!(matches!(items[..], [Ok(1), Ok(2)]), "{items:?}");
        let items: Vec<_> = Stream::iter(vec![3u8, 4]).collect().await;
        assert!(matches!(items[..], [Ok(3), Ok(4)]));
    }

    #[tokio::test]
    async fn try_new_ends_after_the_first_error() {
        let items = futures_util::stream::iter([Ok(1u8), Err("bad".to_owned()), Ok(2)]);
        let stream: Stream<Result<u8, String>> = Stream::try_new(items);
        let raw: Vec<_> = stream.collect().await;
        assert_eq!(raw.len(), 2);
        assert!(matches!(&raw[1], Ok(Err(bad)) if bad == "bad"));
    }

    #[tokio::test]
    async fn an_encoded_stream_decodes_and_ends_after_an_error() {
        let raw: RawStream = Box::pin(Local(futures_util::stream::iter([
            Ok(Bytes::from_static(&[0x01])),
            Err(Error::Lagged("missed 2 items".into())),
            Ok(Bytes::from_static(&[0x02])),
        ])));
        let items: Vec<_> = Stream::<u8>::from_raw(raw).collect().await;
        assert!(matches!(items[..], [Ok(1), Err(Error::Lagged(_))]));
    }

    #[tokio::test]
    async fn a_resubscribing_stream_of_items_that_cannot_mark_a_gap_ends_at_once() {
        let raw = || -> RawStream {
            Box::pin(Local(futures_util::stream::iter([
                Ok(Bytes::from_static(GAP)),
                Ok(Bytes::from(codec::to_vec(&Feed::Item(5u64)).unwrap())),
            ])))
        };
        let feeds: Vec<_> = Stream::<Feed<u64>>::from_raw(raw())
            .checking_gap(true)
            .collect()
            .await;
        assert!(matches!(feeds[..], [Ok(Feed::Gap), Ok(Feed::Item(5))]));
        let plain: Vec<_> = Stream::<u64>::from_raw(raw())
            .checking_gap(true)
            .collect()
            .await;
        assert!(matches!(plain[..], [Err(Error::Config(_))]), "{plain:?}");
    }

    #[test]
    fn the_gap_marker_decodes_as_a_feed_gap_only() {
        assert_eq!(codec::decode_value::<Feed<u64>>(GAP).unwrap(), Feed::Gap);
        assert_eq!(
            codec::decode_value::<Feed<String>>(&codec::to_vec(&Feed::<String>::Gap).unwrap())
                .unwrap(),
            Feed::Gap
        );
        assert!(codec::decode_value::<String>(GAP).is_err());
        assert!(codec::decode_value::<u64>(GAP).is_err());
        assert!(codec::decode_value::<Result<u64, String>>(GAP).is_err());
    }
}
