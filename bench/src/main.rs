//! The project's benchmark: workloads W1–W8 (latency, throughput on one and
//! many connections, bulk, idle memory, connection setups, streams and
//! fan-out (W7 and W8 have targets of their own: `streams.rs`); the README's
//! "Benchmark" section defines each) for this framework over WebSocket,
//! length-prefixed TCP and a Unix socket, for tarpc, jsonrpsee and tonic as
//! peers, and for bare echoes as ceilings, all in one run.
//!
//! ```text
//! cargo run --release -p bench                           # the full run, about 8 minutes
//! cargo run -p bench -- --quick                          # every workload briefly (CI)
//! cargo run --release -p bench -- --workload W2 --target aes --target tarpc
//! cargo run --release -p bench -- --workload W7 --stream-target ours --stream-target bare
//! cargo run --release -p bench --features mimalloc       # every target on mimalloc
//! ```
//!
//! | workload | shape | figure |
//! |---|---|---|
//! | W1 | 1 connection, 1 call at a time, 32-byte payload, 20,000 calls | p50/p99/p99.9 µs |
//! | W2 | 1 connection, 64 calls in flight, 32-byte payload, 5 s | calls/s |
//! | W3 | 32 connections × 16 in flight, 32-byte payload, 5 s | calls/s |
//! | W4 | 1 connection, 4 in flight, 1 MiB echo, 5 s | MB/s one way (10^6 bytes) |
//! | W5 | 2,000 idle connections, both ends in-process | KiB of RSS per connection |
//! | W6 | 32 loops of connect → (handshake + auth) → one call → close, 5 s | setups/s |
//! | W7 | 1 connection, one server → client stream of 32-byte (and 1 KiB) items, 5 s; also client → server | items/s (MB/s) |
//! | W8 | one `Topic`, 1,000 subscribers on 50 connections, 5 s; then one subscriber 10× slower | deliveries/s; items held |
//!
//! # Targets and ceilings
//!
//! Every target serves one method that returns its argument (32 bytes, or
//! 1 MiB in W4), each in its own idiom: `sockets` with a `#[sockets::service]`
//! taking a `sockets::Blob` (AES-256-GCM, ChaCha20-Poly1305 or plaintext
//! frames; `ours.rs`), tarpc
//! over TCP with bincode (`peer_tarpc.rs`), jsonrpsee over WebSocket
//! (`peer_jsonrpsee.rs`), tonic gRPC over HTTP/2 (`peer_tonic.rs`). Each
//! figure is also given as a ratio to the ceiling of its transport, a bare
//! echo of binary messages measured in the same run, with no RPC layer and
//! written to be fast: the tokio-tungstenite echo (`bare_ws.rs`) for the
//! WebSocket targets (ours over `ws://`, jsonrpsee), the length-prefixed echo
//! (`bare_prefixed.rs`) on TCP for ours over `tcp://`, tarpc and tonic, and
//! the same echo on a Unix socket for ours over `unix://`. `bare-wss-echo` is
//! the WebSocket echo behind TLS 1.3 (rustls with *ring*, AES-256-GCM, a full
//! handshake per connection, no resumption): what a standard secure
//! WebSocket costs, beside ours with encryption; it too is measured against
//! the plain WebSocket echo.
//!
//! The RPC targets all run the same client loops (`drive.rs`). In W2–W4 each
//! call in flight is a tokio task calling in a loop, as an application with
//! concurrent requests calls; `sockets-aes-256-gcm-unordered` is ours with
//! one task per connection polling its calls in a `FuturesUnordered` instead
//! (the previous shape of this benchmark). The bare echoes keep their
//! messages in flight from one task per connection with batched writes. W2–W6
//! run on one tokio multi-thread runtime with 2 workers, server and client in
//! this process, over 127.0.0.1 (or a socket file in the temporary
//! directory). W5 runs in a fresh child process per target, so memory freed
//! by earlier workloads cannot hide the cost of a connection; ours and the
//! bare echoes count a connection once the server has admitted it, the peers
//! (which do not say) once one call on it has been answered.
//!
//! # W1 measures the protocol, not the scheduler
//!
//! W1 used to run like the others, on the 2-worker runtime. With one call at
//! a time the workers are idle between messages, so every message woke a
//! parked thread, and on this 2-vCPU virtual machine waking an idle vCPU
//! takes tens of µs: the bare echo's p50 was 74–122 µs on a quiet machine
//! and ~10 µs with both vCPUs kept busy by other work. The figure measured
//! how many thread wake-ups a target's layout happened to need (ours, whose
//! client keeps a connection task on a worker, came out *faster* than the
//! bare echo), so its ratio meant nothing.
//!
//! Now every W1 target runs the same shape: a fresh single-threaded tokio
//! runtime holds both the server and the client, and the same client loop
//! (`drive::sample`: a warm-up, then one call at a time, each timed). A
//! round trip is then the work of both ends (framing, crypto, encoding,
//! dispatch, the tasks they wake) and the loopback system calls, on one
//! thread, with no thread parked or woken. That is the part an RPC stack
//! controls and the ratio to the bare echo compares; what a real deployment
//! adds (the network, the peer's scheduler) is the same for every stack.
//!
//! # Memory profiles
//!
//! To see where W5's memory goes, run the child under a heap profiler with
//! `--w5-exit`: it exits right after measuring, connections still open, so
//! the profiler's "leaked" report is exactly what the idle connections hold:
//!
//! ```text
//! heaptrack target/release/bench --w5-child aes 2000 --w5-exit
//! heaptrack_print -f heaptrack.bench.*.zst --flamegraph-cost-type leaked -F stacks.txt
//! ```

