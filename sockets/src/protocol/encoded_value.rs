//! One encoded MessagePack value as an envelope carries it: a call's or a
//! notification's arguments, a successful reply's value.
//!
//! Most calls carry a few dozen bytes each way. Such a value is held inline,
//! in the envelope itself, so a small call allocates nothing for its
//! arguments and a small reply nothing for its value: the bytes go from the
//! encoder to the envelope to the connection's batch. A small value that
//! arrives is copied out of its frame, so that a reply waiting for its
//! caller does not keep the connection's read buffer from being reused.
//! Larger values are a [`Bytes`]: when received, a slice of their frame (no
//! copy).

use std::fmt;
use std::ops::{Deref, Range};

use bytes::Bytes;
use serde::Serialize;

use super::codec::{self, CodecError};

/// Values of at most this many bytes are held inline: the value then takes
/// 40 bytes in its envelope, 8 more than a `Bytes`. A 32-byte `bin` (an id,
/// a hash, a small record) fits. Measured against 62 (64 bytes): W2/W3 did
/// no better with the larger envelope (docs/figures/bench-inline-value-ab.txt).
pub(crate) const INLINE: usize = 38;

/// Exactly one encoded MessagePack value: what a [`Caller`](crate::service::Caller)
/// sends as a call's arguments and resolves to as its reply, and what a handler's future
/// ([`HandlerFuture`](crate::service::HandlerFuture)) resolves to.
///
/// A value of at most 38 bytes is held inline (no allocation); a larger one
/// is shared, as [`Bytes`]. It reads as a byte slice either way.
///
/// ```
/// use sockets::service::EncodedValue;
///
/// let value = EncodedValue::encode(&(1u8, "x")).unwrap();
/// assert_eq!(&value[..], [0x92, 0x01, 0xa1, b'x']);
/// assert_eq!(EncodedValue::from(vec![0x90]), EncodedValue::from(&[0x90][..]));
/// ```
#[derive(Clone)]
pub struct EncodedValue(Repr);

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    /// `lend`: the buffer may be lent to the [`Blob`](super::Blob)s decoded
    /// from it, because the value is most of what the buffer holds.
    Shared {
        bytes: Bytes,
        lend: bool,
    },
}

impl EncodedValue {
    /// Encodes `value` as one MessagePack value (structs as maps, as
    /// generated code encodes them).
    ///
    /// # Errors
    /// When `value`'s `Serialize` implementation fails.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, CodecError> {
        codec::encode_scratch(value, |encoded| {
            if encoded.len() <= INLINE {
                Self::inline(encoded)
            } else {
                Self::shared(Bytes::from(codec::take_encoded(encoded)), true)
            }
        })
    }

    /// `bytes`, copied: inline when they fit.
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE {
            Self::inline(bytes)
        } else {
            Self::shared(Bytes::copy_from_slice(bytes), true)
        }
    }

    fn shared(bytes: Bytes, lend: bool) -> Self {
        Self(Repr::Shared { bytes, lend })
    }

    /// `whole[range]`, a value received in a frame: copied inline when it
    /// fits, so that a small value (a reply waiting for its caller, say)
    /// does not keep the frame's buffer alive; a slice of `whole` otherwise,
    /// lent to the blobs decoded from it only when it is at least half of
    /// the frame (see [`Blob`](super::Blob)).
    pub(crate) fn received(whole: &Bytes, range: Range<usize>) -> Self {
        if range.len() <= INLINE {
            Self::inline(&whole[range])
        } else {
            let lend = range.len().saturating_mul(2) >= whole.len();
            Self::shared(whole.slice(range), lend)
        }
    }

    /// Runs `decode` on the encoded bytes; a [`Blob`](super::Blob) decoded
    /// meanwhile is a view of them rather than a copy, when the rules of
    /// its module allow.
    pub(crate) fn decode<R>(&self, decode: impl FnOnce(&[u8]) -> R) -> R {
        match &self.0 {
            Repr::Shared { bytes, lend: true } => super::blob::lend(bytes, decode),
            _ => decode(self.as_slice()),
        }
    }

    fn inline(bytes: &[u8]) -> Self {
        let mut inline = [0; INLINE];
        inline[..bytes.len()].copy_from_slice(bytes);
        Self(Repr::Inline {
            // At most `INLINE`, checked by both callers.
            len: bytes.len() as u8,
            bytes: inline,
        })
    }

    /// The encoded bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared { bytes, .. } => bytes,
        }
    }

    /// The encoded bytes as [`Bytes`]: free when shared, one copy when inline.
    pub fn into_bytes(self) -> Bytes {
        match self.0 {
            Repr::Inline { .. } => Bytes::copy_from_slice(self.as_slice()),
            Repr::Shared { bytes, .. } => bytes,
        }
    }
}

impl Default for EncodedValue {
    /// No bytes (not a valid value; a placeholder).
    fn default() -> Self {
        Self::inline(&[])
    }
}

