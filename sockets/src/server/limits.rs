//! Per-address limits before authentication.
//!
//! Two limits apply to each client address (an IPv4 address, or the /64
//! prefix of an IPv6 address: one host usually holds a whole /64, so keying
//! by the full address would let it rotate through 2^64 of them):
//!
//! * **Concurrent handshakes**: at most `max_handshakes` connections from one
//!   address may be between the TCP accept and authentication at once.
//! * **Failed handshakes**: a token bucket of `count` failures per `per`.
//!   Every connection in the handshake holds one token; a connection that
//!   authenticates (or whose peer just hangs up) gives it back, one that
//!   fails spends it, and the bucket refills continuously at `count` per
//!   `per`. A connection is admitted only when a token is free, so at most
//!   `count` failures fit in any burst, whatever the concurrency. When a
//!   failure spends the last token, the address is refused for a whole `per`
//!   (after which its bucket is full again). Authenticating does not reset
//!   the bucket: a client that knows the secret cannot interleave sessions
//!   with guesses at the auth hook's credentials to escape it.
//!
//! Refusals are decided at the TCP accept, before the peer has sent anything,
//! so a limited address learns nothing from what it sends: every connection
//! from it is refused alike.
//!
//! Memory is bounded: at most [`MAX_TRACKED`] addresses are tracked (a few
//! MiB). An address leaves the table as soon as it holds no handshake and
//! its bucket is full again; those that merely refilled with time are swept
//! when the table is full. If the table is still full of addresses with
//! recent failures or handshakes under way (an attacker controlling more than
//! [`MAX_TRACKED`] addresses or /64 prefixes), a new address is admitted
//! **untracked**, under the global caps alone: refusing it instead would let
//! such an attacker lock every other client out. The tracked addresses stay
//! limited meanwhile.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// The most addresses tracked at once.
pub(crate) const MAX_TRACKED: usize = 65_536;

/// How often a full table may be swept of idle entries (each sweep walks it).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A failed-handshake budget: `count` failures per `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FailureLimit {
    pub(crate) count: u32,
    pub(crate) per: Duration,
}

impl FailureLimit {
    fn capacity(self) -> f64 {
        f64::from(self.count)
    }

    /// Tokens regained per second.
    fn rate(self) -> f64 {
        self.capacity() / self.per.as_secs_f64()
    }
}

/// The per-address settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PerIpConfig {
    /// Concurrent handshakes per address; `0`: no per-address cap.
    pub(crate) max_handshakes: usize,
    /// Failed handshakes per address; `None`: no limit.
    pub(crate) failures: Option<FailureLimit>,
}

impl Default for PerIpConfig {
    fn default() -> Self {
        Self {
            max_handshakes: 8,
            failures: Some(FailureLimit {
                count: 10,
                per: Duration::from_secs(60),
            }),
        }
    }
}

impl PerIpConfig {
    fn enabled(&self) -> bool {
        self.max_handshakes > 0 || self.failures.is_some()
    }
}

/// Why an address was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// It has `max_handshakes` connections in the handshake already.
    Handshakes,
    /// It spent its failed-handshake budget.
    Failures,
}

impl Refusal {
    /// The close reason sent with 4007.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Handshakes => "too many handshakes from this address",
            Self::Failures => "too many failed handshakes from this address",
        }
    }
}

/// How a connection's time before authentication ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Authenticated (or admitted as a guest).
    Admitted,
    /// Rejected, stale, malformed, timed out, or rejected by the auth hook.
    Failed,
    /// The peer hung up (or the server stopped) before either.
    Gone,
}

/// The table key: an IPv4 address, or an IPv6 /64 prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    V4(u32),
    V6(u64),
}

impl Key {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => {
                let [a, b, c, d, ..] = v6.segments();
                Self::V6(
                    (u64::from(a) << 48)
                        | (u64::from(b) << 32)
                        | (u64::from(c) << 16)
                        | u64::from(d),
                )
            }
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// Connections from this address in the handshake.
    pending: usize,
    /// Free failure tokens (each pending connection holds one more).
    tokens: f64,
    refilled: Instant,
    blocked_until: Option<Instant>,
}

impl Entry {
    fn new(now: Instant, config: &PerIpConfig) -> Self {
        Self {
            pending: 0,
            tokens: config.failures.map_or(0.0, FailureLimit::capacity),
            refilled: now,
            blocked_until: None,
        }
    }

    fn refill(&mut self, now: Instant, config: &PerIpConfig) {
        if let Some(limit) = config.failures {
            let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
            self.tokens = (self.tokens + elapsed * limit.rate()).min(limit.capacity());
        }
        self.refilled = now;
        if self.blocked_until.is_some_and(|until| now >= until) {
            self.blocked_until = None;
        }
    }

    /// Holds nothing worth remembering (call after `refill`).
    fn idle(&self, config: &PerIpConfig) -> bool {
        self.pending == 0
            && self.blocked_until.is_none()
            && config
                .failures
                .is_none_or(|limit| self.tokens >= limit.capacity())
    }
}

