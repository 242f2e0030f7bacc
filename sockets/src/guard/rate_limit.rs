//! [`RateLimit`]: a token bucket per connection or per user key, as a guard.
//!
//! The buckets run on tokio's clock, so a test with a paused clock drives
//! them exactly (the `governor` crate keeps its own clock, which a paused
//! tokio runtime cannot move).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{Guard, Refusal};
use crate::identity::ConnectionId;
use crate::service::Context;

/// Reads a call's key from its context.
type KeyOf<K> = Box<dyn Fn(&Context) -> Option<K> + Send + Sync>;

/// Refuses calls over a rate, with `Rejected("rate limited; retry in N ms")`:
/// a token bucket per key that holds `burst` calls (by default the rate's
/// count) and refills at `calls` per `per`.
///
/// A limiter is one guard: attached server-wide it limits every call of a
/// key together, attached to a service ([`ServiceExt::with_guard`](super::ServiceExt::with_guard))
/// that service's calls. Notifications count too.
///
/// Memory: a key's bucket is kept while it is not full again; full buckets
/// are dropped when the map grows, so it holds about the keys that called
/// within the last `burst / rate`.
///
/// ```no_run
/// # #[sockets::service] pub trait Search { async fn find(&self, q: String) -> Vec<String>; }
/// # struct Impl;
/// # impl Search for Impl { async fn find(&self, q: String) -> Vec<String> { vec![q] } }
/// use std::time::Duration;
/// use sockets::guard::{RateLimit, ServiceExt};
///
/// let builder = sockets::Server::builder()
///     // 100 calls a second per connection, in bursts of up to 20...
///     .guard(RateLimit::per_connection(100, Duration::from_secs(1)).burst(20))
///     // ...and searches: 10 a second per user, whatever the connection.
///     .serve(SearchServer::new(Impl).with_guard(RateLimit::per_key(
///         10,
///         Duration::from_secs(1),
///         |cx: &sockets::Context| cx.meta::<String>().cloned(),
///     )));
/// ```
pub struct RateLimit<K = ConnectionId> {
    /// Tokens per second.
    rate: f64,
    /// The most tokens a bucket holds.
    burst: f64,
    key: KeyOf<K>,
    buckets: Mutex<Buckets<K>>,
}

impl RateLimit<ConnectionId> {
    /// At most `calls` per `per` on each connection.
    ///
    /// # Panics
    /// When `calls` is zero or `per` is zero: a limit that refuses everything
    /// is a guard that says so.
    pub fn per_connection(calls: u32, per: Duration) -> Self {
        Self::per_key(calls, per, |cx: &Context| Some(cx.connection_id()))
    }
}

impl<K: Hash + Eq + Send + 'static> RateLimit<K> {
    /// At most `calls` per `per` for each key that `key` reads from the
    /// call's context (the user, from the auth hook's metadata); calls
    /// without a key (`None`, a guest) are not limited by this guard.
    ///
    /// # Panics
    /// When `calls` is zero or `per` is zero.
    pub fn per_key(
        calls: u32,
        per: Duration,
        key: impl Fn(&Context) -> Option<K> + Send + Sync + 'static,
    ) -> Self {
        assert!(
            calls > 0 && !per.is_zero(),
            "a rate limit needs at least one call per non-zero duration"
        );
        Self {
            rate: f64::from(calls) / per.as_secs_f64(),
            burst: f64::from(calls),
            key: Box::new(key),
            buckets: Mutex::new(Buckets::default()),
        }
    }

    /// Lets up to `calls` through at once after a quiet spell (default: the
    /// rate's count). The long-run rate stays the same.
    ///
    /// # Panics
    /// When `calls` is zero.
    #[must_use]
    pub fn burst(mut self, calls: u32) -> Self {
        assert!(calls > 0, "a rate limit's burst must be at least one call");
        self.burst = f64::from(calls);
        self
    }

    /// Takes one call's token for `key` at `now`, or says how long until
    /// one is there.
    fn take(&self, key: K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        buckets.take(key, now, self.rate, self.burst)
    }
}

impl<K: Hash + Eq + Send + 'static> Guard for RateLimit<K> {
    fn check(&self, cx: &Context, _method: &str) -> Result<(), Refusal> {
        let Some(key) = (self.key)(cx) else {
            return Ok(());
        };
        self.take(key, Instant::now()).map_err(|wait| {
            // Whole milliseconds, rounded up: retrying after that many passes.
            let ms = wait.as_nanos().div_ceil(1_000_000);
            Refusal::rejected(format!("rate limited; retry in {ms} ms"))
        })
    }
}

/// The buckets of every key, and when to sweep the full ones out.
struct Buckets<K> {
    by_key: HashMap<K, Bucket>,
    /// Sweep when the map reaches this many keys.
    sweep_at: usize,
}

