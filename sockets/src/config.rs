//! Settings shared by servers and clients, and the `SOCKETS_*` environment variables.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `SOCKETS_ADDR` | server: address to bind (`host` or `host:port`); client: address to connect to | `127.0.0.1` |
//! | `SOCKETS_PORT` | port (overrides a port in `SOCKETS_ADDR`) | `7878` |
//! | `SOCKETS_URL` | client: full `ws://` URL (overrides address and port) | — |
//! | `SOCKETS_SECRET` | the shared key, 32 bytes in standard base64 (`sockets::crypto::generate_key`) | — |
//! | `SOCKETS_PASSPHRASE`, `SOCKETS_SALT` | a passphrase and its per-deployment salt (≥ 16 bytes), instead of a key | — |
//! | `SOCKETS_CIPHER` | `aes-256-gcm`, `chacha20-poly1305` or `auto` | `auto` |
//! | `SOCKETS_PLAINTEXT` | `true`: frames unencrypted (behind TLS only); the handshake still proves the secret | `false` |
//! | `SOCKETS_PLAINTEXT_OVER_WS` | client: allow plaintext mode on a `ws://` url (tests, trusted sockets) | `false` |
//! | `SOCKETS_HEARTBEAT_INTERVAL_MS` / `SOCKETS_HEARTBEAT_TIMEOUT_MS` | ping period / silence before disconnect | 10 000 / 30 000 |
//! | `SOCKETS_HANDSHAKE_TIMEOUT_MS` | connect + handshake + auth | 10 000 |
//! | `SOCKETS_CALL_TIMEOUT_MS` | default per-call timeout | 30 000 |
//! | `SOCKETS_MAX_FRAME` | largest WebSocket message, bytes | 1 MiB |
//! | `SOCKETS_MAX_MESSAGE` | largest RPC message (reassembled from frames), bytes | 16 MiB |
//! | `SOCKETS_MAX_IN_FLIGHT` | calls a peer may have running on one connection | 256 |
//! | `SOCKETS_MAX_CONNECTIONS` | server: open connections | 10 000 |
//! | `SOCKETS_MAX_HANDSHAKES` | server: connections not yet authenticated (pre-authentication cap) | 256 |
//! | `SOCKETS_MAX_HANDSHAKES_PER_IP` | server: connections from one address (IPv4, or IPv6 /64) not yet authenticated; `0`: no per-address cap | 8 |
//! | `SOCKETS_HANDSHAKE_FAILURES_PER_IP` | server: failed handshakes one address may make per window; past them it is refused for a window; `0`: no limit | 10 |
//! | `SOCKETS_HANDSHAKE_FAILURE_WINDOW_MS` | server: that window | 60 000 |
//! | `SOCKETS_AUTH_REJECTIONS_PER_IP` | server: credentials one address may have rejected by the auth hook per 60 s; past them it is refused for 60 s; `0`: no limit | 30 |
//! | `SOCKETS_RESUMPTION_WINDOW_MS` | server: how long a session whose connection was lost waits for its client to resume it; `0`: sessions end with their connection | 120 000 |
//! | `SOCKETS_SESSION_LIFETIME_MS` | client: renew the connection (fresh handshake, same session) after this; `0`: never | 24 h |
//!
//! A missing secret is an [`Error::Config`], never a silent default.

use std::str::FromStr;
use std::time::Duration;

use crate::crypto::{Limits, Secret, Suite};
use crate::error::Error;

/// The longest timeout or interval a configuration may set.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Settings every connection of a server or client uses.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionConfig {
    pub(crate) heartbeat_interval: Duration,
    pub(crate) heartbeat_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) call_timeout: Duration,
    /// How long a write may wait for the peer to drain its socket.
    pub(crate) write_timeout: Duration,
    pub(crate) max_frame: usize,
    pub(crate) max_message: usize,
    pub(crate) max_in_flight: usize,
    /// Streams the peer may have open on this side at once.
    pub(crate) max_streams: usize,
    /// Envelopes queued for the connection's task before senders wait.
    pub(crate) queue_capacity: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            max_frame: limits.max_frame,
            max_message: limits.max_message,
            max_in_flight: 256,
            max_streams: 1024,
            queue_capacity: 256,
        }
    }
}