#[derive(Debug)]
struct Table {
    entries: HashMap<Key, Entry>,
    next_sweep: Instant,
}

/// The per-address limits of one server.
#[derive(Debug)]
pub(crate) struct PerIp {
    config: PerIpConfig,
    capacity: usize,
    table: Mutex<Table>,
}

impl PerIp {
    pub(crate) fn new(config: PerIpConfig) -> Arc<Self> {
        Self::with_capacity(config, MAX_TRACKED)
    }

    fn with_capacity(config: PerIpConfig, capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            config,
            capacity,
            table: Mutex::new(Table {
                entries: HashMap::new(),
                next_sweep: Instant::now(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `ip` into the handshake, or refuses it.
    pub(crate) fn try_admit(
        self: &Arc<Self>,
        ip: IpAddr,
        now: Instant,
    ) -> Result<Attempt, Refusal> {
        if !self.config.enabled() {
            return Ok(Attempt::untracked());
        }
        let config = &self.config;
        let key = Key::of(ip);
        let mut table = self.lock();
        if !table.entries.contains_key(&key) && table.entries.len() >= self.capacity {
            if now >= table.next_sweep {
                table.entries.retain(|_, entry| {
                    entry.refill(now, config);
                    !entry.idle(config)
                });
                table.next_sweep = now + SWEEP_INTERVAL;
            }
            if table.entries.len() >= self.capacity {
                tracing::debug!(%ip, "per-address table full: admitted untracked");
                return Ok(Attempt::untracked());
            }
        }
        let entry = table
            .entries
            .entry(key)
            .or_insert_with(|| Entry::new(now, config));
        entry.refill(now, config);
        if entry.blocked_until.is_some() {
            return Err(Refusal::Failures);
        }
        if config.max_handshakes > 0 && entry.pending >= config.max_handshakes {
            return Err(Refusal::Handshakes);
        }
        if config.failures.is_some() {
            if entry.tokens < 1.0 {
                return Err(Refusal::Failures);
            }
            entry.tokens -= 1.0;
        }
        entry.pending += 1;
        Ok(Attempt {
            limits: Some((Arc::clone(self), key)),
        })
    }

    fn finish(&self, key: Key, outcome: Outcome, now: Instant) {
        let config = &self.config;
        let mut table = self.lock();
        let Some(entry) = table.entries.get_mut(&key) else {
            return;
        };
        entry.refill(now, config);
        entry.pending = entry.pending.saturating_sub(1);
        if let Some(limit) = config.failures {
            match outcome {
                Outcome::Admitted | Outcome::Gone => {
                    entry.tokens = (entry.tokens + 1.0).min(limit.capacity());
                }
                Outcome::Failed => {
                    // The pending connections each hold a token they may give back.
                    let pending = u32::try_from(entry.pending).map_or(f64::MAX, f64::from);
                    let unspent = entry.tokens + pending;
                    if unspent < 1.0 {
                        entry.blocked_until = Some(now + limit.per);
                    }
                }
            }
        }
        if entry.idle(config) {
            table.entries.remove(&key);
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().entries.len()
    }
}

/// One connection's place in the per-address accounting, from the accept to
/// authentication. Dropped without [`Attempt::finish`], it counts as
/// [`Outcome::Gone`].
#[derive(Debug)]
pub(crate) struct Attempt {
    limits: Option<(Arc<PerIp>, Key)>,
}

impl Attempt {
    fn untracked() -> Self {
        Self { limits: None }
    }

    /// Ends the handshake phase with `outcome`.
    pub(crate) fn finish(mut self, outcome: Outcome) {
        if let Some((limits, key)) = self.limits.take() {
            limits.finish(key, outcome, Instant::now());
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some((limits, key)) = self.limits.take() {
            limits.finish(key, Outcome::Gone, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn config(max_handshakes: usize, count: u32, per_secs: u64) -> PerIpConfig {
        PerIpConfig {
            max_handshakes,
            failures: Some(FailureLimit {
                count,
                per: Duration::from_secs(per_secs),
            }),
        }
    }

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_handshakes_are_capped_per_address() {
        let limits = PerIp::new(config(2, 10, 60));
        let now = Instant::now();
        let a = limits.try_admit(v4(1), now).unwrap();
        let _b = limits.try_admit(v4(1), now).unwrap();
        assert_eq!(
            limits.try_admit(v4(1), now).unwrap_err(),
            Refusal::Handshakes
        );
        // Another address is not affected.
        let _c = limits.try_admit(v4(2), now).unwrap();
        a.finish(Outcome::Admitted);
        let _d = limits.try_admit(v4(1), now).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn failures_block_for_the_window_then_the_bucket_is_full() {
        let limits = PerIp::new(config(8, 3, 60));
        for _ in 0..3 {
            let attempt = limits.try_admit(v4(1), Instant::now()).unwrap();
            attempt.finish(Outcome::Failed);
        }
        assert_eq!(
            limits.try_admit(v4(1), Instant::now()).unwrap_err(),
            Refusal::Failures
        );
        // A token regained after 20 s does not lift the block.
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(
            limits.try_admit(v4(1), Instant::now()).unwrap_err(),
            Refusal::Failures
        );
        tokio::time::advance(Duration::from_secs(31)).await;
        for _ in 0..3 {
            limits
                .try_admit(v4(1), Instant::now())
                .unwrap()
                .finish(Outcome::Failed);
        }
        assert!(limits.try_admit(v4(1), Instant::now()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_attempts_cannot_overshoot_the_budget() {
        let limits = PerIp::new(config(8, 3, 60));
        let now = Instant::now();
        let held: Vec<_> = (0..3)
            .map(|_| limits.try_admit(v4(1), now).unwrap())
            .collect();
        // Every token is held by a connection in the handshake.
        assert_eq!(limits.try_admit(v4(1), now).unwrap_err(), Refusal::Failures);
        let mut held = held.into_iter();
        held.next().unwrap().finish(Outcome::Admitted);
        held.next().unwrap().finish(Outcome::Failed);
        drop(held.next());
        // Two tokens back (admitted, gone); one spent.
        let _x = limits.try_admit(v4(1), now).unwrap();
        let _y = limits.try_admit(v4(1), now).unwrap();
        assert!(limits.try_admit(v4(1), now).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn successes_do_not_reset_failures_and_idle_entries_leave() {
        let limits = PerIp::new(config(8, 2, 60));
        let now = Instant::now();
        limits
            .try_admit(v4(1), now)
            .unwrap()
            .finish(Outcome::Failed);
        limits
            .try_admit(v4(1), now)
            .unwrap()
            .finish(Outcome::Admitted);
        assert_eq!(limits.tracked(), 1, "one failure is remembered");
        limits
            .try_admit(v4(1), now)
            .unwrap()
            .finish(Outcome::Failed);
        assert!(limits.try_admit(v4(1), now).is_err());
        // A clean address leaves the table as soon as its handshake ends.
        limits
            .try_admit(v4(2), now)
            .unwrap()
            .finish(Outcome::Admitted);
        assert_eq!(limits.tracked(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_is_keyed_by_its_64_prefix_and_mapped_v4_as_v4() {
        let limits = PerIp::new(config(1, 10, 60));
        let now = Instant::now();
        let host = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, last));
        let _a = limits.try_admit(host(1), now).unwrap();
        assert!(limits.try_admit(host(2), now).is_err(), "same /64");
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        let _b = limits.try_admit(other, now).unwrap();
        let _c = limits.try_admit(v4(0x7f00_0001), now).unwrap();
        let mapped = IpAddr::V6(Ipv4Addr::from(0x7f00_0001).to_ipv6_mapped());
        assert!(limits.try_admit(mapped, now).is_err(), "mapped v4 is v4");
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_stays_bounded_and_a_full_table_locks_nobody_out() {
        let capacity = 1000;
        let limits = PerIp::with_capacity(config(8, 2, 60), capacity);
        // Many addresses each fail once: each is remembered.
        for n in 0..5 * capacity {
            let n = u32::try_from(n).unwrap();
            if let Ok(attempt) = limits.try_admit(v4(n), Instant::now()) {
                attempt.finish(Outcome::Failed);
            }
            assert!(limits.tracked() <= capacity);
        }
        assert_eq!(limits.tracked(), capacity);
        // A new address is still admitted (untracked) while the table is full.
        let fresh = v4(u32::MAX);
        for _ in 0..5 {
            limits
                .try_admit(fresh, Instant::now())
                .expect("a full table refuses nobody new")
                .finish(Outcome::Failed);
        }
        // The tracked ones stay limited: address 0 failed once, may fail once more.
        limits
            .try_admit(v4(0), Instant::now())
            .unwrap()
            .finish(Outcome::Failed);
        assert!(limits.try_admit(v4(0), Instant::now()).is_err());
        // Once the failures have refilled, a sweep frees the table for new addresses.
        tokio::time::advance(Duration::from_secs(61)).await;
        limits
            .try_admit(fresh, Instant::now())
            .unwrap()
            .finish(Outcome::Failed);
        assert_eq!(limits.tracked(), 1, "only the fresh address is remembered");
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_limits_admit_everything() {
        let limits = PerIp::new(PerIpConfig {
            max_handshakes: 0,
            failures: None,
        });
        let now = Instant::now();
        let held: Vec<_> = (0..100)
            .map(|_| limits.try_admit(v4(1), now).unwrap())
            .collect();
        for attempt in held {
            attempt.finish(Outcome::Failed);
        }
        assert!(limits.try_admit(v4(1), now).is_ok());
        assert_eq!(limits.tracked(), 0);
    }
}
