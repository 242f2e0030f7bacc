//! WebSocket framing (RFC 6455 §5), sans-IO: bytes in, messages out, and the
//! other way round. The HTTP upgrade that precedes it is in [`super::http`].
//!
//! ```text
//!   0                   1                   2                   3
//!  ┌─┬─┬─┬─┬───────┬─┬─────────────┬───────────────────────────────┐
//!  │F│R│R│R│opcode │M│ payload len │ extended length (16 or 64 bit)│
//!  │I│S│S│S│  (4)  │A│     (7)     │  when len is 126 or 127       │
//!  │N│V│V│V│       │S│             │                               │
//!  ├─┴─┴─┴─┴───────┴─┴─────────────┼───────────────────────────────┤
//!  │ masking key (4 bytes), frames from a client only              │
//!  ├───────────────────────────────────────────────────────────────┤
//!  │ payload                                                       │
//!  └───────────────────────────────────────────────────────────────┘
//! ```
//!
//! Why our own framing rather than tungstenite's: a server must decide what
//! an unauthenticated peer can make it hold, and tungstenite decides that for
//! it. It answers every ping on its own and, when the peer does not read,
//! piles the pongs up in a write buffer without bound (a peer that sent
//! 128 MiB of pings and read nothing held 124 MB of our memory), and its
//! message limit is fixed when the socket is created, so the 1 MiB limit of
//! an authenticated session also applied to peers that had proved nothing.
//! Here the owner sets the limit (small until authentication, the session's
//! frame limit after), pings before authentication are not answered and only
//! a few are tolerated, and at most one pong ever waits to be written.
//!
//! What the decoder enforces, each a [`WsError`] that closes the connection:
//! frames from a client are masked and frames from a server are not; RSV bits
//! are zero (no extension is ever negotiated); opcodes are known; control
//! frames are final and at most 125 bytes; continuation frames continue
//! something; a message (all its fragments) is within the limit, checked on
//! the frame header before anything is allocated; text messages are refused
//! (this protocol is binary only). A close frame's code is valid and its
//! reason UTF-8.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::queue::WriteQueue;
use super::{Codec, Frame, TransportError};

/// Control frames (pings, pongs) a peer may send before it has
/// authenticated. None are answered; past this many the connection closes.
/// No well-behaved client pings during the few round trips of a handshake.
pub(crate) const PRE_AUTH_CONTROL_FRAMES: u32 = 8;

/// The largest frame header: 2 bytes, 8 of extended length, 4 of mask.
pub(crate) const MAX_HEADER: usize = 14;

/// Payloads up to this size are copied next to their header; larger ones are
/// written from their own buffer (server side; a client masks, so it copies).
const COPY_LIMIT: usize = 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Which end of the WebSocket we are: clients mask what they send and
/// receive unmasked frames, servers the other way round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// We connected.
    Client,
    /// We accepted.
    Server,
}

/// Why a frame was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WsError {
    /// A message larger than the limit.
    #[error("the peer sent a websocket message over the size limit")]
    TooLarge,
    /// A text message.
    #[error("the peer sent a non-binary websocket message")]
    NotBinary,
    /// Too many pings or pongs before authentication.
    #[error("too many websocket control frames before authentication")]
    TooManyControlFrames,
    /// A framing rule was broken.
    #[error("websocket framing: {0}")]
    Protocol(&'static str),
}

/// A parsed frame header.
#[derive(Debug)]
struct Header {
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    /// Header bytes, including the extended length and the mask.
    len: usize,
    payload: usize,
}

/// The WebSocket framing of one connection.
#[derive(Debug)]
pub(crate) struct WebSocket {
    role: Role,
    /// The largest message accepted, all its fragments together.
    max_message: usize,
    /// Control frames still tolerated before authentication; `None` once
    /// authenticated (from then on pings are answered, without a count).
    control_budget: Option<u32>,
    /// The fragments of a message that is not finished.
    partial: Option<BytesMut>,
    /// The bytes the frame being received needs in the buffer, once its
    /// header has been read.
    need: usize,
    /// Masking keys for a client's frames.
    masks: MaskKeys,
}

