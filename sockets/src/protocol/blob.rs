//! [`Blob`]: binary data that travels as MessagePack `bin` and, received,
//! is a view of the buffer it arrived in instead of a copy.
//!
//! A `Vec<u8>` or a `serde_bytes::ByteBuf` owns its bytes, so decoding one
//! copies them out of the received frame: for a large payload, one more pass
//! over every byte and a fresh allocation. A `Blob` holds [`Bytes`]: when the
//! runtime decodes a call's arguments or a reply's value, it *lends* the
//! value's buffer for the time of the decode, and a blob found inside it
//! becomes a slice of it.
//!
//! A view keeps the buffer it slices alive. So that a small blob never pins a
//! large buffer, a blob is a view only when it is at least half of the lent
//! value, and a received value is lent only when it is at least half of the
//! frame it came in (`EncodedValue::received`): a view keeps at most about
//! four times its own size alive. Any other blob is copied, as a `ByteBuf`
//! would be. Outside such a decode (another format, a value decoded by the
//! application) a blob is always a copy.
//!
//! Sending works the other way round: while `EncodedValue::encode` runs, a
//! blob of [`SPLICE_MIN`] bytes or more *offers* its buffer to the encoding's
//! sink as it is serialized, and the sink keeps the buffer where the bytes
//! go instead of copying them ([`splicing`], [`take_offered`]). The sink
//! recognises the blob's bytes by their address, so an encoder that writes
//! them in another form, or into another sink, simply copies them.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::{Serialize, Serializer};

/// Blobs of at least this many bytes stay apart from the value they are
/// encoded in by `EncodedValue::encode`: the value refers to the blob's
/// buffer, and the blob's bytes are first copied when the frame that carries
/// them is sealed. A smaller blob is copied into the encoding, which costs
/// less than keeping track of it.
pub(crate) const SPLICE_MIN: usize = 16 * 1024;

thread_local! {
    /// The buffer being decoded from, while [`lend`] runs.
    static LENT: RefCell<Option<Bytes>> = const { RefCell::new(None) };
    /// How many encodings that keep large blobs apart ([`splicing`]) run on
    /// this thread, nested ones included.
    static SPLICING: Cell<u32> = const { Cell::new(0) };
    /// The large blob being encoded while [`SPLICING`] is not zero, until
    /// the encoding's sink takes it ([`take_offered`]).
    static OFFERED: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Runs `encode`, during which a large [`Blob`] being serialized offers its
/// buffer to the sink that receives its bytes ([`take_offered`]).
#[inline]
pub(crate) fn splicing<R>(encode: impl FnOnce() -> R) -> R {
    /// Ends this encoding's count, even if `encode` panics.
    struct End;
    impl Drop for End {
        #[inline]
        fn drop(&mut self) {
            SPLICING.set(SPLICING.get().saturating_sub(1));
        }
    }
    SPLICING.set(SPLICING.get().saturating_add(1));
    let _end = End;
    encode()
}

/// The buffer of the blob being serialized, when `data` is that blob's
/// bytes: the very same memory, not merely equal bytes. The sink that
/// receives the bytes can then keep the buffer instead of copying them.
pub(crate) fn take_offered(data: &[u8]) -> Option<Bytes> {
    OFFERED.with(|offered| {
        let mut offered = offered.borrow_mut();
        // Addresses compared, never read through.
        let same = offered
            .as_ref()
            .is_some_and(|blob| blob.as_ptr() == data.as_ptr() && blob.len() == data.len());
        if same { offered.take() } else { None }
    })
}

/// Runs `decode` on `source`'s bytes, lending `source` to the [`Blob`]s
/// decoded meanwhile on this thread (see the module's docs).
pub(crate) fn lend<R>(source: &Bytes, decode: impl FnOnce(&[u8]) -> R) -> R {
    /// Puts back what was lent before, even if `decode` panics.
    struct Restore(Option<Bytes>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            LENT.with(|lent| *lent.borrow_mut() = previous);
        }
    }
    let previous = LENT.with(|lent| lent.replace(Some(source.clone())));
    let _restore = Restore(previous);
    decode(source)
}

