//! Runnable programs showing `sockets`; each binary opens with the command that runs it.
//!
//! | binary | what it shows |
//! |---|---|
//! | `demo` | one process: typed calls, an application error, a timeout, a push and a server → client call |
//! | `server`, `client` | two terminals configured by `SOCKETS_*` variables |
//! | `chat` | rooms, broadcast, per-user tokens (the handler knows who speaks) |
//! | `agent` | a master calling its agents; agents reconnecting after the master restarts |
//! | `keygen` | a fresh random key for `SOCKETS_SECRET` |
//! | `crypto_bench` | handshakes and seal + open on one core |
//!
//! The benchmark (workloads W1–W6 against bare echoes and peer frameworks) is
//! its own package, `bench/`: `cargo run --release -p bench`.
//!
//! This library holds what several binaries share: the service of the
//! `server`/`client` pair and the logging set-up.

pub mod greeter;
pub mod load;

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default: warnings only).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The `SOCKETS_*` variables, for `--help` texts.
pub const ENV_HELP: &str = "\
Environment (all optional except the secret):
  SOCKETS_SECRET                  the shared key, 32 bytes in base64 (make one: cargo run -p examples --bin keygen)
  SOCKETS_PASSPHRASE, SOCKETS_SALT a passphrase and its per-deployment salt (>= 16 bytes), instead of a key
  SOCKETS_ADDR                    server: address to bind; client: host to connect to   [127.0.0.1]
  SOCKETS_PORT                    port (0: the server picks a free one)                 [7878]
  SOCKETS_URL                     client: full ws:// URL (overrides address and port)
  SOCKETS_CIPHER                  aes-256-gcm, chacha20-poly1305 or auto               [auto]
  SOCKETS_PLAINTEXT               true: unencrypted frames (behind TLS only)            [false]
  SOCKETS_PLAINTEXT_OVER_WS       client: allow plaintext frames on a ws:// url         [false]
  SOCKETS_HEARTBEAT_INTERVAL_MS   ping period                                           [10000]
  SOCKETS_HEARTBEAT_TIMEOUT_MS    silence before disconnect                             [30000]
  SOCKETS_HANDSHAKE_TIMEOUT_MS    connect + handshake + auth                            [10000]
  SOCKETS_CALL_TIMEOUT_MS         default per-call timeout                              [30000]
  SOCKETS_MAX_FRAME               largest WebSocket message, bytes                      [1048576]
  SOCKETS_MAX_MESSAGE             largest RPC message, bytes                            [16777216]
  SOCKETS_MAX_IN_FLIGHT           calls a peer may have running on one connection       [256]
  SOCKETS_MAX_CONNECTIONS         server: open connections                              [10000]
  SOCKETS_MAX_HANDSHAKES          server: connections not yet authenticated             [256]
  SOCKETS_MAX_HANDSHAKES_PER_IP   server: of those, from one address; 0: no cap         [8]
  SOCKETS_HANDSHAKE_FAILURES_PER_IP  server: failed handshakes per address and window; 0: off [10]
  SOCKETS_HANDSHAKE_FAILURE_WINDOW_MS  server: that window                              [60000]
  SOCKETS_HEALTH_PATH             server: a path answered 200 ok, for load balancers    [none]
  SOCKETS_SESSION_LIFETIME_MS     client: renew the connection after this; 0: never     [86400000]
  RUST_LOG                        log filter for stderr                                 [warn]";

/// With `--describe` on the command line, prints the descriptors of
/// `services` as the JSON document `sockets.describe` answers with
/// (docs/DESCRIPTOR.md) and returns `true`: the binary then exits. The
/// snapshot test `examples/tests/descriptors.rs` runs each binary so.
pub fn describe(services: &[&sockets::descriptor::ServiceDescriptor]) -> bool {
    if !std::env::args().skip(1).any(|a| a == "--describe") {
        return false;
    }
    let document = sockets::descriptor::Document::new(services.iter().map(|s| (*s).clone()));
    match serde_json::to_string_pretty(&document) {
        Ok(json) => println!("{json}"),
        Err(error) => eprintln!("the descriptors do not print as JSON: {error}"),
    }
    true
}

/// Whether the command line asks for help.
pub fn wants_help() -> bool {
    std::env::args().skip(1).any(|a| a == "--help" || a == "-h")
}