impl Deref for EncodedValue {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for EncodedValue {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<Bytes> for EncodedValue {
    /// Shares `bytes`, whatever their size (no copy). A blob decoded from
    /// them is a copy: they may be a small part of a larger buffer.
    fn from(bytes: Bytes) -> Self {
        Self::shared(bytes, false)
    }
}

impl From<Vec<u8>> for EncodedValue {
    /// Takes `bytes` (no copy).
    fn from(bytes: Vec<u8>) -> Self {
        Self::shared(Bytes::from(bytes), true)
    }
}

impl From<&[u8]> for EncodedValue {
    /// Copies `bytes`.
    fn from(bytes: &[u8]) -> Self {
        Self::copy_from_slice(bytes)
    }
}

impl PartialEq for EncodedValue {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for EncodedValue {}

impl fmt::Debug for EncodedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EncodedValue")
            .field(&self.as_slice())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_value_is_inline_and_a_large_one_shared() {
        let small = EncodedValue::encode(&serde_bytes::Bytes::new(&[7; 32])).unwrap();
        assert!(matches!(small.0, Repr::Inline { len: 34, .. }));
        assert_eq!(small[..2], [0xc4, 32]);
        assert_eq!(small[2..], [7; 32]);

        let edge = EncodedValue::copy_from_slice(&[1; INLINE]);
        assert!(matches!(edge.0, Repr::Inline { .. }));
        assert_eq!(edge.as_slice(), [1; INLINE]);
        let over = EncodedValue::copy_from_slice(&[1; INLINE + 1]);
        assert!(matches!(over.0, Repr::Shared { .. }));
        assert_eq!(over.as_slice(), [1; INLINE + 1]);

        let large = EncodedValue::encode(&serde_bytes::Bytes::new(&[9; 5000])).unwrap();
        assert!(matches!(large.0, Repr::Shared { .. }));
        assert_eq!(large.len(), 5003);
        assert_eq!(large.into_bytes().len(), 5003);
    }

    #[test]
    fn a_received_value_is_copied_when_small_and_a_slice_of_its_frame_when_large() {
        let frame = Bytes::from((0..=99).collect::<Vec<u8>>());
        let small = EncodedValue::received(&frame, 10..10 + INLINE);
        assert!(matches!(small.0, Repr::Inline { .. }));
        let large = EncodedValue::received(&frame, 10..11 + INLINE);
        let Repr::Shared {
            bytes: shared,
            lend,
        } = &large.0
        else {
            panic!("a large value is shared");
        };
        assert_eq!(shared.as_ptr(), frame[10..].as_ptr(), "no copy");
        assert!(!lend, "39 bytes of a 100-byte frame: not lent to blobs");
        drop(large);
        // The small value holds no reference: the frame's buffer is ours
        // alone again (the read buffer can be reused in place).
        let buffer = frame.try_into_mut().expect("the frame's buffer is unique");
        assert_eq!(small.as_slice(), &buffer[10..10 + INLINE]);
    }

    #[test]
    fn a_received_value_that_is_most_of_its_frame_lends_it_to_blobs() {
        let blob = crate::protocol::Blob::from(vec![8; 1000]);
        let mut frame = vec![0x93, 0x00, 0x01];
        let start = frame.len();
        frame.extend_from_slice(&EncodedValue::encode(&(&blob,)).unwrap());
        let frame = Bytes::from(frame);
        let value = EncodedValue::received(&frame, start..frame.len());
        let decoded: (crate::protocol::Blob,) = value.decode(|b| codec::decode_value(b)).unwrap();
        assert_eq!(decoded.0, blob);
        let at = decoded.0.as_ptr() as usize - frame.as_ptr() as usize;
        assert_eq!(
            at,
            start + 4,
            "a view of the frame, after the array and bin headers"
        );

        // The same value beside more than its size of other envelopes: copied.
        let mut padded = frame.to_vec();
        padded.extend_from_slice(&[0xc0; 1100]);
        let padded = Bytes::from(padded);
        let value = EncodedValue::received(&padded, start..frame.len());
        let decoded: (crate::protocol::Blob,) = value.decode(|b| codec::decode_value(b)).unwrap();
        assert_eq!(decoded.0, blob);
        let inside = padded.as_ptr_range().contains(&decoded.0.as_ptr());
        assert!(!inside, "a copy: the blob would pin a frame twice its size");
    }

    #[test]
    fn equal_bytes_are_equal_however_held() {
        let inline = EncodedValue::copy_from_slice(&[0x91, 0x01]);
        let shared = EncodedValue::from(Bytes::from_static(&[0x91, 0x01]));
        assert_eq!(inline, shared);
        assert_eq!(inline.clone().into_bytes(), shared.into_bytes());
        assert_ne!(inline, EncodedValue::from(vec![0x91, 0x02]));
        assert!(EncodedValue::default().is_empty());
    }

    #[test]
    fn a_failing_serialize_is_an_error_and_the_next_encoding_is_whole() {
        struct Fails;
        impl Serialize for Fails {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        assert!(EncodedValue::encode(&(1u8, Fails)).is_err());
        assert_eq!(&EncodedValue::encode(&2u8).unwrap()[..], [0x02]);
    }
}
