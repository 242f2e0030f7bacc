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
    methods_in: RwLock<Methods>,
    methods_out: RwLock<Methods>,
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
            methods_in: RwLock::default(),
            methods_out: RwLock::default(),
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

    /// The handles of `method` in `direction`, made at its first call.
    // A `Cow`, not a `&str`: a `'static` name (every generated client's,
    // every served method's) becomes a label without a copy.
    #[allow(clippy::ptr_arg)]
    fn method(&self, method: &Cow<'static, str>, direction: Direction) -> Arc<MethodMeter> {
        let methods = match direction {
            Direction::In => &self.methods_in,
            Direction::Out => &self.methods_out,
        };
        if let Some(found) = read(methods).get(method.as_ref()) {
            return Arc::clone(found);
        }
        let mut methods = methods.write().unwrap_or_else(|p| p.into_inner());
        let name = if methods.len() < MAX_METHODS {
            method.clone()
        } else {
            Cow::Borrowed("other")
        };
        let made = methods
            .entry(name.clone())
            .or_insert_with(|| Arc::new(MethodMeter::new(name, direction)));
        Arc::clone(made)
    }

    /// Starts observing a call that started at `started` (a time the
    /// caller read anyway: the frame's arrival, the deadline's base): its
    /// span (a child of `parent`), its in-flight count. End it with
    /// [`CallRecord::finish`]; dropped unfinished, it ends as `cancelled`.
    #[allow(clippy::ptr_arg)] // as for `Meter::method`
    pub(crate) fn call(
        &self,
        parent: &Span,
        method: &Cow<'static, str>,
        id: u64,
        direction: Direction,
        timeout_ms: Option<u32>,
        started: Instant,
    ) -> CallRecord {
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
        CallRecord {
            meter: self.method(method, direction),
            in_flight,
            span,
            started,
            done: false,
        }
    }
}

/// The handles of each method, by name. Looked up once per call: hashed
/// with FNV-1a, several times cheaper than SipHash for names this short;
/// the keys are method names, not chosen by peers (module docs).
type Methods = HashMap<Cow<'static, str>, Arc<MethodMeter>, BuildHasherDefault<Fnv>>;

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
pub(crate) struct CallRecord {
    meter: Arc<MethodMeter>,
    in_flight: Gauge,
    span: Span,
    started: Instant,
    done: bool,
}

impl CallRecord {
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
        self.meter.ended(outcome, took);
        if !self.span.is_disabled() {
            let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            self.span.record("outcome", outcome.label());
            self.span.record("duration_us", micros);
        }
    }
}

impl Drop for CallRecord {
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
        let methods = read(&meter.methods_out);
        assert_eq!(methods.len(), 1);
        assert!(methods.contains_key("a.b"));
    }
}
