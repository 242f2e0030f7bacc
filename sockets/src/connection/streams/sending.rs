//! The stream halves a connection sends, polled by the connection's task.
//!
//! No half runs in a task of its own: the connection's task polls a half's
//! source (the handler's future, then the stream it returned) when the
//! source woke it or the peer granted it credit, and encodes each item
//! straight into the batch it is about to seal. So an item crosses no
//! queue and no task on its way to the socket, and a thousand idle
//! streams cost their state and nothing else: each half has a waker of
//! its own that puts it on the connection's ready list, as
//! `FuturesUnordered` does for its futures.
//!
//! A half is polled only while it has credit and the batch has room; what
//! it has not made yet waits in its source. Its source is never polled
//! under a lock, so it may do anything a task may (open streams, make
//! calls, drop other streams), and one that stays ready is polled again
//! only after the halves that woke before it, so it cannot starve them.
//! Sources run on the connection's task: like a handler's future that
//! finishes on its first poll, a source must not block.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use metrics::Gauge;

use super::lock;
use crate::connection::Closing;
use crate::credit::{self, CreditError};
use crate::error::Error;
use crate::protocol::{ErrorCode, Half, Message, Reason, RemoteError};
use crate::service::StreamHandlerFuture;
use crate::stream::{Encoded, RawStream};

/// Where the connection's task puts what the halves it polls send: the
/// batch it is about to seal.
pub(in crate::connection) trait Outbox {
    /// Whether the batch takes more items now.
    fn has_room(&self) -> bool;

    /// Appends an item envelope for half `half` of stream `id`.
    ///
    /// # Errors
    /// The connection must end (its frame could not be sealed).
    fn item(&mut self, id: u64, half: Half, item: &[u8]) -> Result<(), Closing>;

    /// As [`Outbox::item`], for an item in a buffer of its own: a large one
    /// is sealed from there, not copied.
    ///
    /// # Errors
    /// As [`Outbox::item`].
    fn own_item(&mut self, id: u64, half: Half, item: Bytes) -> Result<(), Closing>;

    /// Sends `end`, the END of a half, after what is queued for the
    /// connection now (a STOP that dropping the half's source just queued).
    fn end(&mut self, end: Message);
}

/// What the connection's task keeps between polls of the halves: no
/// allocation per poll.
#[derive(Default)]
pub(in crate::connection) struct Scratch {
    /// The halves being polled, taken from the ready list.
    keys: VecDeque<Key>,
    /// Where a source encodes an item.
    item: Vec<u8>,
}

/// A half we send: its stream id and which half it is.
type Key = (u64, Half);

/// The stream halves we send.
pub(in crate::connection) struct Sending {
    halves: Mutex<Halves>,
    ready: Arc<Ready>,
    max_streams: usize,
    max_item: usize,
    /// The streams we receive (half 1 is one of ours) and those we send
    /// (half 0 is one of the peer's).
    open_out: Gauge,
    open_in: Gauge,
}

#[derive(Default)]
struct Halves {
    /// Half 0 of the streams the peer opened, by its id.
    down: HashMap<u64, Outgoing>,
    /// Half 1 of the streams we opened, by our id.
    up: HashMap<u64, Outgoing>,
    /// The connection is closing: no half starts any more.
    closed: bool,
}

impl Halves {
    fn half(&mut self, half: Half) -> &mut HashMap<u64, Outgoing> {
        match half {
            Half::Down => &mut self.down,
            Half::Up => &mut self.up,
        }
    }
}

/// One stream half we send.
struct Outgoing {
    /// What makes its items; `None` while the connection's task polls it.
    source: Option<Source>,
    /// The credit the peer granted it. Only the connection's task grants
    /// and spends it, so it is taken out with the source while polled.
    credit: credit::Sender,
    /// Puts the half on the ready list; `waker` wakes through it.
    wake: Arc<HalfWaker>,
    waker: Waker,
    /// Counts as a stream of its own in the gauges (half 1 of a two-way
    /// stream does not: its half 0 does).
    counted: bool,
}

