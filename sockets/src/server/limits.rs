//! Admission before authentication: the slots for connections still in the
//! handshake, and the per-address limits on them.
//!
//! **Slots.** At most `max_handshakes` connections may be between the TCP
//! accept and authentication at once. When all are taken, a connection from
//! an address holding fewer slots than another takes one from it (fair
//! admission): the oldest handshake of the address holding the most is
//! closed with 4007 "server busy", provided that address holds at least two
//! more than the newcomer. So an address holding nothing is refused only
//! when every slot is held by a different address. Within its share, each
//! address (an IPv4 address, or the /64 prefix of an IPv6 address: one host
//! usually holds a whole /64) holds at most `max_handshakes_per_ip` slots.
//!
//! **Failure budget.** Each address has a token bucket of `count` tokens,
//! refilled at `count` per `per`. Only what ends badly costs tokens:
//! - a failed handshake (wrong secret, tampered or stale HS1, malformed
//!   frames, too many pings) costs one;
//! - an abandoned one (the peer hung up, or its deadline passed, before it
//!   authenticated) costs the share of the handshake timeout it held its
//!   slot for: a health check that connects and hangs up costs next to
//!   nothing, a peer that sits out the whole timeout costs one;
//! - an authenticated session, or a plain HTTP request (a load balancer's
//!   probe: it proves nothing about the secret either way) costs nothing;
//! - a rejection by the auth hook costs nothing here: the peer proved the
//!   secret, and a revoked token is not an attack on it. Rejections have a
//!   budget of their own (the **rejection budget**, same rules, its own
//!   `count` per `per` and its own refusal reason), which bounds how fast a
//!   holder of the secret can guess at credentials from one address.
//!
//! When less than a whole token is left, every connection from the address is refused at
//! the accept for a whole `per`, with the time left in the reason. Tokens
//! are not held while a handshake runs, so the budget never limits how many
//! good clients may connect at once: `max_handshakes_per_ip` alone does. (A
//! burst of concurrent failures may therefore spend up to that many tokens
//! past the budget; the debt lengthens the lockout.) Authenticating does not
//! refund: a client that knows the secret cannot interleave sessions with
//! guesses at the auth hook's credentials to escape the budget.
//!
//! Refusals are decided at the TCP accept, before the peer has sent anything,
//! so a limited address learns nothing from what it sends.
//!
//! Memory is bounded: at most [`MAX_TRACKED`] addresses are tracked (a few
//! MiB). An address leaves the table as soon as it holds no slot and its
//! bucket is full again; those that merely refilled with time are swept when
//! the table is full. If the table is still full (an attacker controlling
//! more than [`MAX_TRACKED`] addresses or /64 prefixes), a new address is
//! admitted **untracked**, under the global cap alone: refusing it instead
//! would let such an attacker lock every other client out.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::protocol::Reason;

/// The most addresses tracked at once.
pub(crate) const MAX_TRACKED: usize = 65_536;

/// How often a full table may be swept of idle entries (each sweep walks it).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// When every slot is taken and no address holds two more than a newcomer,
/// a handshake that has lasted this share of the handshake timeout may still
/// give its slot up: a good client needs a few round trips, not seconds.
const STALLED_SHARE: u32 = 4;

/// How fast an address's pressure fades: it halves every this long.
const PRESSURE_HALF_LIFE: Duration = Duration::from_secs(10);

/// Pressure that counts as quiet whatever the others': a client refused a
/// few times and retrying with backoff, not one that reconnects in a loop.
const QUIET: f64 = 4.0;

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
    /// Credentials rejected by the auth hook per address; `None`: no limit.
    pub(crate) rejections: Option<FailureLimit>,
}

impl Default for PerIpConfig {
    fn default() -> Self {
        Self {
            max_handshakes: 8,
            failures: Some(FailureLimit {
                count: 10,
                per: Duration::from_secs(60),
            }),
            rejections: Some(FailureLimit {
                count: 30,
                per: Duration::from_secs(60),
            }),
        }
    }
}

/// Everything admission needs to know.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdmissionConfig {
    /// Slots for connections before authentication, in all.
    pub(crate) max_handshakes: usize,
    pub(crate) per_ip: PerIpConfig,
    /// What an abandoned handshake's time is measured against.
    pub(crate) handshake_timeout: Duration,
}

