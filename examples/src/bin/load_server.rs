//! The server half of the 10,000-connection load test; `load_clients` starts
//! it as a child process (so each process has its own open-file limit) and
//! reads its report. Loopback only; it stops by itself.
//!
//! ```text
//! cargo build --release -p examples --bin load_server --bin load_clients
//! target/release/load_clients 10000          # starts target/release/load_server
//! ```
//!
//! Run alone: `load_server CONNECTIONS` prints `ready ADDR KEY`, waits until
//! CONNECTIONS clients are authenticated, lets heartbeats run, measures its
//! RSS, broadcasts one notification to all, prints one JSON line per figure,
//! and exits when every client has gone (or after 10 minutes at most).

use std::io::Write;
use std::time::{Duration, Instant};

use examples::load::{
    LoadImpl, LoadServer, NewsRequest, load_average, raise_fd_limit, rss_kib, unix_ns,
};
use sockets::Server;
use sockets::crypto::{Secret, generate_key};

/// How long idle connections exchange heartbeats before the broadcast.
const HEARTBEAT_SOAK: Duration = Duration::from_secs(12);
/// The longest the program runs.
const LIMIT: Duration = Duration::from_secs(600);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let wanted: usize = std::env::args().nth(1).map_or(Ok(10_000), |n| n.parse())?;
    let fd_limit = raise_fd_limit(wanted as u64 + 1_000)?;
    let key = generate_key();
    let rss_start = rss_kib().unwrap_or(0);
    let server = Server::builder()
        .address("127.0.0.1:0")
        .secret(Secret::from_base64(&key)?)
        .heartbeat(Duration::from_secs(5), Duration::from_secs(20))
        .max_connections(wanted + 100)
        // Clients connect in waves; let many handshakes run at once.
        .max_handshakes(1024)
        // Every client comes from 127.0.0.1: no per-address cap.
        .max_handshakes_per_ip(0)
        .serve(LoadServer::new(LoadImpl))
        .start()
        .await?;
    println!("ready {} {key}", server.local_addr());
    std::io::stdout().flush()?;
    let started = Instant::now();
    let mut events = server.events();
    // Wait for every client (the events are only a wake-up; the registry counts).
    while server.connections().len() < wanted {
        if started.elapsed() > LIMIT {
            return Err("the clients did not all connect in time".into());
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
    }
    let all_in = started.elapsed();
    // Heartbeats run on every connection (interval 5 s) while they idle.
    tokio::time::sleep(HEARTBEAT_SOAK).await;
    let still = server.connections().len();
    let rss_full = rss_kib().unwrap_or(0);
    let before = unix_ns();
    let queued = server.broadcast(&NewsRequest::News { seq: 1 }).await?;
    let queued_ms = (unix_ns() - before) as f64 / 1e6;
    println!("broadcast_at_ns {before}");
    println!(
        "{{\"role\":\"server\",\"connections\":{still},\"all_connected_s\":{:.2},\"rss_kib_start\":{rss_start},\"rss_kib_full\":{rss_full},\"rss_kib_per_connection\":{:.1},\"broadcast_queued\":{queued},\"broadcast_queue_ms\":{queued_ms:.1},\"fd_limit\":{fd_limit},\"load_average\":\"{}\"}}",
        all_in.as_secs_f64(),
        (rss_full.saturating_sub(rss_start)) as f64 / still.max(1) as f64,
        load_average(),
    );
    std::io::stdout().flush()?;
    // Leave once the clients have gone.
    while !server.connections().is_empty() && started.elapsed() < LIMIT {
        let _ = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
    }
    server.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