mod bare_prefixed;
mod bare_ws;
mod drive;
mod ours;
mod peer_jsonrpsee;
mod peer_tarpc;
mod peer_tonic;
mod stats;
mod streams;
mod table;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drive::{Ceiling, Driver, Rpc, Shape};
use ours::{Protection, Transport};
use stats::{Record, quantile_us, rss_kib};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Workload names, in order.
const WORKLOADS: [&str; 8] = ["W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8"];

/// Every figure name a record may carry.
const UNITS: [&str; 16] = [
    "items_per_s",
    "deliveries_per_s",
    "max_items_held",
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    BareWs,
    BareWss,
    BareTcp,
    BareUnix,
    Ours(Transport, Protection, Driver),
    Tarpc,
    Jsonrpsee,
    Tonic,
}

impl Kind {
    /// Every target, in the order of the table: each ceiling, then what it bounds.
    const ALL: [Kind; 15] = [
        Kind::BareWs,
        Kind::BareWss,
        Kind::Ours(Transport::Ws, Protection::Aes, Driver::Tasks),
        Kind::Ours(Transport::Ws, Protection::Aes, Driver::Unordered),
        Kind::Ours(Transport::Ws, Protection::ChaCha, Driver::Tasks),
        Kind::Ours(Transport::Ws, Protection::Plaintext, Driver::Tasks),
        Kind::Jsonrpsee,
        Kind::BareTcp,
        Kind::Ours(Transport::Tcp, Protection::Aes, Driver::Tasks),
        Kind::Ours(Transport::Tcp, Protection::Plaintext, Driver::Tasks),
        Kind::Tarpc,
        Kind::Tonic,
        Kind::BareUnix,
        Kind::Ours(Transport::Unix, Protection::Aes, Driver::Tasks),
        Kind::Ours(Transport::Unix, Protection::Plaintext, Driver::Tasks),
    ];

    /// The name in results.
    fn name(self) -> String {
        match self {
            Self::BareWs => "bare-ws-echo".to_owned(),
            Self::BareWss => "bare-wss-echo".to_owned(),
            Self::BareTcp => "bare-tcp-echo".to_owned(),
            Self::BareUnix => "bare-unix-echo".to_owned(),
            Self::Ours(transport, protection, driver) => {
                let transport = match transport {
                    Transport::Ws => "",
                    Transport::Tcp => "tcp-",
                    Transport::Unix => "unix-",
                };
                let driver = match driver {
                    Driver::Tasks => "",
                    Driver::Unordered => "-unordered",
                };
                format!("sockets-{transport}{}{driver}", protection.name())
            }
            Self::Tarpc => "tarpc-tcp-bincode".to_owned(),
            Self::Jsonrpsee => "jsonrpsee-ws".to_owned(),
            Self::Tonic => "tonic-grpc-h2".to_owned(),
        }
    }

