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
//!
//! A value encoded here with large [`Blob`](super::Blob)s in it is held in
//! *pieces*: the encoding without the blobs' bytes, and each blob's own
//! buffer where its bytes go. A 1 MiB blob sent as an argument or a result is
//! then not copied into its value; its bytes are first copied when the frame
//! that carries them is sealed (the connection seals pieces as they are).
//! Whoever needs the value as one slice gets the pieces joined, once.

use std::fmt;
use std::ops::{Deref, Range};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::Serialize;

use super::blob;
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
/// is shared, as [`Bytes`]. A value [encoded](Self::encode) with a
/// [`Blob`](crate::Blob) of 16 KiB or more in it keeps that blob's buffer
/// apart, and the connection sends it from there; read as a slice, such a
/// value is joined into one buffer (once). It reads as a byte slice either
/// way.
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
    /// Encoded with large blobs kept apart (see the module's docs).
    Pieces(Arc<Pieces>),
}

/// A value's encoding with its large blobs kept apart.
struct Pieces {
    /// The encoding without the blobs' bytes.
    rest: Bytes,
    /// Each blob's bytes, with the length of `rest` they follow: the value
    /// is `rest[..a1] b1 rest[a1..a2] b2 … rest[an..]`.
    blobs: Vec<(usize, Bytes)>,
    /// The value's length.
    len: usize,
    /// The value in one buffer, made when first asked for.
    joined: OnceLock<Bytes>,
}

impl Pieces {
    fn joined(&self) -> &Bytes {
        self.joined.get_or_init(|| {
            let mut joined = Vec::with_capacity(self.len);
            self.for_each(|piece, _| joined.extend_from_slice(piece));
            Bytes::from(joined)
        })
    }

    fn for_each(&self, mut piece: impl FnMut(&[u8], Option<&Bytes>)) {
        let mut from = 0;
        for (at, blob) in &self.blobs {
            let before = self.rest.get(from..*at).unwrap_or_default();
            if !before.is_empty() {
                piece(before, Some(&self.rest));
            }
            piece(blob, Some(blob));
            from = *at;
        }
        let after = self.rest.get(from..).unwrap_or_default();
        if !after.is_empty() {
            piece(after, Some(&self.rest));
        }
    }
}

/// Where [`EncodedValue::encode`] writes: the encoding, except the bytes of
/// a large blob being encoded, whose buffer it keeps instead.
struct Sink<'a> {
    rest: &'a mut Vec<u8>,
    blobs: Vec<(usize, Bytes)>,
}

impl Sink<'_> {
    /// Appends `data`, unless they are the offered blob's bytes.
    #[inline]
    fn put(&mut self, data: &[u8]) {
        if data.len() < blob::SPLICE_MIN || !self.keep_blob(data) {
            self.rest.extend_from_slice(data);
        }
    }

    /// Keeps the offered blob in place of `data` if they are its bytes.
    #[cold]
    fn keep_blob(&mut self, data: &[u8]) -> bool {
        match blob::take_offered(data) {
            Some(blob) => {
                self.blobs.push((self.rest.len(), blob));
                true
            }
            None => false,
        }
    }
}

