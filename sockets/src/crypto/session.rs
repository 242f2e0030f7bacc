//! Frames after the handshake: seal and open, per direction, with strict counters.
//!
//! ```text
//! frame = FH || AEAD(key_{dir,epoch}, nonce = 0^32 || u64be(seq),
//!                    ad = "rpcws1" || dir || u64be(seq) || FH, plaintext)   mode E
//! frame = FH || plaintext                                                   mode P
//! FH    = version 0x01 | type | flags (bit0 MORE) | 0x00 | epoch u32be
//! types: 0x10 DATA, 0x11 KEY_UPDATE, 0x12 CLOSE, 0x14 AUTH, 0x15 AUTH_RESULT
//! ```
//!
//! A [`Session`] comes only from a finished handshake. It splits into a
//! [`Sealer`] (the writer's: the one owner of the send counter) and an
//! [`Opener`] (the reader's: the one owner of the receive counter). Any error
//! is final: the Sealer or Opener refuses all further work, and the connection
//! must close with [`SessionError::close`].

use std::fmt;

use zeroize::Zeroizing;

use super::aead::TAG_LEN;
use super::resumption::ResumptionSecret;
use super::schedule::{self, Key32, Schedule, Traffic};
use super::{LABEL, Mode, Suite};
use crate::protocol::Reason;

mod open;
mod seal;

pub use open::{Opened, Opener};
pub use seal::Sealer;

/// The length of a frame header.
pub const HEADER_LEN: usize = 8;
/// The largest frame before authentication completes (AUTH, AUTH_RESULT), header and tag included.
pub const AUTH_MAX_FRAME: usize = 64 * 1024;
/// The length of mode P's client-finished MAC.
const MAC_LEN: usize = 32;

const TYPE_DATA: u8 = 0x10;
const TYPE_KEY_UPDATE: u8 = 0x11;
const TYPE_CLOSE: u8 = 0x12;
const TYPE_AUTH: u8 = 0x14;
const TYPE_AUTH_RESULT: u8 = 0x15;
const FLAG_MORE: u8 = 0x01;
const DIR_C2S: u8 = 0x01;
const DIR_S2C: u8 = 0x02;

/// What a frame carries (KEY_UPDATE is internal to the session).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// RPC envelopes, back to back; may span several frames (MORE).
    Data,
    /// The client's credentials: its first frame.
    Auth,
    /// The server's verdict on the credentials: its first frame.
    AuthResult,
    /// An authenticated goodbye: `{"code", "reason"}`.
    Close,
}

impl FrameKind {
    fn type_byte(self) -> u8 {
        match self {
            FrameKind::Data => TYPE_DATA,
            FrameKind::Auth => TYPE_AUTH,
            FrameKind::AuthResult => TYPE_AUTH_RESULT,
            FrameKind::Close => TYPE_CLOSE,
        }
    }
}

/// Size and key-usage limits of one side (defaults per docs/PROTOCOL.md).
///
/// Soft limits (`rekey_after_*`) make this side's sender send KEY_UPDATE;
/// hard limits (`reject_after_*`) make its sender refuse and its receiver close.
/// Counts are per direction and per epoch; bytes count whole frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest WebSocket message (header + ciphertext + tag); default 1 MiB.
    pub max_frame: usize,
    /// The largest reassembled DATA plaintext; default 16 MiB.
    pub max_message: usize,
    /// Send KEY_UPDATE once this many frames were sent in an epoch; default 2^32.
    pub rekey_after_frames: u64,
    /// Send KEY_UPDATE once this many bytes were sent in an epoch; default 2^36.
    pub rekey_after_bytes: u64,
    /// Never send or accept a frame with a sequence number at or above this; default 2^33.
    pub reject_after_frames: u64,
    /// Never send or accept more bytes than this in an epoch; default 2^37.
    pub reject_after_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: 1 << 20,
            max_message: 16 << 20,
            rekey_after_frames: 1 << 32,
            rekey_after_bytes: 1 << 36,
            reject_after_frames: 1 << 33,
            reject_after_bytes: 1 << 37,
        }
    }
}

