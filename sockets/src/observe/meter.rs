//! One side's metric handles, and the record of one call: its span, its
//! in-flight count, its clock.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use metrics::{Counter, Gauge, Histogram};
use tracing::Span;

use super::{CALL_SPAN, CallOutcome, Direction, Side, names};

/// Methods counted per direction before further ones count as `other`: a
/// bound on the series a program calling `Peer::call` with made-up names
/// could create.
const MAX_METHODS: usize = 1024;

/// One side's metric handles: made when the server or client is built, so
/// the hot path touches handles, not the recorder's registry.
pub(crate) struct Meter {
    side: Side,
    connections_open: Gauge,
    connections_total: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    heartbeat_rtt: Histogram,
    in_flight_in: Gauge,
    in_flight_out: Gauge,
    streams_in: Gauge,
    streams_out: Gauge,
    methods_in: MethodTable,
    methods_out: MethodTable,
}

impl Meter {
    /// The handles of one side, from the recorder installed now.
    pub(crate) fn new(side: Side) -> Self {
        Self {
            side,
            connections_open: metrics::gauge!(names::CONNECTIONS_OPEN),
            connections_total: metrics::counter!(names::CONNECTIONS_TOTAL, "side" => side.label()),
            bytes_in: metrics::counter!(names::BYTES_TOTAL, "direction" => "in"),
            bytes_out: metrics::counter!(names::BYTES_TOTAL, "direction" => "out"),
            heartbeat_rtt: metrics::histogram!(names::HEARTBEAT_RTT_SECONDS),
            in_flight_in: metrics::gauge!(names::CALLS_IN_FLIGHT, "direction" => "in"),
            in_flight_out: metrics::gauge!(names::CALLS_IN_FLIGHT, "direction" => "out"),
            streams_in: metrics::gauge!(names::STREAMS_OPEN, "direction" => "in"),
            streams_out: metrics::gauge!(names::STREAMS_OPEN, "direction" => "out"),
            methods_in: MethodTable::new(Direction::In),
            methods_out: MethodTable::new(Direction::Out),
        }
    }

    /// The gauge of the streams open in `direction`: `In`, the peer opened
    /// them (we send their items); `Out`, we did.
    pub(crate) fn streams_open(&self, direction: Direction) -> Gauge {
        match direction {
            Direction::In => self.streams_in.clone(),
            Direction::Out => self.streams_out.clone(),
        }
    }

    pub(crate) fn side(&self) -> Side {
        self.side
    }

    /// A connection was established; [`Meter::connection_closed`] when it ends.
    pub(crate) fn connection_opened(&self) {
        self.connections_open.increment(1.0);
        self.connections_total.increment(1);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.decrement(1.0);
    }

    /// Bytes of frames received.
    pub(crate) fn bytes_in(&self, n: usize) {
        self.bytes_in.increment(n as u64);
    }

    /// Bytes of frames sent.
    pub(crate) fn bytes_out(&self, n: usize) {
        self.bytes_out.increment(n as u64);
    }

    /// A heartbeat round trip.
    pub(crate) fn rtt(&self, rtt: Duration) {
        self.heartbeat_rtt.record(rtt.as_secs_f64());
    }

    fn in_flight(&self, direction: Direction) -> &Gauge {
        match direction {
            Direction::In => &self.in_flight_in,
            Direction::Out => &self.in_flight_out,
        }
    }

    /// Starts observing a call that started at `started` (a time the
    /// caller read anyway: the frame's arrival, the deadline's base): its
    /// span (a child of `parent`), its in-flight count. End it with
    /// [`CallRecord::finish`]; dropped unfinished, it ends as `cancelled`.
    ///
    /// The record borrows the method's handles from this meter: starting
    /// and ending it touches no lock and no reference count, which calls
    /// on other threads would contend for. [`CallRecord::detach`] makes one
    /// that can move into a task.
    // A `Cow`, not a `&str`: a `'static` name (every generated client's,
    // every served method's) becomes a label without a copy.
    #[allow(clippy::ptr_arg)]
    pub(crate) fn call(
        &self,
        parent: &Span,
        method: &Cow<'static, str>,
        id: u64,
        direction: Direction,
        timeout_ms: Option<u32>,
        started: Instant,
    ) -> CallRecord<'_> {
        let span = tracing::debug_span!(
            parent: parent,
            CALL_SPAN,
            method = %method,
            id,
            direction = direction.label(),
            timeout_ms,
            outcome = tracing::field::Empty,
            duration_us = tracing::field::Empty,
        );
        let in_flight = self.in_flight(direction).clone();
        in_flight.increment(1.0);
        let methods = match direction {
            Direction::In => &self.methods_in,
            Direction::Out => &self.methods_out,
        };
        CallRecord {
            meter: methods.find(method),
            in_flight,
            span,
            started,
            done: false,
        }
    }
}

