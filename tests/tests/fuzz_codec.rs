//! Property tests of the envelope decoder (`codec::decode_messages`,
//! `codec::messages`, `codec::decode_value`): valid batches round-trip;
//! structured mutations of valid batches (bit flips, truncation, insertion,
//! length fields rewritten to claim gigabytes) and arbitrary bytes never
//! panic and end in a typed error or a batch that re-encodes to the same
//! envelopes; nesting of any depth is refused without recursion.

use bytes::Bytes;
use proptest::prelude::*;
use serde::de::IgnoredAny;
use sockets::__internal::protocol::codec::{self, CodecError};
use sockets::__internal::protocol::{
    Call, ErrorCode, Message, Notify, Outcome, RemoteError, Reply,
};
use sockets::service::EncodedValue;
use tests::fuzz::config;

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn message() -> impl Strategy<Value = Message> {
    // Every code as the decoder names it: a number the protocol names is
    // never `Other` (a generator of `Other(8..)` went stale when FORBIDDEN
    // and LAGGED took 8 and 9, and failed once in a while).
    let code = prop_oneof![
        // Small numbers: the named codes, and the first unnamed ones.
        (1u16..=32).prop_map(|c| ErrorCode::from_u16(c).expect("1 and up")),
        (1u16..).prop_map(|c| ErrorCode::from_u16(c).expect("1 and up")),
    ];
    prop_oneof![
        (any::<u64>(), ".{0,20}", any::<Option<u32>>(), bytes(64)).prop_map(
            |(id, method, timeout_ms, args)| Message::Call(Call {
                id,
                method: method.into(),
                timeout_ms,
                args: EncodedValue::copy_from_slice(&args)
            })
        ),
        (any::<u64>(), bytes(64)).prop_map(|(id, value)| Message::Reply(Reply {
            id,
            outcome: Outcome::Ok(EncodedValue::copy_from_slice(&value))
        })),
        (any::<u64>(), code, ".{0,20}").prop_map(|(id, code, message)| Message::Reply(Reply {
            id,
            outcome: Outcome::Err(RemoteError { code, message })
        })),
        (".{0,20}", bytes(64)).prop_map(|(method, args)| Message::Notify(Notify {
            method: method.into(),
            args: EncodedValue::copy_from_slice(&args)
        })),
        any::<u64>().prop_map(|id| Message::Cancel { id }),
        any::<u64>().prop_map(|nonce| Message::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Message::Pong { nonce }),
    ]
}

/// A MessagePack marker and length field claiming far more than is there.
fn huge_claim() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![
        vec![0xc6, 0xff, 0xff, 0xff, 0xff],       // bin32, 4 GiB
        vec![0xdb, 0xff, 0xff, 0xff, 0xff],       // str32
        vec![0xdd, 0xff, 0xff, 0xff, 0xff],       // array32, 4 G elements
        vec![0xdf, 0xff, 0xff, 0xff, 0xff],       // map32
        vec![0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01], // ext32
        vec![0xc5, 0xff, 0xff],                   // bin16
        vec![0xdc, 0xff, 0xff],                   // array16
    ])
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Overwrite(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, b)| Mutation::Insert(at, b)),
        (any::<usize>(), huge_claim()).prop_map(|(at, b)| Mutation::Insert(at, b)),
        (any::<usize>(), huge_claim()).prop_map(|(at, b)| Mutation::Overwrite(at, b)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len().max(1);
    match mutation {
        Mutation::Flip(at, bit) => {
            if let Some(b) = bytes.get_mut(at % len) {
                *b ^= 1 << bit;
            }
        }
        Mutation::Truncate(at) => bytes.truncate(at % len),
        Mutation::Insert(at, new) => {
            let at = (at % len).min(bytes.len());
            bytes.splice(at..at, new.iter().copied());
        }
        Mutation::Overwrite(at, new) => {
            let at = (at % len).min(bytes.len());
            let end = (at + new.len()).min(bytes.len());
            bytes.splice(at..end, new.iter().copied());
        }
    }
}

fn encode(batch: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in batch {
        codec::encode_message(message, &mut out);
    }
    out
}

fn typed(error: &CodecError) -> bool {
    matches!(
        error,
        CodecError::Envelope(_) | CodecError::Decode(_) | CodecError::TrailingBytes(_)
    )
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn valid_batches_round_trip(batch in prop::collection::vec(message(), 1..8)) {
        let wire = Bytes::from(encode(&batch));
        prop_assert_eq!(codec::decode_messages(&wire).unwrap(), batch);
    }

    #[test]
    fn mutated_batches_end_in_a_typed_error_or_a_stable_batch(
        batch in prop::collection::vec(message(), 1..6),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut wire = encode(&batch);
        for mutation in &mutations {
            apply(&mut wire, mutation);
        }
        let wire = Bytes::from(wire);
        match codec::decode_messages(&wire) {
            Ok(decoded) => {
                // Whatever decodes re-encodes to envelopes that decode the same.
                let again = Bytes::from(encode(&decoded));
                prop_assert_eq!(codec::decode_messages(&again).unwrap(), decoded);
            }
            Err(error) => prop_assert!(typed(&error), "{error:?}"),
        }
        // The streaming decoder agrees, and stops at the first error.
        let mut streamed = Vec::new();
        for item in codec::messages(wire.clone()) {
            match item {
                Ok(message) => streamed.push(message),
                Err(error) => {
                    prop_assert!(typed(&error), "{error:?}");
                    break;
                }
            }
        }
        if let Ok(decoded) = codec::decode_messages(&wire) {
            prop_assert_eq!(streamed, decoded);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(wire in prop::collection::vec(any::<u8>(), 0..512)) {
        let wire = Bytes::from(wire);
        if let Err(error) = codec::decode_messages(&wire) {
            prop_assert!(typed(&error), "{error:?}");
        }
        if let Err(error) = codec::decode_value::<IgnoredAny>(&wire) {
            prop_assert!(typed(&error), "{error:?}");
        }
    }

}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn nesting_of_any_depth_is_refused_without_recursion(
        depth in prop_oneof![0usize..300, 0usize..200_000],
        map in any::<bool>(),
    ) {
        // `depth` nested one-element arrays (or maps keyed by nil) around nil.
        let mut wire = Vec::with_capacity(depth * 2 + 1);
        for _ in 0..depth {
            if map {
                wire.extend_from_slice(&[0x81, 0xc0]);
            } else {
                wire.push(0x91);
            }
        }
        wire.push(0xc0);
        let value = codec::decode_value::<IgnoredAny>(&wire);
        if depth <= 64 {
            prop_assert!(value.is_ok(), "{value:?}");
        }
        if depth > codec::MAX_DEPTH {
            prop_assert!(value.is_err());
        }
        let envelope = codec::decode_messages(&Bytes::from(wire));
        prop_assert!(envelope.is_err());
    }
}
