//! The project's benchmark: workloads W1–W6 (latency, throughput on one and
//! many connections, bulk, idle memory, connection setups; the README's
//! "Benchmark" section defines each) for this framework with AES-256-GCM, ChaCha20-Poly1305
//! and plaintext frames, and for a bare tokio-tungstenite echo as the ceiling.
//!
//! ```text
//! cargo run --release -p examples --bin bench              # the full run, about 2 minutes
//! cargo run -p examples --bin bench -- --quick             # every workload briefly (CI)
//! cargo run --release -p examples --bin bench -- --workload W2 --target aes
//! ```
//!
//! Server and client share one process and one tokio multi-thread runtime
//! with 2 workers, over 127.0.0.1. Each result is one JSON object per line
//! (`target`, `workload`, figures); a table of ratios (ours ÷ bare echo)
//! follows at the end. W5 runs in a fresh child process per target, so
//! memory freed by earlier workloads cannot hide the cost of a connection.
//!
//! To see where W5's memory goes, run the child under a heap profiler with
//! `--w5-exit`: it exits right after measuring, connections still open, so
//! the profiler's "leaked" report is exactly what the idle connections hold:
//!
//! ```text
//! heaptrack target/release/bench --w5-child aes 2000 --w5-exit
//! heaptrack_print -f heaptrack.bench.*.zst --flamegraph-cost-type leaked -F stacks.txt
//! ```
//!
//! | workload | shape | figure |
//! |---|---|---|
//! | W1 | 1 connection, 1 call at a time, 32-byte payload, 20,000 calls | p50/p99/p99.9 µs |
//! | W2 | 1 connection, 64 calls in flight, 32-byte payload, 5 s | calls/s |
//! | W3 | 32 connections × 16 in flight, 32-byte payload, 5 s | calls/s |
//! | W4 | 1 connection, 4 in flight, 1 MiB echo, 5 s | MB/s one way (10^6 bytes) |
//! | W5 | 2,000 authenticated idle connections, both ends in-process | KiB of RSS per connection |
//! | W6 | 32 loops of connect → handshake + auth → one call → close, 5 s | setups/s |

mod bare;
mod ours;
mod stats;

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_bytes::ByteBuf;

use ours::{BenchClient, Protection};
use stats::{Record, quantile_us, rss_kib};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Workload names, in order.
const WORKLOADS: [&str; 6] = ["W1", "W2", "W3", "W4", "W5", "W6"];

/// Every figure name a record may carry.
const UNITS: [&str; 13] = [
    "p50_us",
    "p99_us",
    "p999_us",
    "calls",
    "calls_per_s",
    "mb_per_s",
    "kib_per_conn",
    "connections",
    "rss_before_kib",
    "rss_after_kib",
    "setups_per_s",
    "setups",
    "errors",
];

/// The systems measured.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Bare,
    Ours(Protection),
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::Bare,
        Kind::Ours(Protection::Aes),
        Kind::Ours(Protection::ChaCha),
        Kind::Ours(Protection::Plaintext),
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare-echo",
            Self::Ours(p) => p.name(),
        }
    }

    fn short(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::Ours(Protection::Aes) => "aes",
            Self::Ours(Protection::ChaCha) => "chacha",
            Self::Ours(Protection::Plaintext) => "plain",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.short() == name || k.name() == name)
    }
}

/// Sizes of each workload.
#[derive(Clone, Copy)]
struct Plan {
    latency_calls: usize,
    duration: Duration,
    idle_connections: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                latency_calls: 1_000,
                duration: Duration::from_secs(1),
                idle_connections: 200,
            }
        } else {
            Self {
                latency_calls: 20_000,
                duration: Duration::from_secs(5),
                idle_connections: 2_000,
            }
        }
    }
}