impl std::io::Write for Sink<'_> {
    #[inline]
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.put(data);
        Ok(data.len())
    }

    #[inline]
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.put(data);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl EncodedValue {
    /// Encodes `value` as one MessagePack value (structs as maps, as
    /// generated code encodes them).
    ///
    /// # Errors
    /// When `value`'s `Serialize` implementation fails.
    ///
    /// A [`Blob`](crate::Blob) of 16 KiB or more in `value` is not copied:
    /// the value keeps the blob's buffer (see the module's docs).
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, CodecError> {
        codec::encode_scratch_with(
            |rest| {
                blob::splicing(|| {
                    let mut sink = Sink {
                        rest,
                        blobs: Vec::new(),
                    };
                    codec::encode_into(value, &mut sink).map(|()| sink.blobs)
                })
            },
            |encoded, blobs| {
                if !blobs.is_empty() {
                    let rest = Bytes::from(codec::take_encoded(encoded));
                    let len = rest.len() + blobs.iter().map(|(_, b)| b.len()).sum::<usize>();
                    Self(Repr::Pieces(Arc::new(Pieces {
                        rest,
                        blobs,
                        len,
                        joined: OnceLock::new(),
                    })))
                } else if encoded.len() <= INLINE {
                    Self::inline(encoded)
                } else {
                    Self::shared(Bytes::from(codec::take_encoded(encoded)), true)
                }
            },
        )
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
    #[inline]
    pub(crate) fn decode<R>(&self, decode: impl FnOnce(&[u8]) -> R) -> R {
        match &self.0 {
            Repr::Shared { bytes, lend: true } => blob::lend(bytes, decode),
            Repr::Pieces(pieces) => blob::lend(pieces.joined(), decode),
            _ => decode(self.as_slice()),
        }
    }

    /// Calls `piece` on the encoded bytes, in order, in the pieces they are
    /// held in: one piece unless large blobs were kept apart. Each comes
    /// with the buffer it lies in, when shared (`None` when inline).
    #[inline]
    pub(crate) fn for_each_piece(&self, mut piece: impl FnMut(&[u8], Option<&Bytes>)) {
        match &self.0 {
            Repr::Inline { .. } => piece(self.as_slice(), None),
            Repr::Shared { bytes, .. } => piece(bytes, Some(bytes)),
            Repr::Pieces(pieces) => pieces.for_each(piece),
        }
    }

    /// The encoded value's length in bytes.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline { len, .. } => usize::from(*len),
            Repr::Shared { bytes, .. } => bytes.len(),
            Repr::Pieces(pieces) => pieces.len,
        }
    }

    /// Whether it holds no bytes (the [`Default`] placeholder).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    /// The encoded bytes, in one slice: a value held in pieces (see the
    /// module's docs) is joined the first time.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared { bytes, .. } => bytes,
            Repr::Pieces(pieces) => pieces.joined(),
        }
    }

    /// The encoded bytes as [`Bytes`]: free when shared, one copy when
    /// inline or held in pieces.
    pub fn into_bytes(self) -> Bytes {
        match self.0 {
            Repr::Inline { .. } => Bytes::copy_from_slice(self.as_slice()),
            Repr::Shared { bytes, .. } => bytes,
            Repr::Pieces(pieces) => pieces.joined().clone(),
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

    /// The pieces of `value`: each one's address, length and whether it
    /// comes with its buffer.
    fn pieces(value: &EncodedValue) -> Vec<(usize, usize, bool)> {
        let mut pieces = Vec::new();
        value.for_each_piece(|piece, shared| {
            pieces.push((piece.as_ptr() as usize, piece.len(), shared.is_some()));
        });
        pieces
    }

    #[test]
    fn a_large_blob_is_kept_apart_from_its_encoding_and_joined_when_asked() {
        use crate::protocol::Blob;
        let data = Bytes::from(vec![7; 100_000]);
        let args = (Blob::from(data.clone()), "tail");
        let value = EncodedValue::encode(&args).unwrap();
        let whole = codec::to_vec(&args).unwrap();
        assert_eq!(value.len(), whole.len(), "the length, without joining");

        let pieces = pieces(&value);
        assert_eq!(pieces.len(), 3, "{pieces:?}");
        // The array and bin headers; the blob; the string after it.
        assert_eq!(pieces[0].1, 6);
        assert_eq!(
            pieces[1],
            (data.as_ptr() as usize, data.len(), true),
            "the blob's own buffer: no copy"
        );
        assert_eq!(pieces[2].1, 5);
        let Repr::Pieces(held) = &value.0 else {
            panic!("held in pieces");
        };
        assert!(held.joined.get().is_none(), "nothing joined yet");

        assert_eq!(value.as_slice(), &whole[..], "joined: the same bytes");
        assert_eq!(value, EncodedValue::from(whole.clone()));
        let (blob, tail): (Blob, String) = value.decode(|b| codec::decode_value(b)).unwrap();
        assert_eq!((blob.as_bytes(), tail.as_str()), (&data, "tail"));
        assert_eq!(value.clone().into_bytes(), whole);
    }

    #[test]
    fn small_blobs_and_other_encoders_copy_and_leave_no_offer_behind() {
        use crate::protocol::Blob;
        let small = EncodedValue::encode(&(Blob::from(vec![1; blob::SPLICE_MIN - 1]),)).unwrap();
        assert!(matches!(small.0, Repr::Shared { .. }), "one piece");

        // Encoded by `to_vec`, a large blob is copied into the buffer.
        let data = Bytes::from(vec![2; blob::SPLICE_MIN]);
        let whole = codec::to_vec(&Blob::from(data.clone())).unwrap();
        assert!(
            whole[3..] == data[..],
            "bin 16: three bytes of header, then a copy"
        );
        assert!(
            blob::take_offered(&data).is_none(),
            "no offer outside an encoding"
        );

        /// Encodes a blob with another encoder while being encoded.
        struct Nested(Blob);
        impl Serialize for Nested {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let inner = codec::to_vec(&self.0).map_err(serde::ser::Error::custom)?;
                s.serialize_bytes(&inner)
            }
        }
        let value = EncodedValue::encode(&(Nested(Blob::from(data.clone())), 3u8)).unwrap();
        assert!(
            matches!(value.0, Repr::Shared { .. }),
            "the inner encoding copied the blob; the outer one has no blob"
        );
        let (inner, three): (serde_bytes::ByteBuf, u8) = codec::decode_value(&value).unwrap();
        assert!(inner[..] == whole[..] && three == 3);
        assert!(blob::take_offered(&data).is_none());
    }

    #[test]
    fn a_value_with_several_large_blobs_holds_each_apart_and_round_trips() {
        use crate::protocol::Blob;
        let first = Blob::from(vec![3; 20_000]);
        let second = Blob::from(vec![4; 30_000]);
        let args = (&first, 9u8, &second, &first);
        let value = EncodedValue::encode(&args).unwrap();
        let blobs: Vec<usize> = pieces(&value)
            .iter()
            .filter(|(_, len, _)| *len >= 20_000)
            .map(|(at, _, _)| *at)
            .collect();
        assert_eq!(
            blobs,
            [first.as_ptr(), second.as_ptr(), first.as_ptr()].map(|p| p as usize)
        );
        assert_eq!(value.as_slice(), codec::to_vec(&args).unwrap());
    }
}
