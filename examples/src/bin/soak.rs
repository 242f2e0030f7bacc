//! A soak test: a steady call rate on long-lived connections while other
//! clients keep connecting, calling and disconnecting. It reports RSS and
//! open file descriptors after a warm-up and at the end (no growth beyond
//! noise), RSS once a minute, and every error (none are expected).
//! Server and clients share this process; loopback only; it stops by itself.
//!
//! ```text
//! cargo run --release -p examples --bin soak -- 600 500 5
//! ```
//!
//! Arguments: seconds to run (default 600), calls per second on the steady
//! connections (default 500), new short-lived clients per second (default 5).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use examples::load::{LoadClient, LoadImpl, LoadServer, load_average, open_fds, rss_kib};
use sockets::crypto::{Secret, generate_key};
use sockets::{Client, Reconnect, Server};

/// Long-lived connections carrying the steady calls.
const STEADY: usize = 16;
/// Calls each short-lived client makes before it leaves.
const CHURN_CALLS: u64 = 5;

#[derive(Default)]
struct Counts {
    calls_ok: AtomicU64,
    call_errors: AtomicU64,
    churn_connects: AtomicU64,
    churn_errors: AtomicU64,
}

fn arg(n: usize, default: u64) -> Result<u64, std::num::ParseIntError> {
    std::env::args().nth(n).map_or(Ok(default), |v| v.parse())
}

async fn connect(url: &str, secret: &Secret) -> Result<Client, sockets::Error> {
    Client::builder()
        .url(url)
        .secret(secret.clone())
        .heartbeat(Duration::from_secs(2), Duration::from_secs(10))
        .reconnect(Reconnect::disabled())
        .connect()
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds = arg(1, 600)?;
    let rate = arg(2, 500)?.max(1);
    let churn_rate = arg(3, 5)?.max(1);
    let secret = Secret::from_base64(&generate_key())?;
    let server = Server::builder()
        .address("127.0.0.1:0")
        .secret(secret.clone())
        .heartbeat(Duration::from_secs(2), Duration::from_secs(10))
        .serve(LoadServer::new(LoadImpl))
        .start()
        .await?;
    let url = format!("ws://{}/", server.local_addr());
    let mut steady = Vec::with_capacity(STEADY);
    for _ in 0..STEADY {
        steady.push(LoadClient::new(connect(&url, &secret).await?.peer()));
    }
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let warmup = Duration::from_secs((seconds / 10).clamp(1, 30));
    println!(
        "soak: {seconds} s, {rate} calls/s on {STEADY} connections, {churn_rate} new clients/s; load average {}",
        load_average()
    );

    // Short-lived clients: connect, call, close.
    let churn = tokio::spawn({
        let (url, secret, counts) = (url.clone(), secret.clone(), Arc::clone(&counts));
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / churn_rate as u32);
            let mut running = tokio::task::JoinSet::new();
            while Instant::now() < end {
                tick.tick().await;
                let (url, secret, counts) = (url.clone(), secret.clone(), Arc::clone(&counts));
                running.spawn(async move {
                    let client = match connect(&url, &secret).await {
                        Ok(client) => client,
                        Err(error) => {
                            eprintln!("churn connect failed: {error}");
                            counts.churn_errors.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    counts.churn_connects.fetch_add(1, Ordering::Relaxed);
                    let load = LoadClient::new(client.peer());
                    for n in 0..CHURN_CALLS {
                        match load.bump(n).await {
                            Ok(m) if m == n + 1 => {}
                            other => {
                                eprintln!(
                                    "churn call {n} failed: {other:?} (connection {:?})",
                                    client.connection_id()
                                );
                                counts.churn_errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    client.close().await;
                });
                while running.try_join_next().is_some() {}
            }
            while running.join_next().await.is_some() {}
        }
    });

    // Steady calls at the given rate, spread over the steady connections.
    let steady_task = tokio::spawn({
        let counts = Arc::clone(&counts);
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut running = tokio::task::JoinSet::new();
            let mut n = 0u64;
            while Instant::now() < end {
                tick.tick().await;
                let load = steady[(n as usize) % STEADY].clone();
                let counts = Arc::clone(&counts);
                running.spawn(async move {
                    match load.bump(n).await {
                        Ok(m) if m == n + 1 => {
                            counts.calls_ok.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            eprintln!("steady call failed: {other:?}");
                            counts.call_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
                n += 1;
                while running.try_join_next().is_some() {}
            }
            while running.join_next().await.is_some() {}
            steady
        }
    });

    tokio::time::sleep(warmup).await;
    let (rss_start, fds_start) = (rss_kib().unwrap_or(0), open_fds().unwrap_or(0));
    println!(
        "after warm-up ({} s): rss {rss_start} KiB, fds {fds_start}",
        warmup.as_secs()
    );
    let mut minute = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(60),
        Duration::from_secs(60),
    );
    while Instant::now() + Duration::from_secs(60) < end {
        minute.tick().await;
        println!(
            "t={:>4} s: rss {} KiB, fds {}, calls ok {}, errors {}, churned {}, load {}",
            started.elapsed().as_secs(),
            rss_kib().unwrap_or(0),
            open_fds().unwrap_or(0),
            counts.calls_ok.load(Ordering::Relaxed),
            counts.call_errors.load(Ordering::Relaxed)
                + counts.churn_errors.load(Ordering::Relaxed),
            counts.churn_connects.load(Ordering::Relaxed),
            load_average(),
        );
    }
    let steady = steady_task.await?;
    churn.await?;
    // Short-lived clients have all gone; the server holds the steady ones.
    let mut events = server.events();
    while server.connections().len() > STEADY {
        let _ = tokio::time::timeout(Duration::from_millis(100), events.recv()).await;
    }
    let (rss_end, fds_end) = (rss_kib().unwrap_or(0), open_fds().unwrap_or(0));
    let elapsed = started.elapsed().as_secs_f64();
    let ok = counts.calls_ok.load(Ordering::Relaxed);
    println!(
        "{{\"seconds\":{elapsed:.0},\"calls_ok\":{ok},\"calls_per_s\":{:.0},\"call_errors\":{},\"churn_connects\":{},\"churn_errors\":{},\"rss_kib_start\":{rss_start},\"rss_kib_end\":{rss_end},\"fds_start\":{fds_start},\"fds_end\":{fds_end},\"server_connections_end\":{},\"load_average_end\":\"{}\"}}",
        ok as f64 / elapsed,
        counts.call_errors.load(Ordering::Relaxed),
        counts.churn_connects.load(Ordering::Relaxed),
        counts.churn_errors.load(Ordering::Relaxed),
        server.connections().len(),
        load_average(),
    );
    drop(steady);
    server.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
