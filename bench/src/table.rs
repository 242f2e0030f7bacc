//! The table printed after the JSON lines: one row per target, one column
//! per workload, each figure with its ratio to the target's ceiling.

use crate::Kind;
use crate::stats::Record;

/// The headline of each workload.
fn headline(workload: &str) -> &'static str {
    match workload {
        "W1" => "W1 p50 µs",
        "W2" => "W2 calls/s",
        "W3" => "W3 calls/s",
        "W4" => "W4 MB/s",
        "W5" => "W5 KiB/conn",
        _ => "W6 setups/s",
    }
}

/// Prints the table of `records` for the workloads and targets that ran.
pub fn print(records: &[Record], workloads: &[&str], kinds: &[Kind]) {
    let find = |kind: Kind, workload: &str| {
        records
            .iter()
            .find(|r| r.workload == workload && r.target == kind.name())
            .map(|r| r.value)
    };
    println!();
    println!(
        "| target | ceiling | {} |",
        workloads
            .iter()
            .map(|w| headline(w))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---|{}", "---:|".repeat(workloads.len()));
    for kind in kinds {
        let ceiling = kind.ceiling();
        let cells: Vec<String> = workloads
            .iter()
            .map(|w| match (find(*kind, w), find(ceiling, w)) {
                (None, _) => "—".to_owned(),
                (Some(v), Some(c)) if ceiling != *kind && c > 0.0 => {
                    format!("{} ({:.2}×)", format_value(v), v / c)
                }
                (Some(v), _) => format_value(v),
            })
            .collect();
        let ceiling = if ceiling == *kind {
            "(itself)".to_owned()
        } else {
            ceiling.name()
        };
        println!("| {} | {ceiling} | {} |", kind.name(), cells.join(" | "));
    }
    println!();
    println!("ratios are target ÷ its ceiling in this run (for W1 and W5 lower is better)");
}

/// `1,234,567` above 100, one decimal below.
fn format_value(value: f64) -> String {
    if value >= 100.0 {
        let whole = value.round() as u64;
        let digits = whole.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else {
        format!("{value:.1}")
    }
}
