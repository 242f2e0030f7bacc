//! [`Topic<T>`]: a server-side fan-out to every subscriber.
//!
//! Publishing encodes the item once and hands the same bytes to every
//! subscriber's bounded buffer under that subscriber's own short lock: it
//! never waits for a subscriber, and a slow subscriber only fills its own
//! buffer. What happens when a buffer is full is the subscriber's
//! [`Overflow`] policy. Each subscription is a [`Stream`] a handler returns
//! as it is; its items are sent without being encoded again.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::Stream as FuturesStream;
use serde::Serialize;

use super::{Feed, RawItems, Stream};
use crate::error::Error;
use crate::protocol::codec;

/// What a subscriber's full buffer does with the next item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Drop the oldest buffered item, and tell the subscriber how many it
    /// missed with a [`Feed::Lagged`] item where they were.
    DropOldest,
    /// End the subscriber's stream with [`Error::Lagged`].
    End,
}

/// A fan-out of items of type `T` to every subscriber; cheap to clone
/// (clones publish to the same subscribers). Subscriptions end when the
/// last clone is dropped.
///
/// ```
/// use futures_util::StreamExt;
/// use sockets::{Feed, Topic};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let prices: Topic<u64> = Topic::with_capacity(2);
/// let mut relaxed = prices.subscribe();
/// let mut strict = prices.subscribe_until_lag();
/// for price in [10, 11, 12] {
///     prices.publish(&price).unwrap(); // never waits for a subscriber
/// }
/// drop(prices);
/// // The relaxed subscriber missed the oldest item and is told so.
/// assert_eq!(relaxed.next().await.unwrap().unwrap(), Feed::Lagged(1));
/// assert_eq!(relaxed.next().await.unwrap().unwrap(), Feed::Item(11));
/// // The strict one is ended.
/// assert!(matches!(strict.next().await, Some(Err(sockets::Error::Lagged(_)))));
/// # }
/// ```
pub struct Topic<T> {
    shared: Arc<Shared>,
    _item: PhantomData<fn(&T)>,
}

impl<T> Clone for Topic<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            _item: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Topic<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic")
            .field("capacity", &self.shared.capacity)
            .field("subscribers", &self.subscribers())
            .finish()
    }
}

struct Shared {
    subscribers: Mutex<Vec<Weak<Subscriber>>>,
    capacity: usize,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let subscribers: Vec<Weak<Subscriber>> = std::mem::take(lock(&self.subscribers).as_mut());
        for subscriber in subscribers.iter().filter_map(Weak::upgrade) {
            let waker = {
                let mut state = lock(&subscriber.state);
                state.closed = true;
                state.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

struct Subscriber {
    state: Mutex<State>,
    overflow: Overflow,
}

#[derive(Default)]
struct State {
    /// Encodings of `Feed::Item(item)`.
    items: VecDeque<Bytes>,
    /// Dropped since the last `Lagged` marker.
    missed: u64,
    /// Ended by [`Overflow::End`].
    lagged: bool,
    /// The topic is gone.
    closed: bool,
    waker: Option<Waker>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panic elsewhere cannot leave it half-written.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The bytes that start the encoding of `Feed::Item(x)`, before `x`'s.
fn item_prefix() -> &'static [u8] {
    static PREFIX: OnceLock<Vec<u8>> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let mut unit = codec::to_vec(&Feed::Item(())).unwrap_or_default();
        unit.pop(); // `()` is nil, one byte
        unit
    })
}

impl<T: Serialize + Send + 'static> Topic<T> {
    /// A topic whose subscribers buffer up to 1,024 items each.
    pub fn new() -> Self {
        Self::with_capacity(1024)
    }