impl<K> Default for Buckets<K> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            sweep_at: MIN_SWEEP,
        }
    }
}

/// Below this many keys, no sweeping.
const MIN_SWEEP: usize = 1024;

impl<K: Hash + Eq> Buckets<K> {
    fn take(&mut self, key: K, now: Instant, rate: f64, burst: f64) -> Result<(), Duration> {
        if self.by_key.len() >= self.sweep_at && !self.by_key.contains_key(&key) {
            self.by_key
                .retain(|_, bucket| bucket.tokens(now, rate, burst) < burst);
            self.sweep_at = (self.by_key.len() * 2).max(MIN_SWEEP);
        }
        let bucket = self.by_key.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.take(now, rate, burst)
    }
}

/// One key's bucket: `tokens` as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// The tokens there are at `now`.
    fn tokens(&self, now: Instant, rate: f64, burst: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * rate).min(burst)
    }

    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> Result<(), Duration> {
        let tokens = self.tokens(now, rate, burst);
        self.at = now;
        if tokens >= 1.0 {
            self.tokens = tokens - 1.0;
            Ok(())
        } else {
            self.tokens = tokens;
            Err(Duration::from_secs_f64((1.0 - tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_calls_pass_at_the_rate() {
        // 10 per second: one token every 100 ms, bursts of 3.
        let limit = RateLimit::per_key(10, Duration::from_secs(1), |_: &Context| Some(())).burst(3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limit.take((), start), Ok(()));
        }
        assert_eq!(limit.take((), start), Err(Duration::from_millis(100)));
        let later = start + Duration::from_millis(40);
        let wait = limit.take((), later).unwrap_err();
        assert!((wait.as_secs_f64() - 0.060).abs() < 1e-9, "{wait:?}");
        let refilled = start + Duration::from_millis(101);
        assert_eq!(limit.take((), refilled), Ok(()));
        assert!(limit.take((), refilled).is_err());
        // After a long quiet spell, no more than the burst.
        let quiet = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limit.take((), quiet), Ok(()));
        }
        assert!(limit.take((), quiet).is_err());
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let limit = RateLimit::per_key(1, Duration::from_secs(1), |_: &Context| Some(0u8));
        let now = Instant::now();
        assert_eq!(limit.take(1, now), Ok(()));
        assert!(limit.take(1, now).is_err());
        assert_eq!(limit.take(2, now), Ok(()));
    }

    #[test]
    fn full_buckets_are_swept_when_the_map_grows() {
        let mut buckets = Buckets::default();
        let now = Instant::now();
        for key in 0..MIN_SWEEP {
            assert_eq!(buckets.take(key, now, 1.0, 1.0), Ok(()));
        }
        assert_eq!(buckets.by_key.len(), MIN_SWEEP);
        // A second later every bucket is full again: the next new key sweeps them.
        let later = now + Duration::from_secs(1);
        assert_eq!(buckets.take(MIN_SWEEP, later, 1.0, 1.0), Ok(()));
        assert_eq!(buckets.by_key.len(), 1);
        // Buckets still refilling are kept.
        let mut buckets = Buckets::default();
        for key in 0..MIN_SWEEP {
            assert_eq!(buckets.take(key, now, 1.0, 1.0), Ok(()));
        }
        assert_eq!(
            buckets.take(MIN_SWEEP, now + Duration::from_millis(500), 1.0, 1.0),
            Ok(())
        );
        assert_eq!(buckets.by_key.len(), MIN_SWEEP + 1);
        assert_eq!(buckets.sweep_at, 2 * MIN_SWEEP);
    }

    #[test]
    fn a_refusal_says_when_to_retry_in_whole_milliseconds() {
        let limit = RateLimit::per_key(3, Duration::from_secs(1), |_: &Context| Some(())).burst(1);
        let cx = Context::builder().build();
        // The clock is not paused here: only the shape of the message is checked.
        assert_eq!(limit.check(&cx, "A.b"), Ok(()));
        match limit.check(&cx, "A.b") {
            Err(Refusal::Rejected(reason)) => {
                let ms: u64 = reason
                    .strip_prefix("rate limited; retry in ")
                    .and_then(|rest| rest.strip_suffix(" ms"))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected reason {reason:?}"));
                assert!((1..=334).contains(&ms), "{ms}");
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn calls_without_a_key_are_not_limited() {
        let limit = RateLimit::per_key(1, Duration::from_secs(3600), |_: &Context| None::<u8>);
        let cx = Context::builder().build();
        for _ in 0..10 {
            assert_eq!(limit.check(&cx, "A.b"), Ok(()));
        }
    }
}
