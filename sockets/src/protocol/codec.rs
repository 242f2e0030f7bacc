//! MessagePack encoding and decoding: the only place that names `rmp`/`rmp-serde`.
//!
//! Application values (arguments, return values, credentials, metadata) go
//! through [`encode_value`] / [`decode_value`]: structs become maps with named
//! fields, enums are externally tagged, byte buffers marked `serde_bytes` become
//! MessagePack `bin`. RPC envelopes go through [`encode_message`] /
//! [`decode_message`], which write and read their fixed array layout by hand so
//! that the layout is exactly the one docs/PROTOCOL.md states.
//!
//! Decoding never allocates more than the input's length: strings and byte
//! buffers are borrowed from the input before they are copied.

use std::ops::Range;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::encoded_value::EncodedValue;
use super::message::{Call, ErrorCode, Half, Message, Notify, Outcome, RemoteError, Reply};

/// The most deeply nested value a decoder accepts.
pub const MAX_DEPTH: usize = 128;

/// Why a value or an envelope did not encode or decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A value could not be serialized.
    #[error("cannot encode value: {0}")]
    Encode(String),
    /// The bytes are not a valid MessagePack encoding of the expected type.
    #[error("cannot decode value: {0}")]
    Decode(String),
    /// The bytes hold more than the one value expected.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// The envelope's layout is not one docs/PROTOCOL.md defines.
    #[error("malformed envelope: {0}")]
    Envelope(&'static str),
}

/// Encodes `value` as one MessagePack value appended to `out`.
///
/// # Errors
/// [`CodecError::Encode`] when `value`'s `Serialize` implementation fails
/// (for example a map with non-string keys that the format cannot hold).
pub fn encode_value<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    encode_into(value, out)
}

/// Encodes `value` as [`encode_value`] does, into any sink.
pub(crate) fn encode_into<T: Serialize + ?Sized, W: std::io::Write>(
    value: &T,
    out: W,
) -> Result<(), CodecError> {
    let mut serializer = rmp_serde::Serializer::new(out).with_struct_map();
    value
        .serialize(&mut serializer)
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Values up to this size are encoded into a per-thread scratch buffer and
/// copied out at their exact size; larger ones keep the buffer they grew in.
const EXACT_UP_TO: usize = 4096;

std::thread_local! {
    /// Where [`to_vec`] encodes on this thread.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Encodes `value` as one MessagePack value into a new buffer.
///
/// A value of at most 4 KiB comes back in a buffer of exactly its size,
/// allocated once: a `Vec` whose length is its capacity becomes a `Bytes`
/// (the envelope's payload) without another allocation, where a grown one
/// needs a shared header. Larger values keep the buffer they were encoded
/// in, so nothing big is copied.
///
/// # Errors
/// As [`encode_value`].
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    encode_scratch(value, take_encoded)
}

/// The value encoded in `scratch` in a buffer of its own: copied out at its
/// exact size when at most 4 KiB, else the buffer itself (`scratch` is left
/// empty).
pub(crate) fn take_encoded(scratch: &mut Vec<u8>) -> Vec<u8> {
    if scratch.len() <= EXACT_UP_TO {
        scratch.as_slice().to_vec()
    } else {
        std::mem::take(scratch)
    }
}

/// Encodes `value` into this thread's scratch buffer and hands the encoding
/// to `take`, which copies out what it keeps (or takes the buffer).
///
/// # Errors
/// As [`encode_value`].
pub(crate) fn encode_scratch<T: Serialize + ?Sized, R>(
    value: &T,
    take: impl FnOnce(&mut Vec<u8>) -> R,
) -> Result<R, CodecError> {
    encode_scratch_with(|out| encode_value(value, out), |encoded, ()| take(encoded))
}

/// As [`encode_scratch`], with the encoding done by `encode`, whose result
/// is handed to `take` beside the encoded bytes.
pub(crate) fn encode_scratch_with<E, R>(
    encode: impl FnOnce(&mut Vec<u8>) -> Result<E, CodecError>,
    take: impl FnOnce(&mut Vec<u8>, E) -> R,
) -> Result<R, CodecError> {
    SCRATCH.with(|scratch| {
        // A `Serialize` implementation that encodes while being encoded
        // finds the scratch buffer taken: it gets a buffer of its own.
        let Ok(mut scratch) = scratch.try_borrow_mut() else {
            let mut out = Vec::with_capacity(64);
            let encoded = encode(&mut out)?;
            return Ok(take(&mut out, encoded));
        };
        scratch.clear();
        let encoded = match encode(&mut scratch) {
            Ok(encoded) => encoded,
            Err(error) => {
                scratch.clear();
                return Err(error);
            }
        };
        let taken = take(&mut scratch, encoded);
        scratch.clear();
        Ok(taken)
    })
}

/// Decodes exactly one MessagePack value from `bytes`.
///
/// # Errors
/// [`CodecError::Decode`] when the bytes are not a valid encoding of `T`
/// (including nesting deeper than [`MAX_DEPTH`]), and
/// [`CodecError::TrailingBytes`] when anything follows the value.
pub fn decode_value<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, CodecError> {
    let len = value_len(bytes)
        .ok_or_else(|| CodecError::Decode("not a complete MessagePack value".into()))?;
    if len != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - len));
    }
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(bytes);
    deserializer.set_max_depth(MAX_DEPTH);
    T::deserialize(&mut deserializer).map_err(|e| CodecError::Decode(e.to_string()))
}

