//! Close codes, and every close reason this implementation sends: one table.
//!
//! A connection ends with a code and a short reason text, in a WebSocket
//! close before authentication and in an authenticated CLOSE frame after it
//! (docs/PROTOCOL.md §9.3). [`Reason`] lists every reason whose text is
//! fixed; docs/PROTOCOL.md §10.1 lists the same table, and a test checks that
//! they agree. Three codes carry a text that is not fixed: 4002 (the auth
//! hook's reason), 4006 (the application's reason) and the 4007 lockout,
//! which says how long is left.

/// Why a connection was closed, as carried by a CLOSE frame or a WebSocket close.
///
/// Codes below 4000 are the WebSocket ones (RFC 6455 §7.4.1); 4000 and up are ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// 1000: the peer is done; nothing went wrong.
    Normal,
    /// 1001: the peer is going away (server shutdown, client dropped).
    GoingAway,
    /// 1002: the peer broke the protocol (bad frame, bad envelope, failed decryption).
    ProtocolError,
    /// 1006: the connection ended without any close: the socket was reset
    /// or reached its end (the peer's process died, the network failed).
    /// Never sent; a side reports it locally (RFC 6455 §7.1.5).
    ConnectionLost,
    /// 1008: the handshake failed; sent with an empty reason so it reveals nothing.
    PolicyViolation,
    /// 1009: a frame or a reassembled message exceeded the configured limit.
    TooBig,
    /// 1011: the peer hit an unexpected internal error.
    InternalError,
    /// 4001: a replayed or stale first handshake message.
    StaleHandshake,
    /// 4002: the application's auth hook rejected the credentials.
    AuthRejected,
    /// 4003: no traffic from the peer within the heartbeat timeout.
    HeartbeatTimeout,
    /// 4004: the peer did not read its socket fast enough; its write queue stayed full.
    SlowConsumer,
    /// 4005: the handshake or authentication did not finish in time.
    HandshakeTimeout,
    /// 4006: the application closed this connection on purpose.
    Disconnected,
    /// 4007: the server is at its connection limit.
    TooManyConnections,
    /// Any other code, kept so it can be reported.
    Other(u16),
}

impl CloseCode {
    /// The code's number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::GoingAway => 1001,
            Self::ProtocolError => 1002,
            Self::ConnectionLost => 1006,
            Self::PolicyViolation => 1008,
            Self::TooBig => 1009,
            Self::InternalError => 1011,
            Self::StaleHandshake => 4001,
            Self::AuthRejected => 4002,
            Self::HeartbeatTimeout => 4003,
            Self::SlowConsumer => 4004,
            Self::HandshakeTimeout => 4005,
            Self::Disconnected => 4006,
            Self::TooManyConnections => 4007,
            Self::Other(code) => code,
        }
    }

    /// The code for a number from the wire.
    pub fn from_u16(code: u16) -> Self {
        match code {
            1000 => Self::Normal,
            1001 => Self::GoingAway,
            1002 => Self::ProtocolError,
            1006 => Self::ConnectionLost,
            1008 => Self::PolicyViolation,
            1009 => Self::TooBig,
            1011 => Self::InternalError,
            4001 => Self::StaleHandshake,
            4002 => Self::AuthRejected,
            4003 => Self::HeartbeatTimeout,
            4004 => Self::SlowConsumer,
            4005 => Self::HandshakeTimeout,
            4006 => Self::Disconnected,
            4007 => Self::TooManyConnections,
            other => Self::Other(other),
        }
    }

    /// The code a WebSocket close may carry for this code: the same, unless
    /// RFC 6455 §7.4 forbids sending it (1005, 1006, 1015, and codes outside
    /// the ranges it allows), where 1000 stands in.
    pub fn websocket(self) -> u16 {
        match self.to_u16() {
            code @ (1000..=1003 | 1007..=1011 | 3000..=4999) => code,
            _ => 1000,
        }
    }
}