impl Limits {
    /// Checks that the limits can work together.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.max_frame < 1024 {
            return Err("max_frame must be at least 1024");
        }
        if self.rekey_after_frames == 0 || self.reject_after_frames <= self.rekey_after_frames {
            return Err("reject_after_frames must exceed rekey_after_frames, which must exceed 0");
        }
        let one_frame_past_soft = self
            .rekey_after_bytes
            .saturating_add(self.max_frame as u64)
            .saturating_add((HEADER_LEN + TAG_LEN) as u64);
        if self.reject_after_bytes < one_frame_past_soft {
            return Err(
                "reject_after_bytes must exceed rekey_after_bytes by a frame and a KEY_UPDATE",
            );
        }
        Ok(())
    }
}

/// Why a frame could not be sealed or opened. Every one is final.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// A public header field is wrong (version, reserved byte, flags, type, length).
    #[error("malformed frame: {0}")]
    Malformed(Reason),
    /// The frame does not verify: tampered, replayed, reordered, dropped,
    /// reflected, from another session or epoch, or a bad client-finished MAC.
    #[error("frame failed to decrypt")]
    Decrypt,
    /// The frame's kind is not allowed now (order rules), or the session is over.
    #[error("unexpected frame: {0}")]
    UnexpectedFrame(Reason),
    /// The frame is larger than allowed (before authentication: 64 KiB).
    #[error("frame too large")]
    FrameTooLarge,
    /// A message exceeds `max_message` (reassembled DATA), or a non-DATA payload exceeds one frame.
    #[error("message too large")]
    MessageTooLarge,
    /// The peer passed a hard key-usage limit without KEY_UPDATE.
    #[error("the peer exceeded the key usage limit")]
    LimitExceeded,
    /// Sending would pass this side's hard key-usage limit.
    #[error("key usage limit reached")]
    Exhausted,
}

impl SessionError {
    /// The close reason (and with it the code) to send for this error.
    pub fn reason(&self) -> Reason {
        match self {
            SessionError::Malformed(reason) | SessionError::UnexpectedFrame(reason) => *reason,
            SessionError::Decrypt => Reason::DecryptionFailed,
            SessionError::FrameTooLarge => Reason::FrameTooLarge,
            SessionError::MessageTooLarge => Reason::MessageTooLarge,
            SessionError::LimitExceeded => Reason::KeyUsageExceeded,
            SessionError::Exhausted => Reason::KeyUsageReached,
        }
    }
}

/// Which end of the connection a session belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Server,
}

/// A secure session from a finished handshake.
pub struct Session {
    role: Role,
    suite: Suite,
    mode: Mode,
    h: [u8; 32],
    exporter: Key32,
    send: Traffic,
    recv: Traffic,
    /// Mode P only: the MAC the client sends / the server expects on AUTH.
    finished: Option<Key32>,
    resumption: Key32,
    /// HS1 said that AUTH carries a resumption request (flags bit 1).
    resuming: bool,
    limits: Limits,
    send_max_frame: usize,
    recv_max_frame: usize,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("suite", &self.suite)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Builds the session from the handshake's result. `frames` = (largest
    /// frame to send, largest frame to accept).
    pub(crate) fn new(
        role: Role,
        suite: Suite,
        mode: Mode,
        h: [u8; 32],
        schedule: Schedule,
        limits: Limits,
        frames: (usize, usize),
    ) -> Session {
        let Schedule {
            c2s,
            s2c,
            exporter,
            fin_c,
            resumption,
        } = schedule;
        let finished = (mode == Mode::Plaintext).then(|| schedule::finished_mac(&fin_c, &h));
        drop(fin_c);
        let (send, recv) = match role {
            Role::Client => (c2s, s2c),
            Role::Server => (s2c, c2s),
        };
        Session {
            role,
            suite,
            mode,
            h,
            exporter,
            send: Traffic::new(suite, send),
            recv: Traffic::new(suite, recv),
            finished,
            resumption,
            resuming: false,
            limits,
            send_max_frame: frames.0,
            recv_max_frame: frames.1,
        }
    }