/// The two elements of a MessagePack array of exactly two values, each as
/// its own encoding (in any valid array encoding).
///
/// # Errors
/// [`CodecError::Decode`] when `bytes` is not one array of two complete values.
pub fn split_pair(bytes: &[u8]) -> Result<(&[u8], &[u8]), CodecError> {
    let not_a_pair = || CodecError::Decode("not an array of two values".into());
    let body = match bytes {
        [0x92, body @ ..] => body,
        [0xdc, 0x00, 0x02, body @ ..] => body,
        [0xdd, 0x00, 0x00, 0x00, 0x02, body @ ..] => body,
        _ => return Err(not_a_pair()),
    };
    let first = value_len(body).ok_or_else(not_a_pair)?;
    let (first, second) = body.split_at(first);
    if value_len(second) != Some(second.len()) {
        return Err(not_a_pair());
    }
    Ok((first, second))
}

/// The length of the first complete MessagePack value in `bytes`, or `None`
/// if `bytes` does not start with one. Iterative: nesting costs no stack.
fn value_len(bytes: &[u8]) -> Option<usize> {
    fn be(bytes: &[u8], at: usize, width: usize) -> Option<u64> {
        let field = bytes.get(at..at.checked_add(width)?)?;
        Some(field.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }
    let mut pos = 0usize;
    // Values still to be read; each takes at least one byte, so a count larger
    // than the input left is rejected before it can cost anything.
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        let marker = *bytes.get(pos)?;
        // (header bytes after the marker, payload bytes, child values)
        let (header, payload, children): (usize, u64, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0, 0),
            0x80..=0x8f => (0, 0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, 0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (0, u64::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (1, be(bytes, pos + 1, 1)?, 0),
            0xc5 | 0xda => (2, be(bytes, pos + 1, 2)?, 0),
            0xc6 | 0xdb => (4, be(bytes, pos + 1, 4)?, 0),
            0xc7 => (2, be(bytes, pos + 1, 1)?, 0),
            0xc8 => (3, be(bytes, pos + 1, 2)?, 0),
            0xc9 => (5, be(bytes, pos + 1, 4)?, 0),
            0xca => (0, 4, 0),
            0xcb => (0, 8, 0),
            0xcc | 0xd0 => (0, 1, 0),
            0xcd | 0xd1 => (0, 2, 0),
            0xce | 0xd2 => (0, 4, 0),
            0xcf | 0xd3 => (0, 8, 0),
            0xd4 => (1, 1, 0),
            0xd5 => (1, 2, 0),
            0xd6 => (1, 4, 0),
            0xd7 => (1, 8, 0),
            0xd8 => (1, 16, 0),
            0xdc => (2, 0, be(bytes, pos + 1, 2)?),
            0xdd => (4, 0, be(bytes, pos + 1, 4)?),
            0xde => (2, 0, 2 * be(bytes, pos + 1, 2)?),
            0xdf => (4, 0, 2 * be(bytes, pos + 1, 4)?),
            0xc1 => return None,
        };
        pos = pos
            .checked_add(1 + header)?
            .checked_add(usize::try_from(payload).ok()?)?;
        if pos > bytes.len() {
            return None;
        }
        pending = pending.checked_add(children)?;
        if pending > (bytes.len() - pos) as u64 {
            return None;
        }
    }
    Some(pos)
}

const TAG_CALL: u64 = 0;
const TAG_REPLY: u64 = 1;
const TAG_NOTIFY: u64 = 2;
const TAG_CANCEL: u64 = 3;
const TAG_PING: u64 = 4;
const TAG_PONG: u64 = 5;
const TAG_CREDIT: u64 = 6;
const TAG_ITEM: u64 = 7;
const TAG_END: u64 = 8;
const TAG_STOP: u64 = 9;

/// Appends the envelope's encoding to `out`.
///
/// The payload of a call, notification or successful reply travels as a
/// MessagePack `bin` whose content must already be one encoded value (from
/// [`encode_value`]); it is copied as it is.
pub fn encode_message(message: &Message, out: &mut Vec<u8>) {
    if let Some(payload) = encode_envelope_head(message, out) {
        payload.for_each_piece(|piece, _| out.extend_from_slice(piece));
    }
}

/// Appends the envelope's encoding to `out` except its payload, which is
/// returned: the envelope is `out`'s new bytes followed by the payload's. A
/// payload (the last field of a call, notification or successful reply) can
/// then reach its destination without being copied here first, for example
/// through [`Sealer::seal_parts`](crate::crypto::Sealer::seal_parts).
/// `None`: the envelope has no payload and was written whole.
pub fn encode_message_head<'m>(message: &'m Message, out: &mut Vec<u8>) -> Option<&'m [u8]> {
    encode_envelope_head(message, out).map(|payload| payload.as_slice())
}

/// The payload an envelope's head leaves out ([`encode_envelope_head`]).
#[derive(Clone, Copy)]
pub(crate) enum Payload<'m> {
    /// A call's or notification's arguments, a reply's value.
    Value(&'m EncodedValue),
    /// A stream's item.
    Item(&'m Bytes),
}

impl<'m> Payload<'m> {
    /// The payload's bytes in one slice (a value encoded in pieces is
    /// joined once, see [`EncodedValue`]).
    pub(crate) fn as_slice(self) -> &'m [u8] {
        match self {
            Payload::Value(value) => value.as_slice(),
            Payload::Item(item) => item,
        }
    }

    /// Calls `piece` on the payload's bytes, in order, in the pieces they
    /// are held in; with the buffer each piece lies in, when shared.
    pub(crate) fn for_each_piece(&self, piece: impl FnMut(&[u8], Option<&Bytes>)) {
        match self {
            Payload::Value(value) => value.for_each_piece(piece),
            Payload::Item(item) => {
                let mut piece = piece;
                piece(item, Some(item));
            }
        }
    }
}

