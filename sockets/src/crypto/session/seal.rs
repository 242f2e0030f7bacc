//! Sealing: the writer's half of a session, the one owner of the send counter.

use std::fmt;

use bytes::{Bytes, BytesMut};

use super::super::Mode;
use super::super::aead::TAG_LEN;
use super::super::schedule::Key32;
use super::{
    AUTH_MAX_FRAME, Counter, FLAG_MORE, FrameKind, HEADER_LEN, Limits, Role, SessionError,
    TYPE_DATA, TYPE_KEY_UPDATE,
};
use crate::protocol::{Reason, VERSION};

/// The 8-byte frame header: version, type, flags, reserved, epoch.
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
///
/// Owned by the connection's single writer task, so sequence numbers cannot
/// race. A client may seal DATA right after AUTH (docs/PROTOCOL.md §8.2):
/// the server reads it only once its auth hook admitted the client.
pub struct Sealer {
    role: Role,
    mode: Mode,
    counter: Counter,
    limits: Limits,
    max_frame: usize,
    finished: Option<Key32>,
    state: SendState,
    /// Frames are cut from this buffer. Once the frames of a seal have been
    /// written and dropped, the next seal reuses the allocation, so a stream
    /// of large messages does not fault in fresh memory for every frame.
    buffer: BytesMut,
    /// The most any seal reserved in `buffer` since it was last given back.
    reserved: usize,
}