impl ConnectionConfig {
    /// The crypto layer's limits for these settings.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_frame: self.max_frame,
            max_message: self.max_message,
            ..Limits::default()
        }
    }

    /// Checks the settings make sense together.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let durations = [
            self.heartbeat_interval,
            self.heartbeat_timeout,
            self.handshake_timeout,
            self.call_timeout,
            self.write_timeout,
        ];
        if durations.iter().any(|d| *d > MAX_DURATION) {
            return Err(Error::Config(
                "timeouts and intervals must be at most a year".into(),
            ));
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_timeout <= self.heartbeat_interval {
            return Err(Error::Config(
                "the heartbeat timeout must be longer than its (non-zero) interval".into(),
            ));
        }
        if self.max_frame < 1024 || self.max_message < self.max_frame {
            return Err(Error::Config(
                "max frame must be at least 1 KiB and max message at least max frame".into(),
            ));
        }
        if self.max_in_flight == 0 || self.queue_capacity == 0 || self.max_streams == 0 {
            return Err(Error::Config("limits must be at least 1".into()));
        }
        Ok(())
    }

    /// Applies the variables of the table above that concern connections.
    pub(crate) fn apply_env(&mut self, vars: &Vars<'_>) -> Result<(), Error> {
        if let Some(ms) = vars.parse::<u64>("SOCKETS_HEARTBEAT_INTERVAL_MS")? {
            self.heartbeat_interval = Duration::from_millis(ms);
        }
        if let Some(ms) = vars.parse::<u64>("SOCKETS_HEARTBEAT_TIMEOUT_MS")? {
            self.heartbeat_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = vars.parse::<u64>("SOCKETS_HANDSHAKE_TIMEOUT_MS")? {
            self.handshake_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = vars.parse::<u64>("SOCKETS_CALL_TIMEOUT_MS")? {
            self.call_timeout = Duration::from_millis(ms);
        }
        if let Some(bytes) = vars.parse("SOCKETS_MAX_FRAME")? {
            self.max_frame = bytes;
        }
        if let Some(bytes) = vars.parse("SOCKETS_MAX_MESSAGE")? {
            self.max_message = bytes;
        }
        if let Some(n) = vars.parse("SOCKETS_MAX_IN_FLIGHT")? {
            self.max_in_flight = n;
        }
        Ok(())
    }
}

/// The setters both builders have, for the options every connection uses
/// (heartbeat, timeouts, limits), the shared secret and the services served:
/// written once, expanded into [`ServerBuilder`](crate::ServerBuilder) and
/// [`ClientBuilder`](crate::ClientBuilder). A builder using it has the fields
/// `config: ConnectionConfig`, `secret: Option<Secret>`, `services: Services`
/// and `error: Option<Error>`.
macro_rules! connection_setters {
    () => {
        /// The shared secret both sides must know. Required.
        pub fn secret(mut self, secret: $crate::crypto::Secret) -> Self {
            self.secret = Some(secret);
            self
        }

        /// Serves `service` to the other side. Several services may be
        /// served; their names must differ.
        pub fn serve<S: $crate::Service>(self, service: S) -> Self {
            self.serve_arc(std::sync::Arc::new(service))
        }

        /// Adds a guard that every call and notification to the services
        /// this side serves passes before its handler runs (after the
        /// guards added before it; see [`sockets::guard`](crate::guard)).
        /// The reserved `sockets.describe` is not guarded: its access is
        /// set with `describe`.
        pub fn guard(mut self, guard: impl $crate::Guard) -> Self {
            self.services.add_guard(std::sync::Arc::new(guard));
            self
        }

        /// As `serve`, for a service already in an `Arc`.
        pub fn serve_arc(mut self, service: std::sync::Arc<dyn $crate::Service>) -> Self {
            if let Err(error) = self.services.add(service) {
                self.error.get_or_insert(error);
            }
            self
        }

        /// Ping every `interval`; disconnect a peer silent for `timeout`.
        /// Default 10 s / 30 s (`SOCKETS_HEARTBEAT_INTERVAL_MS`,
        /// `SOCKETS_HEARTBEAT_TIMEOUT_MS`).
        pub fn heartbeat(
            mut self,
            interval: std::time::Duration,
            timeout: std::time::Duration,
        ) -> Self {
            self.config.heartbeat_interval = interval;
            self.config.heartbeat_timeout = timeout;
            self
        }

        /// Everything before authentication (connect or upgrade, handshake,
        /// auth hook) must finish within this. Default 10 s
        /// (`SOCKETS_HANDSHAKE_TIMEOUT_MS`).
        pub fn handshake_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.config.handshake_timeout = timeout;
            self
        }

        /// The default timeout of the calls this side makes. Default 30 s
        /// (`SOCKETS_CALL_TIMEOUT_MS`).
        pub fn call_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.config.call_timeout = timeout;
            self
        }

        /// How long a write may wait for the peer to read before the peer
        /// is disconnected as a slow consumer. Default 10 s.
        pub fn write_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.config.write_timeout = timeout;
            self
        }

        /// The largest frame (one WebSocket message), bytes. A server
        /// announces it to its clients, and both sides keep to it. Default
        /// 1 MiB (`SOCKETS_MAX_FRAME`).
        pub fn max_frame(mut self, bytes: usize) -> Self {
            self.config.max_frame = bytes;
            self
        }

        /// The largest RPC message, reassembled from frames, bytes. Default
        /// 16 MiB (`SOCKETS_MAX_MESSAGE`).
        pub fn max_message(mut self, bytes: usize) -> Self {
            self.config.max_message = bytes;
            self
        }

        /// Calls the peer may have running on this side at once; more are
        /// answered `Rejected`. Default 256 (`SOCKETS_MAX_IN_FLIGHT`).
        pub fn max_in_flight(mut self, calls: usize) -> Self {
            self.config.max_in_flight = calls;
            self
        }

        /// Streams the peer may have open on this side at once (calls of
        /// methods that return a stream); the opening call of one more is
        /// answered `Rejected`. Default 1,024.
        pub fn max_streams(mut self, streams: usize) -> Self {
            self.config.max_streams = streams;
            self
        }

        /// Who may call the reserved `sockets.describe`, which answers with
        /// the descriptors of the services served here (docs/DESCRIPTOR.md):
        /// authenticated sessions (the default), guests too, or nobody
        /// ([`DescribeAccess`](crate::DescribeAccess)).
        pub fn describe(mut self, access: $crate::DescribeAccess) -> Self {
            self.describe = access;
            self
        }
    };
}