    /// Splits the session: the writer task owns the [`Sealer`], the reader task the [`Opener`].
    pub fn split(self) -> (Sealer, Opener) {
        let (send_dir, recv_dir) = match self.role {
            Role::Client => (DIR_C2S, DIR_S2C),
            Role::Server => (DIR_S2C, DIR_C2S),
        };
        let (send_mac, recv_mac) = match self.role {
            Role::Client => (self.finished, None),
            Role::Server => (None, self.finished),
        };
        let sealer = Sealer::new(
            self.role,
            self.mode,
            Counter::new(send_dir, self.send),
            self.limits.clone(),
            self.send_max_frame,
            send_mac,
        );
        let opener = Opener::new(
            self.role,
            self.mode,
            Counter::new(recv_dir, self.recv),
            self.limits,
            self.recv_max_frame,
            recv_mac,
        );
        (sealer, opener)
    }

    /// The Noise handshake hash `h`: identical on both sides, unique per connection.
    pub fn handshake_hash(&self) -> [u8; 32] {
        self.h
    }

    /// Marks the session as one whose AUTH carries a resumption request.
    pub(crate) fn set_resuming(&mut self, resuming: bool) {
        self.resuming = resuming;
    }

    /// Whether HS1 announced a resumption request in AUTH (flags bit 1,
    /// docs/PROTOCOL.md §4.1): AUTH's plaintext is then
    /// `[credentials, {"id", "proof"}]`.
    pub fn resuming(&self) -> bool {
        self.resuming
    }

    /// This connection's resumption secret: the key of the proof that
    /// resumes its session on a later connection (§9.6). Never sent.
    pub fn resumption_secret(&self) -> ResumptionSecret {
        ResumptionSecret::new(self.resumption.clone())
    }

    /// The suite this session runs.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The mode this session runs.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Every secret this session holds: exporter, resumption secret, both traffic secrets and
    /// both AEAD keys (tests look for them on the wire and in Debug output).
    /// Not the finished MAC: mode P sends it, by design.
    #[cfg(test)]
    pub(crate) fn secrets_for_test(&self) -> Vec<[u8; 32]> {
        vec![
            *self.exporter,
            *self.resumption,
            *self.send.secret(),
            *self.recv.secret(),
            *schedule::expand(self.send.secret(), b"rpcws1 key"),
            *schedule::expand(self.recv.secret(), b"rpcws1 key"),
        ]
    }

    /// A 32-byte value both sides derive for `label` and nobody else can:
    /// HKDF-Expand(exporter, "rpcws1 export " || label, 32). For binding
    /// application tokens to this connection.
    pub fn export(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut info = Vec::with_capacity(14 + label.len());
        info.extend_from_slice(b"rpcws1 export ");
        info.extend_from_slice(label);
        schedule::expand(&self.exporter, &info)
    }
}

/// One direction's key, epoch, sequence number and byte count.
struct Counter {
    dir: u8,
    traffic: Traffic,
    seq: u64,
    bytes: u64,
}

impl Counter {
    fn new(dir: u8, traffic: Traffic) -> Counter {
        Counter {
            dir,
            traffic,
            seq: 0,
            bytes: 0,
        }
    }

    /// Whether one more frame of `len` bytes stays under the hard limits.
    fn within(&self, limits: &Limits, len: usize) -> bool {
        self.seq < limits.reject_after_frames
            && self.bytes.saturating_add(len as u64) <= limits.reject_after_bytes
    }

    /// The associated data of the frame with header `fh` at the current sequence number.
    fn ad(&self, fh: &[u8]) -> [u8; 23] {
        let mut ad = [0u8; 23];
        ad[..6].copy_from_slice(LABEL);
        ad[6] = self.dir;
        ad[7..15].copy_from_slice(&self.seq.to_be_bytes());
        ad[15..].copy_from_slice(fh);
        ad
    }

    /// Counts a frame of `len` bytes.
    fn advance(&mut self, len: usize) {
        self.seq += 1;
        self.bytes = self.bytes.saturating_add(len as u64);
    }

    /// Moves to the next epoch; `None` when epochs are exhausted.
    fn ratchet(&mut self) -> Option<()> {
        self.traffic.ratchet()?;
        self.seq = 0;
        self.bytes = 0;
        Some(())
    }
}