/// Methods whose handles are found without a lock: slots of an
/// open-addressed table, each set once. Programs call a few dozen methods at
/// most; the rest go to [`MethodTable::overflow`].
const SLOTS: usize = 64;

/// The handles of each method in one direction, by name, looked up once per
/// call.
///
/// The first [`SLOTS`] methods take a slot each: a name hashes to its first
/// slot and probes on, and a slot, once set, never changes. So a lookup reads
/// slots (shared cache lines, no writes) until it finds its name, or sets the
/// first empty one; two threads setting one slot at once agree on its name
/// through the slot's `OnceLock`, and the loser probes on. Every name
/// follows one probe order, so it is set in one slot at most. Later methods
/// go to a locked map, up to [`MAX_METHODS`] in all.
struct MethodTable {
    direction: Direction,
    /// Made at the first call: a side that never calls holds none.
    slots: OnceLock<Box<[OnceLock<Arc<MethodMeter>>]>>,
    overflow: RwLock<Methods>,
}

/// The handles of the methods beyond the slots. Hashed with FNV-1a,
/// several times cheaper than SipHash for names this short; the keys are
/// method names, not chosen by peers (module docs).
type Methods = HashMap<Cow<'static, str>, Arc<MethodMeter>, BuildHasherDefault<Fnv>>;

impl MethodTable {
    fn new(direction: Direction) -> Self {
        Self {
            direction,
            slots: OnceLock::new(),
            overflow: RwLock::default(),
        }
    }

    /// The handles of `method`, made at its first call.
    #[allow(clippy::ptr_arg)] // as for `Meter::call`
    fn find(&self, method: &Cow<'static, str>) -> Held<'_> {
        let slots = self
            .slots
            .get_or_init(|| (0..SLOTS).map(|_| OnceLock::new()).collect());
        let mut hasher = Fnv::default();
        hasher.write(method.as_bytes());
        // In range: the remainder of a division by SLOTS.
        let first = (hasher.finish() % SLOTS as u64) as usize;
        for probe in 0..SLOTS {
            let slot = &slots[(first + probe) % SLOTS];
            let meter =
                slot.get_or_init(|| Arc::new(MethodMeter::new(method.clone(), self.direction)));
            if meter.method == *method {
                return Held::Borrowed(meter);
            }
        }
        Held::Owned(self.overflowed(method))
    }

    /// The handles of a method beyond the slots.
    #[allow(clippy::ptr_arg)] // as for `Meter::call`
    fn overflowed(&self, method: &Cow<'static, str>) -> Arc<MethodMeter> {
        if let Some(found) = read(&self.overflow).get(method.as_ref()) {
            return Arc::clone(found);
        }
        let mut methods = self.overflow.write().unwrap_or_else(|p| p.into_inner());
        let name = if methods.len() < MAX_METHODS - SLOTS {
            method.clone()
        } else {
            Cow::Borrowed("other")
        };
        let made = methods
            .entry(name.clone())
            .or_insert_with(|| Arc::new(MethodMeter::new(name, self.direction)));
        Arc::clone(made)
    }

    /// The methods with handles, for tests.
    #[cfg(test)]
    fn names(&self) -> Vec<String> {
        let slotted = self.slots.get().into_iter().flat_map(|slots| {
            slots
                .iter()
                .filter_map(|slot| slot.get().map(|meter| meter.method.to_string()))
        });
        let mut names: Vec<String> = slotted
            .chain(read(&self.overflow).keys().map(|name| name.to_string()))
            .collect();
        names.sort();
        names
    }
}

/// A method's handles as a call record holds them: borrowed from its
/// side's [`Meter`], or shared, for a record that outlives the borrow.
enum Held<'a> {
    Borrowed(&'a Arc<MethodMeter>),
    Owned(Arc<MethodMeter>),
}

impl Held<'_> {
    fn get(&self) -> &MethodMeter {
        match self {
            Held::Borrowed(meter) => meter,
            Held::Owned(meter) => meter,
        }
    }
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

/// The handles of one method in one direction. The call counters are made
/// per outcome when it first happens, so only outcomes that happened show.
struct MethodMeter {
    method: Cow<'static, str>,
    direction: Direction,
    calls: [OnceLock<Counter>; CallOutcome::COUNT],
    duration: Histogram,
}

impl MethodMeter {
    fn new(method: Cow<'static, str>, direction: Direction) -> Self {
        let duration = metrics::histogram!(
            names::CALL_DURATION_SECONDS,
            "method" => method.clone(),
            "direction" => direction.label()
        );
        Self {
            method,
            direction,
            calls: Default::default(),
            duration,
        }
    }