pub(crate) use connection_setters;

/// A source of variables: the process environment, or a closure in tests.
pub(crate) struct Vars<'a>(pub(crate) &'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// The variable's value, if set and not empty.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    /// The variable parsed as `T`, if set.
    pub(crate) fn parse<T: FromStr>(&self, name: &str) -> Result<Option<T>, Error> {
        self.get(name)
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| Error::Config(format!("{name} has an invalid value")))
            })
            .transpose()
    }

    /// A boolean variable (`true`/`false`/`1`/`0`/`yes`/`no`).
    pub(crate) fn flag(&self, name: &str) -> Result<Option<bool>, Error> {
        self.get(name)
            .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(Error::Config(format!("{name} must be true or false"))),
            })
            .transpose()
    }

    /// The shared secret from `SOCKETS_SECRET`, or `SOCKETS_PASSPHRASE` with `SOCKETS_SALT`.
    ///
    /// A passphrase runs scrypt here, once (a fraction of a second).
    pub(crate) fn secret(&self) -> Result<Secret, Error> {
        if let Some(key) = self.get("SOCKETS_SECRET") {
            return Secret::from_base64(key.trim())
                .map_err(|e| Error::Config(format!("SOCKETS_SECRET: {e}")));
        }
        match (self.get("SOCKETS_PASSPHRASE"), self.get("SOCKETS_SALT")) {
            (Some(passphrase), Some(salt)) => Secret::from_passphrase(&passphrase, salt.as_bytes())
                .map_err(|e| Error::Config(format!("SOCKETS_PASSPHRASE/SOCKETS_SALT: {e}"))),
            (Some(_), None) => Err(Error::Config(
                "SOCKETS_PASSPHRASE is set but SOCKETS_SALT is missing".into(),
            )),
            _ => Err(Error::Config(
                "no shared secret: set SOCKETS_SECRET (or SOCKETS_PASSPHRASE and SOCKETS_SALT)"
                    .into(),
            )),
        }
    }

    /// The cipher from `SOCKETS_CIPHER`: `Some` suite, or `None` for automatic.
    pub(crate) fn cipher(&self) -> Result<Option<Suite>, Error> {
        match self
            .get("SOCKETS_CIPHER")
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => Ok(None),
            Some(v) if v == "auto" => Ok(None),
            Some(v) if v == "aes-256-gcm" || v == "aes" => Ok(Some(Suite::Aes256Gcm)),
            Some(v) if v == "chacha20-poly1305" || v == "chacha" => {
                Ok(Some(Suite::ChaCha20Poly1305))
            }
            Some(_) => Err(Error::Config(
                "SOCKETS_CIPHER must be aes-256-gcm, chacha20-poly1305 or auto".into(),
            )),
        }
    }

    /// `host:port` from `SOCKETS_ADDR` and `SOCKETS_PORT`.
    pub(crate) fn address(&self) -> Result<String, Error> {
        let addr = self
            .get("SOCKETS_ADDR")
            .unwrap_or_else(|| "127.0.0.1".into());
        let addr = addr.trim();
        let port: Option<u16> = self.parse("SOCKETS_PORT")?;
        let has_port = addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| port.parse::<u16>().is_ok() && !host.ends_with(':'));
        Ok(match (port, has_port) {
            (Some(port), true) => {
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                format!("{host}:{port}")
            }
            (Some(port), false) => format!("{addr}:{port}"),
            (None, true) => addr.to_owned(),
            (None, false) => format!("{addr}:7878"),
        })
    }
}