impl WebSocket {
    /// The framing of a new connection: messages up to `max_message` bytes,
    /// and the pre-authentication control-frame budget.
    pub(crate) fn new(role: Role, max_message: usize) -> Self {
        Self {
            role,
            max_message,
            control_budget: Some(PRE_AUTH_CONTROL_FRAMES),
            partial: None,
            need: 0,
            masks: MaskKeys::default(),
        }
    }

    /// The peer authenticated: accept messages up to `max_message`, and
    /// answer pings from now on.
    pub(crate) fn authenticated(&mut self, max_message: usize) {
        self.max_message = max_message;
        self.control_budget = None;
    }

    /// Whether pings are answered (after authentication).
    pub(crate) fn answers_pings(&self) -> bool {
        self.control_budget.is_none()
    }

    /// How many bytes the buffer must hold for the frame being received, if
    /// its header has been read (for the caller to reserve them at once).
    pub(crate) fn need(&self) -> usize {
        self.need
    }

    /// Decodes the next frame from the front of `buf`, consuming it.
    /// `Ok(None)`: more bytes are needed.
    ///
    /// # Errors
    /// A [`WsError`] for a frame that breaks the rules; the connection must end.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, WsError> {
        loop {
            let Some(header) = parse_header(buf)? else {
                self.need = 0;
                return Ok(None);
            };
            self.check(&header)?;
            let total = header.len + header.payload;
            if buf.len() < total {
                self.need = total;
                return Ok(None);
            }
            self.need = 0;
            buf.advance(header.len);
            let mut payload = buf.split_to(header.payload);
            if let Some(key) = header.mask {
                apply_mask(&mut payload, key);
            }
            if let Some(frame) = self.on_frame(&header, payload)? {
                return Ok(Some(frame));
            }
        }
    }

    /// Checks a header against the rules before its payload is awaited.
    fn check(&mut self, header: &Header) -> Result<(), WsError> {
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(WsError::Protocol("unmasked frame from a client")),
            (Role::Client, true) => return Err(WsError::Protocol("masked frame from a server")),
            _ => {}
        }
        match header.opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if !header.fin || header.payload > 125 {
                    return Err(WsError::Protocol("fragmented or oversized control frame"));
                }
                Ok(())
            }
            OP_TEXT => Err(WsError::NotBinary),
            OP_BINARY | OP_CONTINUATION => {
                let so_far = match (&self.partial, header.opcode) {
                    (None, OP_CONTINUATION) => {
                        return Err(WsError::Protocol("continuation of no message"));
                    }
                    (Some(_), OP_BINARY) => {
                        return Err(WsError::Protocol("new message inside a fragmented one"));
                    }
                    (partial, _) => partial.as_ref().map_or(0, BytesMut::len),
                };
                if header.payload > self.max_message.saturating_sub(so_far) {
                    return Err(WsError::TooLarge);
                }
                Ok(())
            }
            _ => Err(WsError::Protocol("unknown opcode")),
        }
    }

    fn on_frame(&mut self, header: &Header, payload: BytesMut) -> Result<Option<Frame>, WsError> {
        if matches!(header.opcode, OP_PING | OP_PONG)
            && let Some(budget) = &mut self.control_budget
        {
            *budget = budget.checked_sub(1).ok_or(WsError::TooManyControlFrames)?;
        }
        Ok(Some(match header.opcode {
            OP_PING => Frame::Ping(payload.freeze()),
            OP_PONG => Frame::Pong,
            OP_CLOSE => Frame::Close(close_payload(&payload)?),
            _ if !header.fin => {
                match &mut self.partial {
                    Some(partial) => partial.extend_from_slice(&payload),
                    None => self.partial = Some(payload),
                }
                return Ok(None);
            }
            _ => match self.partial.take() {
                Some(mut partial) => {
                    partial.extend_from_slice(&payload);
                    Frame::Binary(partial)
                }
                None => Frame::Binary(payload),
            },
        }))
    }

    /// Appends a binary message to `out`, as one final frame.
    pub(crate) fn encode_binary(&mut self, message: Bytes, out: &mut WriteQueue) {
        self.encode(OP_BINARY, message, out);
    }

    /// Appends a pong answering a ping with `payload`.
    pub(crate) fn encode_pong(&mut self, payload: Bytes, out: &mut WriteQueue) {
        self.encode(OP_PONG, payload, out);
    }

    /// Appends a close frame with `code` and `reason` (cut to the 123 bytes
    /// a close frame leaves for it, at a character boundary).
    pub(crate) fn encode_close(&mut self, code: u16, reason: &str, out: &mut WriteQueue) {
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut payload = BytesMut::with_capacity(2 + end);
        payload.put_u16(code);
        payload.put_slice(&reason.as_bytes()[..end]);
        self.encode(OP_CLOSE, payload.freeze(), out);
    }

    fn encode(&mut self, opcode: u8, payload: Bytes, out: &mut WriteQueue) {
        let len = payload.len();
        let mut header = [0u8; MAX_HEADER];
        header[0] = 0x80 | opcode;
        let mut at = 2;
        let mask_bit = if self.role == Role::Client { 0x80 } else { 0 };
        if len < 126 {
            header[1] = mask_bit | len as u8;
        } else if let Ok(len) = u16::try_from(len) {
            header[1] = mask_bit | 126;
            header[2..4].copy_from_slice(&len.to_be_bytes());
            at = 4;
        } else {
            header[1] = mask_bit | 127;
            header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            at = 10;
        }
        match self.role {
            Role::Client => {
                let key = self.masks.next();
                header[at..at + 4].copy_from_slice(&key);
                at += 4;
                out.put_slice(&header[..at]);
                out.put_masked(&payload, key);
            }
            Role::Server if len <= COPY_LIMIT => {
                out.put_slice(&header[..at]);
                out.put_slice(&payload);
            }
            Role::Server => {
                out.put_slice(&header[..at]);
                out.put_bytes(payload);
            }
        }
    }
}