macro_rules! reasons {
    ($( $(#[$doc:meta])* $variant:ident = $code:ident, $text:literal; )*) => {
        /// A close reason with a fixed text: the one table of them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Reason {
            $( $(#[$doc])* $variant, )*
        }

        impl Reason {
            /// Every reason, in the table's order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),*];

            /// The close code it is sent with.
            pub fn code(self) -> CloseCode {
                match self {
                    $( Reason::$variant => CloseCode::$code, )*
                }
            }

            /// The text sent with it.
            pub fn text(self) -> &'static str {
                match self {
                    $( Reason::$variant => $text, )*
                }
            }
        }
    };
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

reasons! {
    /// The client closed its connection.
    ClientClosed = Normal, "client closed";
    /// The client renewed its session on a new connection (session lifetime).
    SessionRenewed = Normal, "session renewed";
    /// The server is shutting down.
    ServerShuttingDown = GoingAway, "server shutting down";

    /// HS1 or HS2 is shorter or longer than allowed.
    HandshakeLength = ProtocolError, "bad handshake length";
    /// A handshake header's reserved bytes are not zero.
    HandshakeReserved = ProtocolError, "reserved bytes set";
    /// A handshake or frame header has flags this version does not know.
    UnknownFlags = ProtocolError, "unknown flags";
    /// A handshake payload does not decode.
    HandshakePayload = ProtocolError, "invalid handshake payload";
    /// A frame is shorter than a header and a tag.
    FrameTooShort = ProtocolError, "frame too short";
    /// A frame header's version is not 1.
    FrameVersion = ProtocolError, "unsupported version";
    /// A frame header's reserved byte is not zero.
    FrameReserved = ProtocolError, "reserved byte set";
    /// A frame's type is unknown.
    FrameType = ProtocolError, "unknown frame type";
    /// MORE on a frame that is not DATA.
    MoreNotData = ProtocolError, "MORE on a frame that is not DATA";
    /// A mode-P frame with an epoch other than 0.
    PlaintextEpoch = ProtocolError, "epoch must be 0 in plaintext mode";
    /// A KEY_UPDATE frame with a payload.
    KeyUpdateNotEmpty = ProtocolError, "KEY_UPDATE must be empty";
    /// An empty chunk inside a MORE chain.
    EmptyMoreChunk = ProtocolError, "empty MORE chunk";
    /// A frame does not verify: tampered, replayed, reordered, dropped, reflected.
    DecryptionFailed = ProtocolError, "decryption failed";
    /// The peer passed a hard key-usage limit without KEY_UPDATE.
    KeyUsageExceeded = ProtocolError, "key usage limit exceeded";
    /// A CLOSE inside a MORE chain.
    CloseInsideMore = ProtocolError, "CLOSE inside a MORE chain";
    /// DATA before authentication.
    DataBeforeAuth = ProtocolError, "DATA before authentication";
    /// A frame after the session closed.
    SessionClosed = ProtocolError, "session closed";
    /// HS1 whose type is not that of the first handshake message.
    HandshakeType = ProtocolError, "expected the first handshake message";
    /// KEY_UPDATE in plaintext mode.
    KeyUpdatePlaintext = ProtocolError, "KEY_UPDATE in plaintext mode";
    /// KEY_UPDATE before AUTH or AUTH_RESULT.
    KeyUpdateFirst = ProtocolError, "KEY_UPDATE before the first frame";
    /// The client's first frame is not AUTH.
    FirstNotAuth = ProtocolError, "the first frame must be AUTH";
    /// The server's first frame is not AUTH_RESULT.
    FirstNotAuthResult = ProtocolError, "the first frame must be AUTH_RESULT";
    /// AUTH or AUTH_RESULT after the session was opened.
    AuthTwice = ProtocolError, "AUTH and AUTH_RESULT only open a session";
    /// DATA whose plaintext is not a sequence of envelopes.
    MalformedEnvelope = ProtocolError, "malformed envelope";
    /// An AUTH announced as resuming (HS1 flags bit 1) that is not
    /// `[credentials, {"id", "proof"}]`.
    MalformedResume = ProtocolError, "malformed resumption request";
    /// A CLOSE whose payload does not decode.
    MalformedClose = ProtocolError, "malformed CLOSE";
    /// A text (or otherwise non-binary) WebSocket message.
    NonBinary = ProtocolError, "non-binary websocket message";
    /// A WebSocket frame that breaks RFC 6455, or a length-prefixed stream
    /// that breaks its framing (docs/PROTOCOL.md §2).
    MalformedTransport = ProtocolError, "malformed transport framing";
    /// More than 8 WebSocket pings and pongs before authentication.
    TooManyPings = ProtocolError, "too many websocket pings before authentication";
    /// A stream CREDIT of nothing, or one that takes the credit past 2^32 − 1.
    StreamCredit = ProtocolError, "bad stream credit";
    /// A stream ITEM sent without credit for it.
    StreamPastCredit = ProtocolError, "stream item past its credit";

    /// HS1 verifies under no secret: the reason is empty, so it reveals nothing.
    HandshakeRejected = PolicyViolation, "";
    /// The handshake's version is not 1.
    UnsupportedVersion = PolicyViolation, "unsupported version";
    /// The suite is not one the server accepts.
    UnsupportedSuite = PolicyViolation, "unsupported suite";
    /// The mode is unknown.
    UnsupportedMode = PolicyViolation, "unsupported mode";
    /// Plaintext mode, which the server does not allow.
    PlaintextNotAllowed = PolicyViolation, "plaintext mode not allowed";
    /// TLS channel binding asked for where there is no TLS exporter.
    BindingUnavailable = PolicyViolation, "tls channel binding unavailable";

    /// A frame (one WebSocket message) over the limit.
    FrameTooLarge = TooBig, "frame too large";
    /// A reassembled message over `max_message`.
    MessageTooLarge = TooBig, "message too large";

    /// A local failure whose detail is not the peer's business.
    Internal = InternalError, "";
    /// Sending would pass this side's hard key-usage limit.
    KeyUsageReached = InternalError, "key usage limit reached";

    /// A replayed HS1, or one whose timestamp is outside the window.
    StaleHandshake = StaleHandshake, "stale handshake";
    /// Nothing heard from the peer within the heartbeat timeout.
    HeartbeatTimeout = HeartbeatTimeout, "heartbeat timeout";
    /// The peer did not read what it was sent within the write timeout.
    SlowConsumer = SlowConsumer, "the peer did not read its socket in time";
    /// The handshake and authentication did not finish in time.
    HandshakeTimeout = HandshakeTimeout, "handshake timed out";

    /// The server is at `max_connections`.
    TooManyConnections = TooManyConnections, "too many connections";
    /// Every handshake slot is taken and none could be given up.
    TooManyHandshakes = TooManyConnections, "too many handshakes";
    /// The address holds `max_handshakes_per_ip` slots.
    TooManyHandshakesFromAddress = TooManyConnections, "too many handshakes from this address";
    /// The address spent its failure budget; sent followed by "; retry in N s",
    /// N the whole seconds until the refusal lifts, rounded up.
    TooManyFailures = TooManyConnections, "too many failed handshakes from this address";
    /// This handshake gave its slot up to another address (fair admission).
    ServerBusy = TooManyConnections, "server busy";
    /// The address spent its budget of credentials rejected by the auth
    /// hook; sent followed by "; retry in N s".
    TooManyRejections = TooManyConnections, "too many rejected credentials from this address";
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{CloseCode, Reason};

    #[test]
    fn close_codes_round_trip() {
        for code in [
            1000, 1001, 1002, 1006, 1008, 1009, 1011, 4001, 4002, 4003, 4004, 4005, 4006, 4007,
            4999,
        ] {
            assert_eq!(CloseCode::from_u16(code).to_u16(), code);
        }
    }

    /// The rows of the markdown table that follows `heading` in `doc`.
    fn table_after<'a>(doc: &'a str, heading: &str) -> Vec<Vec<&'a str>> {
        let start = doc.find(heading).expect("the heading is in PROTOCOL.md");
        doc[start..]
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .skip(2)
            .map(|line| line.trim_matches('|').split('|').map(str::trim).collect())
            .collect()
    }

    const PROTOCOL: &str = include_str!("../../../docs/PROTOCOL.md");

    #[test]
    fn protocol_md_lists_the_same_reasons_as_the_code() {
        let documented: HashSet<(u16, String)> = table_after(PROTOCOL, "**Reason texts.**")
            .into_iter()
            .map(|row| {
                let code = row[0].parse().expect("a code");
                let text = if row[1] == "(empty)" {
                    String::new()
                } else {
                    row[1].trim_matches('`').to_owned()
                };
                (code, text)
            })
            .collect();
        let code: HashSet<(u16, String)> = Reason::ALL
            .iter()
            .map(|r| (r.code().to_u16(), r.text().to_owned()))
            .collect();
        let missing: Vec<_> = code.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&code).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "PROTOCOL.md §10.1 lacks {missing:?} and has {extra:?} the code does not send"
        );
    }

    #[test]
    fn protocol_md_lists_the_same_close_codes_as_the_code() {
        let documented: Vec<u16> = table_after(PROTOCOL, "### 10.1 Close codes")
            .iter()
            .map(|row| row[0].parse().expect("a code"))
            .collect();
        for code in &documented {
            assert!(
                !matches!(CloseCode::from_u16(*code), CloseCode::Other(_)),
                "{code} is documented but has no name in the code"
            );
        }
        for code in 1000..=4999 {
            if !matches!(CloseCode::from_u16(code), CloseCode::Other(_)) {
                assert!(
                    documented.contains(&code),
                    "{code} is named but not documented"
                );
            }
        }
    }

    #[test]
    fn reasons_are_distinct_and_short_enough_for_a_websocket_close() {
        let pairs: HashSet<_> = Reason::ALL.iter().map(|r| (r.code(), r.text())).collect();
        assert_eq!(pairs.len(), Reason::ALL.len(), "no two reasons alike");
        for reason in Reason::ALL {
            assert!(reason.text().len() <= 123, "{reason:?}");
            assert_eq!(reason.code().websocket(), reason.code().to_u16());
        }
    }
}
