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

use bytes::{Bytes, BytesMut};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::aead::TAG_LEN;
use super::schedule::{self, Key32, Schedule, Traffic};
use super::{LABEL, Mode, Suite};
use crate::protocol::{CloseCode, VERSION};

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
    Malformed(&'static str),
    /// The frame does not verify: tampered, replayed, reordered, dropped,
    /// reflected, from another session or epoch, or a bad client-finished MAC.
    #[error("frame failed to decrypt")]
    Decrypt,
    /// The frame's kind is not allowed now (order rules), or the session is over.
    #[error("unexpected frame: {0}")]
    UnexpectedFrame(&'static str),
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
    /// The close code and reason to send for this error.
    pub fn close(&self) -> (CloseCode, &'static str) {
        match self {
            SessionError::Malformed(reason) | SessionError::UnexpectedFrame(reason) => {
                (CloseCode::ProtocolError, reason)
            }
            SessionError::Decrypt => (CloseCode::ProtocolError, "decryption failed"),
            SessionError::FrameTooLarge => (CloseCode::TooBig, "frame too large"),
            SessionError::MessageTooLarge => (CloseCode::TooBig, "message too large"),
            SessionError::LimitExceeded => (CloseCode::ProtocolError, "key usage limit exceeded"),
            SessionError::Exhausted => (CloseCode::InternalError, "key usage limit reached"),
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
        let (send, recv) = match role {
            Role::Client => (&schedule.c2s, &schedule.s2c),
            Role::Server => (&schedule.s2c, &schedule.c2s),
        };
        let finished =
            (mode == Mode::Plaintext).then(|| schedule::finished_mac(&schedule.fin_c, &h));
        Session {
            role,
            suite,
            mode,
            h,
            exporter: Zeroizing::new(*schedule.exporter),
            send: Traffic::new(suite, send),
            recv: Traffic::new(suite, recv),
            finished,
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
        let sealer = Sealer {
            role: self.role,
            mode: self.mode,
            counter: Counter::new(send_dir, self.send),
            limits: self.limits.clone(),
            max_frame: self.send_max_frame,
            finished: send_mac,
            state: SendState::First,
        };
        let opener = Opener {
            role: self.role,
            mode: self.mode,
            counter: Counter::new(recv_dir, self.recv),
            limits: self.limits,
            max_frame: self.recv_max_frame,
            finished: recv_mac,
            state: RecvState::First,
            chain: None,
        };
        (sealer, opener)
    }

    /// The Noise handshake hash `h`: identical on both sides, unique per connection.
    pub fn handshake_hash(&self) -> [u8; 32] {
        self.h
    }

    /// The suite this session runs.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The mode this session runs.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Every secret this session holds: exporter, both traffic secrets and
    /// both AEAD keys (tests look for them on the wire and in Debug output).
    /// Not the finished MAC: mode P sends it, by design.
    #[cfg(test)]
    pub(crate) fn secrets_for_test(&self) -> Vec<[u8; 32]> {
        vec![
            *self.exporter,
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

fn frame_header(kind: u8, flags: u8, epoch: u32) -> [u8; HEADER_LEN] {
    let e = epoch.to_be_bytes();
    [VERSION, kind, flags, 0, e[0], e[1], e[2], e[3]]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SendState {
    First,
    Open,
    Done,
}

/// Seals frames: the one owner of the send counter.
pub struct Sealer {
    role: Role,
    mode: Mode,
    counter: Counter,
    limits: Limits,
    max_frame: usize,
    finished: Option<Key32>,
    state: SendState,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("role", &self.role)
            .field("mode", &self.mode)
            .field("epoch", &self.counter.traffic.epoch())
            .field("seq", &self.counter.seq)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// Appends the WebSocket binary messages that carry `plaintext` as `kind`:
    /// one frame, or a MORE chain when a DATA plaintext exceeds one frame,
    /// with KEY_UPDATE wherever the soft limit is reached.
    ///
    /// Nothing is appended on error.
    ///
    /// # Errors
    /// [`SessionError::UnexpectedFrame`] when `kind` breaks the order rules
    /// (the client's first frame is AUTH, the server's AUTH_RESULT, then DATA
    /// and CLOSE; nothing after CLOSE); [`SessionError::MessageTooLarge`] when
    /// DATA exceeds `max_message` or another kind exceeds one frame;
    /// [`SessionError::Exhausted`] at the hard key-usage limit. Every error but
    /// `MessageTooLarge` (which seals nothing) is final.
    pub fn seal(
        &mut self,
        kind: FrameKind,
        plaintext: &[u8],
        out: &mut Vec<Bytes>,
    ) -> Result<(), SessionError> {
        let result = self.seal_all(kind, plaintext);
        match result {
            Ok(frames) => {
                out.extend(frames);
                Ok(())
            }
            Err(SessionError::MessageTooLarge) => Err(SessionError::MessageTooLarge),
            Err(error) => {
                self.state = SendState::Done;
                Err(error)
            }
        }
    }

    fn seal_all(&mut self, kind: FrameKind, plaintext: &[u8]) -> Result<Vec<Bytes>, SessionError> {
        let first = match (self.state, self.role, kind) {
            (SendState::Done, _, _) => return Err(SessionError::UnexpectedFrame("session closed")),
            (SendState::First, Role::Client, FrameKind::Auth)
            | (SendState::First, Role::Server, FrameKind::AuthResult) => true,
            (SendState::First, Role::Client, _) => {
                return Err(SessionError::UnexpectedFrame(
                    "the client's first frame must be AUTH",
                ));
            }
            (SendState::First, Role::Server, _) => {
                return Err(SessionError::UnexpectedFrame(
                    "the server's first frame must be AUTH_RESULT",
                ));
            }
            (SendState::Open, _, FrameKind::Data | FrameKind::Close) => false,
            (SendState::Open, _, _) => {
                return Err(SessionError::UnexpectedFrame(
                    "AUTH and AUTH_RESULT only open a session",
                ));
            }
        };
        let mac = if first && self.mode == Mode::Plaintext {
            self.finished.as_ref().map(|mac| mac.to_vec())
        } else {
            None
        };
        let tag_len = if self.mode == Mode::Encrypted {
            TAG_LEN
        } else {
            0
        };
        let frame_limit = if first {
            self.max_frame.min(AUTH_MAX_FRAME)
        } else {
            self.max_frame
        };
        let overhead = HEADER_LEN + tag_len + mac.as_ref().map_or(0, Vec::len);
        let capacity = frame_limit.saturating_sub(overhead).max(1);

        let mut frames = Vec::with_capacity(1);
        if kind == FrameKind::Data {
            if plaintext.len() > self.limits.max_message {
                return Err(SessionError::MessageTooLarge);
            }
            let mut chunks = plaintext.chunks(capacity).peekable();
            if chunks.peek().is_none() {
                self.push(TYPE_DATA, 0, &[], &[], &mut frames)?;
            }
            while let Some(chunk) = chunks.next() {
                let flags = if chunks.peek().is_some() {
                    FLAG_MORE
                } else {
                    0
                };
                self.push(TYPE_DATA, flags, &[], chunk, &mut frames)?;
            }
        } else {
            if plaintext.len() > capacity {
                return Err(SessionError::MessageTooLarge);
            }
            let prefix = mac.as_deref().unwrap_or_default();
            self.push(kind.type_byte(), 0, prefix, plaintext, &mut frames)?;
        }
        self.state = if kind == FrameKind::Close {
            SendState::Done
        } else {
            SendState::Open
        };
        Ok(frames)
    }

    /// Seals one frame, then KEY_UPDATE if the soft limit is reached.
    fn push(
        &mut self,
        kind: u8,
        flags: u8,
        prefix: &[u8],
        plaintext: &[u8],
        frames: &mut Vec<Bytes>,
    ) -> Result<(), SessionError> {
        frames.push(self.frame(kind, flags, prefix, plaintext)?);
        if self.mode == Mode::Encrypted
            && (self.counter.seq >= self.limits.rekey_after_frames
                || self.counter.bytes >= self.limits.rekey_after_bytes)
        {
            if self.counter.traffic.epoch() == u32::MAX {
                return Err(SessionError::Exhausted);
            }
            frames.push(self.frame(TYPE_KEY_UPDATE, 0, &[], &[])?);
            self.counter.ratchet().ok_or(SessionError::Exhausted)?;
        }
        Ok(())
    }

    /// One frame: header, then the sealed (mode E) or clear (mode P) `prefix || plaintext`.
    fn frame(
        &mut self,
        kind: u8,
        flags: u8,
        prefix: &[u8],
        plaintext: &[u8],
    ) -> Result<Bytes, SessionError> {
        let fh = frame_header(kind, flags, self.counter.traffic.epoch());
        let body = prefix.len() + plaintext.len();
        let mut buf = BytesMut::with_capacity(HEADER_LEN + body + TAG_LEN);
        buf.extend_from_slice(&fh);
        buf.extend_from_slice(prefix);
        buf.extend_from_slice(plaintext);
        if self.mode == Mode::Plaintext {
            return Ok(buf.freeze());
        }
        let len = HEADER_LEN + body + TAG_LEN;
        if !self.counter.within(&self.limits, len) {
            return Err(SessionError::Exhausted);
        }
        let ad = self.counter.ad(&fh);
        let tag = self
            .counter
            .traffic
            .aead()
            .seal(self.counter.seq, &ad, &mut buf[HEADER_LEN..]);
        buf.extend_from_slice(&tag);
        self.counter.advance(len);
        Ok(buf.freeze())
    }

    /// The current send epoch and sequence number (tests).
    #[cfg(test)]
    pub(crate) fn position(&self) -> (u32, u64) {
        (self.counter.traffic.epoch(), self.counter.seq)
    }

    /// The current send traffic secret (tests).
    #[cfg(test)]
    pub(crate) fn traffic_secret(&self) -> [u8; 32] {
        *self.counter.traffic.secret()
    }

    /// Seals one frame of any type and flags, bypassing the order rules (tests).
    #[cfg(test)]
    pub(crate) fn raw_frame(&mut self, kind: u8, flags: u8, plaintext: &[u8]) -> Bytes {
        self.frame(kind, flags, &[], plaintext).unwrap()
    }

    /// Jumps to the last epoch, so the next KEY_UPDATE would overflow it (tests).
    #[cfg(test)]
    pub(crate) fn force_last_epoch(&mut self) {
        self.counter.traffic.force_epoch(u32::MAX);
    }
}

/// A message the [`Opener`] delivers.
#[derive(Clone, PartialEq, Eq)]
pub struct Opened {
    /// What the frame carried.
    pub kind: FrameKind,
    /// The plaintext (for DATA, the whole reassembled message).
    pub plaintext: Bytes,
}

impl fmt::Debug for Opened {
    // Credentials travel in AUTH: print sizes, never contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("kind", &self.kind)
            .field("len", &self.plaintext.len())
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecvState {
    /// Nothing opened yet: AUTH (server) or AUTH_RESULT (client) must come.
    First,
    /// The first frame was opened; waiting for `set_authenticated`.
    Pending,
    /// DATA and CLOSE allowed.
    Authenticated,
    /// CLOSE was opened or an error happened.
    Done,
}

/// Opens frames: the one owner of the receive counter.
pub struct Opener {
    role: Role,
    mode: Mode,
    counter: Counter,
    limits: Limits,
    max_frame: usize,
    finished: Option<Key32>,
    state: RecvState,
    /// The MORE chain being reassembled.
    chain: Option<Vec<u8>>,
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("role", &self.role)
            .field("mode", &self.mode)
            .field("epoch", &self.counter.traffic.epoch())
            .field("seq", &self.counter.seq)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// Opens one received WebSocket binary message. `Ok(None)`: it was a
    /// KEY_UPDATE or a non-final MORE chunk.
    ///
    /// # Errors
    /// Every [`SessionError`] but `Exhausted`; each is final (later calls fail
    /// with [`SessionError::UnexpectedFrame`]) and the plaintext of a frame
    /// that failed is never exposed.
    pub fn open(&mut self, wire: Bytes) -> Result<Option<Opened>, SessionError> {
        if self.state == RecvState::Done {
            return Err(SessionError::UnexpectedFrame("session closed"));
        }
        let result = self.open_frame(wire);
        if result.is_err() {
            self.state = RecvState::Done;
            self.chain = None;
        }
        result
    }

    /// Called once AUTH_RESULT ok was sent (server) or received (client):
    /// DATA and MORE chains are allowed from now on. Does nothing before the
    /// first frame was opened.
    pub fn set_authenticated(&mut self) {
        if self.state == RecvState::Pending {
            self.state = RecvState::Authenticated;
        }
    }

    fn open_frame(&mut self, wire: Bytes) -> Result<Option<Opened>, SessionError> {
        let limit = if self.state == RecvState::Authenticated {
            self.max_frame
        } else {
            self.max_frame.min(AUTH_MAX_FRAME)
        };
        if wire.len() > limit {
            return Err(SessionError::FrameTooLarge);
        }
        let tag_len = if self.mode == Mode::Encrypted {
            TAG_LEN
        } else {
            0
        };
        if wire.len() < HEADER_LEN + tag_len {
            return Err(SessionError::Malformed("frame too short"));
        }
        let mut fh = [0u8; HEADER_LEN];
        fh.copy_from_slice(&wire[..HEADER_LEN]);
        let [version, kind, flags, reserved, e0, e1, e2, e3] = fh;
        if version != VERSION {
            return Err(SessionError::Malformed("unsupported version"));
        }
        if reserved != 0 {
            return Err(SessionError::Malformed("reserved byte set"));
        }
        if flags & !FLAG_MORE != 0 {
            return Err(SessionError::Malformed("unknown flags"));
        }
        if !matches!(
            kind,
            TYPE_DATA | TYPE_KEY_UPDATE | TYPE_CLOSE | TYPE_AUTH | TYPE_AUTH_RESULT
        ) {
            return Err(SessionError::Malformed("unknown frame type"));
        }
        if flags & FLAG_MORE != 0 && kind != TYPE_DATA {
            return Err(SessionError::Malformed("MORE on a frame that is not DATA"));
        }
        let epoch = u32::from_be_bytes([e0, e1, e2, e3]);
        let plaintext = match self.mode {
            Mode::Encrypted => self.decrypt(wire, &fh, epoch)?,
            Mode::Plaintext => {
                if epoch != 0 {
                    return Err(SessionError::Malformed("epoch must be 0 in plaintext mode"));
                }
                wire.slice(HEADER_LEN..)
            }
        };
        self.deliver(kind, flags & FLAG_MORE != 0, plaintext)
    }

    /// Checks the epoch and hard limits, then decrypts in place with the expected sequence number.
    fn decrypt(
        &mut self,
        wire: Bytes,
        fh: &[u8; HEADER_LEN],
        epoch: u32,
    ) -> Result<Bytes, SessionError> {
        if epoch != self.counter.traffic.epoch() {
            return Err(SessionError::Decrypt);
        }
        let len = wire.len();
        if !self.counter.within(&self.limits, len) {
            return Err(SessionError::LimitExceeded);
        }
        let mut buf = wire
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&buf[len - TAG_LEN..]);
        let ad = self.counter.ad(fh);
        let body = &mut buf[HEADER_LEN..len - TAG_LEN];
        if self
            .counter
            .traffic
            .aead()
            .open(self.counter.seq, &ad, body, &tag)
            .is_err()
        {
            // `buf` is dropped unread.
            return Err(SessionError::Decrypt);
        }
        self.counter.advance(len);
        buf.truncate(len - TAG_LEN);
        Ok(buf.split_off(HEADER_LEN).freeze())
    }

    /// Applies the order rules to an authentic frame.
    fn deliver(
        &mut self,
        kind: u8,
        more: bool,
        plaintext: Bytes,
    ) -> Result<Option<Opened>, SessionError> {
        if kind == TYPE_KEY_UPDATE {
            if self.mode == Mode::Plaintext {
                return Err(SessionError::UnexpectedFrame(
                    "KEY_UPDATE in plaintext mode",
                ));
            }
            if self.state == RecvState::First {
                return Err(SessionError::UnexpectedFrame(
                    "KEY_UPDATE before the first frame",
                ));
            }
            if !plaintext.is_empty() {
                return Err(SessionError::Malformed("KEY_UPDATE must be empty"));
            }
            self.counter.ratchet().ok_or(SessionError::LimitExceeded)?;
            return Ok(None);
        }
        match (self.state, self.role, kind) {
            (RecvState::First, Role::Server, TYPE_AUTH) => {
                let payload = self.check_finished(plaintext)?;
                self.state = RecvState::Pending;
                Ok(Some(Opened {
                    kind: FrameKind::Auth,
                    plaintext: payload,
                }))
            }
            (RecvState::First, Role::Client, TYPE_AUTH_RESULT) => {
                self.state = RecvState::Pending;
                Ok(Some(Opened {
                    kind: FrameKind::AuthResult,
                    plaintext,
                }))
            }
            (RecvState::First, Role::Server, _) => Err(SessionError::UnexpectedFrame(
                "the first frame must be AUTH",
            )),
            (RecvState::First, Role::Client, _) => Err(SessionError::UnexpectedFrame(
                "the first frame must be AUTH_RESULT",
            )),
            (RecvState::Pending, Role::Server, _) => Err(SessionError::UnexpectedFrame(
                "nothing may arrive between AUTH and AUTH_RESULT",
            )),
            (RecvState::Pending | RecvState::Authenticated, _, TYPE_CLOSE) => {
                if self.chain.is_some() {
                    return Err(SessionError::UnexpectedFrame("CLOSE inside a MORE chain"));
                }
                self.state = RecvState::Done;
                Ok(Some(Opened {
                    kind: FrameKind::Close,
                    plaintext,
                }))
            }
            (RecvState::Authenticated, _, TYPE_DATA) => self.reassemble(more, plaintext),
            (RecvState::Pending, _, TYPE_DATA) => {
                Err(SessionError::UnexpectedFrame("DATA before authentication"))
            }
            _ => Err(SessionError::UnexpectedFrame(
                "AUTH and AUTH_RESULT only open a session",
            )),
        }
    }

    /// Mode P: verifies and strips the client-finished MAC (constant time) before anything is parsed.
    fn check_finished(&self, plaintext: Bytes) -> Result<Bytes, SessionError> {
        let Some(expected) = &self.finished else {
            return Ok(plaintext);
        };
        if plaintext.len() < MAC_LEN {
            return Err(SessionError::Decrypt);
        }
        if !bool::from(plaintext[..MAC_LEN].ct_eq(expected.as_slice())) {
            return Err(SessionError::Decrypt);
        }
        Ok(plaintext.slice(MAC_LEN..))
    }

    /// DATA after authentication: single frames pass through; MORE chains are
    /// gathered up to `max_message`, checked before growing the buffer.
    fn reassemble(&mut self, more: bool, chunk: Bytes) -> Result<Option<Opened>, SessionError> {
        let held = self.chain.as_ref().map_or(0, Vec::len);
        if held.saturating_add(chunk.len()) > self.limits.max_message {
            return Err(SessionError::MessageTooLarge);
        }
        if more && chunk.is_empty() {
            return Err(SessionError::Malformed("empty MORE chunk"));
        }
        let plaintext = match (self.chain.take(), more) {
            (None, false) => chunk,
            (None, true) => {
                self.chain = Some(chunk.to_vec());
                return Ok(None);
            }
            (Some(mut chain), more) => {
                chain.extend_from_slice(&chunk);
                if more {
                    self.chain = Some(chain);
                    return Ok(None);
                }
                Bytes::from(chain)
            }
        };
        Ok(Some(Opened {
            kind: FrameKind::Data,
            plaintext,
        }))
    }

    /// The current receive epoch and sequence number (tests).
    #[cfg(test)]
    pub(crate) fn position(&self) -> (u32, u64) {
        (self.counter.traffic.epoch(), self.counter.seq)
    }

    /// Jumps to the last epoch, so the next KEY_UPDATE would overflow it (tests).
    #[cfg(test)]
    pub(crate) fn force_last_epoch(&mut self) {
        self.counter.traffic.force_epoch(u32::MAX);
    }
}