impl Codec for WebSocket {
    fn name(&self) -> &'static str {
        "websocket"
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, TransportError> {
        Ok(WebSocket::decode(self, buf)?)
    }

    fn need(&self) -> usize {
        WebSocket::need(self)
    }

    fn encode_binary(&mut self, message: Bytes, out: &mut WriteQueue) {
        WebSocket::encode_binary(self, message, out);
    }

    fn encode_pong(&mut self, payload: Bytes, out: &mut WriteQueue) {
        WebSocket::encode_pong(self, payload, out);
    }

    fn encode_close(&mut self, code: u16, reason: &str, out: &mut WriteQueue) {
        WebSocket::encode_close(self, code, reason, out);
    }

    fn authenticated(&mut self, max_message: usize) {
        WebSocket::authenticated(self, max_message);
    }

    fn answers_pings(&self) -> bool {
        WebSocket::answers_pings(self)
    }
}

/// Parses the frame header at the front of `buf`, if it is all there.
fn parse_header(buf: &[u8]) -> Result<Option<Header>, WsError> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(WsError::Protocol("reserved bits set"));
    }
    let (payload, mut len) = match b1 & 0x7f {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 4),
            _ => return Ok(None),
        },
        127 => match rest.first_chunk::<8>() {
            Some(bytes) => {
                let length = u64::from_be_bytes(*bytes);
                if length >> 63 != 0 {
                    return Err(WsError::Protocol("length with the high bit set"));
                }
                (length, 10)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    let mask = if b1 & 0x80 != 0 {
        let Some(key) = buf.get(len..len + 4) else {
            return Ok(None);
        };
        len += 4;
        Some([key[0], key[1], key[2], key[3]])
    } else {
        None
    };
    Ok(Some(Header {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        mask,
        len,
        // A length past the address space is over any limit.
        payload: usize::try_from(payload).unwrap_or(usize::MAX),
    }))
}

/// A close frame's code and reason.
fn close_payload(payload: &[u8]) -> Result<Option<(u16, String)>, WsError> {
    let [a, b, reason @ ..] = payload else {
        return if payload.is_empty() {
            Ok(None)
        } else {
            Err(WsError::Protocol("one-byte close payload"))
        };
    };
    let code = u16::from_be_bytes([*a, *b]);
    // RFC 6455 §7.4: the codes an endpoint may send.
    if !matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999) {
        return Err(WsError::Protocol("invalid close code"));
    }
    let reason =
        std::str::from_utf8(reason).map_err(|_| WsError::Protocol("close reason not UTF-8"))?;
    Ok(Some((code, reason.to_owned())))
}

