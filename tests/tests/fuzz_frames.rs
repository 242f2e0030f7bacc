//! Property tests of the frame decoder ([`Opener`]) on structured mutations
//! of valid frame streams (beyond the arbitrary bytes and single bit flips of
//! the crate's own tests): whatever a man in the middle does to a stream —
//! flip, truncate, extend, drop, duplicate, swap, insert, rewrite a header
//! field — the opener never panics, never delivers an altered or reordered
//! message, and every error is final. Across MORE chains and KEY_UPDATEs.

use bytes::Bytes;
use proptest::prelude::*;
use sockets::__internal::crypto::{FrameKind, Limits, Mode};
use sockets::crypto::Suite;
use tests::fuzz::{config, session};

#[derive(Clone, Debug)]
enum Mutation {
    Flip { frame: usize, at: usize, bit: u8 },
    Truncate { frame: usize, len: usize },
    Extend { frame: usize, bytes: Vec<u8> },
    Drop { frame: usize },
    Duplicate { frame: usize },
    Swap { frame: usize },
    Insert { frame: usize, bytes: Vec<u8> },
    Header { frame: usize, at: usize, value: u8 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let frame = any::<usize>();
    prop_oneof![
        (frame, any::<usize>(), 0u8..8).prop_map(|(frame, at, bit)| Mutation::Flip {
            frame,
            at,
            bit
        }),
        (frame, any::<usize>()).prop_map(|(frame, len)| Mutation::Truncate { frame, len }),
        (frame, prop::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(frame, bytes)| Mutation::Extend { frame, bytes }),
        frame.prop_map(|frame| Mutation::Drop { frame }),
        frame.prop_map(|frame| Mutation::Duplicate { frame }),
        frame.prop_map(|frame| Mutation::Swap { frame }),
        (frame, prop::collection::vec(any::<u8>(), 0..80))
            .prop_map(|(frame, bytes)| Mutation::Insert { frame, bytes }),
        (frame, 0usize..8, any::<u8>()).prop_map(|(frame, at, value)| Mutation::Header {
            frame,
            at,
            value
        }),
    ]
}

fn apply(frames: &mut Vec<Bytes>, mutation: &Mutation) {
    let n = frames.len();
    let pick = |i: usize| i % n;
    match mutation {
        Mutation::Flip { frame, at, bit } => {
            let i = pick(*frame);
            let mut bytes = frames[i].to_vec();
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
            frames[i] = bytes.into();
        }
        Mutation::Truncate { frame, len } => {
            let i = pick(*frame);
            frames[i] = frames[i].slice(..len % frames[i].len());
        }
        Mutation::Extend { frame, bytes } => {
            let i = pick(*frame);
            frames[i] = [&frames[i][..], bytes].concat().into();
        }
        Mutation::Drop { frame } => {
            frames.remove(pick(*frame));
        }
        Mutation::Duplicate { frame } => {
            let i = pick(*frame);
            frames.insert(i, frames[i].clone());
        }
        Mutation::Swap { frame } => {
            let i = pick(*frame);
            if i + 1 < n {
                frames.swap(i, i + 1);
            }
        }
        Mutation::Insert { frame, bytes } => {
            frames.insert(pick(*frame), Bytes::from(bytes.clone()));
        }
        Mutation::Header { frame, at, value } => {
            let i = pick(*frame);
            let mut bytes = frames[i].to_vec();
            bytes[*at] = *value;
            frames[i] = bytes.into();
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn mutated_frame_streams_never_deliver_altered_or_reordered_messages(
        aes in any::<bool>(),
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 1..6),
        mutation in mutation(),
    ) {
        let suite = if aes { Suite::Aes256Gcm } else { Suite::ChaCha20Poly1305 };
        // Small frames (MORE chains) and frequent KEY_UPDATEs.
        let limits = Limits {
            max_frame: 1024,
            max_message: 16 * 1024,
            rekey_after_frames: 3,
            reject_after_frames: 1 << 20,
            ..Limits::default()
        };
        let (mut sealer, _, _, mut opener) = session(suite, Mode::Encrypted, &limits);
        let mut frames = Vec::new();
        for message in &messages {
            sealer.seal(FrameKind::Data, message, &mut frames).unwrap();
        }
        let original = frames.clone();
        apply(&mut frames, &mutation);
        let mut delivered = Vec::new();
        let mut failed = false;
        for frame in frames.iter().cloned() {
            match opener.open(frame) {
                Ok(Some(opened)) => {
                    prop_assert!(!failed, "a frame was opened after an error");
                    prop_assert_eq!(opened.kind, FrameKind::Data);
                    delivered.push(opened.plaintext.to_vec());
                }
                Ok(None) => prop_assert!(!failed, "a frame was accepted after an error"),
                Err(_) => failed = true,
            }
        }
        // Delivered messages are the original ones, in order, never altered.
        prop_assert!(delivered.len() <= messages.len());
        prop_assert_eq!(&delivered[..], &messages[..delivered.len()]);
        if frames != original && !original.starts_with(&frames) {
            prop_assert!(failed, "a mutation went unnoticed: {:?}", mutation);
        }
    }

    /// Plaintext mode has no integrity of its own (TLS gives it), but its
    /// decoder must still never panic on mutated streams.
    #[test]
    fn mutated_plaintext_mode_streams_never_panic(
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 1..4),
        mutation in mutation(),
    ) {
        let limits = Limits { max_frame: 1024, max_message: 16 * 1024, ..Limits::default() };
        let (mut sealer, _, _, mut opener) = session(Suite::Aes256Gcm, Mode::Plaintext, &limits);
        let mut frames = Vec::new();
        for message in &messages {
            sealer.seal(FrameKind::Data, message, &mut frames).unwrap();
        }
        apply(&mut frames, &mutation);
        let mut failed = false;
        for frame in frames {
            match opener.open(frame) {
                Ok(_) => prop_assert!(!failed, "a frame was accepted after an error"),
                Err(_) => failed = true,
            }
        }
    }
}
