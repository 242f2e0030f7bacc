//! Measurement helpers: resident memory, percentiles, result lines.

use std::fmt::Write as _;
use std::time::Duration;

/// The process's resident set size in KiB (`VmRSS` in `/proc/self/status`);
/// `None` where that file does not exist.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The `q`-quantile (0..=1) of sorted samples, in microseconds.
pub fn quantile_us(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted
        .get(rank.min(sorted.len() - 1))
        .map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

/// One workload's result for one target.
#[derive(Clone, Debug)]
pub struct Record {
    /// Who was measured (`bare-echo`, `sockets-aes-256-gcm`, ...).
    pub target: String,
    /// `W1` ... `W6`.
    pub workload: &'static str,
    /// The headline figure the table compares.
    pub value: f64,
    /// Its unit, which also names the JSON field.
    pub unit: &'static str,
    /// Further figures, `(name, value)`.
    pub extra: Vec<(&'static str, f64)>,
}

impl Record {
    /// The record as one JSON object on one line.
    pub fn json(&self) -> String {
        let mut line = format!(
            "{{\"target\":\"{}\",\"workload\":\"{}\",\"{}\":{}",
            self.target,
            self.workload,
            self.unit,
            number(self.value)
        );
        for (name, value) in &self.extra {
            let _ = write!(line, ",\"{name}\":{}", number(*value));
        }
        line.push('}');
        line
    }

    /// Parses a line made by [`Record::json`] (how a child process reports).
    pub fn parse(line: &str) -> Option<Self> {
        let body = line.trim().strip_prefix('{')?.strip_suffix('}')?;
        let mut target = None;
        let mut workload = None;
        let mut fields = Vec::new();
        for pair in body.split(',') {
            let (key, value) = pair.split_once(':')?;
            let key = key.trim_matches('"');
            match key {
                "target" => target = Some(value.trim_matches('"').to_owned()),
                "workload" => workload = Some(value.trim_matches('"').to_owned()),
                _ => fields.push((key.to_owned(), value.parse::<f64>().ok()?)),
            }
        }
        let workload = crate::WORKLOADS
            .iter()
            .find(|w| Some(**w) == workload.as_deref())?;
        let mut fields = fields.into_iter();
        let (unit, value) = fields.next()?;
        let unit = crate::UNITS.iter().find(|u| **u == unit)?;
        let extra = fields
            .filter_map(|(name, value)| {
                crate::UNITS
                    .iter()
                    .find(|u| **u == name)
                    .map(|name| (*name, value))
            })
            .collect();
        Some(Self {
            target: target?,
            workload,
            value,
            unit,
            extra,
        })
    }
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}