/// XORs `data` with the repeated 4-byte `key` (RFC 6455 §5.3), eight bytes at a time.
pub(crate) fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// A client's masking keys: unpredictable (RFC 6455 §10.3), drawn from the
/// operating system 16 at a time.
#[derive(Debug)]
struct MaskKeys {
    pool: [u8; 64],
    used: usize,
}

impl Default for MaskKeys {
    fn default() -> Self {
        Self {
            pool: [0; 64],
            used: 64,
        }
    }
}

impl MaskKeys {
    fn next(&mut self) -> [u8; 4] {
        if self.used == self.pool.len() {
            if getrandom::fill(&mut self.pool).is_err() {
                // Without an entropy source every key is still valid framing;
                // masking guards proxies' caches, not our confidentiality.
                tracing::warn!("no entropy for websocket masking keys");
            }
            self.used = 0;
        }
        let key = [
            self.pool[self.used],
            self.pool[self.used + 1],
            self.pool[self.used + 2],
            self.pool[self.used + 3],
        ];
        self.used += 4;
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        let mask_bit = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            len @ 0..=125 => out.push(mask_bit | len as u8),
            len @ 126..=65535 => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        let mut payload = payload.to_vec();
        if let Some(key) = mask {
            out.extend_from_slice(&key);
            apply_mask(&mut payload, key);
        }
        out.extend_from_slice(&payload);
        out
    }

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn server() -> WebSocket {
        let mut ws = WebSocket::new(Role::Server, 1 << 20);
        ws.authenticated(1 << 20);
        ws
    }

    #[test]
    fn rfc_6455_examples_decode() {
        // §5.7: a single-frame masked text message is refused (binary only).
        let mut ws = server();
        let mut buf = BytesMut::from(
            &[
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ][..],
        );
        assert_eq!(ws.decode(&mut buf), Err(WsError::NotBinary));
        // The same as binary.
        let mut ws = server();
        let mut buf = BytesMut::from(&frame(true, OP_BINARY, Some(KEY), b"Hello")[..]);
        assert_eq!(
            ws.decode(&mut buf),
            Ok(Some(Frame::Binary(BytesMut::from(&b"Hello"[..]))))
        );
        assert!(buf.is_empty());
        // §5.7: an unmasked ping from a server, to a client.
        let mut client = WebSocket::new(Role::Client, 1 << 20);
        let mut buf = BytesMut::from(&[0x89, 0x05, b'H', b'e', b'l', b'l', b'o'][..]);
        assert_eq!(
            client.decode(&mut buf),
            Ok(Some(Frame::Ping(Bytes::from_static(b"Hello"))))
        );
    }

