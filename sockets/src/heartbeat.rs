//! The heartbeat: when to ping, when the peer counts as dead, and the round-trip time.
//!
//! Sans-IO: the connection feeds it the current time and what it heard, and
//! asks [`Heartbeat::poll`] what to do. Pings and pongs are RPC envelopes, so
//! they travel inside the authenticated channel; any frame from the peer
//! counts as a sign of life.
//!
//! ```text
//!   heard ──► last_heard = now
//!   poll(now):  now ≥ last_heard + timeout  → TimedOut
//!               now ≥ next_ping             → Ping(nonce), next_ping += interval
//!   pong(nonce) matching the last ping     → rtt = now − sent
//! ```

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// What the connection must do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send a ping with this nonce.
    Ping(u64),
    /// Nothing was heard for the timeout: disconnect.
    TimedOut,
}

/// The ping/timeout state of one connection.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    last_heard: Instant,
    next_ping: Instant,
    outstanding: Option<(u64, Instant)>,
    next_nonce: u64,
}

impl Heartbeat {
    /// A heartbeat that pings every `interval` and gives up after `timeout` of silence.
    pub(crate) fn new(interval: Duration, timeout: Duration, now: Instant) -> Self {
        Self {
            interval,
            timeout,
            last_heard: now,
            next_ping: now + interval,
            outstanding: None,
            next_nonce: 1,
        }
    }

    /// Something arrived from the peer.
    pub(crate) fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// A pong arrived; the round-trip time if it answers the latest ping.
    pub(crate) fn pong(&mut self, nonce: u64, now: Instant) -> Option<Duration> {
        self.last_heard = now;
        match self.outstanding {
            Some((expected, sent)) if expected == nonce => {
                self.outstanding = None;
                Some(now.saturating_duration_since(sent))
            }
            _ => None,
        }
    }

    /// What to do at `now`, if anything.
    pub(crate) fn poll(&mut self, now: Instant) -> Option<Action> {
        if now >= self.last_heard + self.timeout {
            return Some(Action::TimedOut);
        }
        if now >= self.next_ping {
            let nonce = self.next_nonce;
            self.next_nonce = self.next_nonce.wrapping_add(1);
            self.outstanding = Some((nonce, now));
            self.next_ping = now + self.interval;
            return Some(Action::Ping(nonce));
        }
        None
    }

    /// When [`Heartbeat::poll`] next has something to say.
    pub(crate) fn next_wake(&self) -> Instant {
        self.next_ping.min(self.last_heard + self.timeout)
    }
}

/// A connection's measured round-trip time, updated by the heartbeat; a
/// cheap handle (clones share the measurement).
///
/// Besides reading the latest value, one can wait for it: [`Rtt::measured`]
/// resolves with the first measurement, and [`Rtt::subscribe`] sees every
/// later one.
#[derive(Clone, Debug)]
pub struct Rtt(Arc<Mutex<RttState>>);

#[derive(Debug)]
struct RttState {
    latest: Option<Duration>,
    /// Created for the first subscriber: a watch channel is about 350 bytes,
    /// too much for every idle connection whose round-trip time nobody awaits.
    changes: Option<watch::Sender<Option<Duration>>>,
}

impl Default for Rtt {
    /// No measurement yet.
    fn default() -> Self {
        Self(Arc::new(Mutex::new(RttState {
            latest: None,
            changes: None,
        })))
    }
}

impl Rtt {
    fn state(&self) -> MutexGuard<'_, RttState> {
        // Plain data: a panic elsewhere cannot leave it half-written.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The latest measurement; `None` before the first heartbeat answer.
    pub fn get(&self) -> Option<Duration> {
        self.state().latest
    }

    /// Records a measurement and wakes whoever waits for one.
    pub(crate) fn set(&self, rtt: Duration) {
        let mut state = self.state();
        state.latest = Some(rtt);
        if let Some(changes) = &state.changes {
            changes.send_replace(Some(rtt));
        }
    }

