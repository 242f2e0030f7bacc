//! Opening: the reader's half of a session, the one owner of the receive counter.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};
use subtle::ConstantTimeEq;

use super::super::Mode;
use super::super::aead::TAG_LEN;
use super::super::schedule::Key32;
use super::{
    AUTH_MAX_FRAME, Counter, FLAG_MORE, FrameKind, HEADER_LEN, Limits, MAC_LEN, Role, SessionError,
    TYPE_AUTH, TYPE_AUTH_RESULT, TYPE_CLOSE, TYPE_DATA, TYPE_KEY_UPDATE,
};
use crate::protocol::{Reason, VERSION};

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
///
/// Owned by the connection's reader task. After AUTH (server) or AUTH_RESULT
/// (client) it accepts DATA only once [`Opener::set_authenticated`] was called.
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
    /// The last large message a chain delivered: its buffer is the next
    /// chain's, if nothing else holds the message by then (see
    /// `Opener::chain_buffer`).
    spare: Option<Bytes>,
}

/// A delivered chain at least this large is kept to be reused.
const KEEP_CHAIN: usize = 64 * 1024;

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
    pub(super) fn new(
        role: Role,
        mode: Mode,
        counter: Counter,
        limits: Limits,
        max_frame: usize,
        finished: Option<Key32>,
    ) -> Opener {
        Opener {
            role,
            mode,
            counter,
            limits,
            max_frame,
            finished,
            state: RecvState::First,
            chain: None,
            spare: None,
        }
    }

    /// Opens one received WebSocket binary message. `Ok(None)`: it was a
    /// KEY_UPDATE or a non-final MORE chunk.
    ///
    /// # Errors
    /// Every [`SessionError`] but `Exhausted`; each is final (later calls fail
    /// with [`SessionError::UnexpectedFrame`]) and the plaintext of a frame
    /// that failed is never exposed.
    pub fn open(&mut self, wire: Bytes) -> Result<Option<Opened>, SessionError> {
        let wire = wire
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        self.open_owned(wire)
    }

    /// As [`Opener::open`], for a message in a buffer of its own (as the
    /// transport hands it over): a frame is decrypted where it lies, and its
    /// plaintext is a view of that buffer, with no copy and no allocation.
    ///
    /// # Errors
    /// As [`Opener::open`].
    pub fn open_owned(&mut self, wire: BytesMut) -> Result<Option<Opened>, SessionError> {
        if self.state == RecvState::Done {
            return Err(SessionError::UnexpectedFrame(Reason::SessionClosed));
        }
        let result = self.open_frame(wire);
        if result.is_err() {
            self.state = RecvState::Done;
            self.chain = None;
        }
        result
    }

    /// Gives back the buffer kept from the last large message (call when
    /// the connection is quiet; the next large message allocates it again).
    pub fn release_buffer(&mut self) {
        self.spare = None;
    }

    /// Called once AUTH_RESULT ok was sent (server) or received (client):
    /// DATA and MORE chains are allowed from now on. Does nothing before the
    /// first frame was opened.
    pub fn set_authenticated(&mut self) {
        if self.state == RecvState::Pending {
            self.state = RecvState::Authenticated;
        }
    }

    fn open_frame(&mut self, mut wire: BytesMut) -> Result<Option<Opened>, SessionError> {
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
            return Err(SessionError::Malformed(Reason::FrameTooShort));
        }
        let mut fh = [0u8; HEADER_LEN];
        fh.copy_from_slice(&wire[..HEADER_LEN]);
        let [version, kind, flags, reserved, e0, e1, e2, e3] = fh;
        if version != VERSION {
            return Err(SessionError::Malformed(Reason::FrameVersion));
        }
        if reserved != 0 {
            return Err(SessionError::Malformed(Reason::FrameReserved));
        }
        if flags & !FLAG_MORE != 0 {
            return Err(SessionError::Malformed(Reason::UnknownFlags));
        }
        if !matches!(
            kind,
            TYPE_DATA | TYPE_KEY_UPDATE | TYPE_CLOSE | TYPE_AUTH | TYPE_AUTH_RESULT
        ) {
            return Err(SessionError::Malformed(Reason::FrameType));
        }
        if flags & FLAG_MORE != 0 && kind != TYPE_DATA {
            return Err(SessionError::Malformed(Reason::MoreNotData));
        }
        let epoch = u32::from_be_bytes([e0, e1, e2, e3]);
        let more = flags & FLAG_MORE != 0;
        if self.joins_chain(kind, more, wire.len()) {
            return self.decrypt_into_chain(&wire, &fh, epoch, more);
        }
        let plaintext = match self.mode {
            Mode::Encrypted => self.decrypt(wire, &fh, epoch)?,
            Mode::Plaintext => {
                if epoch != 0 {
                    return Err(SessionError::Malformed(Reason::PlaintextEpoch));
                }
                wire.advance(HEADER_LEN);
                wire.freeze()
            }
        };
        self.deliver(kind, more, plaintext)
    }

    /// Whether this frame is an encrypted DATA chunk of a MORE chain that
    /// passes every order and size rule, so that it can be decrypted straight
    /// into the chain: one copy instead of two (the received buffer is
    /// normally shared with the transport's read buffer, so it cannot be
    /// decrypted where it is). Any other frame takes the general path, which
    /// reports errors in their usual order.
    fn joins_chain(&self, kind: u8, more: bool, wire_len: usize) -> bool {
        if self.mode != Mode::Encrypted
            || kind != TYPE_DATA
            || self.state != RecvState::Authenticated
            || !(more || self.chain.is_some())
        {
            return false;
        }
        let body = wire_len.saturating_sub(HEADER_LEN + TAG_LEN);
        let held = self.chain.as_ref().map_or(0, Vec::len);
        !(more && body == 0) && held.saturating_add(body) <= self.limits.max_message
    }

    /// Decrypts a chunk of a MORE chain in place at the chain's end (see
    /// [`Opener::joins_chain`]); delivers the message at its last chunk.
    fn decrypt_into_chain(
        &mut self,
        wire: &[u8],
        fh: &[u8; HEADER_LEN],
        epoch: u32,
        more: bool,
    ) -> Result<Option<Opened>, SessionError> {
        if epoch != self.counter.traffic.epoch() {
            return Err(SessionError::Decrypt);
        }
        let len = wire.len();
        if !self.counter.within(&self.limits, len) {
            return Err(SessionError::LimitExceeded);
        }
        let (Some(body), Some(tag)) = (
            wire.get(HEADER_LEN..len - TAG_LEN),
            wire.get(len - TAG_LEN..)
                .and_then(|tag| <[u8; TAG_LEN]>::try_from(tag).ok()),
        ) else {
            return Err(SessionError::Malformed(Reason::FrameTooShort));
        };
        // A chain starts with room for twice its first chunk (within
        // max_message): a message of a full frame and a bit more (a large
        // payload and its envelope) is never moved again, and a peer cannot
        // make us reserve more than twice what it sent.
        let room = body.len().saturating_mul(2).min(self.limits.max_message);
        let chain = self
            .chain
            .get_or_insert_with(|| Self::chain_buffer(&mut self.spare, room));
        let start = chain.len();
        chain.extend_from_slice(body);
        let ad = self.counter.ad(fh);
        let opened = match chain.get_mut(start..) {
            Some(chunk) => self
                .counter
                .traffic
                .aead()
                .open(self.counter.seq, &ad, chunk, &tag)
                .is_ok(),
            None => false,
        };
        if !opened {
            // The chain is dropped unread by `open`.
            return Err(SessionError::Decrypt);
        }
        self.counter.advance(len);
        if more {
            return Ok(None);
        }
        let plaintext = self.chain.take().map(Bytes::from).unwrap_or_default();
        if plaintext.len() >= KEEP_CHAIN {
            self.spare = Some(plaintext.clone());
        }
        Ok(Some(Opened {
            kind: FrameKind::Data,
            plaintext,
        }))
    }

    /// An empty buffer for a new chain, with room for `room` bytes: the last
    /// large message's, when its reader has let go of it (a large message
    /// then costs no fresh memory, whose pages the kernel would have to
    /// fault in and zero), else a new one.
    fn chain_buffer(spare: &mut Option<Bytes>, room: usize) -> Vec<u8> {
        if let Some(spare) = spare.take()
            && let Ok(spare) = spare.try_into_mut()
            && spare.capacity() >= room
        {
            let mut buffer = Vec::from(spare);
            buffer.clear();
            return buffer;
        }
        Vec::with_capacity(room)
    }

    /// Checks the epoch and hard limits, then decrypts in place with the expected sequence number.
    fn decrypt(
        &mut self,
        wire: BytesMut,
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
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&wire[len - TAG_LEN..]);
        // In place: the header and the tag are not needed any more.
        let mut body = wire;
        body.truncate(len - TAG_LEN);
        body.advance(HEADER_LEN);
        let ad = self.counter.ad(fh);
        if self
            .counter
            .traffic
            .aead()
            .open(self.counter.seq, &ad, &mut body, &tag)
            .is_err()
        {
            // `body` is dropped unread.
            return Err(SessionError::Decrypt);
        }
        self.counter.advance(len);
        Ok(body.freeze())
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
                return Err(SessionError::UnexpectedFrame(Reason::KeyUpdatePlaintext));
            }
            if self.state == RecvState::First {
                return Err(SessionError::UnexpectedFrame(Reason::KeyUpdateFirst));
            }
            if !plaintext.is_empty() {
                return Err(SessionError::Malformed(Reason::KeyUpdateNotEmpty));
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
            (RecvState::First, Role::Server, _) => {
                Err(SessionError::UnexpectedFrame(Reason::FirstNotAuth))
            }
            (RecvState::First, Role::Client, _) => {
                Err(SessionError::UnexpectedFrame(Reason::FirstNotAuthResult))
            }
            (RecvState::Pending | RecvState::Authenticated, _, TYPE_CLOSE) => {
                if self.chain.is_some() {
                    return Err(SessionError::UnexpectedFrame(Reason::CloseInsideMore));
                }
                self.state = RecvState::Done;
                Ok(Some(Opened {
                    kind: FrameKind::Close,
                    plaintext,
                }))
            }
            (RecvState::Authenticated, _, TYPE_DATA) => self.reassemble(more, plaintext),
            (RecvState::Pending, _, TYPE_DATA) => {
                Err(SessionError::UnexpectedFrame(Reason::DataBeforeAuth))
            }
            _ => Err(SessionError::UnexpectedFrame(Reason::AuthTwice)),
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
            return Err(SessionError::Malformed(Reason::EmptyMoreChunk));
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