    #[test]
    fn frames_arrive_in_pieces_and_the_need_is_known_from_the_header() {
        let mut ws = server();
        let payload = vec![7u8; 70_000];
        let wire = frame(true, OP_BINARY, Some(KEY), &payload);
        let mut buf = BytesMut::new();
        for (i, byte) in wire.iter().enumerate() {
            buf.put_u8(*byte);
            let decoded = ws.decode(&mut buf).unwrap();
            if i + 1 < wire.len() {
                assert_eq!(decoded, None);
                if i >= 13 {
                    assert_eq!(ws.need(), wire.len(), "known once the header is in");
                }
            } else {
                assert_eq!(decoded, Some(Frame::Binary(BytesMut::from(&payload[..]))));
            }
        }
    }

    #[test]
    fn fragments_are_reassembled_with_control_frames_between() {
        let mut ws = server();
        let mut wire = frame(false, OP_BINARY, Some(KEY), b"ab");
        wire.extend(frame(true, OP_PING, Some(KEY), b"p"));
        wire.extend(frame(false, OP_CONTINUATION, Some(KEY), b"cd"));
        wire.extend(frame(true, OP_CONTINUATION, Some(KEY), b"e"));
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(
            ws.decode(&mut buf),
            Ok(Some(Frame::Ping(Bytes::from_static(b"p"))))
        );
        assert_eq!(
            ws.decode(&mut buf),
            Ok(Some(Frame::Binary(BytesMut::from(&b"abcde"[..]))))
        );
        assert_eq!(ws.decode(&mut buf), Ok(None));
    }

