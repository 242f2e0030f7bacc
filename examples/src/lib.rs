//! Runnable programs showing `sockets`; each binary opens with the command that runs it.
//!
//! | binary | what it shows |
//! |---|---|
//! | `demo` | one process: typed calls, an application error, a timeout, a push and a server → client call |
//! | `server`, `client` | two terminals configured by `SOCKETS_*` variables |
//! | `chat` | rooms, broadcast, per-user tokens (the handler knows who speaks) |
//! | `agent` | a master calling its agents; agents reconnecting after the master restarts |
//! | `bench` | workloads W1–W6 against a bare tokio-tungstenite echo |
//! | `keygen` | a fresh random key for `SOCKETS_SECRET` |
//! | `crypto_bench` | handshakes and seal + open on one core |
//!
//! This library holds what several binaries share: the service of the
//! `server`/`client` pair and the logging set-up.

pub mod greeter;

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default: warnings only).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
