//! 10,000 concurrent authenticated connections against one server, with
//! heartbeats running, then one broadcast to all of them: how long it takes
//! to reach every client, and the server's RSS per connection.
//!
//! ```text
//! cargo build --release -p examples --bin load_server --bin load_clients
//! target/release/load_clients 10000
//! ```
//!
//! It starts `load_server` (next to its own executable) as a child process —
//! each process gets its own open-file limit (20,000 here), and both raise
//! their soft limit — connects the clients in waves, waits for the
//! broadcast, prints the server's and its own figures as JSON lines, closes
//! everything and exits. Loopback only; bounded in time (10 minutes at most).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use examples::load::{LoadClient, NewsCounter, NewsServer, raise_fd_limit, rss_kib};
use sockets::crypto::Secret;
use sockets::{Client, Reconnect};

/// Clients connecting at once.
const WAVE: usize = 256;
/// The longest the program waits for anything.
const LIMIT: Duration = Duration::from_secs(600);

/// Runs every future as a task of its own and collects their outputs.
async fn join_all<T: Send + 'static>(
    futures: impl IntoIterator<Item = impl Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        if let Ok(value) = handle.await {
            out.push(value);
        }
    }
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let wanted: usize = std::env::args().nth(1).map_or(Ok(10_000), |n| n.parse())?;
    let fd_limit = raise_fd_limit(wanted as u64 + 1_000)?;
    let server_exe = std::env::current_exe()?.with_file_name("load_server");
    let mut child = Command::new(&server_exe)
        .arg(wanted.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", server_exe.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout from load_server")?;
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.recv())
        .await?
        .ok_or("load_server ended")?;
    let mut words = ready.split_whitespace().skip(1);
    let (addr, key) = (
        words.next().ok_or("no address")?.to_owned(),
        words.next().ok_or("no key")?.to_owned(),
    );
    let secret = Secret::from_base64(&key)?;
    let counter = NewsCounter::default();
    let rss_start = rss_kib().unwrap_or(0);
    let started = Instant::now();
    let mut clients = Vec::with_capacity(wanted);
    let mut failures = 0usize;
    while clients.len() < wanted {
        let wave = WAVE.min(wanted - clients.len());
        let connects = (0..wave).map(|_| {
            let builder = Client::builder()
                .url(format!("ws://{addr}/"))
                .secret(secret.clone())
                .heartbeat(Duration::from_secs(5), Duration::from_secs(20))
                .handshake_timeout(Duration::from_secs(30))
                .reconnect(Reconnect::disabled())
                .serve(NewsServer::new(counter.clone()));
            builder.connect()
        });
        for result in join_all(connects).await {
            match result {
                Ok(client) => clients.push(client),
                Err(error) => {
                    failures += 1;
                    if failures > 100 {
                        return Err(format!("too many failed connections: {error}").into());
                    }
                }
            }
        }
        if started.elapsed() > LIMIT {
            return Err("connecting took too long".into());
        }
    }
    let connect_s = started.elapsed().as_secs_f64();
    // One call on a sample of connections proves they are live.
    let sample = clients.iter().step_by((wanted / 100).max(1));
    for client in sample {
        if LoadClient::new(client.peer()).bump(1).await? != 2 {
            return Err("a wrong answer".into());
        }
    }
    let rss_full = rss_kib().unwrap_or(0);
    // The server reports when it broadcast.
    let mut broadcast_at = None;
    let deadline = Instant::now() + LIMIT;
    while broadcast_at.is_none() && Instant::now() < deadline {
        let line = tokio::time::timeout(LIMIT, lines.recv())
            .await?
            .ok_or("load_server ended early")?;
        if let Some(ns) = line.strip_prefix("broadcast_at_ns ") {
            broadcast_at = Some(ns.trim().parse::<u64>()?);
        }
    }
    let broadcast_at = broadcast_at.ok_or("no broadcast")?;
    let server_report = tokio::time::timeout(Duration::from_secs(60), lines.recv())
        .await?
        .ok_or("no report from load_server")?;
    // Wait until every client got the broadcast (bounded).
    let wait = Instant::now();
    while counter.received.load(Ordering::Relaxed) < clients.len() as u64
        && wait.elapsed() < Duration::from_secs(60)
    {
        let _ = tokio::time::timeout(Duration::from_millis(100), counter.arrived.notified()).await;
    }
    let received = counter.received.load(Ordering::Relaxed);
    let reach_ms = counter
        .last_ns
        .load(Ordering::Relaxed)
        .saturating_sub(broadcast_at) as f64
        / 1e6;
    let disconnected = clients.iter().filter(|c| !c.is_connected()).count();
    println!("{server_report}");
    println!(
        "{{\"role\":\"clients\",\"connections\":{},\"connect_s\":{connect_s:.2},\"failed_connects\":{failures},\"broadcast_received\":{received},\"reach_all_ms\":{reach_ms:.1},\"disconnected_before_end\":{disconnected},\"rss_kib_per_client\":{:.1},\"fd_limit\":{fd_limit}}}",
        clients.len(),
        rss_full.saturating_sub(rss_start) as f64 / clients.len().max(1) as f64,
    );
    join_all(clients.into_iter().map(|c| async move { c.close().await })).await;
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    Ok(())
}
