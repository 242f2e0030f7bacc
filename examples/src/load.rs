//! What the load and soak programs share (`load_server`, `load_clients`,
//! `soak`): their services, and the process figures they report (resident
//! memory, open file descriptors, the open-file limit).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

/// The server's service: a trivial call to load the connection with.
#[sockets::service]
pub trait Load {
    /// Answers `n + 1`.
    async fn bump(&self, n: u64) -> u64;
}

/// The server's implementation of [`Load`].
pub struct LoadImpl;

impl Load for LoadImpl {
    async fn bump(&self, n: u64) -> u64 {
        n.wrapping_add(1)
    }
}

/// The clients' service: the server broadcasts to it.
#[sockets::service]
pub trait News {
    /// A broadcast with its sequence number; no reply.
    #[sockets(notify)]
    async fn news(&self, seq: u64);
}

/// A client's implementation of [`News`]: counts arrivals and remembers the
/// latest arrival time (Unix nanoseconds), shared by every client of a process.
#[derive(Clone, Default)]
pub struct NewsCounter {
    /// How many broadcasts arrived (over all clients).
    pub received: Arc<AtomicU64>,
    /// The latest arrival, Unix nanoseconds.
    pub last_ns: Arc<AtomicU64>,
    /// Woken on every arrival.
    pub arrived: Arc<Notify>,
}

impl News for NewsCounter {
    async fn news(&self, _seq: u64) {
        self.last_ns.fetch_max(unix_ns(), Ordering::Relaxed);
        self.received.fetch_add(1, Ordering::Relaxed);
        self.arrived.notify_waiters();
    }
}

/// Now, in nanoseconds since the Unix epoch (one clock for both processes).
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// This process's resident set size in KiB (`VmRSS` of /proc/self/status), if readable.
pub fn rss_kib() -> Option<u64> {
    process_rss_kib("self")
}

/// How many file descriptors this process has open, if readable.
pub fn open_fds() -> Option<usize> {
    process_open_fds("self")
}

/// The resident set size in KiB of process `pid` (a number, or `self`), if readable.
pub fn process_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// How many file descriptors process `pid` (a number, or `self`) has open, if readable.
pub fn process_open_fds(pid: &str) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Raises the soft open-file limit towards `wanted` (up to the hard limit)
/// and returns the limit now in force.
///
/// # Errors
/// When the limit cannot be read or set.
pub fn raise_fd_limit(wanted: u64) -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(wanted)
}

/// The 1-, 5- and 15-minute load averages, as /proc/loadavg gives them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