/// As [`encode_message_head`], with the payload left as it is held: a
/// value whose large blobs were kept apart stays in pieces.
pub(crate) fn encode_envelope_head<'m>(
    message: &'m Message,
    out: &mut Vec<u8>,
) -> Option<Payload<'m>> {
    use rmp::encode as enc;
    // Writing into a Vec cannot fail, so the writers' results carry no information.
    match message {
        Message::Call(Call {
            id,
            method,
            timeout_ms,
            args,
        }) => {
            let _ = enc::write_array_len(out, 5);
            let _ = enc::write_uint(out, TAG_CALL);
            let _ = enc::write_uint(out, *id);
            let _ = enc::write_str(out, method);
            match timeout_ms {
                Some(ms) => {
                    let _ = enc::write_uint(out, u64::from(*ms));
                }
                None => {
                    let _ = enc::write_nil(out);
                }
            }
            Some(bin_head(out, Payload::Value(args)))
        }
        Message::Reply(Reply { id, outcome }) => {
            let _ = enc::write_array_len(out, 4);
            let _ = enc::write_uint(out, TAG_REPLY);
            let _ = enc::write_uint(out, *id);
            match outcome {
                Outcome::Ok(value) => {
                    let _ = enc::write_uint(out, 0);
                    Some(bin_head(out, Payload::Value(value)))
                }
                Outcome::Err(RemoteError { code, message }) => {
                    let _ = enc::write_uint(out, u64::from(code.to_u16()));
                    let _ = enc::write_str(out, message);
                    None
                }
            }
        }
        Message::Notify(Notify { method, args }) => {
            let _ = enc::write_array_len(out, 3);
            let _ = enc::write_uint(out, TAG_NOTIFY);
            let _ = enc::write_str(out, method);
            Some(bin_head(out, Payload::Value(args)))
        }
        Message::Cancel { id } => {
            write_tagged_u64(out, TAG_CANCEL, *id);
            None
        }
        Message::Ping { nonce } => {
            write_tagged_u64(out, TAG_PING, *nonce);
            None
        }
        Message::Pong { nonce } => {
            write_tagged_u64(out, TAG_PONG, *nonce);
            None
        }
        Message::Credit {
            id,
            half,
            items,
            bytes,
        } => {
            stream_head(out, 5, TAG_CREDIT, *id, *half);
            let _ = enc::write_uint(out, u64::from(*items));
            let _ = enc::write_uint(out, u64::from(*bytes));
            None
        }
        Message::Item { id, half, item } => {
            stream_head(out, 4, TAG_ITEM, *id, *half);
            Some(bin_head(out, Payload::Item(item)))
        }
        Message::End { id, half, error } => {
            stream_head(out, 5, TAG_END, *id, *half);
            match error {
                None => {
                    let _ = enc::write_uint(out, 0);
                    let _ = enc::write_str(out, "");
                }
                Some(RemoteError { code, message }) => {
                    let _ = enc::write_uint(out, u64::from(code.to_u16()));
                    let _ = enc::write_str(out, message);
                }
            }
            None
        }
        Message::Stop { id, half } => {
            stream_head(out, 3, TAG_STOP, *id, *half);
            None
        }
    }
}

/// Writes the fields every stream envelope starts with: `[tag, id, half, …`.
/// Appends the head of an ITEM envelope for half `half` of stream `id`
/// whose item is `len` bytes: the envelope is the head followed by the
/// item's bytes, which the caller appends (or seals after it) as they are.
pub fn encode_item_head(id: u64, half: Half, len: usize, out: &mut Vec<u8>) {
    stream_head(out, 4, TAG_ITEM, id, half);
    // As in `bin_head`: the message size limits refuse far smaller items.
    let _ = rmp::encode::write_bin_len(out, u32::try_from(len).unwrap_or(u32::MAX));
}

fn stream_head(out: &mut Vec<u8>, len: u32, tag: u64, id: u64, half: Half) {
    let _ = rmp::encode::write_array_len(out, len);
    let _ = rmp::encode::write_uint(out, tag);
    let _ = rmp::encode::write_uint(out, id);
    let _ = rmp::encode::write_uint(out, u64::from(half.to_u8()));
}

/// Writes the `bin` header of `payload`; returns the payload to follow it.
fn bin_head<'m>(out: &mut Vec<u8>, payload: Payload<'m>) -> Payload<'m> {
    let len = match payload {
        Payload::Value(value) => value.len(),
        Payload::Item(item) => item.len(),
    };
    // A bin header cannot describe 4 GiB or more; the message size limits
    // (at most a few MiB) refuse such a payload long before it gets here.
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    let _ = rmp::encode::write_bin_len(out, len);
    payload
}

fn write_tagged_u64(out: &mut Vec<u8>, tag: u64, value: u64) {
    let _ = rmp::encode::write_array_len(out, 2);
    let _ = rmp::encode::write_uint(out, tag);
    let _ = rmp::encode::write_uint(out, value);
}

/// Decodes every envelope of a DATA frame's plaintext: one or more, back to back.
///
/// Payloads are slices of `bytes`, not copies.
///
/// # Errors
/// [`CodecError::Envelope`] when any envelope's layout is not one of the
/// defined ones, or when `bytes` is empty. Payload values are not decoded
/// here; that is the handler's decoder's job.
pub fn decode_messages(bytes: &Bytes) -> Result<Vec<Message>, CodecError> {
    messages(bytes.clone()).collect()
}

/// The envelopes of a DATA frame's plaintext, decoded one at a time.
///
/// Unlike [`decode_messages`] this holds one envelope at a time, so a large
/// plaintext of tiny envelopes costs no more memory than the plaintext itself.
/// The iterator yields each envelope in order and stops after the first
/// error; an empty plaintext yields one error.
pub fn messages(bytes: Bytes) -> Messages {
    Messages {
        bytes,
        pos: 0,
        done: false,
    }
}

/// The iterator [`messages`] returns.
#[derive(Debug)]
pub struct Messages {
    bytes: Bytes,
    pos: usize,
    done: bool,
}