    #[test]
    fn every_rule_is_enforced() {
        let cases: Vec<(Vec<u8>, WsError)> = vec![
            (
                frame(true, OP_BINARY, None, b"x"),
                WsError::Protocol("unmasked frame from a client"),
            ),
            (
                vec![0xc2, 0x80, 0, 0, 0, 0],
                WsError::Protocol("reserved bits set"),
            ),
            (
                frame(true, 0x3, Some(KEY), b""),
                WsError::Protocol("unknown opcode"),
            ),
            (
                frame(false, OP_PING, Some(KEY), b""),
                WsError::Protocol("fragmented or oversized control frame"),
            ),
            (
                frame(true, OP_PING, Some(KEY), &[0; 126]),
                WsError::Protocol("fragmented or oversized control frame"),
            ),
            (
                frame(true, OP_CONTINUATION, Some(KEY), b"x"),
                WsError::Protocol("continuation of no message"),
            ),
            (
                frame(true, OP_CLOSE, Some(KEY), &[3]),
                WsError::Protocol("one-byte close payload"),
            ),
            (
                frame(true, OP_CLOSE, Some(KEY), &[0x03, 0xed]),
                WsError::Protocol("invalid close code"),
            ),
            (
                frame(true, OP_CLOSE, Some(KEY), &[0x03, 0xe8, 0xff]),
                WsError::Protocol("close reason not UTF-8"),
            ),
            (
                vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0],
                WsError::Protocol("length with the high bit set"),
            ),
        ];
        for (wire, expected) in cases {
            let mut ws = server();
            assert_eq!(ws.decode(&mut BytesMut::from(&wire[..])), Err(expected));
        }
        let mut wire = frame(false, OP_BINARY, Some(KEY), b"a");
        wire.extend(frame(true, OP_BINARY, Some(KEY), b"b"));
        let mut ws = server();
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(
            ws.decode(&mut buf),
            Err(WsError::Protocol("new message inside a fragmented one"))
        );
        let mut client = WebSocket::new(Role::Client, 1024);
        let wire = frame(true, OP_BINARY, Some(KEY), b"x");
        assert_eq!(
            client.decode(&mut BytesMut::from(&wire[..])),
            Err(WsError::Protocol("masked frame from a server"))
        );
    }

    #[test]
    fn the_limit_is_checked_on_the_header_before_the_payload_arrives() {
        let mut ws = WebSocket::new(Role::Server, 1000);
        // Only the header of a frame claiming 2^62 bytes.
        let mut buf = BytesMut::from(&[0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4][..]);
        assert_eq!(ws.decode(&mut buf), Err(WsError::TooLarge));
        // Fragments count together.
        let mut ws = WebSocket::new(Role::Server, 1000);
        let mut wire = frame(false, OP_BINARY, Some(KEY), &[0; 600]);
        // Only the continuation's header (with its mask key).
        wire.extend_from_slice(&frame(true, OP_CONTINUATION, Some(KEY), &[0; 401])[..8]);
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(ws.decode(&mut buf), Err(WsError::TooLarge));
        // Exactly the limit passes; authentication raises it.
        let mut ws = WebSocket::new(Role::Server, 1000);
        let wire = frame(true, OP_BINARY, Some(KEY), &[0; 1000]);
        assert!(matches!(
            ws.decode(&mut BytesMut::from(&wire[..])),
            Ok(Some(Frame::Binary(_)))
        ));
        let wire = frame(true, OP_BINARY, Some(KEY), &[0; 1001]);
        assert_eq!(
            ws.decode(&mut BytesMut::from(&wire[..])),
            Err(WsError::TooLarge)
        );
        ws.authenticated(2000);
        assert!(matches!(
            ws.decode(&mut BytesMut::from(&wire[..])),
            Ok(Some(Frame::Binary(_)))
        ));
    }

    #[test]
    fn control_frames_before_authentication_have_a_budget() {
        let mut ws = WebSocket::new(Role::Server, 1024);
        assert!(!ws.answers_pings());
        let mut wire = Vec::new();
        for _ in 0..=PRE_AUTH_CONTROL_FRAMES {
            wire.extend(frame(true, OP_PING, Some(KEY), b"ping"));
        }
        let mut buf = BytesMut::from(&wire[..]);
        for _ in 0..PRE_AUTH_CONTROL_FRAMES {
            assert!(matches!(ws.decode(&mut buf), Ok(Some(Frame::Ping(_)))));
        }
        assert_eq!(ws.decode(&mut buf), Err(WsError::TooManyControlFrames));
        // After authentication there is no count.
        let mut ws = server();
        assert!(ws.answers_pings());
        let mut buf = BytesMut::from(&wire.repeat(10)[..]);
        for _ in 0..10 * (PRE_AUTH_CONTROL_FRAMES + 1) {
            assert!(matches!(ws.decode(&mut buf), Ok(Some(Frame::Ping(_)))));
        }
    }

    #[test]
    fn encoded_frames_decode_on_the_other_side() {
        for len in [0, 5, 125, 126, 1024, 1025, 65535, 65536, 200_000] {
            let payload = Bytes::from((0..len).map(|i| i as u8).collect::<Vec<_>>());
            for (from, to) in [(Role::Client, Role::Server), (Role::Server, Role::Client)] {
                let mut sender = WebSocket::new(from, 1 << 20);
                let mut receiver = WebSocket::new(to, 1 << 20);
                let mut out = WriteQueue::default();
                sender.encode_binary(payload.clone(), &mut out);
                sender.encode_close(4007, &"é".repeat(100), &mut out);
                let mut buf = BytesMut::from(&out.to_vec()[..]);
                assert_eq!(
                    receiver.decode(&mut buf),
                    Ok(Some(Frame::Binary(BytesMut::from(&payload[..]))))
                );
                let Ok(Some(Frame::Close(Some((4007, reason))))) = receiver.decode(&mut buf) else {
                    panic!("a close frame")
                };
                // Cut to 123 bytes at a character boundary.
                assert_eq!(reason, "é".repeat(61));
                assert!(buf.is_empty());
            }
        }
    }

    #[test]
    fn masking_is_its_own_inverse_at_every_length_and_offset() {
        for len in 0..40 {
            let original: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut data = original.clone();
            apply_mask(&mut data, KEY);
            for (i, (masked, plain)) in data.iter().zip(&original).enumerate() {
                assert_eq!(*masked, plain ^ KEY[i % 4]);
            }
            apply_mask(&mut data, KEY);
            assert_eq!(data, original);
        }
    }
}