/// What makes a half's items.
enum Source {
    /// Half 0: the handler, until it returns its stream.
    Handler(StreamHandlerFuture),
    /// The stream of items.
    Items(RawStream),
}

/// The halves the connection's task must poll, in the order they woke.
#[derive(Default)]
struct Ready {
    keys: Mutex<VecDeque<Key>>,
    /// The connection's task.
    task: AtomicWaker,
}

/// A half's waker: a wake puts the half on the ready list once, until the
/// connection's task takes it from there to poll it.
struct HalfWaker {
    key: Key,
    queued: AtomicBool,
    ready: Arc<Ready>,
}

impl Wake for HalfWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::SeqCst) {
            lock(&self.ready.keys).push_back(self.key);
            self.ready.task.wake();
        }
    }
}

/// How far a poll of a half went.
enum Polled {
    /// Its source or its credit is exhausted for now: it is polled again
    /// when the source wakes it or credit comes.
    Parked,
    /// The batch is full: it is polled again after the halves waiting.
    Full,
    /// It ended: with this error, or none when it finished.
    Ended(Option<RemoteError>),
}

impl Sending {
    pub(super) fn new(
        max_streams: usize,
        max_item: usize,
        open_out: Gauge,
        open_in: Gauge,
    ) -> Self {
        Self {
            halves: Mutex::new(Halves::default()),
            ready: Arc::new(Ready::default()),
            max_streams,
            max_item,
            open_out,
            open_in,
        }
    }

    /// The gauge of the streams that `half` belongs to when we send it:
    /// half 0 of the peer's (in), half 1 of ours (out).
    fn gauge(&self, half: Half) -> &Gauge {
        match half {
            Half::Down => &self.open_in,
            Half::Up => &self.open_out,
        }
    }

    /// The connection's task is polled with `waker`: halves that wake wake it.
    pub(in crate::connection) fn register(&self, waker: &Waker) {
        self.ready.task.register(waker);
    }