impl Iterator for Messages {
    type Item = Result<Message, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut rd = Reader {
            buf: &self.bytes,
            pos: self.pos,
        };
        let message = rd.message(&self.bytes);
        self.pos = rd.pos;
        self.done = message.is_err() || self.pos == self.bytes.len();
        Some(message)
    }
}

/// A CALL read by [`Messages::next_call`]: its fields, the method name as
/// its place in [`Messages::plaintext`] (checked to be UTF-8), not a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallFields {
    /// As [`Call::id`].
    pub id: u64,
    /// Where [`Call::method`] is in the plaintext.
    pub method: Range<usize>,
    /// As [`Call::timeout_ms`].
    pub timeout_ms: Option<u32>,
    /// As [`Call::args`]: copied inline when small, else a slice of the plaintext.
    pub args: EncodedValue,
}

impl Messages {
    /// The next envelope if it is a CALL, without copying its method name
    /// (a receiver looks the name up, it has no use for a `String` of it).
    /// `None`, with nothing consumed, when the next envelope is anything
    /// else, or malformed (then `next` reports the error), or when none is left.
    pub fn next_call(&mut self) -> Option<CallFields> {
        self.next_if((TAG_CALL, 5), |rd, whole| rd.call(whole).ok())
    }

    /// The next envelope if its tag and length are `shape` and `read` takes
    /// the rest of it (else nothing is consumed). `read` is given the
    /// plaintext too, to slice payloads from.
    fn next_if<T>(
        &mut self,
        shape: (u64, u32),
        read: impl FnOnce(&mut Reader<'_>, &Bytes) -> Option<T>,
    ) -> Option<T> {
        if self.done {
            return None;
        }
        let mut rd = Reader {
            buf: &self.bytes,
            pos: self.pos,
        };
        let (len, tag) = (rd.array_len().ok()?, rd.uint().ok()?);
        if (tag, len) != shape {
            return None;
        }
        let value = read(&mut rd, &self.bytes)?;
        self.pos = rd.pos;
        self.done = self.pos == self.bytes.len();
        Some(value)
    }

    /// The plaintext the envelopes are read from: the ranges that
    /// [`Messages::next_item`] and [`Messages::next_call`] return index it.
    pub fn plaintext(&self) -> &Bytes {
        &self.bytes
    }

    /// The next envelope if it is an ITEM of stream `id`'s half `half` (of
    /// any stream with `None`): its stream, half and the range of its
    /// payload in [`Messages::plaintext`], without making a [`Message`] or a
    /// `Bytes` of it. `None`, with nothing consumed, when the next envelope
    /// is anything else, or an item of another stream, or malformed (then
    /// `next` reports the error), or when none is left.
    pub fn next_item(&mut self, of: Option<(u64, Half)>) -> Option<(u64, Half, Range<usize>)> {
        self.next_if((TAG_ITEM, 4), |rd, _| {
            let (id, half) = (rd.uint().ok()?, rd.half().ok()?);
            if of.is_some_and(|stream| stream != (id, half)) {
                return None;
            }
            Some((id, half, rd.bin_range().ok()?))
        })
    }
}

/// Decodes a plaintext that must hold exactly one envelope.
///
/// # Errors
/// As [`decode_messages`], and [`CodecError::Envelope`] when more than one envelope follows.
pub fn decode_message(bytes: &Bytes) -> Result<Message, CodecError> {
    let mut rd = Reader { buf: bytes, pos: 0 };
    let message = rd.message(bytes)?;
    rd.end()?;
    Ok(message)
}

/// A cursor over envelopes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn message(&mut self, whole: &Bytes) -> Result<Message, CodecError> {
        let len = self.array_len()?;
        let tag = self.uint()?;
        let message = match (tag, len) {
            (TAG_CALL, 5) => {
                let call = self.call(whole)?;
                let method = self.buf.get(call.method).unwrap_or_default();
                Message::Call(Call {
                    id: call.id,
                    // Checked to be UTF-8 by `call`.
                    method: String::from_utf8_lossy(method).into_owned().into(),
                    timeout_ms: call.timeout_ms,
                    args: call.args,
                })
            }
            (TAG_REPLY, 4) => {
                let id = self.uint()?;
                let code = u16::try_from(self.uint()?)
                    .map_err(|_| CodecError::Envelope("error code out of range"))?;
                let outcome = match ErrorCode::from_u16(code) {
                    None => Outcome::Ok(self.value(whole)?),
                    Some(code) => Outcome::Err(RemoteError {
                        code,
                        message: self.string()?,
                    }),
                };
                Message::Reply(Reply { id, outcome })
            }
            (TAG_NOTIFY, 3) => {
                let method = self.string()?;
                let args = self.value(whole)?;
                Message::Notify(Notify {
                    method: method.into(),
                    args,
                })
            }
            (TAG_CANCEL, 2) => Message::Cancel { id: self.uint()? },
            (TAG_PING, 2) => Message::Ping {
                nonce: self.uint()?,
            },
            (TAG_PONG, 2) => Message::Pong {
                nonce: self.uint()?,
            },
            (TAG_CREDIT, 5) => Message::Credit {
                id: self.uint()?,
                half: self.half()?,
                items: self.u32("credit out of range")?,
                bytes: self.u32("credit out of range")?,
            },
            (TAG_ITEM, 4) => Message::Item {
                id: self.uint()?,
                half: self.half()?,
                item: self.bin(whole)?,
            },
            (TAG_END, 5) => {
                let id = self.uint()?;
                let half = self.half()?;
                let code = u16::try_from(self.uint()?)
                    .map_err(|_| CodecError::Envelope("error code out of range"))?;
                let message = self.string()?;
                let error = ErrorCode::from_u16(code).map(|code| RemoteError { code, message });
                Message::End { id, half, error }
            }
            (TAG_STOP, 3) => Message::Stop {
                id: self.uint()?,
                half: self.half()?,
            },
            (TAG_CALL..=TAG_STOP, _) => {
                return Err(CodecError::Envelope(
                    "wrong number of fields for the envelope type",
                ));
            }
            _ => return Err(CodecError::Envelope("unknown envelope type")),
        };
        Ok(message)
    }

    fn remaining(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Runs one of rmp's readers on the remaining input and advances past what it read.
    fn read<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut &[u8]) -> Option<T>,
    ) -> Result<T, CodecError> {
        let mut rest = self.buf.get(self.pos..).unwrap_or_default();
        let before = rest.len();
        let value = f(&mut rest).ok_or(CodecError::Envelope(what))?;
        self.pos += before - rest.len();
        Ok(value)
    }

    fn array_len(&mut self) -> Result<u32, CodecError> {
        self.read("expected an array", |r| rmp::decode::read_array_len(r).ok())
    }

    fn uint(&mut self) -> Result<u64, CodecError> {
        // The encodings every encoder uses for an unsigned integer, read
        // here; any other (a signed one of a non-negative value, say) by rmp.
        let rest = self.remaining();
        let len = match rest.first() {
            Some(&fixint @ 0x00..=0x7f) => {
                self.pos += 1;
                return Ok(u64::from(fixint));
            }
            Some(0xcc) => 1,
            Some(0xcd) => 2,
            Some(0xce) => 4,
            Some(0xcf) => 8,
            _ => return self.any_uint(),
        };
        let Some(bytes) = rest.get(1..=len) else {
            return Err(CodecError::Envelope("expected an unsigned integer"));
        };
        let value = bytes
            .iter()
            .fold(0, |value, byte| (value << 8) | u64::from(*byte));
        self.pos += 1 + len;
        Ok(value)
    }

    #[cold]
    fn any_uint(&mut self) -> Result<u64, CodecError> {
        self.read("expected an unsigned integer", |r| {
            rmp::decode::read_int(r).ok()
        })
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        u32::try_from(self.uint()?).map_err(|_| CodecError::Envelope(what))
    }

    fn half(&mut self) -> Result<Half, CodecError> {
        Half::from_u64(self.uint()?).ok_or(CodecError::Envelope("unknown stream half"))
    }

    fn nil(&mut self) -> Result<bool, CodecError> {
        match self.remaining().first() {
            Some(0xc0) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(CodecError::Envelope("envelope ends early")),
        }
    }

    /// Takes `len` bytes after the cursor, failing if fewer remain.
    fn take(&mut self, len: usize, what: &'static str) -> Result<Range<usize>, CodecError> {
        let start = self.pos;
        let end = start
            .checked_add(len)
            .filter(|end| *end <= self.buf.len())
            .ok_or(CodecError::Envelope(what))?;
        self.pos = end;
        Ok(start..end)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        let range = self.str_range()?;
        Ok(String::from_utf8_lossy(&self.buf[range]).into_owned())
    }

    /// A string's place in the buffer, checked to be UTF-8.
    fn str_range(&mut self) -> Result<Range<usize>, CodecError> {
        let len = self.read("expected a string", |r| rmp::decode::read_str_len(r).ok())?;
        let range = self.take(len as usize, "string runs past the end")?;
        std::str::from_utf8(&self.buf[range.clone()])
            .map_err(|_| CodecError::Envelope("string is not UTF-8"))?;
        Ok(range)
    }

    /// A CALL's fields after its tag.
    fn call(&mut self, whole: &Bytes) -> Result<CallFields, CodecError> {
        let id = self.uint()?;
        let method = self.str_range()?;
        let timeout_ms = if self.nil()? {
            None
        } else {
            Some(
                u32::try_from(self.uint()?)
                    .map_err(|_| CodecError::Envelope("timeout out of range"))?,
            )
        };
        let args = self.value(whole)?;
        Ok(CallFields {
            id,
            method,
            timeout_ms,
            args,
        })
    }

    /// A `bin` payload as a value an envelope carries: see
    /// [`EncodedValue::received`].
    fn value(&mut self, whole: &Bytes) -> Result<EncodedValue, CodecError> {
        Ok(EncodedValue::received(whole, self.bin_range()?))
    }

    fn bin(&mut self, whole: &Bytes) -> Result<Bytes, CodecError> {
        Ok(whole.slice(self.bin_range()?))
    }

    /// A `bin` payload's place in the buffer.
    fn bin_range(&mut self) -> Result<Range<usize>, CodecError> {
        let len = self.read("expected a bin payload", |r| {
            rmp::decode::read_bin_len(r).ok()
        })?;
        self.take(len as usize, "payload runs past the end")
    }

    fn end(&self) -> Result<(), CodecError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(CodecError::Envelope("trailing bytes after the envelope"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_vec_gives_small_values_a_buffer_of_their_exact_size() {
        let small = to_vec(&(1i64, "two", [3u8; 32])).unwrap();
        assert_eq!(small.len(), small.capacity());
        let large = to_vec(&serde_bytes::ByteBuf::from(vec![9u8; 100_000])).unwrap();
        assert_eq!(
            decode_value::<serde_bytes::ByteBuf>(&large).unwrap().len(),
            100_000
        );
        // The scratch buffer was handed over with the large value, not kept.
        let again = to_vec(&7u8).unwrap();
        assert_eq!(again, [7]);
        assert_eq!(again.capacity(), 1);
    }

    /// A value whose encoding encodes another value on the same thread.
    struct Nested;

    impl Serialize for Nested {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let inner = to_vec(&"inner").map_err(serde::ser::Error::custom)?;
            serializer.serialize_bytes(&inner)
        }
    }

    #[test]
    fn to_vec_may_be_called_while_encoding() {
        let outer = to_vec(&Nested).unwrap();
        let inner: serde_bytes::ByteBuf = decode_value(&outer).unwrap();
        assert_eq!(decode_value::<String>(&inner).unwrap(), "inner");
    }

    fn round_trip(message: Message) -> Vec<u8> {
        let mut out = Vec::new();
        encode_message(&message, &mut out);
        let decoded = decode_message(&Bytes::from(out.clone())).expect("decodes");
        assert_eq!(decoded, message);
        // The head and the payload it leaves out make the same bytes.
        let mut head = vec![0xee];
        let payload = encode_message_head(&message, &mut head);
        assert_eq!(
            payload,
            message.payload(),
            "the head leaves out the payload"
        );
        let mut joined = head[1..].to_vec();
        joined.extend_from_slice(payload.unwrap_or_default());
        assert_eq!(joined, out);
        if let Message::Item { id, half, item } = &message {
            // Written from the item's length alone, the head is the same.
            let mut head = Vec::new();
            encode_item_head(*id, *half, item.len(), &mut head);
            head.extend_from_slice(item);
            assert_eq!(head, out, "encode_item_head");
        }
        out
    }

    #[test]
    fn large_payloads_use_bin32_and_decode_as_slices_of_the_input() {
        for len in [255usize, 256, 65_535, 65_536, 1 << 20] {
            let args = Bytes::from(vec![0x5a; len]);
            let wire = Bytes::from(round_trip(Message::Call(Call {
                id: 1,
                method: "echo.echo".into(),
                timeout_ms: None,
                args: args.clone().into(),
            })));
            let Message::Call(call) = decode_message(&wire).unwrap() else {
                panic!("not a call");
            };
            assert_eq!(call.args[..], args[..]);
            let start = call.args.as_ptr() as usize - wire.as_ptr() as usize;
            assert_eq!(
                start + len,
                wire.len(),
                "the payload is the tail of the input"
            );
        }
    }

    #[test]
    fn a_value_held_in_pieces_makes_the_same_envelope_as_its_bytes() {
        let blob = crate::protocol::Blob::from(vec![0x6b; 70_000]);
        let args = EncodedValue::encode(&(&blob, 5u8)).unwrap();
        let mut pieces = 0;
        args.for_each_piece(|_, _| pieces += 1);
        assert_eq!(pieces, 3, "held in pieces");
        let whole = EncodedValue::from(to_vec(&(&blob, 5u8)).unwrap());
        let call = |args| {
            Message::Call(Call {
                id: 4,
                method: "files.put".into(),
                timeout_ms: Some(1000),
                args,
            })
        };
        let wire = round_trip(call(args.clone()));
        assert_eq!(wire, round_trip(call(whole.clone())));
        let reply = |value| {
            Message::Reply(Reply {
                id: 4,
                outcome: Outcome::Ok(value),
            })
        };
        assert_eq!(round_trip(reply(args)), round_trip(reply(whole)));
    }

    #[test]
    fn call_layout_is_a_five_element_array_with_bin_args() {
        let args = to_vec(&(1i64, 2i64)).unwrap();
        let wire = round_trip(Message::Call(Call {
            id: 7,
            method: "calculator.add".into(),
            timeout_ms: Some(5000),
            args: args.into(),
        }));
        let mut expected = vec![0x95, 0x00, 0x07, 0xae];
        expected.extend_from_slice(b"calculator.add");
        expected.extend_from_slice(&[0xcd, 0x13, 0x88, 0xc4, 0x03, 0x92, 0x01, 0x02]);
        assert_eq!(wire, expected);
    }

    #[test]
    fn every_envelope_round_trips() {
        round_trip(Message::Call(Call {
            id: u64::MAX,
            method: String::new().into(),
            timeout_ms: None,
            args: Bytes::from_static(&[0x90]).into(),
        }));
        round_trip(Message::Reply(Reply {
            id: 1,
            outcome: Outcome::Ok(Bytes::from_static(&[0xc0]).into()),
        }));
        round_trip(Message::Reply(Reply {
            id: 2,
            outcome: Outcome::Err(RemoteError {
                code: ErrorCode::UnknownMethod,
                message: "no such method".into(),
            }),
        }));
        round_trip(Message::Reply(Reply {
            id: 2,
            outcome: Outcome::Err(RemoteError {
                code: ErrorCode::Other(999),
                message: String::new(),
            }),
        }));
        round_trip(Message::Notify(Notify {
            method: "chat.say".into(),
            args: Bytes::from_static(&[0x91, 0xa1, b'x']).into(),
        }));
        round_trip(Message::Cancel { id: 3 });
        round_trip(Message::Ping { nonce: 4 });
        round_trip(Message::Pong { nonce: 5 });
        round_trip(Message::Credit {
            id: 6,
            half: Half::Down,
            items: 256,
            bytes: 262_144,
        });
        round_trip(Message::Item {
            id: 6,
            half: Half::Up,
            item: Bytes::from_static(&[0x2a]),
        });
        // Items whose `bin` head takes 1, 2 and 4 bytes of length.
        for len in [0, 255, 256, 65_535, 65_536] {
            round_trip(Message::Item {
                id: 1 << 62,
                half: Half::Down,
                item: Bytes::from(vec![7; len]),
            });
        }
        round_trip(Message::End {
            id: 6,
            half: Half::Down,
            error: None,
        });
        round_trip(Message::End {
            id: 6,
            half: Half::Down,
            error: Some(RemoteError {
                code: ErrorCode::Lagged,
                message: "missed 3".into(),
            }),
        });
        round_trip(Message::Stop {
            id: 6,
            half: Half::Down,
        });
    }

    /// The vectors of docs/PROTOCOL.md §9.7.
    #[test]
    fn stream_envelope_vectors() {
        let vector = |message: Message| hex(&round_trip(message));
        assert_eq!(
            vector(Message::Credit {
                id: 7,
                half: Half::Down,
                items: 256,
                bytes: 262_144
            }),
            "950607" /* [6, 7, */
                .to_owned()
                + "00cd0100ce00040000"
        );
        assert_eq!(
            vector(Message::Item {
                id: 7,
                half: Half::Down,
                item: Bytes::from_static(&[0x2a])
            }),
            "94070700c4012a"
        );
        assert_eq!(
            vector(Message::End {
                id: 7,
                half: Half::Down,
                error: None
            }),
            "9508070000a0"
        );
        assert_eq!(
            vector(Message::End {
                id: 7,
                half: Half::Down,
                error: Some(RemoteError {
                    code: ErrorCode::Lagged,
                    message: "missed 3".into()
                })
            }),
            "9508070009a86d69737365642033"
        );
        assert_eq!(
            vector(Message::Stop {
                id: 7,
                half: Half::Down
            }),
            "93090700"
        );
    }

    /// The half 1 walk-through of docs/PROTOCOL.md §9.7: `files.sum`, id 5.
    #[test]
    fn upload_vectors() {
        let vector = |message: Message| hex(&round_trip(message));
        let no_args = Bytes::from_static(&[0x90]);
        assert_eq!(
            vector(Message::Call(Call {
                id: 5,
                method: "files.sum".into(),
                timeout_ms: Some(10_000),
                args: no_args.into(),
            })),
            "950005a966696c65732e73756dcd2710c40190"
        );
        assert_eq!(
            vector(Message::Credit {
                id: 5,
                half: Half::Up,
                items: 8192,
                bytes: 262_144
            }),
            "950605" /* [6, 5, */
                .to_owned()
                + "01cd2000ce00040000"
        );
        let item = |n: u8| Message::Item {
            id: 5,
            half: Half::Up,
            item: Bytes::copy_from_slice(&[n]),
        };
        assert_eq!(vector(item(0x14)), "94070501c40114");
        assert_eq!(vector(item(0x16)), "94070501c40116");
        assert_eq!(
            vector(Message::End {
                id: 5,
                half: Half::Up,
                error: None
            }),
            "9508050100a0"
        );
        assert_eq!(
            vector(Message::Reply(Reply {
                id: 5,
                outcome: Outcome::Ok(Bytes::from_static(&[0x2a]).into())
            })),
            "94010500c4012a"
        );
    }

    #[test]
    fn a_call_is_read_in_place_with_its_method_name_not_copied() {
        let call = Call {
            id: 5,
            method: "files.sum".into(),
            timeout_ms: Some(10_000),
            args: Bytes::from_static(&[0x91, 0x01]).into(),
        };
        let mut plain = Vec::new();
        for message in [
            Message::Call(call.clone()),
            Message::Ping { nonce: 1 },
            Message::Call(Call {
                timeout_ms: None,
                ..call.clone()
            }),
        ] {
            encode_message(&message, &mut plain);
        }
        let plain = Bytes::from(plain);
        let mut run = messages(plain.clone());
        let first = run.next_call().expect("a call comes first");
        assert_eq!(&plain[first.method.clone()], b"files.sum");
        assert_eq!((first.id, first.timeout_ms), (5, Some(10_000)));
        assert_eq!(first.args[..], call.args[..]);
        assert_eq!(run.next_call(), None, "a PING is next");
        assert_eq!(run.next().unwrap().unwrap(), Message::Ping { nonce: 1 });
        let last = run.next_call().expect("then a call without a deadline");
        assert_eq!(last.timeout_ms, None);
        assert!(run.next_call().is_none() && run.next().is_none(), "the end");

        // A method name that is not UTF-8 is left to `next`, which reports it.
        let mut bad = Vec::new();
        encode_message(&Message::Call(call), &mut bad);
        let at = bad.iter().position(|b| *b == b'f').unwrap();
        bad[at] = 0xff;
        let mut run = messages(Bytes::from(bad));
        assert_eq!(run.next_call(), None);
        assert!(run.next().unwrap().is_err());
    }

    #[test]
    fn runs_of_items_are_read_in_place_and_stop_at_any_other_envelope() {
        let item = |id: u64, payload: &'static [u8]| Message::Item {
            id,
            half: Half::Down,
            item: Bytes::from_static(payload),
        };
        let mut plain = Vec::new();
        for message in [
            item(7, b"a"),
            item(7, b"bc"),
            item(8, b""),
            Message::Ping { nonce: 1 },
            item(7, b"d"),
        ] {
            encode_message(&message, &mut plain);
        }
        let plain = Bytes::from(plain);
        let mut run = messages(plain.clone());
        let payload = |range: Range<usize>| plain[range].to_vec();
        let seven = Some((7, Half::Down));

        let (id, half, first) = run.next_item(None).unwrap();
        assert_eq!((id, half, payload(first)), (7, Half::Down, b"a".to_vec()));
        let (_, _, second) = run.next_item(seven).unwrap();
        assert_eq!(payload(second), b"bc");
        assert_eq!(run.next_item(seven), None, "stream 8 is next");
        let (id, _, empty) = run.next_item(None).unwrap();
        assert_eq!((id, payload(empty)), (8, Vec::new()));
        assert_eq!(run.next_item(None), None, "a PING is next");
        assert_eq!(run.next().unwrap().unwrap(), Message::Ping { nonce: 1 });
        assert!(run.next_item(seven).is_some());
        assert!(
            run.next_item(None).is_none() && run.next().is_none(),
            "the end"
        );

        // A truncated item is left to `next`, which reports it.
        let mut truncated = messages(plain.slice(..plain.len() - 1));
        for _ in 0..3 {
            truncated.next_item(None).unwrap();
        }
        truncated.next().unwrap().unwrap();
        assert_eq!(truncated.next_item(None), None);
        assert!(truncated.next().unwrap().is_err());
        assert!(truncated.next().is_none());
    }

    #[test]
    fn a_frame_may_carry_several_envelopes_back_to_back() {
        let batch = [
            Message::Ping { nonce: 1 },
            Message::Cancel { id: 2 },
            Message::Pong { nonce: 3 },
        ];
        let mut out = Vec::new();
        for message in &batch {
            encode_message(message, &mut out);
        }
        let bytes = Bytes::from(out);
        assert_eq!(decode_messages(&bytes).unwrap(), batch);
        let streamed: Vec<_> = messages(bytes.clone()).map(Result::unwrap).collect();
        assert_eq!(streamed, batch);
        let mut truncated = messages(bytes.slice(..bytes.len() - 1));
        assert_eq!(truncated.next().unwrap().unwrap(), batch[0]);
        assert_eq!(truncated.next().unwrap().unwrap(), batch[1]);
        assert!(matches!(
            truncated.next(),
            Some(Err(CodecError::Envelope(_)))
        ));
        assert!(truncated.next().is_none(), "stops after the first error");
        assert!(matches!(
            decode_message(&bytes),
            Err(CodecError::Envelope(_))
        ));
    }

    #[test]
    fn malformed_envelopes_are_typed_errors() {
        let cases: &[&[u8]] = &[
            &[],
            &[0xc0],
            &[0x92, 0x0a, 0x01],       // unknown tag
            &[0x93, 0x09, 0x01, 0x02], // stop on an unknown half
            &[0x95, 0x06, 0x01, 0x00, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0, 0x01], // credit past u32
            &[0x93, 0x03, 0x01, 0x02], // cancel with three fields
            &[0x92, 0x03],             // cancel without id
            &[0x92, 0x03, 0x01, 0x00], // a truncated second envelope
            &[0x95, 0x00, 0x01, 0xa3, b'a'], // string runs past the end
            &[0x95, 0x00, 0x01, 0xa1, 0xff, 0xc0, 0xc4, 0x01, 0x90], // invalid UTF-8
            &[0x95, 0x00, 0x01, 0xa1, b'a', 0xc0], // call without args
            &[0x95, 0x00, 0x01, 0xa1, b'a', 0xc0, 0x90], // args not a bin
            &[
                0x95, 0x00, 0x01, 0xa1, b'a', 0xc0, 0xc6, 0xff, 0xff, 0xff, 0xff,
            ], // bin claiming 4 GiB
            &[0x94, 0x01, 0x01, 0xce, 0x00, 0x01, 0x00, 0x00, 0xa0], // code out of range
            &[0xdd, 0xff, 0xff, 0xff, 0xff], // array claiming 4 G elements
            &[0x92, 0x03, 0xcd, 0x01], // cancel id: a u16 cut short
            &[0x92, 0x03, 0xcf, 0, 0, 0, 0, 0, 0, 0], // a u64 cut short
            &[0x92, 0x03, 0xff],       // a negative id
            &[0x92, 0x03, 0xd0, 0x80], // a negative id, as an i8
        ];
        for case in cases {
            let result = decode_messages(&Bytes::copy_from_slice(case));
            assert!(
                matches!(result, Err(CodecError::Envelope(_))),
                "{case:02x?} gave {result:?}"
            );
        }
    }

    #[test]
    fn an_unsigned_field_decodes_from_any_encoding_of_its_value() {
        let encodings: &[(&[u8], u64)] = &[
            (&[0x05], 5),
            (&[0x7f], 127),
            (&[0xcc, 0x80], 128),
            (&[0xcd, 0x01, 0x02], 0x0102),
            (&[0xce, 0x01, 0x02, 0x03, 0x04], 0x0102_0304),
            (
                &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                u64::MAX,
            ),
            // Signed encodings of non-negative values are valid MessagePack too.
            (&[0xd0, 0x05], 5),
            (&[0xd1, 0x01, 0x02], 0x0102),
            (&[0xd3, 0, 0, 0, 0, 0, 0, 0x01, 0x00], 256),
        ];
        for (encoding, id) in encodings {
            let mut wire = vec![0x92, 0x03];
            wire.extend_from_slice(encoding);
            // A second envelope after it: the cursor moved past the id exactly.
            wire.extend_from_slice(&[0x92, 0x04, 0x07]);
            let messages = decode_messages(&Bytes::from(wire)).unwrap();
            assert_eq!(
                messages,
                [Message::Cancel { id: *id }, Message::Ping { nonce: 7 }],
                "{encoding:02x?}"
            );
        }
    }

    #[test]
    fn values_use_named_struct_fields_and_reject_trailing_bytes() {
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Creds {
            token: String,
        }
        let bytes = to_vec(&Creds {
            token: "t0k3n".into(),
        })
        .unwrap();
        assert_eq!(hex(&bytes), "81a5746f6b656ea574306b336e");
        assert_eq!(
            decode_value::<Creds>(&bytes).unwrap(),
            Creds {
                token: "t0k3n".into()
            }
        );
        let mut longer = bytes.clone();
        longer.push(0xc0);
        assert!(matches!(
            decode_value::<Creds>(&longer),
            Err(CodecError::TrailingBytes(1))
        ));
    }

    #[test]
    fn deep_nesting_and_huge_length_claims_fail_without_allocating() {
        let deep = vec![0x91u8; 100_000];
        assert!(matches!(
            decode_value::<serde::de::IgnoredAny>(&deep),
            Err(CodecError::Decode(_))
        ));
        // A bin claiming 4 GiB with five bytes present.
        let claim = [0xc6, 0xff, 0xff, 0xff, 0xff, 0x00];
        assert!(decode_value::<serde_bytes::ByteBuf>(&claim).is_err());
        let claim = [0xdb, 0xff, 0xff, 0xff, 0xff, b'a'];
        assert!(decode_value::<String>(&claim).is_err());
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