/// `bytes` as a slice of the lent buffer, when they lie inside it and are
/// at least half of it.
fn view(bytes: &[u8]) -> Option<Bytes> {
    LENT.with(|lent| {
        let lent = lent.borrow();
        let source = lent.as_ref()?;
        // Addresses compared as integers: no pointer is made or read.
        let start = (bytes.as_ptr() as usize).checked_sub(source.as_ptr() as usize)?;
        let end = start.checked_add(bytes.len())?;
        let large = bytes.len().checked_mul(2)? >= source.len();
        (end <= source.len() && large && !bytes.is_empty()).then(|| source.slice(start..end))
    })
}

/// Binary data as MessagePack `bin`, held as [`Bytes`]: cheap to clone, and
/// sent and received without a copy.
///
/// Use it for a method's large binary arguments and results (files, images,
/// encoded documents). A `Vec<u8>` argument travels the same way on the wire
/// (`bin`), so the two are interchangeable between peers; a `Blob` only saves
/// copies: the receiving side's out of its message (see the module's docs
/// for when it is a view), and the sending side's into the encoded value,
/// for a blob of 16 KiB or more (it is sealed from its own buffer).
///
/// ```
/// use sockets::Blob;
///
/// let blob = Blob::from(vec![1, 2, 3]);
/// assert_eq!(&blob[..], [1, 2, 3]);
/// let bytes: sockets::bytes::Bytes = blob.clone().into_bytes();
/// assert_eq!(bytes, blob.as_bytes());
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Blob(Bytes);

impl Blob {
    /// An empty blob.
    pub const fn new() -> Self {
        Self(Bytes::new())
    }

    /// A blob of `bytes`, copied.
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        Self(Bytes::copy_from_slice(bytes))
    }

    /// The bytes, shared.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The bytes, shared, without a copy.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for Blob {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Bytes> for Blob {
    fn from(bytes: Bytes) -> Self {
        Self(bytes)
    }
}

impl From<Vec<u8>> for Blob {
    fn from(bytes: Vec<u8>) -> Self {
        Self(Bytes::from(bytes))
    }
}

impl From<&'static [u8]> for Blob {
    fn from(bytes: &'static [u8]) -> Self {
        Self(Bytes::from_static(bytes))
    }
}

impl From<Blob> for Bytes {
    fn from(blob: Blob) -> Self {
        blob.0
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Blob").field(&self.0).finish()
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.len() < SPLICE_MIN || SPLICING.get() == 0 {
            return serializer.serialize_bytes(&self.0);
        }
        self.offered(serializer)
    }
}

impl Blob {
    /// Serializes the blob while offering its buffer to the encoding's sink:
    /// the offer is withdrawn after, taken or not, even if serializing panics.
    #[cold]
    fn offered<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Withdraw(Option<Bytes>);
        impl Drop for Withdraw {
            fn drop(&mut self) {
                let previous = self.0.take();
                OFFERED.with(|offered| *offered.borrow_mut() = previous);
            }
        }
        let previous = OFFERED.with(|offered| offered.replace(Some(self.0.clone())));
        let _withdraw = Withdraw(previous);
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_byte_buf(BlobVisitor)
    }
}

struct BlobVisitor;

