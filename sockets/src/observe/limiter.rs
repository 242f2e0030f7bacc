//! A token bucket for log lines, sans-IO: the caller passes the time, so it
//! is tested without a clock. Unlike the guards' rate limit (tokio's clock,
//! one bucket per key), it counts what it held back, for the next line it
//! lets through to report.

use std::time::{Duration, Instant};

/// Lets `burst` lines through at once, then `per_period` every `period`.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    burst: u32,
    period: Duration,
    per_period: u32,
    tokens: u32,
    /// When the tokens were last refilled; `None` until the first line.
    refilled: Option<Instant>,
    /// Lines held back since the last one let through.
    suppressed: u64,
}

impl LogLimiter {
    /// A full bucket.
    pub(crate) const fn new(burst: u32, period: Duration, per_period: u32) -> Self {
        Self {
            burst,
            period,
            per_period,
            tokens: burst,
            refilled: None,
            suppressed: 0,
        }
    }

    /// Whether a line may be logged at `now`: `Some(n)` with the number of
    /// lines held back since the last one let through, or `None` (counted).
    pub(crate) fn admit(&mut self, now: Instant) -> Option<u64> {
        self.refill(now);
        if self.tokens == 0 {
            self.suppressed += 1;
            return None;
        }
        self.tokens -= 1;
        Some(std::mem::take(&mut self.suppressed))
    }

    /// Adds the tokens of the whole periods since the last refill; the
    /// part of a period left over counts towards the next.
    fn refill(&mut self, now: Instant) {
        let Some(refilled) = self.refilled else {
            self.refilled = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(refilled);
        let periods = elapsed.as_nanos() / self.period.as_nanos().max(1);
        if periods == 0 {
            return;
        }
        let added = periods.saturating_mul(u128::from(self.per_period));
        let tokens = (u128::from(self.tokens) + added).min(u128::from(self.burst));
        self.tokens = u32::try_from(tokens).unwrap_or(self.burst);
        let whole = self
            .period
            .saturating_mul(u32::try_from(periods).unwrap_or(u32::MAX));
        self.refilled = Some(refilled + whole.min(elapsed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_burst_then_one_a_period_each_reporting_what_was_held_back() {
        let start = Instant::now();
        let mut limiter = LogLimiter::new(20, SECOND, 1);
        let through = (0..150).filter(|_| limiter.admit(start).is_some()).count();
        assert_eq!(through, 20, "the burst, then nothing at the same instant");
        assert_eq!(
            limiter.admit(start + SECOND / 2),
            None,
            "half a period adds nothing"
        );
        assert_eq!(
            limiter.admit(start + SECOND),
            Some(131),
            "a period later: one line, reporting the 131 held back"
        );
        assert_eq!(limiter.admit(start + SECOND), None);
        assert_eq!(limiter.admit(start + 3 * SECOND), Some(1));
        assert_eq!(
            limiter.admit(start + 3 * SECOND),
            Some(0),
            "two periods, two tokens"
        );
        assert_eq!(limiter.admit(start + 3 * SECOND), None);
    }

    #[test]
    fn an_idle_bucket_refills_to_its_burst_only() {
        let start = Instant::now();
        let mut limiter = LogLimiter::new(3, SECOND, 1);
        for _ in 0..3 {
            assert!(limiter.admit(start).is_some());
        }
        let later = start + 3600 * SECOND;
        let through = (0..10).filter(|_| limiter.admit(later).is_some()).count();
        assert_eq!(through, 3);
    }

    #[test]
    fn over_any_window_at_most_burst_plus_the_refill() {
        // 1,000 attempts spread over 10 s: burst + 10 periods at most.
        let start = Instant::now();
        let mut limiter = LogLimiter::new(20, SECOND, 1);
        let through = (0..1000u64)
            .filter(|i| {
                limiter
                    .admit(start + Duration::from_millis(i * 10))
                    .is_some()
            })
            .count();
        assert_eq!(
            through,
            20 + 9,
            "9 whole periods passed by the last attempt"
        );
    }
}