    /// Starts sending half 0 of the stream the peer opened with call `id`;
    /// its handler is polled at the connection's task's next round. The
    /// reason to refuse it instead, when too many are open or the id is taken.
    pub(super) fn start(&self, id: u64, handler: StreamHandlerFuture) -> Result<(), &'static str> {
        let mut halves = lock(&self.halves);
        if halves.down.contains_key(&id) {
            return Err("duplicate stream id");
        }
        if halves.down.len() >= self.max_streams {
            return Err("too many streams open");
        }
        if halves.closed {
            return Err("the connection is closing");
        }
        let waker = self.insert(
            &mut halves,
            (id, Half::Down),
            Source::Handler(handler),
            true,
        );
        drop(halves);
        waker.wake();
        Ok(())
    }

    /// Starts sending `items` as half 1 of the stream we open with call
    /// `id`, once the callee grants credit. `counted` when the method
    /// replies once (half 1 is then the whole stream). Call it before the
    /// call is sent, so the callee's first credit finds it.
    pub(in crate::connection) fn start_upload(&self, id: u64, items: RawStream, counted: bool) {
        let mut halves = lock(&self.halves);
        if halves.closed {
            // The call fails with the connection; the items are dropped
            // here, outside the lock.
            drop(halves);
            drop(items);
            return;
        }
        // No credit yet: nothing to poll until the callee grants some.
        self.insert(&mut halves, (id, Half::Up), Source::Items(items), counted);
    }

    /// Registers a half; its waker.
    fn insert(&self, halves: &mut Halves, key: Key, source: Source, counted: bool) -> Waker {
        let wake = Arc::new(HalfWaker {
            key,
            queued: AtomicBool::new(false),
            ready: Arc::clone(&self.ready),
        });
        let waker = Waker::from(Arc::clone(&wake));
        let half = Outgoing {
            source: Some(source),
            credit: credit::Sender::default(),
            wake,
            waker: waker.clone(),
            counted,
        };
        // Never taken: `start` refuses a taken id, and our ids are unique.
        let replaced = halves.half(key.1).insert(key.0, half);
        if replaced.is_none() && counted {
            self.gauge(key.1).increment(1.0);
        }
        waker
    }

    /// The peer granted credit to half `half` of stream `id` (ignored when
    /// it has ended). A half that had none is polled again.
    ///
    /// # Errors
    /// The close reason for an empty or overflowing grant.
    pub(super) fn credit(&self, id: u64, half: Half, items: u32, bytes: u32) -> Result<(), Reason> {
        let mut halves = lock(&self.halves);
        let Some(outgoing) = halves.half(half).get_mut(&id) else {
            // A credit may cross the stream's end; still, an empty one is never valid.
            return if items == 0 && bytes == 0 {
                Err(Reason::StreamCredit)
            } else {
                Ok(())
            };
        };
        let parked = !outgoing.credit.can_send();
        match outgoing.credit.grant(items, bytes) {
            Ok(()) => {
                if parked {
                    outgoing.wake.wake_by_ref();
                }
                Ok(())
            }
            Err(CreditError::BadGrant | CreditError::PastCredit) => Err(Reason::StreamCredit),
        }
    }

    /// Stops sending half `half` of stream `id`, if we do: its source is
    /// dropped (here, or by the connection's task if it is polling it) and
    /// no END follows.
    pub(super) fn stop(&self, id: u64, half: Half) {
        let removed = lock(&self.halves).half(half).remove(&id);
        if let Some(removed) = removed {
            if removed.counted {
                self.gauge(half).decrement(1.0);
            }
            // Dropped outside the lock: a source may stop streams as it goes.
            drop(removed);
        }
    }

    /// Drops every half; none starts after.
    pub(super) fn close(&self) {
        let removed: Vec<_> = {
            let mut halves = lock(&self.halves);
            halves.closed = true;
            let down: Vec<_> = halves.down.drain().map(|(_, o)| (Half::Down, o)).collect();
            let up = halves.up.drain().map(|(_, o)| (Half::Up, o));
            down.into_iter().chain(up).collect()
        };
        for (half, outgoing) in removed {
            if outgoing.counted {
                self.gauge(half).decrement(1.0);
            }
        }
    }

    /// Polls the halves that woke or were granted credit, in that order,
    /// putting their items and ENDs in `out` while it has room; whether any
    /// was polled. On the connection's task only.
    ///
    /// # Errors
    /// The connection must end: `out` failed.
    pub(in crate::connection) fn poll(
        &self,
        out: &mut impl Outbox,
        scratch: &mut Scratch,
    ) -> Result<bool, Closing> {
        std::mem::swap(&mut scratch.keys, &mut *lock(&self.ready.keys));
        let polled = !scratch.keys.is_empty();
        while let Some(key) = scratch.keys.front().copied() {
            if !out.has_room() {
                // The rest wait for the next batch, before those that woke since.
                let mut ready = lock(&self.ready.keys);
                scratch.keys.append(&mut ready);
                std::mem::swap(&mut scratch.keys, &mut *ready);
                break;
            }
            scratch.keys.pop_front();
            self.poll_half(key, out, &mut scratch.item)?;
        }
        Ok(polled)
    }

    /// Polls one half for as many items as its credit and `out` take.
    fn poll_half(&self, key: Key, out: &mut impl Outbox, buf: &mut Vec<u8>) -> Result<(), Closing> {
        let (id, half) = key;
        let (mut source, mut credit, waker, wake) = {
            let mut halves = lock(&self.halves);
            // Gone: stopped since it woke.
            let Some(outgoing) = halves.half(half).get_mut(&id) else {
                return Ok(());
            };
            // From here, a wake puts it on the ready list again.
            outgoing.wake.queued.store(false, Ordering::SeqCst);
            let parked = match &outgoing.source {
                Some(Source::Items(_)) => !outgoing.credit.can_send(),
                Some(Source::Handler(_)) => false,
                None => true,
            };
            if parked {
                return Ok(());
            }
            let Some(source) = outgoing.source.take() else {
                return Ok(());
            };
            let credit = std::mem::take(&mut outgoing.credit);
            // Which half this is: what is put back goes to the half it was
            // taken from, never to one that took its key meanwhile.
            let wake = Arc::clone(&outgoing.wake);
            (source, credit, outgoing.waker.clone(), wake)
        };
        let mut cx = Context::from_waker(&waker);
        let polled = self.drive(key, &mut source, &mut credit, &mut cx, out, buf);
        match polled {
            Ok(Polled::Parked | Polled::Full) => {
                let stopped = {
                    let mut halves = lock(&self.halves);
                    match halves.half(half).get_mut(&id) {
                        Some(outgoing) if Arc::ptr_eq(&outgoing.wake, &wake) => {
                            outgoing.source = Some(source);
                            outgoing.credit = credit;
                            None
                        }
                        _ => Some(source),
                    }
                };
                // Stopped while polled: dropped now, and no END follows.
                drop(stopped);
                if let Ok(Polled::Full) = polled {
                    waker.wake();
                }
            }
            Ok(Polled::Ended(error)) => {
                // Dropped first: a half 1 its handler read is stopped before
                // the END of its stream goes out.
                drop(source);
                if self.finished(key, &wake) {
                    out.end(Message::End { id, half, error });
                }
            }
            Err(closing) => {
                drop(source);
                return Err(closing);
            }
        }
        Ok(())
    }

    /// Runs `source`: its handler until it returns the stream, then the
    /// stream while `credit` and `out` take its items.
    fn drive(
        &self,
        (id, half): Key,
        source: &mut Source,
        credit: &mut credit::Sender,
        cx: &mut Context<'_>,
        out: &mut impl Outbox,
        buf: &mut Vec<u8>,
    ) -> Result<Polled, Closing> {
        if let Source::Handler(handler) = source {
            let polled = std::panic::catch_unwind(AssertUnwindSafe(|| handler.as_mut().poll(cx)));
            match polled {
                Ok(Poll::Pending) => return Ok(Polled::Parked),
                Ok(Poll::Ready(items)) => *source = Source::Items(items),
                Err(_panic) => {
                    tracing::error!(stream = id, "stream handler panicked");
                    return Ok(Polled::Ended(internal("the handler panicked")));
                }
            }
        }
        let Source::Items(items) = source else {
            return Ok(Polled::Parked);
        };
        while credit.can_send() {
            if !out.has_room() {
                return Ok(Polled::Full);
            }
            buf.clear();
            let polled =
                std::panic::catch_unwind(AssertUnwindSafe(|| items.as_mut().poll_encode(cx, buf)));
            let encoded = match polled {
                Ok(Poll::Pending) => return Ok(Polled::Parked),
                Ok(Poll::Ready(None)) => return Ok(Polled::Ended(None)),
                Ok(Poll::Ready(Some(Ok(encoded)))) => encoded,
                Ok(Poll::Ready(Some(Err(error)))) => {
                    return Ok(Polled::Ended(Some(end_error(&error))));
                }
                Err(_panic) => {
                    tracing::error!(stream = id, "stream panicked");
                    return Ok(Polled::Ended(internal("the stream panicked")));
                }
            };
            let len = match &encoded {
                Encoded::Appended(len) => *len,
                Encoded::Own(item) => item.len(),
            };
            if len > self.max_item {
                return Ok(Polled::Ended(internal(
                    "a stream item exceeds the maximum message size",
                )));
            }
            credit.spend(len);
            match encoded {
                Encoded::Appended(len) => {
                    let item = buf.get(buf.len().saturating_sub(len)..).unwrap_or_default();
                    out.item(id, half, item)?;
                }
                Encoded::Own(item) => out.own_item(id, half, item)?,
            }
        }
        Ok(Polled::Parked)
    }

    /// Half `key`, woken through `wake`, ended by itself; whether its END
    /// is still due (it was not stopped meanwhile).
    fn finished(&self, (id, half): Key, wake: &Arc<HalfWaker>) -> bool {
        let removed = {
            let mut halves = lock(&self.halves);
            let halves = halves.half(half);
            match halves.get(&id) {
                Some(outgoing) if Arc::ptr_eq(&outgoing.wake, wake) => halves.remove(&id),
                _ => None,
            }
        };
        match removed {
            Some(removed) => {
                if removed.counted {
                    self.gauge(half).decrement(1.0);
                }
                true
            }
            None => false,
        }
    }
}

