//! Decoders never allocate more than their limits, whatever the input
//! claims. A counting allocator (the `cap` crate) lowers the process's
//! allocation limit to "what is allocated now + a budget" around each decode;
//! a decoder that trusted a length field would exceed it and abort the test.
//!
//! One test in this binary on purpose: the allocator is global, and another
//! test running in parallel would spend the budget.

use std::alloc::System;

use bytes::Bytes;
use cap::Cap;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde::de::IgnoredAny;
use sockets::__internal::crypto::{FrameKind, Limits, Mode};
use sockets::__internal::protocol::codec;
use sockets::crypto::Suite;
use tests::fuzz::{config, session_with};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Runs `f` with at most `budget` more bytes allocatable.
fn bounded<T>(budget: usize, f: impl FnOnce() -> T) -> T {
    ALLOCATOR
        .set_limit(ALLOCATOR.allocated() + budget)
        .expect("the limit is above what is allocated");
    let out = f();
    ALLOCATOR.set_limit(usize::MAX).expect("lift the limit");
    out
}

/// Envelope bytes with length fields that claim up to 4 GiB.
fn lying_envelopes() -> impl Strategy<Value = Vec<u8>> {
    let claim = prop::sample::select(vec![
        vec![0xc6, 0xff, 0xff, 0xff, 0xff],
        vec![0xdb, 0xff, 0xff, 0xff, 0xff],
        vec![0xdd, 0xff, 0xff, 0xff, 0xff],
        vec![0xdf, 0xff, 0xff, 0xff, 0xff],
        vec![0xdd, 0x00, 0x10, 0x00, 0x00],
    ]);
    (
        prop::sample::select(vec![
            vec![
                0x95u8, 0x00, 0x01, 0xa9, b'c', b'a', b'l', b'c', b'.', b'e', b'c', b'h', b'o',
                0xc0,
            ],
            vec![0x94, 0x01, 0x07, 0x00],
            vec![0x93, 0x02],
            vec![],
        ]),
        claim,
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(prefix, claim, tail)| [prefix, claim, tail].concat())
}

#[test]
fn decoders_stay_within_their_allocation_budget() {
    let mut runner = TestRunner::new(config(256));
    // Envelopes: a decode may copy its input a few times, never what it claims.
    runner
        .run(&lying_envelopes(), |wire| {
            let budget = 64 * 1024 + wire.len() * 8;
            let wire = Bytes::from(wire);
            bounded(budget, || {
                let _ = codec::decode_messages(&wire);
                let _ = codec::decode_value::<IgnoredAny>(&wire);
                let _ = codec::decode_value::<Vec<Vec<u8>>>(&wire);
            });
            Ok(())
        })
        .unwrap();

    // Frames: a MORE chain longer than the opener's max_message is refused
    // once it passes the limit, never buffered whole.
    let mut runner = TestRunner::new(config(16));
    runner
        .run(&(64usize * 1024..512 * 1024), |size| {
            let client = Limits {
                max_frame: 16 * 1024,
                max_message: 1 << 20,
                ..Limits::default()
            };
            let server = Limits {
                max_frame: 16 * 1024,
                max_message: 32 * 1024,
                ..Limits::default()
            };
            let (mut sealer, _, _, mut opener) =
                session_with(Suite::ChaCha20Poly1305, Mode::Encrypted, &client, &server);
            let mut frames = Vec::new();
            sealer
                .seal(FrameKind::Data, &vec![7u8; size], &mut frames)
                .unwrap();
            let refused = bounded(256 * 1024, || {
                frames
                    .into_iter()
                    .map(|frame| opener.open(frame))
                    .any(|opened| opened.is_err())
            });
            prop_assert!(refused, "a {size}-byte message passed a 32 KiB max_message");
            Ok(())
        })
        .unwrap();
}