    /// The name for `--target`.
    fn short(self) -> String {
        match self {
            Self::BareWs => "bare".to_owned(),
            Self::BareWss => "bare-wss".to_owned(),
            Self::BareTcp => "bare-tcp".to_owned(),
            Self::BareUnix => "bare-unix".to_owned(),
            Self::Ours(transport, protection, driver) => {
                let transport = match transport {
                    Transport::Ws => "",
                    Transport::Tcp => "tcp-",
                    Transport::Unix => "unix-",
                };
                let protection = match protection {
                    Protection::Aes => "aes",
                    Protection::ChaCha => "chacha",
                    Protection::Plaintext => "plain",
                };
                let driver = match driver {
                    Driver::Tasks => "",
                    Driver::Unordered => "-unordered",
                };
                format!("{transport}{protection}{driver}")
            }
            Self::Tarpc => "tarpc".to_owned(),
            Self::Jsonrpsee => "jsonrpsee".to_owned(),
            Self::Tonic => "tonic".to_owned(),
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.short() == name || k.name() == name)
    }

    /// The bare echo this target's ratios are taken against.
    fn ceiling(self) -> Self {
        match self {
            Self::BareWs | Self::BareWss | Self::Jsonrpsee | Self::Ours(Transport::Ws, ..) => {
                Self::BareWs
            }
            Self::BareTcp | Self::Tarpc | Self::Tonic | Self::Ours(Transport::Tcp, ..) => {
                Self::BareTcp
            }
            Self::BareUnix | Self::Ours(Transport::Unix, ..) => Self::BareUnix,
        }
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
                duration: Duration::from_millis(500),
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
    /// `--stream-target <name>`: W7/W8 run only the stream targets named
    /// (`streams::TARGETS`); all of them when none is.
    stream_targets: Vec<&'static str>,
    /// `--stream-size <bytes>`: W7 runs only this item size (32 or 1024).
    stream_size: Option<usize>,
}

fn target_names() -> String {
    Kind::ALL
        .iter()
        .map(|k| k.short())
        .collect::<Vec<_>>()
        .join("|")
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        quick: false,
        workloads: Vec::new(),
        kinds: Vec::new(),
        w5_child: None,
        w5_exit: false,
        stream_targets: Vec::new(),
        stream_size: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--workload" => {
                let w = it.next().ok_or("--workload needs W1..W8")?;
                let w = WORKLOADS
                    .into_iter()
                    .find(|x| x.eq_ignore_ascii_case(&w))
                    .ok_or("--workload needs W1..W8")?;
                args.workloads.push(w);
            }
            "--target" => {
                let kind = it
                    .next()
                    .and_then(|t| Kind::parse(&t))
                    .ok_or_else(|| format!("--target needs one of {}", target_names()))?;
                args.kinds.push(kind);
            }
            "--w5-child" => {
                let kind = it.next().and_then(|t| Kind::parse(&t)).ok_or("bad child")?;
                let n = it.next().and_then(|n| n.parse().ok()).ok_or("bad child")?;
                args.w5_child = Some((kind, n));
            }
            "--w5-exit" => args.w5_exit = true,
            "--stream-target" => {
                let name = it.next().unwrap_or_default();
                let name = streams::TARGETS
                    .into_iter()
                    .find(|t| *t == name)
                    .ok_or_else(|| {
                        format!(
                            "--stream-target needs one of {}",
                            streams::TARGETS.join("|")
                        )
                    })?;
                args.stream_targets.push(name);
            }
            "--stream-size" => {
                let size = it.next().and_then(|s| s.parse().ok());
                let size = size
                    .filter(|s| streams::SIZES.contains(s))
                    .ok_or("--stream-size needs 32 or 1024")?;
                args.stream_size = Some(size);
            }
            "--help" | "-h" => {
                println!(
                    "bench [--quick] [--workload W1..W8]... [--target {}]... \
                     [--stream-target {}]... [--stream-size 32|1024]\n\
                     Runs the benchmark workloads; see the header of bench/src/main.rs.",
                    target_names(),
                    streams::TARGETS.join("|")
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

/// With `--features mimalloc`: every target runs on mimalloc instead of the
/// system allocator (see "Where the time goes" in the README).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), BoxError> {
    init_logging();
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if let Some((kind, n)) = args.w5_child {
        let record = runtime.block_on(idle(kind, n, args.w5_exit))?;
        println!("{}", record.json());
        return Ok(());
    }
    let plan = Plan::new(args.quick);
    let mut records = Vec::new();
    let mut stream_records = Vec::new();
    for workload in &args.workloads {
        if matches!(*workload, "W7" | "W8") {
            // Streams have targets of their own (`streams.rs`).
            let only = streams::Only {
                targets: &args.stream_targets,
                size: args.stream_size,
            };
            let run = streams::run(workload, plan.duration, &only);
            for record in runtime.block_on(run)? {
                println!("{}", record.json());
                stream_records.push(record);
            }
            continue;
        }
        for kind in &args.kinds {
            let record = match *workload {
                "W5" => w5_in_child(*kind, plan.idle_connections, args.quick)?,
                // See "W1 measures the protocol" above: one thread for both ends.
                "W1" => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(run(*kind, workload, plan))?,
                _ => runtime.block_on(run(*kind, workload, plan))?,
            };
            println!("{}", record.json());
            records.push(record);
        }
    }
    let workloads: Vec<&str> = args
        .workloads
        .iter()
        .copied()
        .filter(|w| !matches!(*w, "W7" | "W8"))
        .collect();
    if !workloads.is_empty() {
        table::print(&records, &workloads, &args.kinds);
    }
    if !stream_records.is_empty() {
        streams::print(&stream_records);
    }
    Ok(())
}

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default: warnings only).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Starts a fresh server for `kind` and runs one workload (not W5) against it.
async fn run(kind: Kind, workload: &'static str, plan: Plan) -> Result<Record, BoxError> {
    match kind {
        Kind::BareWs => bare(kind, bare_ws::start().await?, workload, plan).await,
        Kind::BareWss => bare(kind, bare_ws::start_tls().await?, workload, plan).await,
        Kind::BareTcp => bare(kind, bare_prefixed::start_tcp().await?, workload, plan).await,
        Kind::BareUnix => {
            let path = ours::socket_path("bare-echo");
            bare(kind, bare_prefixed::start_unix(path).await?, workload, plan).await
        }
        Kind::Ours(transport, protection, driver) => {
            let target = Arc::new(ours::start(transport, protection).await?);
            let record = rpc(kind, Arc::clone(&target), workload, plan, driver).await;
            target.shutdown().await;
            record
        }
        Kind::Tarpc => {
            let peer = Arc::new(peer_tarpc::start().await?);
            rpc(kind, peer, workload, plan, Driver::Tasks).await
        }
        Kind::Jsonrpsee => {
            let peer = Arc::new(peer_jsonrpsee::start().await?);
            rpc(kind, peer, workload, plan, Driver::Tasks).await
        }
        Kind::Tonic => {
            let peer = Arc::new(peer_tonic::start().await?);
            rpc(kind, peer, workload, plan, Driver::Tasks).await
        }
    }
}

/// (connections, calls in flight per connection, payload bytes) of W2–W4.
fn shape(workload: &str) -> Shape {
    let (connections, in_flight, payload) = match workload {
        "W2" => (1, 64, 32),
        "W3" => (32, 16, 32),
        _ => (1, 4, 1 << 20),
    };
    Shape {
        connections,
        in_flight,
        payload,
    }
}

async fn rpc<T: Rpc>(
    kind: Kind,
    target: Arc<T>,
    workload: &'static str,
    plan: Plan,
    driver: Driver,
) -> Result<Record, BoxError> {
    match workload {
        "W1" => {
            let samples = drive::rpc_latency(&*target, plan.latency_calls).await?;
            Ok(latency_record(kind, samples))
        }
        "W6" => {
            let (ok, failed, elapsed) = drive::rpc_setups(target, plan.duration).await?;
            Ok(setups_record(kind, ok, failed, elapsed))
        }
        _ => {
            let shape = shape(workload);
            let (calls, elapsed) =
                drive::rpc_throughput(&*target, shape, plan.duration, driver).await?;
            Ok(throughput_record(kind, workload, calls, elapsed))
        }
    }
}

async fn bare<C: Ceiling>(
    kind: Kind,
    echo: C,
    workload: &'static str,
    plan: Plan,
) -> Result<Record, BoxError> {
    let echo = Arc::new(echo);
    match workload {
        "W1" => {
            let samples = drive::bare_latency(&*echo, plan.latency_calls).await?;
            Ok(latency_record(kind, samples))
        }
        "W6" => {
            let (ok, failed, elapsed) = drive::bare_setups(echo, plan.duration).await?;
            Ok(setups_record(kind, ok, failed, elapsed))
        }
        _ => {
            let (calls, elapsed) =
                drive::bare_throughput(&*echo, shape(workload), plan.duration).await?;
            Ok(throughput_record(kind, workload, calls, elapsed))
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
        target: kind.name(),
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

fn throughput_record(kind: Kind, workload: &'static str, calls: u64, elapsed: Duration) -> Record {
    let per_s = calls as f64 / elapsed.as_secs_f64();
    if workload == "W4" {
        let mb = per_s * shape(workload).payload as f64 / 1e6;
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

/// Runs W5 for one target in a fresh process of this binary.
fn w5_in_child(kind: Kind, n: usize, quick: bool) -> Result<Record, BoxError> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["--w5-child", &kind.short(), &n.to_string()]);
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
async fn idle(kind: Kind, n: usize, exit: bool) -> Result<Record, BoxError> {
    let (before, after) = match kind {
        Kind::BareWs => idle_bare(kind, bare_ws::start().await?, n, exit).await?,
        Kind::BareWss => idle_bare(kind, bare_ws::start_tls().await?, n, exit).await?,
        Kind::BareTcp => idle_bare(kind, bare_prefixed::start_tcp().await?, n, exit).await?,
        Kind::BareUnix => {
            let path = ours::socket_path("bare-echo");
            idle_bare(kind, bare_prefixed::start_unix(path).await?, n, exit).await?
        }
        Kind::Ours(transport, protection, _) => {
            let target = ours::start(transport, protection).await?;
            let figures = idle_rpc(kind, &target, n, exit).await;
            target.shutdown().await;
            figures?
        }
        Kind::Tarpc => idle_rpc(kind, &peer_tarpc::start().await?, n, exit).await?,
        Kind::Jsonrpsee => idle_rpc(kind, &peer_jsonrpsee::start().await?, n, exit).await?,
        Kind::Tonic => idle_rpc(kind, &peer_tonic::start().await?, n, exit).await?,
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

/// W5 on an RPC target: RSS (KiB) before and after opening `n` connections.
async fn idle_rpc<T: Rpc>(
    kind: Kind,
    target: &T,
    n: usize,
    exit: bool,
) -> Result<(u64, u64), BoxError> {
    // Warm up: first-use allocations are not per-connection costs.
    let warm = target.connect().await?;
    target.settle(std::slice::from_ref(&warm)).await?;
    T::close(warm).await;
    let before = rss_kib().ok_or("no /proc/self/status")?;
    let held = drive::open_many(n, || target.connect()).await?;
    target.settle(&held).await?;
    let after = rss_kib().ok_or("no /proc/self/status")?;
    exit_if_profiling(exit, kind, n, before, after);
    drop(held);
    Ok((before, after))
}

/// W5 on a bare echo.
async fn idle_bare<C: Ceiling>(
    kind: Kind,
    echo: C,
    n: usize,
    exit: bool,
) -> Result<(u64, u64), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    C::close(echo.connect().await?).await?;
    let base = echo.accepted();
    let before = rss_kib().ok_or("no /proc/self/status")?;
    let held = drive::open_many(n, || echo.connect()).await?;
    while echo.accepted() < base + n {
        if Instant::now() > deadline {
            return Err("the echo server did not accept every connection".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = rss_kib().ok_or("no /proc/self/status")?;
    exit_if_profiling(exit, kind, n, before, after);
    drop(held);
    Ok((before, after))
}

/// With `--w5-exit`: prints the figures and exits while the connections are still open.
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
