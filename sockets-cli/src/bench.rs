//! `sockets bench`: a load generator. `-c` connections, each with `-k`
//! calls in flight (one task per call in flight), for `-d` seconds; a
//! progress bar while it runs, then throughput, errors by kind and a
//! latency histogram.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use sockets::{CallOptions, Client};

use crate::exit::{self, CliError};

/// What a bench run does.
pub struct Plan {
    /// The method's wire name.
    pub method: &'static str,
    /// The encoded arguments.
    pub args: sockets::service::EncodedValue,
    /// Calls in flight per connection.
    pub in_flight: usize,
    /// How long.
    pub duration: Duration,
    /// Each call's timeout.
    pub timeout: Duration,
}

/// What one worker saw.
struct Tally {
    latency: Histogram<u64>,
    errors: BTreeMap<&'static str, u64>,
    first_error: Option<sockets::Error>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// Runs `plan` on `clients` (one per connection) and prints the summary.
///
/// # Errors
/// The first call's error when no call succeeded.
pub async fn run(plan: Plan, clients: Vec<Client>, summary_head: String) -> Result<(), CliError> {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + plan.duration;
    let mut workers = Vec::new();
    for client in &clients {
        for _ in 0..plan.in_flight {
            let peer = client.peer();
            let args = plan.args.clone();
            let (done, failed) = (Arc::clone(&done), Arc::clone(&failed));
            let (method, timeout) = (plan.method, plan.timeout);
            workers.push(tokio::spawn(async move {
                let mut tally = Tally {
                    latency: histogram(),
                    errors: BTreeMap::new(),
                    first_error: None,
                };
                let options = CallOptions::timeout(timeout);
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let outcome = peer
                        .caller()
                        .call(Cow::Borrowed(method), args.clone(), options)
                        .await;
                    match outcome {
                        Ok(_) => {
                            let micros =
                                u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                            let _ = tally.latency.record(micros.max(1));
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            *tally.errors.entry(exit::kind(&error)).or_default() += 1;
                            failed.fetch_add(1, Ordering::Relaxed);
                            let stop = matches!(error, sockets::Error::Disconnected(_));
                            tally.first_error.get_or_insert(error);
                            if stop {
                                break;
                            }
                        }
                    }
                }
                tally
            }));
        }
    }
    let bar = progress(plan.duration);
    let ticker = {
        let (bar, done, failed) = (bar.clone(), Arc::clone(&done), Arc::clone(&failed));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let elapsed = start.elapsed();
                let calls = done.load(Ordering::Relaxed);
                let rate = calls as f64 / elapsed.as_secs_f64().max(1e-3);
                bar.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
                bar.set_message(format!(
                    "{} calls, {} calls/s, {} errors",
                    thousands(calls),
                    thousands(rate as u64),
                    thousands(failed.load(Ordering::Relaxed))
                ));
            }
        })
    };
    let mut latency = histogram();
    let mut errors: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut first_error = None;
    for worker in workers {
        let tally = worker
            .await
            .map_err(|e| CliError::Other(format!("a bench task failed: {e}")))?;
        let _ = latency.add(&tally.latency);
        for (kind, n) in tally.errors {
            *errors.entry(kind).or_default() += n;
        }
        if first_error.is_none() {
            first_error = tally.first_error;
        }
    }
    let elapsed = start.elapsed();
    ticker.abort();
    bar.finish_and_clear();
    for client in &clients {
        client.close().await;
    }
    print!("{}", summary(&summary_head, &latency, &errors, elapsed));
    match first_error {
        Some(error) if latency.is_empty() => Err(error.into()),
        _ => Ok(()),
    }
}

fn progress(duration: Duration) -> ProgressBar {
    let bar = ProgressBar::new(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
    let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `85 µs`, `1.20 ms`, `2.50 s`.
fn micros(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

fn summary(
    head: &str,
    latency: &Histogram<u64>,
    errors: &BTreeMap<&'static str, u64>,
    elapsed: Duration,
) -> String {
    let mut out = String::new();
    let calls = latency.len();
    let failed: u64 = errors.values().sum();
    let _ = writeln!(out, "{head}");
    let _ = writeln!(
        out,
        "  calls       {} ok, {} failed in {:.2} s",
        thousands(calls),
        thousands(failed),
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  throughput  {} calls/s",
        thousands((calls as f64 / elapsed.as_secs_f64().max(1e-3)) as u64)
    );
    for (kind, n) in errors {
        let _ = writeln!(out, "  errors      {} {kind}", thousands(*n));
    }
    if calls == 0 {
        return out;
    }
    let _ = writeln!(
        out,
        "  latency     min {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        micros(latency.min()),
        micros(latency.value_at_quantile(0.5)),
        micros(latency.value_at_quantile(0.9)),
        micros(latency.value_at_quantile(0.99)),
        micros(latency.value_at_quantile(0.999)),
        micros(latency.max())
    );
    out.push_str("  histogram\n");
    let buckets: Vec<(u64, u64)> = latency
        .iter_log(latency.min().max(1), 2.0)
        .map(|v| (v.value_iterated_to(), v.count_since_last_iteration()))
        .collect();
    let most = buckets.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let mut low = 0;
    for (high, n) in buckets {
        if n > 0 {
            let width = ((n as f64 / most as f64) * 40.0).ceil() as usize;
            let _ = writeln!(
                out,
                "    {:>9} .. {:>9}  {:<40}  {}",
                micros(low),
                micros(high),
                "█".repeat(width),
                thousands(n)
            );
        }
        low = high + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_has_throughput_percentiles_and_a_histogram() {
        let mut latency = histogram();
        for us in [50, 60, 70, 80, 400, 5_000] {
            latency.record(us).unwrap();
        }
        let mut errors = BTreeMap::new();
        errors.insert("timeout", 2);
        let text = summary("head", &latency, &errors, Duration::from_secs(2));
        assert!(text.contains("6 ok, 2 failed in 2.00 s"), "{text}");
        assert!(text.contains("throughput  3 calls/s"), "{text}");
        assert!(text.contains("errors      2 timeout"), "{text}");
        assert!(text.contains("p50 70 µs  p90 5.00 ms"), "{text}");
        assert!(text.contains("█"), "{text}");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
