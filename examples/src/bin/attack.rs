//! Hostile unauthenticated clients against the `server` example, run with
//! its default settings in a process of its own, while a good client keeps
//! calling and keeps opening new connections. Prints what the good client
//! saw (success rates, latency) and what the server held (peak and final
//! RSS, file descriptors) as JSON lines.
//!
//! ```text
//! cargo build --release -p examples --bin server --bin attack
//! target/release/attack 60          # seconds of attack (default 60)
//! ```
//!
//! The attacks, each from addresses of its own in 127.0.0.0/8 (loopback only):
//! - **ping floods**: 8 addresses × 8 connections that upgrade, push 6 MiB
//!   of WebSocket pings and never read;
//! - **churn**: 32 addresses × 8 connections that upgrade and hang up just
//!   before the 10 s handshake deadline, and reconnect;
//! - **silent TCP**: 250 addresses × 2 connections that connect, send
//!   nothing, and reconnect when cut;
//! - **wrong secrets**: 8 addresses sending HS1 with a wrong key in a loop;
//! - **HTTP probes**: `GET /` in a loop from one address.
//!
//! The good client connects from 127.0.0.1. It stops by itself: the attack
//! for the given time, then 5 s for the server to settle; the server is
//! killed at the end. It exits non-zero only if the server died or the good
//! client never got an answer.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use examples::greeter::GreeterClient;
use examples::load::{process_open_fds, process_rss_kib, raise_fd_limit};
use sockets::__internal::crypto::{ClientHandshake, Mode};
use sockets::crypto::{Secret, Suite, generate_key};
use sockets::{CallOptions, Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

/// How long the server gets to give memory back after the attack.
const SETTLE: Duration = Duration::from_secs(5);

/// A pause after an attacking connection ends, so refused attackers do not
/// spin on the two cores the server needs too.
const PAUSE: Duration = Duration::from_millis(20);

/// Counters of the attack.
#[derive(Default)]
struct Attack {
    stop: AtomicBool,
    connections: AtomicU64,
}

/// One WebSocket frame from a client, masked with a zero key (identity).
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        len @ 0..=125 => out.push(0x80 | len as u8),
        len @ 126..=65535 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

async fn connect_from(from: IpAddr, to: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(from, 0)).ok()?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(to))
        .await
        .ok()?
        .ok()
}

/// Reads and drops whatever comes until the server ends the socket.
async fn drain(tcp: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(15), tcp.read(&mut sink)).await {
        if n == 0 {
            break;
        }
    }
}

/// Runs `one` from `from` again and again until the attack stops.
fn attacker<F, Fut>(attack: &Arc<Attack>, from: IpAddr, to: SocketAddr, one: F)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let attack = Arc::clone(attack);
    tokio::spawn(async move {
        while !attack.stop.load(Ordering::Relaxed) {
            if let Some(tcp) = connect_from(from, to).await {
                attack.connections.fetch_add(1, Ordering::Relaxed);
                let stop = async {
                    while !attack.stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                };
                tokio::select! {
                    () = one(tcp) => {}
                    () = stop => {}
                }
            }
            tokio::time::sleep(PAUSE).await;
        }
    });
}

fn ip(b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, b, c, d))
}

fn start_attacks(attack: &Arc<Attack>, to: SocketAddr) {
    // Ping floods.
    for a in 1..=8 {
        for _ in 0..8 {
            attacker(attack, ip(1, 0, a), to, |mut tcp| async move {
                let _ = tcp.write_all(UPGRADE).await;
                let pings = frame(0x9, &[0x55; 125]).repeat(6 * 1024 * 1024 / 131);
                let _ = tcp.write_all(&pings).await;
                drain(&mut tcp).await;
            });
        }
    }
    // Churn: upgrade, hang up just before the deadline.
    for a in 1..=32 {
        for _ in 0..8 {
            attacker(attack, ip(2, 0, a), to, |mut tcp| async move {
                let _ = tcp.write_all(UPGRADE).await;
                let _ = tokio::time::timeout(Duration::from_millis(9_500), drain(&mut tcp)).await;
            });
        }
    }
    // Silent TCP connections.
    for a in 1..=250 {
        for _ in 0..2 {
            attacker(attack, ip(3, 0, a), to, |mut tcp| async move {
                drain(&mut tcp).await;
            });
        }
    }
    // Wrong secrets.
    let wrong = Secret::from_key(&[0x42; 32]);
    for a in 1..=8 {
        let wrong = wrong.clone();
        attacker(attack, ip(4, 0, a), to, move |mut tcp| {
            let wrong = wrong.clone();
            async move {
                let Ok((_, hs1)) =
                    ClientHandshake::start(&wrong, Suite::Aes256Gcm, Mode::Encrypted, None)
                else {
                    return;
                };
                let _ = tcp.write_all(UPGRADE).await;
                let _ = tcp.write_all(&frame(0x2, &hs1)).await;
                drain(&mut tcp).await;
            }
        });
    }
    // Plain HTTP probes.
    for _ in 0..2 {
        attacker(attack, ip(5, 0, 1), to, |mut tcp| async move {
            let _ = tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
            drain(&mut tcp).await;
        });
    }
}