/// Reads the process environment.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)], f: impl FnOnce(&Vars<'_>)) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup = move |name: &str| map.get(name).cloned();
        f(&Vars(&lookup));
    }

    #[test]
    fn a_missing_secret_is_a_config_error() {
        with(&[], |vars| {
            assert!(matches!(vars.secret(), Err(Error::Config(_))));
        });
        with(&[("SOCKETS_PASSPHRASE", "correct horse")], |vars| {
            assert!(matches!(vars.secret(), Err(Error::Config(_))));
        });
    }

    #[test]
    fn settings_parse_and_bad_values_are_errors() {
        with(
            &[
                ("SOCKETS_ADDR", "0.0.0.0"),
                ("SOCKETS_PORT", "9000"),
                ("SOCKETS_CALL_TIMEOUT_MS", "1500"),
                ("SOCKETS_MAX_IN_FLIGHT", "8"),
                ("SOCKETS_CIPHER", "chacha20-poly1305"),
            ],
            |vars| {
                assert_eq!(vars.address().unwrap(), "0.0.0.0:9000");
                let mut config = ConnectionConfig::default();
                config.apply_env(vars).unwrap();
                assert_eq!(config.call_timeout, Duration::from_millis(1500));
                assert_eq!(config.max_in_flight, 8);
                assert_eq!(vars.cipher().unwrap(), Some(Suite::ChaCha20Poly1305));
            },
        );
        with(&[("SOCKETS_ADDR", "10.0.0.1:81")], |vars| {
            assert_eq!(vars.address().unwrap(), "10.0.0.1:81");
        });
        with(&[("SOCKETS_MAX_FRAME", "lots")], |vars| {
            let mut config = ConnectionConfig::default();
            assert!(matches!(config.apply_env(vars), Err(Error::Config(_))));
        });
        with(&[("SOCKETS_CIPHER", "rot13")], |vars| {
            assert!(matches!(vars.cipher(), Err(Error::Config(_))));
        });
    }
}
