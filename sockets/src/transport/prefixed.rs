//! Length-prefixed frames over a byte stream, sans-IO: the framing of raw
//! TCP (`tcp://`), Unix domain sockets (`unix://`) and in-process pairs.
//!
//! ```text
//! preamble  "RPCWS1\r\n"                               8 bytes, each side, first
//! message   u32be length (1..=limit) | payload          one binary message
//! close     u32be 0 | u16be code | u8 n | n bytes        the transport's close:
//!                                                       code and UTF-8 reason
//! ```
//!
//! The same messages as over a WebSocket (every handshake message and every
//! sealed frame is one message), under the same limits: a length over the
//! limit is refused on its 4 bytes, before anything is allocated. The
//! preamble makes a mismatch plain: a `tcp://` client that reached a
//! WebSocket port reads `HTTP/1.1 …` where the preamble should be, and says
//! so, instead of taking `HTTP` for a length.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::queue::WriteQueue;
use super::{Codec, Frame, TransportError};

/// What each side sends first.
pub(crate) const PREAMBLE: &[u8; 8] = b"RPCWS1\r\n";

/// Length-prefixed framing of one connection.
#[derive(Debug)]
pub(crate) struct Prefixed {
    max_message: usize,
    /// The peer's preamble was read.
    greeted: bool,
    /// Ours was written.
    greeting_sent: bool,
    /// The bytes the frame in progress needs, once its length is known.
    need: usize,
}

impl Prefixed {
    /// The framing of a new connection: messages up to `max_message` bytes.
    pub(crate) fn new(max_message: usize) -> Self {
        Self {
            max_message,
            greeted: false,
            greeting_sent: false,
            need: 0,
        }
    }

    fn greet(&mut self, out: &mut WriteQueue) {
        if !std::mem::replace(&mut self.greeting_sent, true) {
            out.put_slice(PREAMBLE);
        }
    }
}

impl Codec for Prefixed {
    fn name(&self) -> &'static str {
        "prefixed"
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, TransportError> {
        if !self.greeted {
            let Some(preamble) = buf.get(..PREAMBLE.len()) else {
                // Refuse a wrong start as soon as it differs.
                if !PREAMBLE.starts_with(buf) {
                    return Err(wrong_preamble(buf));
                }
                return Ok(None);
            };
            if preamble != PREAMBLE {
                return Err(wrong_preamble(preamble));
            }
            buf.advance(PREAMBLE.len());
            self.greeted = true;
        }
        let Some(length) = buf.first_chunk::<4>() else {
            self.need = 0;
            return Ok(None);
        };
        let length = u32::from_be_bytes(*length);
        if length == 0 {
            return close(buf);
        }
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        if length > self.max_message {
            return Err(TransportError::TooLarge);
        }
        if buf.len() < 4 + length {
            self.need = 4 + length;
            return Ok(None);
        }
        self.need = 0;
        buf.advance(4);
        Ok(Some(Frame::Binary(buf.split_to(length))))
    }

    fn need(&self) -> usize {
        self.need
    }

    fn encode_binary(&mut self, message: Bytes, out: &mut WriteQueue) {
        self.greet(out);
        // Messages are never empty (a zero length is a close) and never
        // larger than a u32: the session's frames are at most `mf` bytes.
        let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
        out.put_slice(&length.to_be_bytes());
        if message.len() <= 1024 {
            out.put_slice(&message);
        } else {
            out.put_bytes(message);
        }
    }

    fn encode_pong(&mut self, _payload: Bytes, _out: &mut WriteQueue) {}

    fn encode_close(&mut self, code: u16, reason: &str, out: &mut WriteQueue) {
        self.greet(out);
        let mut end = reason.len().min(u8::MAX as usize);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut close = BytesMut::with_capacity(7 + end);
        close.put_u32(0);
        close.put_u16(code);
        close.put_u8(end as u8);
        close.put_slice(&reason.as_bytes()[..end]);
        out.put_slice(&close);
    }

    fn authenticated(&mut self, max_message: usize) {
        self.max_message = max_message;
    }

    fn answers_pings(&self) -> bool {
        false
    }
}