/// A buffer kept between seals larger than this is given back by
/// [`Sealer::release_buffer`].
const KEEP_BUFFER: usize = 64 * 1024;

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
    pub(super) fn new(
        role: Role,
        mode: Mode,
        counter: Counter,
        limits: Limits,
        max_frame: usize,
        finished: Option<Key32>,
    ) -> Sealer {
        Sealer {
            role,
            mode,
            counter,
            limits,
            max_frame,
            finished,
            state: SendState::First,
            buffer: BytesMut::new(),
            reserved: 0,
        }
    }

    /// Gives back a large buffer kept from earlier frames (call when the
    /// connection is quiet; the next large message allocates it again).
    pub fn release_buffer(&mut self) {
        if self.reserved > KEEP_BUFFER {
            self.buffer = BytesMut::new();
            self.reserved = 0;
        }
    }

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
        self.seal_parts(kind, &[plaintext], out)
    }

    /// As [`Sealer::seal`], for the plaintext `parts` concatenated: each byte
    /// is copied once, straight into its frame, so a caller need not gather
    /// the parts first (an envelope's head and its payload, for example).
    ///
    /// # Errors
    /// As [`Sealer::seal`].
    pub fn seal_parts(
        &mut self,
        kind: FrameKind,
        parts: &[&[u8]],
        out: &mut Vec<Bytes>,
    ) -> Result<(), SessionError> {
        // Frames go straight into `out`; a seal that fails takes back the
        // frames it had added, so none of a failed message is sent.
        let before = out.len();
        let result = self.seal_all(kind, Gather::new(parts), out);
        if result.is_err() {
            out.truncate(before);
        }
        match result {
            Ok(()) => Ok(()),
            Err(SessionError::MessageTooLarge) => Err(SessionError::MessageTooLarge),
            Err(error) => {
                self.state = SendState::Done;
                Err(error)
            }
        }
    }

    fn seal_all(
        &mut self,
        kind: FrameKind,
        mut plaintext: Gather<'_>,
        frames: &mut Vec<Bytes>,
    ) -> Result<(), SessionError> {
        let first = match (self.state, self.role, kind) {
            (SendState::Done, _, _) => {
                return Err(SessionError::UnexpectedFrame(Reason::SessionClosed));
            }
            (SendState::First, Role::Client, FrameKind::Auth)
            | (SendState::First, Role::Server, FrameKind::AuthResult) => true,
            (SendState::First, Role::Client, _) => {
                return Err(SessionError::UnexpectedFrame(Reason::FirstNotAuth));
            }
            (SendState::First, Role::Server, _) => {
                return Err(SessionError::UnexpectedFrame(Reason::FirstNotAuthResult));
            }
            (SendState::Open, _, FrameKind::Data | FrameKind::Close) => false,
            (SendState::Open, _, _) => {
                return Err(SessionError::UnexpectedFrame(Reason::AuthTwice));
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

        let total = plaintext.remaining();
        // Room for every frame of this seal in one allocation (KEY_UPDATE
        // frames, rare, may add one); reused when the last one's frames are gone.
        let room = total + (total / capacity + 1) * overhead;
        self.buffer.reserve(room);
        self.reserved = self.reserved.max(room);
        if kind == FrameKind::Data {
            if total > self.limits.max_message {
                return Err(SessionError::MessageTooLarge);
            }
            frames.reserve(total / capacity + 1);
            // An empty DATA is one empty frame.
            loop {
                let len = plaintext.remaining().min(capacity);
                let flags = if plaintext.remaining() > len {
                    FLAG_MORE
                } else {
                    0
                };
                self.push(TYPE_DATA, flags, &[], &mut plaintext, len, frames)?;
                if flags == 0 {
                    break;
                }
            }
        } else {
            if total > capacity {
                return Err(SessionError::MessageTooLarge);
            }
            frames.reserve(1);
            let prefix = mac.as_deref().unwrap_or_default();
            self.push(kind.type_byte(), 0, prefix, &mut plaintext, total, frames)?;
        }
        self.state = if kind == FrameKind::Close {
            SendState::Done
        } else {
            SendState::Open
        };
        Ok(())
    }

    /// Seals one frame of the next `take` plaintext bytes, then KEY_UPDATE if
    /// the soft limit is reached.
    fn push(
        &mut self,
        kind: u8,
        flags: u8,
        prefix: &[u8],
        plaintext: &mut Gather<'_>,
        take: usize,
        frames: &mut Vec<Bytes>,
    ) -> Result<(), SessionError> {
        frames.push(self.frame(kind, flags, prefix, plaintext, take)?);
        if self.mode == Mode::Encrypted
            && (self.counter.seq >= self.limits.rekey_after_frames
                || self.counter.bytes >= self.limits.rekey_after_bytes)
        {
            if self.counter.traffic.epoch() == u32::MAX {
                return Err(SessionError::Exhausted);
            }
            frames.push(self.frame(TYPE_KEY_UPDATE, 0, &[], &mut Gather::new(&[]), 0)?);
            self.counter.ratchet().ok_or(SessionError::Exhausted)?;
        }
        Ok(())
    }

    /// One frame: header, then the sealed (mode E) or clear (mode P) `prefix
    /// || the next take bytes of plaintext`, in one buffer sized once.
    fn frame(
        &mut self,
        kind: u8,
        flags: u8,
        prefix: &[u8],
        plaintext: &mut Gather<'_>,
        take: usize,
    ) -> Result<Bytes, SessionError> {
        let fh = frame_header(kind, flags, self.counter.traffic.epoch());
        let body = prefix.len() + take;
        let buf = &mut self.buffer;
        buf.reserve(HEADER_LEN + body + TAG_LEN);
        buf.extend_from_slice(&fh);
        buf.extend_from_slice(prefix);
        plaintext.copy_to(take, buf);
        if self.mode == Mode::Plaintext {
            return Ok(buf.split().freeze());
        }
        let len = HEADER_LEN + body + TAG_LEN;
        if !self.counter.within(&self.limits, len) {
            // Nothing of a frame that is not sent may stay in the buffer.
            self.buffer.clear();
            return Err(SessionError::Exhausted);
        }
        let ad = self.counter.ad(&fh);
        let sealed =
            self.counter
                .traffic
                .aead()
                .seal(self.counter.seq, &ad, &mut self.buffer[HEADER_LEN..]);
        let Ok(tag) = sealed else {
            // Nothing of a failed frame may stay in the buffer.
            self.buffer.clear();
            return Err(SessionError::Exhausted);
        };
        self.buffer.extend_from_slice(&tag);
        self.counter.advance(len);
        Ok(self.buffer.split().freeze())
    }

    /// The most a seal reserved in the frame buffer since it was last given back (tests).
    #[cfg(test)]
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.reserved
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

    /// Seals one frame of any type byte and flags, bypassing the order rules,
    /// for conformance tests that must send what a correct peer never would
    /// (a KEY_UPDATE as the first frame, say). The counter still advances,
    /// so no nonce is used twice. Not part of the public API.
    ///
    /// # Errors
    /// As [`Sealer::seal`], when the key usage limit is reached.
    #[doc(hidden)]
    pub fn forge(&mut self, kind: u8, flags: u8, plaintext: &[u8]) -> Result<Bytes, SessionError> {
        self.frame(
            kind,
            flags,
            &[],
            &mut Gather::new(&[plaintext]),
            plaintext.len(),
        )
    }

    /// [`Sealer::forge`], for this crate's tests.
    #[cfg(test)]
    pub(crate) fn raw_frame(&mut self, kind: u8, flags: u8, plaintext: &[u8]) -> Bytes {
        self.forge(kind, flags, plaintext).unwrap()
    }

    /// Jumps to the last epoch, so the next KEY_UPDATE would overflow it (tests).
    #[cfg(test)]
    pub(crate) fn force_last_epoch(&mut self) {
        self.counter.traffic.force_epoch(u32::MAX);
    }
}

/// The plaintext parts of one message, read front to back.
struct Gather<'a> {
    /// The unread tail of the current part.
    head: &'a [u8],
    /// The parts after it.
    rest: &'a [&'a [u8]],
    remaining: usize,
}

impl<'a> Gather<'a> {
    fn new(parts: &'a [&'a [u8]]) -> Gather<'a> {
        Gather {
            head: &[],
            rest: parts,
            remaining: parts.iter().map(|part| part.len()).sum(),
        }
    }

    /// The bytes not yet copied.
    fn remaining(&self) -> usize {
        self.remaining
    }

    /// Appends the next `len` bytes (fewer if fewer remain) to `buf`.
    fn copy_to(&mut self, len: usize, buf: &mut BytesMut) {
        let mut left = len.min(self.remaining);
        while left > 0 {
            if self.head.is_empty() {
                let Some((next, rest)) = self.rest.split_first() else {
                    break;
                };
                self.head = next;
                self.rest = rest;
                continue;
            }
            let (take, keep) = self.head.split_at(left.min(self.head.len()));
            buf.extend_from_slice(take);
            left -= take.len();
            self.remaining -= take.len();
            self.head = keep;
        }
    }
}