    /// Waits for a measurement: at once if there is one, else until the
    /// first heartbeat answer (forever if heartbeats are off or the
    /// connection is gone; bound it with a timeout).
    pub async fn measured(&self) -> Duration {
        let mut changes = self.subscribe();
        loop {
            if let Some(rtt) = *changes.borrow_and_update() {
                return rtt;
            }
            // `self` holds the sender, so this cannot fail while we wait.
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// A receiver that is told of every measurement from now on
    /// (`changed().await`, then `borrow()`).
    pub fn subscribe(&self) -> watch::Receiver<Option<Duration>> {
        let mut state = self.state();
        let latest = state.latest;
        state
            .changes
            .get_or_insert_with(|| watch::Sender::new(latest))
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::{advance, sleep_until};

    const INTERVAL: Duration = Duration::from_secs(10);
    const TIMEOUT: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn pings_every_interval_and_measures_rtt() {
        let mut hb = Heartbeat::new(INTERVAL, TIMEOUT, Instant::now());
        assert_eq!(hb.poll(Instant::now()), None);
        sleep_until(hb.next_wake()).await;
        let Some(Action::Ping(nonce)) = hb.poll(Instant::now()) else {
            panic!("expected a ping")
        };
        assert_eq!(hb.poll(Instant::now()), None, "one ping per interval");
        advance(Duration::from_millis(42)).await;
        assert_eq!(
            hb.pong(nonce + 1, Instant::now()),
            None,
            "a stale nonce measures nothing"
        );
        assert_eq!(
            hb.pong(nonce, Instant::now()),
            Some(Duration::from_millis(42))
        );
        assert_eq!(hb.pong(nonce, Instant::now()), None, "answered once");
    }

    #[tokio::test(start_paused = true)]
    async fn silence_for_the_timeout_disconnects() {
        let start = Instant::now();
        let mut hb = Heartbeat::new(INTERVAL, TIMEOUT, start);
        let mut pings = 0;
        loop {
            sleep_until(hb.next_wake()).await;
            match hb.poll(Instant::now()) {
                Some(Action::Ping(_)) => pings += 1,
                Some(Action::TimedOut) => break,
                None => {}
            }
        }
        assert_eq!(Instant::now() - start, TIMEOUT);
        assert_eq!(pings, 2, "pinged at 10 s and 20 s; gave up at 30 s");
    }

    /// For any pattern of silences: the peer is declared dead exactly when a
    /// silence reaches the timeout, and never pinged more than once per interval.
    #[test]
    fn times_out_exactly_when_a_silence_reaches_the_timeout() {
        use proptest::prelude::*;
        proptest!(|(gaps in proptest::collection::vec(0u64..40_000, 1..50))| {
            let start = Instant::now();
            let mut hb = Heartbeat::new(INTERVAL, TIMEOUT, start);
            let mut now = start;
            let mut last_ping: Option<Instant> = None;
            for gap in gaps {
                let heard_at = now + Duration::from_millis(gap);
                // Everything the heartbeat asks for before the next frame arrives.
                let mut timed_out = false;
                while hb.next_wake() <= heard_at {
                    let wake = hb.next_wake();
                    match hb.poll(wake) {
                        Some(Action::Ping(_)) => {
                            if let Some(last) = last_ping {
                                prop_assert!(wake - last >= INTERVAL);
                            }
                            last_ping = Some(wake);
                        }
                        Some(Action::TimedOut) => { timed_out = true; break; }
                        None => {}
                    }
                }
                prop_assert_eq!(timed_out, Duration::from_millis(gap) >= TIMEOUT);
                if timed_out {
                    break;
                }
                now = heard_at;
                hb.heard(now);
            }
        });
    }

    #[tokio::test(start_paused = true)]
    async fn any_traffic_keeps_the_connection_alive() {
        let mut hb = Heartbeat::new(INTERVAL, TIMEOUT, Instant::now());
        for _ in 0..10 {
            advance(Duration::from_secs(25)).await;
            hb.heard(Instant::now());
            while let Some(action) = hb.poll(Instant::now()) {
                assert_ne!(action, Action::TimedOut);
            }
        }
        assert!(hb.next_wake() > Instant::now());
    }

    #[tokio::test]
    async fn rtt_reports_to_subscribers_made_before_and_after_a_measurement() {
        let rtt = Rtt::default();
        assert_eq!(rtt.get(), None);
        let mut early = rtt.subscribe();
        assert!(!early.has_changed().unwrap());
        let waiter = tokio::spawn({
            let rtt = rtt.clone();
            async move { rtt.measured().await }
        });
        rtt.set(Duration::from_millis(7));
        assert_eq!(rtt.get(), Some(Duration::from_millis(7)));
        early.changed().await.unwrap();
        assert_eq!(*early.borrow_and_update(), Some(Duration::from_millis(7)));
        assert_eq!(waiter.await.unwrap(), Duration::from_millis(7));

        let mut late = rtt.subscribe();
        assert_eq!(*late.borrow(), Some(Duration::from_millis(7)));
        assert!(!late.has_changed().unwrap());
        rtt.set(Duration::from_millis(9));
        late.changed().await.unwrap();
        assert_eq!(*late.borrow(), Some(Duration::from_millis(9)));
        assert_eq!(rtt.measured().await, Duration::from_millis(9));
    }
}