struct Args {
    quick: bool,
    workloads: Vec<&'static str>,
    kinds: Vec<Kind>,
    /// `--w5-child <target> <n>`: measure W5 for one target in this process.
    w5_child: Option<(Kind, usize)>,
    /// `--w5-exit`: the W5 child exits as soon as it has measured, without
    /// closing its connections (for heap profilers).
    w5_exit: bool,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        quick: false,
        workloads: Vec::new(),
        kinds: Vec::new(),
        w5_child: None,
        w5_exit: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--workload" => {
                let w = it.next().ok_or("--workload needs W1..W6")?;
                let w = WORKLOADS
                    .into_iter()
                    .find(|x| x.eq_ignore_ascii_case(&w))
                    .ok_or("--workload needs W1..W6")?;
                args.workloads.push(w);
            }
            "--target" => {
                let t = it
                    .next()
                    .ok_or("--target needs bare, aes, chacha or plain")?;
                args.kinds
                    .push(Kind::parse(&t).ok_or("--target needs bare, aes, chacha or plain")?);
            }
            "--w5-child" => {
                let kind = it.next().and_then(|t| Kind::parse(&t)).ok_or("bad child")?;
                let n = it.next().and_then(|n| n.parse().ok()).ok_or("bad child")?;
                args.w5_child = Some((kind, n));
            }
            "--w5-exit" => args.w5_exit = true,
            "--help" | "-h" => {
                println!(
                    "bench [--quick] [--workload W1..W6]... [--target bare|aes|chacha|plain]...\n\
                     Runs the benchmark workloads; see the header of examples/src/bin/bench/main.rs."
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    if args.workloads.is_empty() {
        args.workloads = WORKLOADS.to_vec();
    }
    if args.kinds.is_empty() {
        args.kinds = Kind::ALL.to_vec();
    }
    Ok(args)
}

/// With `--features mimalloc`: both targets run on mimalloc instead of the
/// system allocator (see "Where the time goes" in the README).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), BoxError> {
    examples::init_logging();
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if let Some((kind, n)) = args.w5_child {
        let record = runtime.block_on(idle_connections(kind, n, args.w5_exit))?;
        println!("{}", record.json());
        return Ok(());
    }
    let plan = Plan::new(args.quick);
    let mut records = Vec::new();
    for workload in &args.workloads {
        for kind in &args.kinds {
            let record = if *workload == "W5" {
                w5_in_child(*kind, plan.idle_connections, args.quick)?
            } else {
                runtime.block_on(run(*kind, workload, plan))?
            };
            println!("{}", record.json());
            records.push(record);
        }
    }
    print_table(&records, &args);
    Ok(())
}

/// Starts a fresh server for `kind` and runs one workload against it.
async fn run(kind: Kind, workload: &'static str, plan: Plan) -> Result<Record, BoxError> {
    match kind {
        Kind::Bare => {
            let echo = bare::start().await?;
            run_bare(&echo, workload, plan).await
        }
        Kind::Ours(protection) => {
            let target = ours::start(protection).await?;
            let record = run_ours(&target, protection, workload, plan).await;
            target.server.shutdown(Duration::from_secs(1)).await;
            record
        }
    }
}