    /// A topic whose subscribers buffer up to `capacity` items each (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                subscribers: Mutex::new(Vec::new()),
                capacity: capacity.max(1),
            }),
            _item: PhantomData,
        }
    }

    /// Sends `item` to every subscriber, encoded once; never waits. Returns
    /// the number of subscribers it reached.
    ///
    /// # Errors
    /// [`Error::Codec`] when the item does not encode (nobody gets it).
    pub fn publish(&self, item: &T) -> Result<usize, Error> {
        let mut encoded = Vec::with_capacity(64);
        codec::encode_value(&Feed::Item(item), &mut encoded)?;
        let encoded = Bytes::from(encoded);
        let capacity = self.shared.capacity;
        let mut reached = 0;
        let mut wake = Vec::new();
        lock(&self.shared.subscribers).retain(|weak| {
            let Some(subscriber) = weak.upgrade() else {
                return false;
            };
            let mut state = lock(&subscriber.state);
            if state.lagged {
                return false;
            }
            if state.items.len() >= capacity {
                match subscriber.overflow {
                    Overflow::DropOldest => {
                        state.items.pop_front();
                        state.missed += 1;
                    }
                    Overflow::End => {
                        state.lagged = true;
                        state.missed = state.items.len() as u64 + 1;
                        state.items.clear();
                        wake.extend(state.waker.take());
                        return false;
                    }
                }
            }
            state.items.push_back(encoded.clone());
            wake.extend(state.waker.take());
            reached += 1;
            true
        });
        for waker in wake {
            waker.wake();
        }
        Ok(reached)
    }

    /// A subscription that never ends because it is slow: when its buffer
    /// is full the oldest item is dropped, and a [`Feed::Lagged`] item says
    /// how many were missed, where they were.
    pub fn subscribe(&self) -> Stream<Feed<T>> {
        Stream::from_raw(Box::pin(self.add(Overflow::DropOldest, 0)))
    }

    /// A subscription that ends with [`Error::Lagged`] when its buffer is full.
    pub fn subscribe_until_lag(&self) -> Stream<T> {
        Stream::from_raw(Box::pin(self.add(Overflow::End, item_prefix().len())))
    }

    fn add(&self, overflow: Overflow, skip: usize) -> Subscription {
        let subscriber = Arc::new(Subscriber {
            state: Mutex::new(State::default()),
            overflow,
        });
        lock(&self.shared.subscribers).push(Arc::downgrade(&subscriber));
        Subscription { subscriber, skip }
    }
}

impl<T: Serialize + Send + 'static> Default for Topic<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Topic<T> {
    /// Subscribers now (dropped ones are counted until the next publish).
    pub fn subscribers(&self) -> usize {
        lock(&self.shared.subscribers).len()
    }

    /// Items waiting in subscribers' buffers, over all of them: the memory
    /// the topic holds is about this many items (shared bytes, each item
    /// stored once however many subscribers hold it).
    pub fn buffered(&self) -> usize {
        lock(&self.shared.subscribers)
            .iter()
            .filter_map(Weak::upgrade)
            .map(|subscriber| lock(&subscriber.state).items.len())
            .sum()
    }
}

/// One subscriber's end: yields its buffered items.
struct Subscription {
    subscriber: Arc<Subscriber>,
    /// Bytes to skip in each item: the `Feed::Item` prefix, for
    /// subscriptions whose items are plain `T`.
    skip: usize,
}

impl FuturesStream for Subscription {
    type Item = Result<Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut state = lock(&self.subscriber.state);
        if state.lagged {
            if state.missed == 0 {
                return Poll::Ready(None);
            }
            let missed = std::mem::take(&mut state.missed);
            return Poll::Ready(Some(Err(Error::Lagged(format!(
                "the subscriber fell behind and missed {missed} items"
            )))));
        }
        if state.missed > 0 {
            let missed = std::mem::take(&mut state.missed);
            let marker = codec::to_vec(&Feed::<()>::Lagged(missed)).unwrap_or_default();
            return Poll::Ready(Some(Ok(Bytes::from(marker))));
        }
        if let Some(item) = state.items.pop_front() {
            return Poll::Ready(Some(Ok(item.slice(self.skip.min(item.len())..))));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl RawItems for Subscription {
    fn backlog(&self) -> usize {
        lock(&self.subscriber.state).items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn an_item_encodes_as_the_prefix_then_the_value() {
        let value = ("tick", 42u64);
        let mut expected = item_prefix().to_vec();
        expected.extend(codec::to_vec(&value).unwrap());
        assert_eq!(codec::to_vec(&Feed::Item(value)).unwrap(), expected);
    }

    #[tokio::test]
    async fn a_slow_subscriber_never_holds_up_a_fast_one() {
        let topic: Topic<u32> = Topic::with_capacity(4);
        let mut fast = topic.subscribe();
        let slow = topic.subscribe();
        for i in 0..100 {
            topic.publish(&i).unwrap();
            assert_eq!(fast.next().await.unwrap().unwrap(), Feed::Item(i));
        }
        assert_eq!(slow.backlog(), 4, "bounded by its buffer");
        let items: Vec<_> = {
            drop(topic);
            slow.map(Result::unwrap).collect().await
        };
        assert_eq!(
            items,
            [
                Feed::Lagged(96),
                Feed::Item(96),
                Feed::Item(97),
                Feed::Item(98),
                Feed::Item(99)
            ]
        );
    }

    #[tokio::test]
    async fn an_ended_subscriber_is_removed_and_told_how_many_it_missed() {
        let topic: Topic<u32> = Topic::with_capacity(2);
        let mut strict = topic.subscribe_until_lag();
        topic.publish(&1).unwrap();
        assert_eq!(strict.next().await.unwrap().unwrap(), 1);
        for i in 0..3 {
            topic.publish(&i).unwrap();
        }
        assert_eq!(topic.subscribers(), 0);
        match strict.next().await {
            Some(Err(Error::Lagged(message))) => assert!(message.contains("missed 3"), "{message}"),
            other => panic!("expected Lagged, got {other:?}"),
        }
        assert!(strict.next().await.is_none());
    }
}