    fn ended(&self, outcome: CallOutcome, took: Duration) {
        let counter = self.calls[outcome.index()].get_or_init(|| {
            metrics::counter!(
                names::CALLS_TOTAL,
                "method" => self.method.clone(),
                "direction" => self.direction.label(),
                "outcome" => outcome.label()
            )
        });
        counter.increment(1);
        self.duration.record(took.as_secs_f64());
    }
}

/// One call being observed; see [`Meter::call`].
pub(crate) struct CallRecord<'a> {
    meter: Held<'a>,
    in_flight: Gauge,
    span: Span,
    started: Instant,
    done: bool,
}

impl<'a> CallRecord<'a> {
    /// The same record, holding its method's handles itself, so that it
    /// can move into a task of its own.
    pub(crate) fn detach(mut self) -> CallRecord<'static> {
        let meter = match &self.meter {
            Held::Borrowed(meter) => Arc::clone(meter),
            Held::Owned(meter) => Arc::clone(meter),
        };
        // Ends as this record would have; this one is spent.
        self.done = true;
        CallRecord {
            meter: Held::Owned(meter),
            in_flight: self.in_flight.clone(),
            span: std::mem::replace(&mut self.span, Span::none()),
            started: self.started,
            done: false,
        }
    }

    /// The call's span, to run its handler in.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// The call ended with `outcome`: counted, timed, recorded in its span.
    pub(crate) fn finish(mut self, outcome: CallOutcome) {
        self.end(outcome);
    }

    fn end(&mut self, outcome: CallOutcome) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let took = self.started.elapsed();
        self.in_flight.decrement(1.0);
        self.meter.get().ended(outcome, took);
        if !self.span.is_disabled() {
            let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            self.span.record("outcome", outcome.label());
            self.span.record("duration_us", micros);
        }
    }
}

impl Drop for CallRecord<'_> {
    fn drop(&mut self) {
        self.end(CallOutcome::Cancelled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{CallOutcome, Direction, Side};

    #[test]
    fn a_recorded_call_ends_once() {
        let meter = Meter::new(Side::Client);
        let record = meter.call(
            &Span::none(),
            &"a.b".into(),
            1,
            Direction::Out,
            None,
            Instant::now(),
        );
        record.finish(CallOutcome::Ok);
        assert_eq!(meter.methods_out.names(), ["a.b"]);
        assert!(meter.methods_in.names().is_empty());
    }

    /// `n` method names: `svc.m0`, `svc.m1`, …
    fn names(n: usize) -> Vec<Cow<'static, str>> {
        (0..n).map(|i| Cow::Owned(format!("svc.m{i}"))).collect()
    }

    fn same(a: &Held<'_>, b: &Held<'_>) -> bool {
        std::ptr::eq(a.get(), b.get())
    }

    #[test]
    fn each_method_has_one_set_of_handles_past_the_slots_and_the_cap() {
        let table = MethodTable::new(Direction::In);
        let names = names(MAX_METHODS + 10);
        let first: Vec<Held<'_>> = names.iter().map(|name| table.find(name)).collect();
        for (name, held) in names.iter().zip(&first) {
            assert!(same(held, &table.find(name)), "{name} found twice");
        }
        // Every slot is set and the map holds the rest, up to the cap.
        let slotted = table.slots.get().map_or(0, |slots| {
            slots.iter().filter(|slot| slot.get().is_some()).count()
        });
        assert_eq!(slotted, SLOTS);
        let kept = table.names();
        assert_eq!(kept.len(), MAX_METHODS + 1, "the cap, then `other`");
        assert!(kept.iter().any(|name| name == "other"));
        // The methods beyond the cap share `other`'s handles.
        let other = table.find(&Cow::Borrowed("other"));
        assert!(same(&first[MAX_METHODS + 9], &other));
        assert_eq!(first[3].get().method, "svc.m3");
    }

    #[test]
    fn threads_finding_methods_at_once_agree_on_their_handles() {
        let table = MethodTable::new(Direction::Out);
        let names = names(SLOTS + 16);
        let found: Vec<Vec<usize>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|t| {
                    let (table, names) = (&table, &names);
                    scope.spawn(move || {
                        // Each thread in its own order, so they race for slots.
                        let mut order: Vec<usize> = (0..names.len()).collect();
                        order.rotate_left(t * 7);
                        let mut at = vec![0; names.len()];
                        for i in order {
                            at[i] = table.find(&names[i]).get() as *const MethodMeter as usize;
                        }
                        at
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().expect("a worker panicked"))
                .collect()
        });
        for other in &found[1..] {
            assert_eq!(&found[0], other);
        }
        let mut expected: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        expected.sort();
        assert_eq!(table.names(), expected);
    }
}