/// Why a connection was refused at the accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Every slot is taken, and no address holds enough to give one up.
    Busy,
    /// The address holds `max_handshakes_per_ip` slots already.
    Handshakes,
    /// The address spent its failure budget; refused for this much longer.
    Failures { retry_after: Duration },
    /// The address spent its rejection budget; refused for this much longer.
    Rejections { retry_after: Duration },
}

impl Refusal {
    /// The close reason sent with 4007.
    pub(crate) fn reason(self) -> String {
        match self {
            Self::Busy => Reason::TooManyHandshakes.text().into(),
            Self::Handshakes => Reason::TooManyHandshakesFromAddress.text().into(),
            Self::Failures { retry_after } => retry_in(Reason::TooManyFailures, retry_after),
            Self::Rejections { retry_after } => retry_in(Reason::TooManyRejections, retry_after),
        }
    }
}

/// `reason` followed by "; retry in N s".
fn retry_in(reason: Reason, retry_after: Duration) -> String {
    // Whole seconds, rounded up: "retry in 0 s" would be a lie.
    let seconds = retry_after.as_millis().div_ceil(1000);
    format!("{}; retry in {seconds} s", reason.text())
}

/// How a connection's time before authentication ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Authenticated, admitted as a guest, or a plain HTTP request answered:
    /// nothing to charge.
    Settled,
    /// A failed handshake: one token.
    Failed,
    /// Credentials the auth hook rejected: one token of the rejection budget.
    Rejected,
    /// The peer went away, or its deadline passed, before the end: charged
    /// for the time it held its slot.
    Abandoned,
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

/// One slot held by an address: the ticket that finds it again, when it
/// was taken, and the way to tell its holder to give it up.
#[derive(Debug)]
struct Held {
    ticket: u64,
    started: Instant,
    preempt: oneshot::Sender<()>,
}

/// A token bucket of one budget: `count` tokens refilled at `count` per `per`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    /// Once less than a whole token is left: refused until then.
    blocked_until: Option<Instant>,
}

impl Bucket {
    fn full(limit: Option<FailureLimit>) -> Self {
        Self {
            tokens: limit.map_or(0.0, FailureLimit::capacity),
            blocked_until: None,
        }
    }

    fn refill(&mut self, elapsed: f64, now: Instant, limit: Option<FailureLimit>) {
        if let Some(limit) = limit {
            self.tokens = (self.tokens + elapsed * limit.rate()).min(limit.capacity());
        }
        if self.blocked_until.is_some_and(|until| now >= until) {
            self.blocked_until = None;
        }
    }

    /// Spends `charge` tokens; blocks for a window once less than a whole
    /// token is left (call after `refill`).
    fn charge(&mut self, charge: f64, now: Instant, limit: Option<FailureLimit>) {
        if let Some(limit) = limit
            && charge > 0.0
        {
            self.tokens -= charge;
            if self.tokens < 1.0 && self.blocked_until.is_none() {
                self.blocked_until = Some(now + limit.per);
            }
        }
    }

    /// Full and not blocking (call after `refill`).
    fn idle(&self, limit: Option<FailureLimit>) -> bool {
        self.blocked_until.is_none() && limit.is_none_or(|limit| self.tokens >= limit.capacity())
    }
}

#[derive(Debug)]
struct Entry {
    /// The slots this address holds, oldest first.
    held: VecDeque<Held>,
    /// The failure budget.
    failures: Bucket,
    /// The rejection budget.
    rejections: Bucket,
    /// How often the address asked for a slot while all were taken, fading
    /// with [`PRESSURE_HALF_LIFE`]: a client retrying with backoff stays
    /// low, a flood runs high.
    pressure: f64,
    refilled: Instant,
}

impl Entry {
    fn new(now: Instant, config: &PerIpConfig) -> Self {
        Self {
            held: VecDeque::new(),
            failures: Bucket::full(config.failures),
            rejections: Bucket::full(config.rejections),
            pressure: 0.0,
            refilled: now,
        }
    }

    /// The pressure at `now`, without updating the entry.
    fn pressure_at(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.pressure * 0.5f64.powf(elapsed / PRESSURE_HALF_LIFE.as_secs_f64())
    }