impl<'de> Visitor<'de> for BlobVisitor {
    type Value = Blob;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("binary data")
    }

    fn visit_borrowed_bytes<E: de::Error>(self, bytes: &'de [u8]) -> Result<Blob, E> {
        Ok(Blob(
            view(bytes).unwrap_or_else(|| Bytes::copy_from_slice(bytes)),
        ))
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Blob, E> {
        Ok(Blob::copy_from_slice(bytes))
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Blob, E> {
        Ok(Blob::from(bytes))
    }

    // As `serde_bytes::ByteBuf`: a string's UTF-8, and a sequence of bytes
    // (how text formats such as JSON write binary data).
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Blob, E> {
        Ok(Blob::copy_from_slice(text.as_bytes()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Blob, E> {
        Ok(Blob::from(text.into_bytes()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
        // Bounded by what the format holds: no more than a few bytes ahead.
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        Ok(Blob::from(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec;

    /// Where `blob`'s bytes start inside `source`, if they are a view of it.
    fn offset_in(blob: &Blob, source: &Bytes) -> Option<usize> {
        let start = (blob.as_ptr() as usize).checked_sub(source.as_ptr() as usize)?;
        (start + blob.len() <= source.len()).then_some(start)
    }

    fn encoded(value: &impl Serialize) -> Bytes {
        Bytes::from(codec::to_vec(value).unwrap())
    }

    #[test]
    fn a_lent_blob_is_a_view_of_the_buffer_and_travels_as_bin() {
        let payload = vec![0x5a; 5000];
        let source = encoded(&(Blob::from(payload.clone()), 7u8));
        // bin 16: 0xc5, two length bytes; the array header before it.
        assert_eq!(source[1..4], [0xc5, 0x13, 0x88]);
        let (blob, seven): (Blob, u8) = lend(&source, |b| codec::decode_value(b)).unwrap();
        assert_eq!((&blob[..], seven), (&payload[..], 7));
        assert_eq!(offset_in(&blob, &source), Some(4), "no copy");
        // The same bytes as a `ByteBuf` and back: the wire form is `bin`.
        let as_buf: (serde_bytes::ByteBuf, u8) = codec::decode_value(&source).unwrap();
        assert_eq!(encoded(&as_buf), source);
    }

    #[test]
    fn a_blob_is_copied_when_nothing_is_lent_or_it_is_small_beside_the_buffer() {
        let source = encoded(&Blob::from(vec![1; 300]));
        let alone: Blob = codec::decode_value(&source).unwrap();
        assert_eq!(offset_in(&alone, &source), None, "nothing lent: a copy");
        assert_eq!(&alone[..], [1; 300]);

        // 300 bytes beside 1,000 of others: less than half the buffer.
        let source = encoded(&(Blob::from(vec![1; 300]), vec![2u16; 1000]));
        let (small, _): (Blob, Vec<u16>) = lend(&source, |b| codec::decode_value(b)).unwrap();
        assert_eq!(
            offset_in(&small, &source),
            None,
            "a small blob does not pin the buffer"
        );
        assert_eq!(&small[..], [1; 300]);

        // Nothing stays lent after the decode.
        let after: Blob = codec::decode_value(&encoded(&Blob::from(vec![3; 64]))).unwrap();
        assert_eq!(&after[..], [3; 64]);
        assert!(LENT.with(|lent| lent.borrow().is_none()));
    }

    #[test]
    fn a_nested_lend_restores_the_outer_one_even_after_a_panic() {
        let outer = encoded(&Blob::from(vec![4; 100]));
        let inner = encoded(&Blob::from(vec![5; 100]));
        let blob: Blob = lend(&outer, |b| {
            let panicked = std::panic::catch_unwind(|| {
                lend(&inner, |_| panic!("a decode that panics"));
            });
            assert!(panicked.is_err());
            codec::decode_value(b).unwrap()
        });
        assert_eq!(offset_in(&blob, &outer), Some(2));
        assert!(LENT.with(|lent| lent.borrow().is_none()));
    }

    #[test]
    fn other_forms_of_binary_data_decode_too() {
        let from_str: Blob = codec::decode_value(&encoded(&"text")).unwrap();
        assert_eq!(&from_str[..], b"text");
        let from_array: Blob = codec::decode_value(&encoded(&[1u8, 2, 3])).unwrap();
        assert_eq!(&from_array[..], [1, 2, 3]);
        assert!(codec::decode_value::<Blob>(&encoded(&-1i8)).is_err());
        assert!(codec::decode_value::<Blob>(&encoded(&[300u16])).is_err());
    }
}