/// What the good client saw.
#[derive(Default)]
struct Good {
    calls_ok: u64,
    calls_failed: u64,
    latencies_us: Vec<u64>,
    connects_ok: u64,
    connects_failed: u64,
    connect_errors: std::collections::BTreeMap<String, u64>,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args().nth(1).map_or(Ok(60), |s| s.parse())?;
    let fd_limit = raise_fd_limit(20_000)?;
    let key = generate_key();
    let server_exe = std::env::current_exe()?.with_file_name("server");
    let mut child = Command::new(&server_exe)
        .env("SOCKETS_SECRET", &key)
        .env("SOCKETS_PORT", "0")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", server_exe.display()))?;
    let pid = child.id().to_string();
    let stdout = child.stdout.take().ok_or("no stdout from the server")?;
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent && let Some(url) = line.strip_prefix("listening on ") {
                let _ = url_tx.send(url.to_owned());
                sent = true;
            }
            // The server's own lines (its summaries) are passed on to stderr.
            eprintln!("server: {line}");
        }
    });
    let url = url_rx.recv_timeout(Duration::from_secs(30))?;
    let addr: SocketAddr = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .parse()?;
    let secret = Secret::from_base64(&key)?;
    let connect = {
        let (url, secret) = (url.clone(), secret.clone());
        move || {
            Client::builder()
                .url(url.clone())
                .secret(secret.clone())
                .credentials("good")
                .connect()
        }
    };
    let rss_idle = process_rss_kib(&pid).unwrap_or(0);
    let fds_idle = process_open_fds(&pid).unwrap_or(0);
    let good_client = connect().await?;
    let greeter = GreeterClient::new(good_client.peer());

    let attack = Arc::new(Attack::default());
    start_attacks(&attack, addr);
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut good = Good::default();
    let (mut rss_peak, mut fds_peak) = (rss_idle, fds_idle);
    let mut next_sample = Instant::now();
    let mut next_connect = Instant::now();
    let options = CallOptions::timeout(Duration::from_secs(5));
    while Instant::now() < until {
        let call = Instant::now();
        match greeter.with_options(options).greet("good").await {
            Ok(Ok(_)) => {
                good.calls_ok += 1;
                good.latencies_us.push(call.elapsed().as_micros() as u64);
            }
            _ => good.calls_failed += 1,
        }
        if Instant::now() >= next_connect {
            // A new client must get in during the attack, not only one that
            // was connected before it.
            next_connect += Duration::from_millis(500);
            let fresh = tokio::time::timeout(Duration::from_secs(12), connect()).await;
            match fresh {
                Ok(Ok(fresh)) => {
                    good.connects_ok += 1;
                    fresh.close().await;
                }
                Ok(Err(error)) => {
                    good.connects_failed += 1;
                    *good.connect_errors.entry(error.to_string()).or_default() += 1;
                }
                Err(_) => {
                    good.connects_failed += 1;
                    *good
                        .connect_errors
                        .entry("no answer in 12 s".into())
                        .or_default() += 1;
                }
            }
        }
        if Instant::now() >= next_sample {
            next_sample += Duration::from_millis(250);
            rss_peak = rss_peak.max(process_rss_kib(&pid).unwrap_or(0));
            fds_peak = fds_peak.max(process_open_fds(&pid).unwrap_or(0));
        }
        // About a hundred calls a second: the good client is a client, not a load.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    attack.stop.store(true, Ordering::Relaxed);
    let attack_connections = attack.connections.load(Ordering::Relaxed);
    tokio::time::sleep(SETTLE).await;
    let alive = child.try_wait()?.is_none();
    let rss_final = process_rss_kib(&pid).unwrap_or(0);
    let fds_final = process_open_fds(&pid).unwrap_or(0);
    good_client.close().await;
    let _ = child.kill();
    let _ = child.wait();

    good.latencies_us.sort_unstable();
    let calls = good.calls_ok + good.calls_failed;
    let connects = good.connects_ok + good.connects_failed;
    println!(
        "{{\"attack_seconds\":{seconds},\"attack_connections\":{attack_connections},\"fd_limit\":{fd_limit}}}"
    );
    println!(
        "{{\"good_calls\":{calls},\"good_call_success\":{:.4},\"good_p50_us\":{},\"good_p99_us\":{},\"good_max_us\":{}}}",
        good.calls_ok as f64 / calls.max(1) as f64,
        percentile(&good.latencies_us, 0.50),
        percentile(&good.latencies_us, 0.99),
        good.latencies_us.last().copied().unwrap_or(0),
    );
    println!(
        "{{\"good_new_connections\":{connects},\"good_new_connection_success\":{:.4}}}",
        good.connects_ok as f64 / connects.max(1) as f64
    );
    for (error, count) in &good.connect_errors {
        println!("{{\"good_new_connection_error\":{error:?},\"count\":{count}}}");
    }
    println!(
        "{{\"server_rss_idle_kib\":{rss_idle},\"server_rss_peak_kib\":{rss_peak},\"server_rss_final_kib\":{rss_final},\"server_fds_idle\":{fds_idle},\"server_fds_peak\":{fds_peak},\"server_fds_final\":{fds_final}}}"
    );
    if !alive {
        return Err("the server died during the attack".into());
    }
    if good.calls_ok == 0 {
        return Err("the good client never got an answer".into());
    }
    Ok(())
}