    fn refill(&mut self, now: Instant, config: &PerIpConfig) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.failures.refill(elapsed, now, config.failures);
        self.rejections.refill(elapsed, now, config.rejections);
        self.pressure = self.pressure_at(now);
        self.refilled = now;
    }

    /// Spends `charge` tokens of the failure budget (call after `refill`).
    fn charge(&mut self, charge: f64, now: Instant, config: &PerIpConfig) {
        self.failures.charge(charge, now, config.failures);
    }

    /// Why the address is refused now, if it is (call after `refill`).
    fn refusal(&self, now: Instant) -> Option<Refusal> {
        let left = |until: Instant| until.saturating_duration_since(now);
        if let Some(until) = self.failures.blocked_until {
            return Some(Refusal::Failures {
                retry_after: left(until),
            });
        }
        self.rejections
            .blocked_until
            .map(|until| Refusal::Rejections {
                retry_after: left(until),
            })
    }

    /// Holds nothing worth remembering (call after `refill`).
    fn idle(&self, config: &PerIpConfig) -> bool {
        self.held.is_empty()
            && self.pressure < 0.5
            && self.failures.idle(config.failures)
            && self.rejections.idle(config.rejections)
    }
}

#[derive(Debug)]
struct Table {
    /// Slots taken, tracked or not.
    total: usize,
    entries: HashMap<Key, Entry>,
    /// The addresses holding slots now (at most `max_handshakes`): where a
    /// slot is looked for when all are taken, without walking `entries`.
    holders: HashSet<Key>,
    next_sweep: Instant,
    next_ticket: u64,
}

/// The admission state of one server.
#[derive(Debug)]
pub(crate) struct Admission {
    config: AdmissionConfig,
    capacity: usize,
    table: Mutex<Table>,
}

impl Admission {
    pub(crate) fn new(config: AdmissionConfig) -> Arc<Self> {
        Self::with_capacity(config, MAX_TRACKED)
    }