/// A close at the front of `buf` (its zero length already seen).
fn close(buf: &mut BytesMut) -> Result<Option<Frame>, TransportError> {
    let Some(&[_, _, _, _, a, b, n]) = buf.first_chunk::<7>() else {
        return Ok(None);
    };
    let total = 7 + usize::from(n);
    if buf.len() < total {
        return Ok(None);
    }
    let code = u16::from_be_bytes([a, b]);
    if !(1000..=4999).contains(&code) {
        return Err(TransportError::Protocol("invalid close code"));
    }
    let reason = std::str::from_utf8(&buf[7..total])
        .map_err(|_| TransportError::Protocol("close reason not UTF-8"))?
        .to_owned();
    buf.advance(total);
    Ok(Some(Frame::Close(Some((code, reason)))))
}

fn wrong_preamble(start: &[u8]) -> TransportError {
    if start.starts_with(b"HTTP/") || b"HTTP/".starts_with(start) {
        TransportError::Protocol("the peer speaks HTTP: a ws:// endpoint, not a tcp:// one")
    } else if start.starts_with(b"GET ") {
        TransportError::Protocol("the peer sent an HTTP request: a ws:// client, not a tcp:// one")
    } else {
        TransportError::Protocol("not a sockets stream: the preamble is missing")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greeted() -> Prefixed {
        let mut codec = Prefixed::new(1000);
        codec.greeted = true;
        codec
    }

    #[test]
    fn messages_and_closes_round_trip_in_pieces() {
        let mut sender = Prefixed::new(1 << 20);
        let mut out = WriteQueue::default();
        for len in [1, 5, 1024, 1025, 70_000] {
            sender.encode_binary(Bytes::from(vec![len as u8; len]), &mut out);
        }
        sender.encode_close(4007, "busy", &mut out);
        let wire = out.to_vec();
        assert!(wire.starts_with(PREAMBLE));
        let mut receiver = Prefixed::new(1 << 20);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for byte in wire {
            buf.put_u8(byte);
            while let Some(frame) = receiver.decode(&mut buf).unwrap() {
                frames.push(frame);
            }
        }
        let lengths: Vec<usize> = frames
            .iter()
            .filter_map(|f| match f {
                Frame::Binary(m) => Some(m.len()),
                _ => None,
            })
            .collect();
        assert_eq!(lengths, [1, 5, 1024, 1025, 70_000]);
        assert_eq!(
            frames.last(),
            Some(&Frame::Close(Some((4007, "busy".into()))))
        );
    }

    #[test]
    fn a_length_over_the_limit_is_refused_on_its_four_bytes() {
        let mut codec = greeted();
        let mut buf = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(TransportError::TooLarge)
        ));
        let mut codec = greeted();
        let mut buf = BytesMut::from(&1001u32.to_be_bytes()[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(TransportError::TooLarge)
        ));
        // Exactly the limit waits for its bytes, and says how many.
        let mut codec = greeted();
        let mut buf = BytesMut::from(&1000u32.to_be_bytes()[..]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
        assert_eq!(codec.need(), 1004);
        codec.authenticated(2000);
        let mut buf = BytesMut::from(&1001u32.to_be_bytes()[..]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
    }

    #[test]
    fn a_wrong_start_says_what_the_peer_is() {
        for (start, says) in [
            (&b"HTTP/1.1 400 Bad Request\r\n"[..], "speaks HTTP"),
            (&b"GET / HTTP/1.1\r\n"[..], "HTTP request"),
            (&b"\x00\x00\x00\x05hello"[..], "preamble is missing"),
            (&b"HT"[..], "speaks HTTP"),
        ] {
            let mut codec = Prefixed::new(1000);
            match codec.decode(&mut BytesMut::from(start)) {
                Err(TransportError::Protocol(what)) => assert!(what.contains(says), "{what}"),
                other => panic!("{other:?}"),
            }
        }
        // A preamble arriving a byte at a time is fine.
        let mut codec = Prefixed::new(1000);
        let mut buf = BytesMut::new();
        for byte in PREAMBLE {
            buf.put_u8(*byte);
            assert!(matches!(codec.decode(&mut buf), Ok(None)));
        }
    }

    #[test]
    fn bad_closes_are_protocol_errors() {
        let mut codec = greeted();
        let mut buf = BytesMut::from(&[0, 0, 0, 0, 0, 0, 0][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(TransportError::Protocol(_))
        ));
        let mut codec = greeted();
        let mut buf = BytesMut::from(&[0, 0, 0, 0, 0x03, 0xe8, 1, 0xff][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(TransportError::Protocol(_))
        ));
    }
}