fn record(
    kind: Kind,
    workload: &'static str,
    value: f64,
    unit: &'static str,
    extra: Vec<(&'static str, f64)>,
) -> Record {
    Record {
        target: kind.name().to_owned(),
        workload,
        value,
        unit,
        extra,
    }
}

fn latency_record(kind: Kind, mut samples: Vec<Duration>) -> Record {
    samples.sort_unstable();
    let calls = samples.len() as f64;
    record(
        kind,
        "W1",
        quantile_us(&samples, 0.5),
        "p50_us",
        vec![
            ("p99_us", quantile_us(&samples, 0.99)),
            ("p999_us", quantile_us(&samples, 0.999)),
            ("calls", calls),
        ],
    )
}

/// (connections, calls in flight per connection, payload bytes) of W2–W4.
fn shape(workload: &str) -> (usize, usize, usize) {
    match workload {
        "W2" => (1, 64, 32),
        "W3" => (32, 16, 32),
        _ => (1, 4, 1 << 20),
    }
}

fn throughput_record(kind: Kind, workload: &'static str, calls: u64, elapsed: Duration) -> Record {
    let (_, _, payload) = shape(workload);
    let per_s = calls as f64 / elapsed.as_secs_f64();
    if workload == "W4" {
        let mb = per_s * payload as f64 / 1e6;
        record(
            kind,
            workload,
            mb,
            "mb_per_s",
            vec![("calls_per_s", per_s), ("calls", calls as f64)],
        )
    } else {
        record(
            kind,
            workload,
            per_s,
            "calls_per_s",
            vec![("calls", calls as f64)],
        )
    }
}

fn setups_record(kind: Kind, setups: u64, errors: u64, elapsed: Duration) -> Record {
    record(
        kind,
        "W6",
        setups as f64 / elapsed.as_secs_f64(),
        "setups_per_s",
        vec![("setups", setups as f64), ("errors", errors as f64)],
    )
}

/// Concurrent connection loops for W6.
const SETUP_LOOPS: usize = 32;

async fn run_bare(
    echo: &bare::Echo,
    workload: &'static str,
    plan: Plan,
) -> Result<Record, BoxError> {
    let kind = Kind::Bare;
    let addr = echo.addr;
    match workload {
        "W1" => {
            let payload = Bytes::from(vec![0x5a; 32]);
            let mut ws = bare::connect(addr).await?;
            for _ in 0..plan.latency_calls / 20 {
                bare::round_trip(&mut ws, &payload).await?;
            }
            let mut samples = Vec::with_capacity(plan.latency_calls);
            for _ in 0..plan.latency_calls {
                let start = Instant::now();
                bare::round_trip(&mut ws, &payload).await?;
                samples.push(start.elapsed());
            }
            bare::close(ws).await?;
            Ok(latency_record(kind, samples))
        }
        "W6" => {
            let start = Instant::now();
            let stop = start + plan.duration;
            let loops: Vec<_> = (0..SETUP_LOOPS)
                .map(|_| {
                    tokio::spawn(async move {
                        let payload = Bytes::from(vec![0x5a; 32]);
                        let (mut ok, mut failed) = (0u64, 0u64);
                        while Instant::now() < stop {
                            let setup = async {
                                let mut ws = bare::connect(addr).await?;
                                bare::round_trip(&mut ws, &payload).await?;
                                bare::close(ws).await
                            };
                            match setup.await {
                                Ok(()) => ok += 1,
                                Err(_) => failed += 1,
                            }
                        }
                        (ok, failed)
                    })
                })
                .collect();
            let (ok, failed) = join_counts(loops).await?;
            Ok(setups_record(kind, ok, failed, start.elapsed()))
        }
        _ => {
            let (connections, in_flight, size) = shape(workload);
            let payload = Bytes::from(vec![0x5a; size]);
            let mut sockets = Vec::with_capacity(connections);
            for _ in 0..connections {
                sockets.push(bare::connect(addr).await?);
            }
            let start = Instant::now();
            let stop = start + plan.duration;
            let tasks: Vec<_> = sockets
                .into_iter()
                .map(|mut ws| {
                    let payload = payload.clone();
                    tokio::spawn(async move {
                        let done = bare::pipeline(&mut ws, &payload, in_flight, stop).await?;
                        bare::close(ws).await?;
                        Ok::<_, BoxError>(done)
                    })
                })
                .collect();
            let mut calls = 0;
            for task in tasks {
                calls += task.await??;
            }
            Ok(throughput_record(kind, workload, calls, start.elapsed()))
        }
    }
}

async fn run_ours(
    target: &ours::Target,
    protection: Protection,
    workload: &'static str,
    plan: Plan,
) -> Result<Record, BoxError> {
    let kind = Kind::Ours(protection);
    match workload {
        "W1" => {
            let payload = ByteBuf::from(vec![0x5a; 32]);
            let client = target.connect().await?;
            let bench = BenchClient::new(client.peer());
            for _ in 0..plan.latency_calls / 20 {
                ours::round_trip(&bench, &payload).await?;
            }
            let mut samples = Vec::with_capacity(plan.latency_calls);
            for _ in 0..plan.latency_calls {
                let start = Instant::now();
                ours::round_trip(&bench, &payload).await?;
                samples.push(start.elapsed());
            }
            client.close().await;
            Ok(latency_record(kind, samples))
        }
        "W6" => {
            let start = Instant::now();
            let stop = start + plan.duration;
            let mut loops = Vec::with_capacity(SETUP_LOOPS);
            for _ in 0..SETUP_LOOPS {
                let connect = target.connector();
                loops.push(tokio::spawn(async move {
                    let payload = ByteBuf::from(vec![0x5a; 32]);
                    let (mut ok, mut failed) = (0u64, 0u64);
                    while Instant::now() < stop {
                        let setup = async {
                            let client = connect.connect().await?;
                            let bench = BenchClient::new(client.peer());
                            ours::round_trip(&bench, &payload).await?;
                            client.close().await;
                            Ok::<_, BoxError>(())
                        };
                        match setup.await {
                            Ok(()) => ok += 1,
                            Err(_) => failed += 1,
                        }
                    }
                    (ok, failed)
                }));
            }
            let (ok, failed) = join_counts(loops).await?;
            Ok(setups_record(kind, ok, failed, start.elapsed()))
        }
        _ => {
            let (connections, in_flight, size) = shape(workload);
            let payload = ByteBuf::from(vec![0x5a; size]);
            let mut clients = Vec::with_capacity(connections);
            for _ in 0..connections {
                clients.push(target.connect().await?);
            }
            let start = Instant::now();
            let stop = start + plan.duration;
            let tasks: Vec<_> = clients
                .into_iter()
                .map(|client| {
                    let payload = payload.clone();
                    tokio::spawn(async move {
                        let bench = BenchClient::new(client.peer());
                        let done = ours::pipeline(&bench, &payload, in_flight, stop).await?;
                        client.close().await;
                        Ok::<_, BoxError>(done)
                    })
                })
                .collect();
            let mut calls = 0;
            for task in tasks {
                calls += task.await??;
            }
            Ok(throughput_record(kind, workload, calls, start.elapsed()))
        }
    }
}

async fn join_counts(
    loops: Vec<tokio::task::JoinHandle<(u64, u64)>>,
) -> Result<(u64, u64), BoxError> {
    let (mut ok, mut failed) = (0, 0);
    for task in loops {
        let (a, b) = task.await?;
        ok += a;
        failed += b;
    }
    Ok((ok, failed))
}

/// Runs W5 for one target in a fresh process of this binary.
fn w5_in_child(kind: Kind, n: usize, quick: bool) -> Result<Record, BoxError> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["--w5-child", kind.short(), &n.to_string()]);
    if quick {
        command.arg("--quick");
    }
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!(
            "the W5 child for {} failed: {}",
            kind.name(),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(Record::parse)
        .ok_or_else(|| format!("the W5 child for {} printed no result", kind.name()).into())
}