    fn with_capacity(config: AdmissionConfig, capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            config,
            capacity,
            table: Mutex::new(Table {
                total: 0,
                entries: HashMap::new(),
                holders: HashSet::new(),
                next_sweep: Instant::now(),
                next_ticket: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections holding a slot now.
    pub(crate) fn in_progress(&self) -> usize {
        self.lock().total
    }

    /// Gives a connection from `ip` a slot, or refuses it.
    ///
    /// A peer without an IP address (a Unix socket, a stream of the
    /// application's) is admitted untracked: under the global cap alone.
    pub(crate) fn try_admit(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<Attempt, Refusal> {
        let per_ip = &self.config.per_ip;
        let mut table = self.lock();
        let table = &mut *table;
        let Some(ip) = ip else {
            self.take_slot(table, 0, 0.0, now)?;
            return Ok(self.attempt(None, 0, now, None));
        };
        let key = Key::of(ip);
        if !table.entries.contains_key(&key) && table.entries.len() >= self.capacity {
            if now >= table.next_sweep {
                table.entries.retain(|_, entry| {
                    entry.refill(now, per_ip);
                    !entry.idle(per_ip)
                });
                table.next_sweep = now + SWEEP_INTERVAL;
            }
            if table.entries.len() >= self.capacity {
                tracing::debug!(%ip, "per-address table full: admitted untracked");
                self.take_slot(table, 0, 0.0, now)?;
                return Ok(self.attempt(None, 0, now, None));
            }
        }
        let entry = table
            .entries
            .entry(key)
            .or_insert_with(|| Entry::new(now, per_ip));
        entry.refill(now, per_ip);
        if let Some(refusal) = entry.refusal(now) {
            return Err(refusal);
        }
        let holds = entry.held.len();
        if per_ip.max_handshakes > 0 && holds >= per_ip.max_handshakes {
            return Err(Refusal::Handshakes);
        }
        let pressure = entry.pressure;
        if table.total >= self.config.max_handshakes {
            entry.pressure += 1.0;
        }
        self.take_slot(table, holds, pressure, now)?;
        table.next_ticket += 1;
        let ticket = table.next_ticket;
        let (tx, rx) = oneshot::channel();
        if let Some(entry) = table.entries.get_mut(&key) {
            entry.held.push_back(Held {
                ticket,
                started: now,
                preempt: tx,
            });
            table.holders.insert(key);
        }
        Ok(self.attempt(Some(key), ticket, now, Some(rx)))
    }

    /// Takes a slot for an address that holds `holds` and is under
    /// `pressure`: a free one, or one given up by another address. When
    /// every slot is taken:
    /// 1. the oldest handshake of the address holding the most gives its
    ///    slot up, if that address holds at least two more;
    /// 2. failing that, a handshake that has lasted a quarter of the timeout
    ///    does, from an address holding more than `holds` and under at
    ///    least as much pressure, unless the newcomer is quiet (the most
    ///    pressed first, then the oldest): a flood of reconnects cannot
    ///    outrun a client that waits its turn.
    ///
    /// The one that gives up is told to close (4007 "server busy") and its
    /// address is charged for the time it held the slot.
    fn take_slot(
        &self,
        table: &mut Table,
        holds: usize,
        pressure: f64,
        now: Instant,
    ) -> Result<(), Refusal> {
        if table.total < self.config.max_handshakes {
            table.total += 1;
            return Ok(());
        }
        let stalled = self.config.handshake_timeout / STALLED_SHARE;
        let mut hog: Option<(Key, usize)> = None;
        let mut stalling: Option<(Key, f64, Instant)> = None;
        for key in &table.holders {
            let Some(entry) = table.entries.get(key) else {
                continue;
            };
            let held = entry.held.len();
            if held >= holds + 2 && hog.is_none_or(|(_, most)| held > most) {
                hog = Some((*key, held));
            }
            let Some(first) = entry.held.front() else {
                continue;
            };
            let pressed = entry.pressure_at(now);
            let candidate = held > holds
                && pressure <= pressed.max(QUIET)
                && now.saturating_duration_since(first.started) >= stalled;
            let better = stalling.is_none_or(|(_, most, oldest)| {
                pressed > most || (pressed == most && first.started < oldest)
            });
            if candidate && better {
                stalling = Some((*key, pressed, first.started));
            }
        }
        let victim = match (hog, stalling) {
            (Some((key, _)), _) | (None, Some((key, _, _))) => key,
            (None, None) => return Err(Refusal::Busy),
        };
        let per_ip = self.config.per_ip;
        if let Some(entry) = table.entries.get_mut(&victim)
            && let Some(held) = entry.held.pop_front()
        {
            // Its holder closes with "server busy" and finds its slot gone.
            let _ = held.preempt.send(());
            entry.refill(now, &per_ip);
            let charge = self.abandoned_charge(held.started, now);
            entry.charge(charge, now, &per_ip);
            if entry.held.is_empty() {
                table.holders.remove(&victim);
            }
        }
        Ok(())
    }

    /// What an abandoned handshake costs: the share of the timeout it lasted.
    fn abandoned_charge(&self, started: Instant, now: Instant) -> f64 {
        let held = now.saturating_duration_since(started).as_secs_f64();
        let timeout = self.config.handshake_timeout.as_secs_f64().max(1e-3);
        (held / timeout).min(1.0)
    }

    fn attempt(
        self: &Arc<Self>,
        key: Option<Key>,
        ticket: u64,
        now: Instant,
        preempted: Option<oneshot::Receiver<()>>,
    ) -> Attempt {
        Attempt {
            admission: Some(Arc::clone(self)),
            key,
            ticket,
            started: now,
            preempted,
        }
    }

    fn finish(
        &self,
        key: Option<Key>,
        ticket: u64,
        outcome: Outcome,
        started: Instant,
        now: Instant,
    ) {
        let per_ip = &self.config.per_ip;
        let mut table = self.lock();
        let table = &mut *table;
        let Some(key) = key else {
            table.total = table.total.saturating_sub(1);
            return;
        };
        let Some(entry) = table.entries.get_mut(&key) else {
            return;
        };
        let Some(at) = entry.held.iter().position(|held| held.ticket == ticket) else {
            // Preempted: its slot went to another address, which charged it.
            return;
        };
        entry.held.remove(at);
        entry.refill(now, per_ip);
        match outcome {
            Outcome::Settled => {}
            Outcome::Failed => entry.charge(1.0, now, per_ip),
            Outcome::Abandoned => entry.charge(self.abandoned_charge(started, now), now, per_ip),
            Outcome::Rejected => entry.rejections.charge(1.0, now, per_ip.rejections),
        }
        if entry.held.is_empty() {
            table.holders.remove(&key);
        }
        if entry.idle(per_ip) {
            table.entries.remove(&key);
        }
        table.total = table.total.saturating_sub(1);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().entries.len()
    }
}

/// One connection's slot, from the accept to authentication. Dropped
/// without [`Attempt::finish`], it counts as [`Outcome::Abandoned`].
#[derive(Debug)]
pub(crate) struct Attempt {
    admission: Option<Arc<Admission>>,
    key: Option<Key>,
    ticket: u64,
    started: Instant,
    preempted: Option<oneshot::Receiver<()>>,
}

impl Attempt {
    /// Resolves if another address took this slot (fair admission); never otherwise.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(crate) async fn preempted(&mut self) {
        if let Some(preempted) = &mut self.preempted {
            let told = preempted.await.is_ok();
            // A finished receiver must not be polled again.
            self.preempted = None;
            if told {
                return;
            }
        }
        std::future::pending().await
    }

    /// Ends the time before authentication with `outcome`.
    pub(crate) fn finish(mut self, outcome: Outcome) {
        self.end(outcome);
    }

    fn end(&mut self, outcome: Outcome) {
        if let Some(admission) = self.admission.take() {
            admission.finish(self.key, self.ticket, outcome, self.started, Instant::now());
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.end(Outcome::Abandoned);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn config(max_handshakes: usize, count: u32, per_secs: u64) -> AdmissionConfig {
        AdmissionConfig {
            max_handshakes: 256,
            per_ip: PerIpConfig {
                max_handshakes,
                failures: Some(FailureLimit {
                    count,
                    per: Duration::from_secs(per_secs),
                }),
                rejections: None,
            },
            handshake_timeout: TIMEOUT,
        }
    }

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_handshakes_are_capped_per_address() {
        let limits = Admission::new(config(2, 10, 60));
        let now = Instant::now();
        let a = limits.try_admit(Some(v4(1)), now).unwrap();
        let _b = limits.try_admit(Some(v4(1)), now).unwrap();
        assert_eq!(
            limits.try_admit(Some(v4(1)), now).unwrap_err(),
            Refusal::Handshakes
        );
        // Another address is not affected.
        let _c = limits.try_admit(Some(v4(2)), now).unwrap();
        a.finish(Outcome::Settled);
        let _d = limits.try_admit(Some(v4(1)), now).unwrap();
        assert_eq!(limits.in_progress(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_failure_budget_does_not_cap_concurrent_good_handshakes() {
        // Ten failures per minute, no per-address cap: 200 at once all get in.
        let limits = Admission::new(config(0, 10, 60));
        let now = Instant::now();
        let held: Vec<_> = (0..200)
            .map(|_| limits.try_admit(Some(v4(1)), now).unwrap())
            .collect();
        assert_eq!(limits.in_progress(), 200);
        for attempt in held {
            attempt.finish(Outcome::Settled);
        }
        assert_eq!(limits.in_progress(), 0);
        assert_eq!(limits.tracked(), 0, "good handshakes leave nothing behind");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_block_for_the_window_and_say_how_long() {
        let limits = Admission::new(config(8, 3, 60));
        for _ in 0..3 {
            let attempt = limits.try_admit(Some(v4(1)), Instant::now()).unwrap();
            attempt.finish(Outcome::Failed);
        }
        let refusal = limits.try_admit(Some(v4(1)), Instant::now()).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Failures {
                retry_after: Duration::from_secs(60)
            }
        );
        assert_eq!(
            refusal.reason(),
            "too many failed handshakes from this address; retry in 60 s"
        );
        // Tokens regained meanwhile do not lift the block.
        tokio::time::advance(Duration::from_millis(30_500)).await;
        let refusal = limits.try_admit(Some(v4(1)), Instant::now()).unwrap_err();
        assert_eq!(
            refusal.reason(),
            "too many failed handshakes from this address; retry in 30 s"
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        for _ in 0..3 {
            limits
                .try_admit(Some(v4(1)), Instant::now())
                .unwrap()
                .finish(Outcome::Failed);
        }
        assert!(limits.try_admit(Some(v4(1)), Instant::now()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_failures_overshoot_by_at_most_the_per_address_cap() {
        let limits = Admission::new(config(4, 2, 60));
        let now = Instant::now();
        let held: Vec<_> = (0..4)
            .map(|_| limits.try_admit(Some(v4(1)), now).unwrap())
            .collect();
        for attempt in held {
            attempt.finish(Outcome::Failed);
        }
        // Two over budget: the block lasts the window, and the debt is
        // still being repaid when it ends.
        tokio::time::advance(Duration::from_secs(61)).await;
        limits
            .try_admit(Some(v4(1)), Instant::now())
            .unwrap()
            .finish(Outcome::Failed);
        assert!(limits.try_admit(Some(v4(1)), Instant::now()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_handshakes_cost_the_time_they_held_their_slot() {
        let limits = Admission::new(config(8, 2, 60));
        // Probes that connect and hang up at once: a hundred cost nothing much.
        for _ in 0..100 {
            drop(limits.try_admit(Some(v4(1)), Instant::now()).unwrap());
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert!(limits.try_admit(Some(v4(1)), Instant::now()).is_ok());
        // Peers that sit out the timeout cost a token each: two exhaust
        // the budget of two (the 1/3 token refilled meanwhile is not a
        // whole failure).
        for _ in 0..2 {
            let attempt = limits.try_admit(Some(v4(2)), Instant::now()).unwrap();
            tokio::time::advance(TIMEOUT).await;
            attempt.finish(Outcome::Abandoned);
        }
        assert!(matches!(
            limits.try_admit(Some(v4(2)), Instant::now()),
            Err(Refusal::Failures { .. })
        ));
        // Settled ones (sessions, plain HTTP) cost nothing, however long.
        for _ in 0..10 {
            let attempt = limits.try_admit(Some(v4(3)), Instant::now()).unwrap();
            tokio::time::advance(TIMEOUT).await;
            attempt.finish(Outcome::Settled);
        }
        assert!(limits.try_admit(Some(v4(3)), Instant::now()).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_server_takes_a_slot_from_the_address_holding_the_most() {
        let limits = Admission::new(AdmissionConfig {
            max_handshakes: 4,
            ..config(0, 10, 60)
        });
        let now = Instant::now();
        let mut hog: Vec<_> = (0..3)
            .map(|_| limits.try_admit(Some(v4(1)), now).unwrap())
            .collect();
        let _other = limits.try_admit(Some(v4(2)), now).unwrap();
        // Full. A newcomer takes the oldest slot of address 1.
        let newcomer = limits.try_admit(Some(v4(3)), now).unwrap();
        let oldest = hog.remove(0);
        let mut oldest = oldest;
        tokio::time::timeout(Duration::from_secs(1), oldest.preempted())
            .await
            .expect("the oldest of the hog's handshakes is told to go");
        assert_eq!(limits.in_progress(), 4, "the slot changed hands");
        // Address 1 now holds two, address 3 one: 2 >= 1 + 2 is false, so
        // another newcomer from address 3 is refused...
        assert_eq!(
            limits.try_admit(Some(v4(3)), now).unwrap_err(),
            Refusal::Busy
        );
        // ...but one from a fresh address still gets in.
        let _fresh = limits.try_admit(Some(v4(4)), now).unwrap();
        assert_eq!(limits.in_progress(), 4);
        // The preempted attempt ends without a charge or a second release.
        oldest.finish(Outcome::Abandoned);
        assert_eq!(limits.in_progress(), 4);
        drop(newcomer);
        assert_eq!(limits.in_progress(), 3);
        // Every slot held by a different address: nobody gives one up.
        let _a = limits.try_admit(Some(v4(5)), now).unwrap();
        assert_eq!(
            limits.try_admit(Some(v4(6)), now).unwrap_err(),
            Refusal::Busy
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_handshake_that_stalls_gives_its_slot_to_a_newcomer_and_pays_for_it() {
        let limits = Admission::new(AdmissionConfig {
            max_handshakes: 4,
            ..config(0, 2, 600)
        });
        // Four addresses, one slot each: fairness by count frees nothing.
        let mut held = Vec::new();
        for n in 1..=4 {
            held.push(limits.try_admit(Some(v4(n)), Instant::now()).unwrap());
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        assert_eq!(
            limits.try_admit(Some(v4(5)), Instant::now()).unwrap_err(),
            Refusal::Busy
        );
        // Once they have lasted a quarter of the timeout, they give way,
        // oldest first.
        tokio::time::advance(TIMEOUT / STALLED_SHARE).await;
        let mut newcomers = Vec::new();
        for (n, old) in (5..=8).zip(&mut held) {
            newcomers.push(limits.try_admit(Some(v4(n)), Instant::now()).unwrap());
            tokio::time::timeout(Duration::from_secs(1), old.preempted())
                .await
                .expect("the oldest is told to go");
        }
        assert_eq!(limits.in_progress(), 4);
        // Fresh handshakes do not give way to each other.
        assert_eq!(
            limits.try_admit(Some(v4(9)), Instant::now()).unwrap_err(),
            Refusal::Busy
        );
        drop(newcomers);
        drop(held);

        // An address that keeps asking while all slots are taken takes no
        // stalled slot from a quiet one; a quiet newcomer still does.
        let limits = Admission::new(AdmissionConfig {
            max_handshakes: 1,
            ..config(0, 100, 600)
        });
        let _quiet = limits.try_admit(Some(v4(1)), Instant::now()).unwrap();
        for _ in 0..20 {
            assert_eq!(
                limits.try_admit(Some(v4(2)), Instant::now()).unwrap_err(),
                Refusal::Busy
            );
        }
        tokio::time::advance(TIMEOUT / STALLED_SHARE).await;
        assert_eq!(
            limits.try_admit(Some(v4(2)), Instant::now()).unwrap_err(),
            Refusal::Busy
        );
        let _newcomer = limits.try_admit(Some(v4(3)), Instant::now()).unwrap();

        // Each eviction costs the evicted address the quarter token it held.
        let limits = Admission::new(AdmissionConfig {
            max_handshakes: 1,
            ..config(0, 2, 600)
        });
        for round in 1..=5 {
            let stalling = limits.try_admit(Some(v4(1)), Instant::now()).unwrap();
            tokio::time::advance(TIMEOUT / STALLED_SHARE).await;
            limits
                .try_admit(Some(v4(2)), Instant::now())
                .unwrap()
                .finish(Outcome::Settled);
            // Already charged; finishing the evicted attempt adds nothing.
            stalling.finish(Outcome::Failed);
            let refused = limits.try_admit(Some(v4(1)), Instant::now());
            // Two tokens: four quarters leave one, the fifth leaves less.
            assert_eq!(refused.is_err(), round == 5, "round {round}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn successes_do_not_refund_failures_and_idle_entries_leave() {
        let limits = Admission::new(config(8, 2, 60));
        let now = Instant::now();
        limits
            .try_admit(Some(v4(1)), now)
            .unwrap()
            .finish(Outcome::Failed);
        limits
            .try_admit(Some(v4(1)), now)
            .unwrap()
            .finish(Outcome::Settled);
        assert_eq!(limits.tracked(), 1, "one failure is remembered");
        limits
            .try_admit(Some(v4(1)), now)
            .unwrap()
            .finish(Outcome::Failed);
        assert!(limits.try_admit(Some(v4(1)), now).is_err());
        // A clean address leaves the table as soon as its handshake ends.
        limits
            .try_admit(Some(v4(2)), now)
            .unwrap()
            .finish(Outcome::Settled);
        assert_eq!(limits.tracked(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_is_keyed_by_its_64_prefix_and_mapped_v4_as_v4() {
        let limits = Admission::new(config(1, 10, 60));
        let now = Instant::now();
        let host = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, last));
        let _a = limits.try_admit(Some(host(1)), now).unwrap();
        assert!(limits.try_admit(Some(host(2)), now).is_err(), "same /64");
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        let _b = limits.try_admit(Some(other), now).unwrap();
        let _c = limits.try_admit(Some(v4(0x7f00_0001)), now).unwrap();
        let mapped = IpAddr::V6(Ipv4Addr::from(0x7f00_0001).to_ipv6_mapped());
        assert!(
            limits.try_admit(Some(mapped), now).is_err(),
            "mapped v4 is v4"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_stays_bounded_and_a_full_table_locks_nobody_out() {
        let capacity = 1000;
        let limits = Admission::with_capacity(config(8, 2, 60), capacity);
        // Many addresses each fail once: each is remembered.
        for n in 0..5 * capacity {
            let n = u32::try_from(n).unwrap();
            if let Ok(attempt) = limits.try_admit(Some(v4(n)), Instant::now()) {
                attempt.finish(Outcome::Failed);
            }
            assert!(limits.tracked() <= capacity);
        }
        assert_eq!(limits.tracked(), capacity);
        // A new address is still admitted (untracked) while the table is full.
        let fresh = v4(u32::MAX);
        for _ in 0..5 {
            limits
                .try_admit(Some(fresh), Instant::now())
                .expect("a full table refuses nobody new")
                .finish(Outcome::Failed);
        }
        assert_eq!(limits.in_progress(), 0);
        // The tracked ones stay limited: address 0 failed once, may fail once more.
        limits
            .try_admit(Some(v4(0)), Instant::now())
            .unwrap()
            .finish(Outcome::Failed);
        assert!(limits.try_admit(Some(v4(0)), Instant::now()).is_err());
        // Once the failures have refilled, a sweep frees the table for new addresses.
        tokio::time::advance(Duration::from_secs(61)).await;
        limits
            .try_admit(Some(fresh), Instant::now())
            .unwrap()
            .finish(Outcome::Failed);
        assert_eq!(limits.tracked(), 1, "only the fresh address is remembered");
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_limits_admit_everything_up_to_the_global_cap() {
        let limits = Admission::new(AdmissionConfig {
            max_handshakes: 100,
            per_ip: PerIpConfig {
                max_handshakes: 0,
                failures: None,
                rejections: None,
            },
            handshake_timeout: TIMEOUT,
        });
        let now = Instant::now();
        let held: Vec<_> = (0..100)
            .map(|_| limits.try_admit(Some(v4(1)), now).unwrap())
            .collect();
        assert_eq!(
            limits.try_admit(Some(v4(1)), now).unwrap_err(),
            Refusal::Busy
        );
        for attempt in held {
            attempt.finish(Outcome::Failed);
        }
        assert!(limits.try_admit(Some(v4(1)), now).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn auth_rejections_spend_their_own_budget_not_the_failure_budget() {
        let mut config = config(8, 2, 60);
        config.per_ip.rejections = Some(FailureLimit {
            count: 3,
            per: Duration::from_secs(30),
        });
        let limits = Admission::new(config);
        let now = Instant::now();
        // Two rejections: the failure budget (2) would be spent by now.
        for _ in 0..2 {
            limits
                .try_admit(Some(v4(1)), now)
                .unwrap()
                .finish(Outcome::Rejected);
        }
        // The failure budget is whole: a failure still gets through.
        limits
            .try_admit(Some(v4(1)), now)
            .unwrap()
            .finish(Outcome::Settled);
        // The third rejection leaves less than a token: refused, saying for how long.
        limits
            .try_admit(Some(v4(1)), now)
            .unwrap()
            .finish(Outcome::Rejected);
        let refusal = limits.try_admit(Some(v4(1)), now).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Rejections {
                retry_after: Duration::from_secs(30)
            }
        );
        assert_eq!(
            refusal.reason(),
            "too many rejected credentials from this address; retry in 30 s"
        );
        // Another address is not affected; the window lifts the refusal.
        assert!(limits.try_admit(Some(v4(2)), now).is_ok());
        let later = now + Duration::from_secs(30);
        assert!(limits.try_admit(Some(v4(1)), later).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_rejection_budget_rejections_cost_nothing() {
        let limits = Admission::new(config(8, 1, 60));
        let now = Instant::now();
        for _ in 0..50 {
            limits
                .try_admit(Some(v4(1)), now)
                .unwrap()
                .finish(Outcome::Rejected);
        }
        assert!(limits.try_admit(Some(v4(1)), now).is_ok());
    }
}
