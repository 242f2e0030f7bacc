//! The payloads that are not RPC envelopes: inside the handshake messages,
//! and in the AUTH_RESULT and CLOSE frames (docs/PROTOCOL.md §4.3, §9).
//! Each is one MessagePack map, encoded with [`super::codec`].
//!
//! ```text
//! payload1 (HS1)   {"ts": u64}                        the client's clock, ms
//! payload2 (HS2)   {"mf": u32}                        the server's frame limit
//! AUTH             any value                          the client's credentials
//!   resuming       [credentials, {"id": u64,          HS1 flags bit 1: the session to resume
//!                                 "proof": bin 32}]   and the proof (§9.6)
//! AUTH_RESULT      {"ok": bool, "guest": bool,        guest is false when ok is false
//!                   "reason": str, "id"?: u64,        id: the server's session id
//!                   "resumable"?: bool,               the server keeps the session for resumption
//!                   "resumed"?: bool, "missed"?: u64} the session was resumed; notifications lost
//! CLOSE            {"code": u16, "reason": str}
//! ```

use serde::{Deserialize, Serialize};

/// payload1: the client's clock, for the server's freshness check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload1 {
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
}

/// payload2: the server's frame limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload2 {
    /// `mf`: the largest frame either side may send.
    pub mf: u32,
}

/// The payload of an AUTH_RESULT frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResult {
    /// The client is admitted.
    pub ok: bool,
    /// Admitted as a guest; always `false` when `ok` is `false`.
    #[serde(default)]
    pub guest: bool,
    /// Why not, when `ok` is `false`; empty otherwise.
    #[serde(default)]
    pub reason: String,
    /// The server's id of the connection, when it admitted it; optional
    /// (older servers do not send it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The server keeps this session for a while if the connection is lost,
    /// so the client may resume it (docs/PROTOCOL.md §9.6). Sent when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub resumable: bool,
    /// The connection resumed the session the client asked for. Sent when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub resumed: bool,
    /// When resumed: notifications the session's buffer dropped (the oldest
    /// first) while it waited. Sent when not zero.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missed: u64,
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// What a resuming client adds to its credentials in AUTH: the session to
/// resume and the proof that it took part in it (docs/PROTOCOL.md §9.6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The session's id, as the server's AUTH_RESULT gave it.
    pub id: u64,
    /// HMAC-SHA256(rs_prev, "rpcws1 resume" || h_new || u64be(id)).
    pub proof: serde_bytes::ByteBuf,
}

/// The payload of a CLOSE frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Close {
    /// The close code (docs/PROTOCOL.md §10.1).
    pub code: u16,
    /// The reason text.
    pub reason: String,
}