/// W5: opens `n` connections (both ends in this process) and reports the
/// growth of resident memory per connection.
async fn idle_connections(kind: Kind, n: usize, exit: bool) -> Result<Record, BoxError> {
    const CONCURRENCY: usize = 32;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (before, after) = match kind {
        Kind::Bare => {
            let echo = bare::start().await?;
            // Warm up: first-use allocations are not per-connection costs.
            bare::close(bare::connect(echo.addr).await?).await?;
            let base = echo.accepted.load(Ordering::Relaxed);
            let before = rss_kib().ok_or("no /proc/self/status")?;
            let mut held = Vec::with_capacity(n);
            let mut opening: FuturesUnordered<_> = FuturesUnordered::new();
            for _ in 0..n {
                if opening.len() >= CONCURRENCY {
                    if let Some(ws) = opening.next().await {
                        held.push(ws?);
                    }
                }
                opening.push(bare::connect(echo.addr));
            }
            while let Some(ws) = opening.next().await {
                held.push(ws?);
            }
            while echo.accepted.load(Ordering::Relaxed) < base + n {
                if Instant::now() > deadline {
                    return Err("the echo server did not accept every connection".into());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let after = rss_kib().ok_or("no /proc/self/status")?;
            exit_if_profiling(exit, kind, n, before, after);
            drop(held);
            (before, after)
        }
        Kind::Ours(protection) => {
            let target = ours::start(protection).await?;
            target.connect().await?.close().await;
            let before = rss_kib().ok_or("no /proc/self/status")?;
            let mut held = Vec::with_capacity(n);
            let mut opening: FuturesUnordered<_> = FuturesUnordered::new();
            for _ in 0..n {
                if opening.len() >= CONCURRENCY {
                    if let Some(client) = opening.next().await {
                        held.push(client?);
                    }
                }
                opening.push(target.connect());
            }
            while let Some(client) = opening.next().await {
                held.push(client?);
            }
            while target.server.connections().len() < n {
                if Instant::now() > deadline {
                    return Err("the server did not admit every connection".into());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let after = rss_kib().ok_or("no /proc/self/status")?;
            exit_if_profiling(exit, kind, n, before, after);
            drop(held);
            (before, after)
        }
    };
    let per_connection = after.saturating_sub(before) as f64 / n as f64;
    Ok(record(
        kind,
        "W5",
        per_connection,
        "kib_per_conn",
        vec![
            ("connections", n as f64),
            ("rss_before_kib", before as f64),
            ("rss_after_kib", after as f64),
        ],
    ))
}

/// With `--w5-exit`: prints the figures and exits while `held` is still open.
fn exit_if_profiling(exit: bool, kind: Kind, n: usize, before: u64, after: u64) {
    if exit {
        let per_connection = after.saturating_sub(before) as f64 / n as f64;
        println!(
            "{} W5: {per_connection:.2} KiB per connection ({before} -> {after} KiB); exiting with the connections open",
            kind.name()
        );
        std::process::exit(0);
    }
}

/// The headline of each workload: its label and whether higher is better.
fn headline(workload: &str) -> (&'static str, bool) {
    match workload {
        "W1" => ("p50 latency, µs", false),
        "W2" => ("calls/s, 1 conn × 64", true),
        "W3" => ("calls/s, 32 conns × 16", true),
        "W4" => ("MB/s, 1 MiB echo", true),
        "W5" => ("KiB RSS per connection", false),
        _ => ("setups/s, 32 loops", true),
    }
}

fn print_table(records: &[Record], args: &Args) {
    println!();
    println!(
        "| workload | figure | {} |",
        args.kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---|{}", "---:|".repeat(args.kinds.len()));
    for workload in &args.workloads {
        let (label, _) = headline(workload);
        let find = |kind: Kind| {
            records
                .iter()
                .find(|r| r.workload == *workload && r.target == kind.name())
                .map(|r| r.value)
        };
        let bare = find(Kind::Bare);
        let cells: Vec<String> = args
            .kinds
            .iter()
            .map(|kind| match (find(*kind), bare, kind) {
                (None, _, _) => "—".to_owned(),
                (Some(v), _, Kind::Bare) | (Some(v), None, _) => format_value(v),
                (Some(v), Some(b), _) if b > 0.0 => {
                    format!("{} ({:.2}×)", format_value(v), v / b)
                }
                (Some(v), Some(_), _) => format_value(v),
            })
            .collect();
        println!("| {workload} | {label} | {} |", cells.join(" | "));
    }
    println!();
    println!("ratios are ours ÷ bare echo (for W1 and W5 lower is better)");
}

fn format_value(value: f64) -> String {
    if value >= 100.0 {
        let whole = value.round() as u64;
        let digits = whole.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else {
        format!("{value:.1}")
    }
}