/// What ends a stream that did not simply finish.
fn end_error(error: &Error) -> RemoteError {
    let (code, message) = match error {
        Error::Lagged(message) => (ErrorCode::Lagged, message.clone()),
        Error::Rejected(message) => (ErrorCode::Rejected, message.clone()),
        Error::Forbidden(message) => (ErrorCode::Forbidden, message.clone()),
        Error::Internal(message) => (ErrorCode::Internal, message.clone()),
        other => (ErrorCode::Internal, other.to_string()),
    };
    RemoteError { code, message }
}

fn internal(message: &str) -> Option<RemoteError> {
    Some(RemoteError {
        code: ErrorCode::Internal,
        message: message.into(),
    })
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::atomic::AtomicUsize;

    use futures_util::Stream as FuturesStream;

    use super::*;
    use crate::stream::RawItems;

    /// A source that yields what it was given, one poll each, and counts
    /// its drops.
    struct Script {
        steps: VecDeque<Poll<Option<Result<Bytes, Error>>>>,
        /// Yields this item for ever once `steps` is empty.
        forever: Option<Bytes>,
        dropped: Arc<AtomicUsize>,
    }

    impl FuturesStream for Script {
        type Item = Result<Bytes, Error>;

        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            match self.steps.pop_front() {
                Some(step) => step,
                None => Poll::Ready(self.forever.clone().map(Ok)),
            }
        }
    }

    impl RawItems for Script {}

    impl Drop for Script {
        fn drop(&mut self) {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn item(byte: u8) -> Poll<Option<Result<Bytes, Error>>> {
        Poll::Ready(Some(Ok(Bytes::from(vec![byte]))))
    }

    fn script(
        steps: impl IntoIterator<Item = Poll<Option<Result<Bytes, Error>>>>,
    ) -> (RawStream, Arc<AtomicUsize>) {
        let dropped = Arc::new(AtomicUsize::new(0));
        let script = Script {
            steps: steps.into_iter().collect(),
            forever: None,
            dropped: Arc::clone(&dropped),
        };
        (Box::pin(script), dropped)
    }

    fn forever(byte: u8) -> RawStream {
        Box::pin(Script {
            steps: VecDeque::new(),
            forever: Some(Bytes::from(vec![byte])),
            dropped: Arc::default(),
        })
    }

    /// A batch that takes `room` items before it is full.
    #[derive(Default)]
    struct Recorder {
        room: usize,
        items: Vec<(u64, Half, Vec<u8>)>,
        ends: Vec<Message>,
    }

    impl Outbox for Recorder {
        fn has_room(&self) -> bool {
            self.items.len() < self.room
        }

        fn item(&mut self, id: u64, half: Half, item: &[u8]) -> Result<(), Closing> {
            self.items.push((id, half, item.to_vec()));
            Ok(())
        }

        fn own_item(&mut self, id: u64, half: Half, item: Bytes) -> Result<(), Closing> {
            self.item(id, half, &item)
        }

        fn end(&mut self, end: Message) {
            self.ends.push(end);
        }
    }

    fn recorder(room: usize) -> Recorder {
        Recorder {
            room,
            ..Recorder::default()
        }
    }

    fn sending() -> Sending {
        Sending::new(4, 16, Gauge::noop(), Gauge::noop())
    }

    fn ids(out: &Recorder) -> Vec<u64> {
        out.items.iter().map(|(id, _, _)| *id).collect()
    }

    #[test]
    fn a_half_sends_within_its_credit_and_a_grant_polls_it_again() {
        let sending = sending();
        let mut scratch = Scratch::default();
        let (items, dropped) = script([item(1), item(2), item(3), Poll::Ready(None)]);
        sending.start_upload(7, items, true);
        let mut out = recorder(100);
        assert!(
            !sending.poll(&mut out, &mut scratch).unwrap(),
            "no credit: nothing to poll"
        );

        sending.credit(7, Half::Up, 2, 1_000).unwrap();
        assert!(sending.poll(&mut out, &mut scratch).unwrap());
        assert_eq!(out.items.len(), 2, "two items of credit, two items");
        assert!(
            !sending.poll(&mut out, &mut scratch).unwrap(),
            "parked on credit, not polled again"
        );

        sending.credit(7, Half::Up, 5, 1_000).unwrap();
        sending.poll(&mut out, &mut scratch).unwrap();
        let sent: Vec<_> = out.items.iter().map(|(_, _, item)| item[0]).collect();
        assert_eq!(sent, [1, 2, 3]);
        assert_eq!(dropped.load(Ordering::SeqCst), 1, "dropped before its END");
        assert!(matches!(
            out.ends[..],
            [Message::End {
                id: 7,
                half: Half::Up,
                error: None
            }]
        ));
        assert!(
            sending.credit(7, Half::Up, 0, 0).is_err(),
            "an empty grant is refused for an ended half too"
        );
    }

    #[test]
    fn a_half_that_fills_the_batch_goes_behind_those_waiting() {
        let sending = sending();
        let mut scratch = Scratch::default();
        for id in [1, 2] {
            sending.start_upload(id, forever(0), true);
            sending.credit(id, Half::Up, 100, 1_000).unwrap();
        }
        let mut order = Vec::new();
        for _ in 0..3 {
            let mut out = recorder(3);
            sending.poll(&mut out, &mut scratch).unwrap();
            order.extend(ids(&out));
        }
        assert_eq!(order, [1, 1, 1, 2, 2, 2, 1, 1, 1]);
    }

    #[test]
    fn a_stopped_half_is_dropped_and_sends_no_end() {
        let sending = sending();
        let mut scratch = Scratch::default();
        let (items, dropped) = script([item(1), Poll::Ready(None)]);
        sending.start_upload(3, items, true);
        sending.credit(3, Half::Up, 10, 1_000).unwrap();
        sending.stop(3, Half::Up);
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        let mut out = recorder(100);
        sending.poll(&mut out, &mut scratch).unwrap();
        assert!(out.items.is_empty() && out.ends.is_empty());
        sending.credit(3, Half::Up, 1, 1).unwrap();
    }

    #[test]
    fn a_handler_that_waits_is_polled_again_when_it_wakes() {
        let sending = sending();
        let mut scratch = Scratch::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (items, _) = script([item(9), Poll::Ready(None)]);
        let handler: StreamHandlerFuture = Box::pin(async move {
            let _ = rx.await;
            items
        });
        sending.start(5, handler).unwrap();
        sending.credit(5, Half::Down, 10, 1_000).unwrap();
        let mut out = recorder(100);
        assert!(sending.poll(&mut out, &mut scratch).unwrap(), "polled once");
        assert!(out.items.is_empty(), "its handler waits");
        assert!(
            !sending.poll(&mut out, &mut scratch).unwrap(),
            "nothing woke it"
        );

        tx.send(()).unwrap();
        assert!(sending.poll(&mut out, &mut scratch).unwrap());
        assert_eq!(ids(&out), [5]);
        assert!(matches!(
            out.ends[..],
            [Message::End {
                id: 5,
                half: Half::Down,
                error: None
            }]
        ));
    }

    #[test]
    fn a_panic_or_an_oversized_item_ends_the_half_with_an_internal_error() {
        struct Panics;
        impl FuturesStream for Panics {
            type Item = Result<Bytes, Error>;
            fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                panic!("a source panicked");
            }
        }
        impl RawItems for Panics {}

        let sending = sending();
        let mut scratch = Scratch::default();
        sending.start_upload(1, Box::pin(Panics), true);
        let (big, _) = script([Poll::Ready(Some(Ok(Bytes::from(vec![0; 17]))))]);
        sending.start_upload(2, big, true);
        let panics: StreamHandlerFuture = Box::pin(async { panic!("a handler panicked") });
        sending.start(3, panics).unwrap();
        for id in [1, 2] {
            sending.credit(id, Half::Up, 10, 1_000).unwrap();
        }
        let mut out = recorder(100);
        sending.poll(&mut out, &mut scratch).unwrap();
        assert!(out.items.is_empty());
        let mut ended: Vec<_> = out
            .ends
            .iter()
            .map(|end| match end {
                Message::End {
                    id,
                    error: Some(RemoteError { code, message }),
                    ..
                } => (*id, *code, message.clone()),
                other => panic!("not an error END: {other:?}"),
            })
            .collect();
        ended.sort_by_key(|(id, _, _)| *id);
        assert_eq!(
            ended,
            [
                (1, ErrorCode::Internal, "the stream panicked".to_owned()),
                (
                    2,
                    ErrorCode::Internal,
                    "a stream item exceeds the maximum message size".to_owned()
                ),
                (3, ErrorCode::Internal, "the handler panicked".to_owned()),
            ]
        );
    }

    #[test]
    fn a_half_is_on_the_ready_list_once_however_often_it_wakes() {
        let sending = sending();
        let (items, _) = script([Poll::Pending]);
        sending.start_upload(1, items, true);
        let waker = lock(&sending.halves).up[&1].waker.clone();
        waker.wake_by_ref();
        waker.wake_by_ref();
        assert_eq!(lock(&sending.ready.keys).len(), 1);
        let mut out = recorder(100);
        sending.poll(&mut out, &mut Scratch::default()).unwrap();
        waker.wake_by_ref();
        assert_eq!(
            lock(&sending.ready.keys).len(),
            1,
            "taken to be polled, it is queued again by the next wake"
        );
    }

    #[test]
    fn a_half_stopped_while_polled_is_not_put_back_over_the_one_that_took_its_key() {
        /// Stops its own half and starts another under the same key when
        /// polled, then yields an item.
        struct Meddler {
            sending: Arc<Sending>,
            replacement: Option<RawStream>,
            dropped: Arc<AtomicUsize>,
        }
        impl FuturesStream for Meddler {
            type Item = Result<Bytes, Error>;
            fn poll_next(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Self::Item>> {
                if let Some(replacement) = self.replacement.take() {
                    self.sending.stop(1, Half::Up);
                    self.sending.start_upload(1, replacement, true);
                }
                Poll::Ready(Some(Ok(Bytes::from_static(b"x"))))
            }
        }
        impl RawItems for Meddler {}
        impl Drop for Meddler {
            fn drop(&mut self) {
                self.dropped.fetch_add(1, Ordering::SeqCst);
            }
        }

        let sending = Arc::new(sending());
        let (replacement, replacement_dropped) = script([item(2)]);
        let dropped = Arc::new(AtomicUsize::new(0));
        let meddler = Meddler {
            sending: Arc::clone(&sending),
            replacement: Some(replacement),
            dropped: Arc::clone(&dropped),
        };
        sending.start_upload(1, Box::pin(meddler), true);
        sending.credit(1, Half::Up, 1, 1_000).unwrap();
        let mut out = recorder(100);
        sending.poll(&mut out, &mut Scratch::default()).unwrap();
        assert_eq!(out.items.len(), 1, "the item it made before it was stopped");
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            1,
            "stopped: dropped, not put back"
        );
        assert_eq!(replacement_dropped.load(Ordering::SeqCst), 0);

        // The half that took the key is the one that sends from now on.
        sending.credit(1, Half::Up, 5, 1_000).unwrap();
        sending.poll(&mut out, &mut Scratch::default()).unwrap();
        let sent: Vec<_> = out.items.iter().map(|(_, _, item)| item[0]).collect();
        assert_eq!(sent, [b'x', 2]);
    }

    #[test]
    fn a_closed_sender_starts_nothing_and_drops_what_it_had() {
        let sending = sending();
        let (items, dropped) = script([]);
        sending.start_upload(1, items, true);
        sending.close();
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        let (late, late_dropped) = script([]);
        sending.start_upload(2, late, true);
        assert_eq!(late_dropped.load(Ordering::SeqCst), 1, "dropped at once");
        let handler: StreamHandlerFuture = Box::pin(async { forever(0) });
        assert_eq!(sending.start(3, handler), Err("the connection is closing"));
    }
}
