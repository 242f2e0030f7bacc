//! Property tests of the handshake state machine ([`Acceptor::accept`],
//! [`ClientHandshake::finish`]) on structured mutations: several bytes
//! rewritten at once, truncation and extension, splices of two valid
//! handshakes, HS2s from other sessions. Only the untouched message is
//! accepted; everything else ends in a typed error whose close code is one
//! docs/PROTOCOL.md allows, and never panics. (Single bit flips at every
//! position and arbitrary bytes are covered by the crate's own T4 tests.)

use proptest::prelude::*;
use sockets::__internal::crypto::{ClientHandshake, HandshakeError, Limits, Mode};
use sockets::crypto::Suite;
use sockets::protocol::CloseCode;
use tests::fuzz::{acceptor, config};
use tests::{secret, wrong_secret};

#[derive(Clone, Debug)]
enum Mutation {
    /// Set these positions to these values.
    Rewrite(Vec<(usize, u8)>),
    Truncate(usize),
    Extend(Vec<u8>),
    /// Keep the first `at` bytes, take the rest from another valid message.
    Splice(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        prop::collection::vec((any::<usize>(), any::<u8>()), 1..6).prop_map(Mutation::Rewrite),
        any::<usize>().prop_map(Mutation::Truncate),
        prop::collection::vec(any::<u8>(), 1..1100).prop_map(Mutation::Extend),
        any::<usize>().prop_map(Mutation::Splice),
    ]
}

fn apply(message: &[u8], other: &[u8], mutation: &Mutation) -> Vec<u8> {
    let mut out = message.to_vec();
    match mutation {
        Mutation::Rewrite(edits) => {
            for (at, value) in edits {
                let len = out.len();
                out[at % len] = *value;
            }
        }
        Mutation::Truncate(at) => out.truncate(at % out.len()),
        Mutation::Extend(bytes) => out.extend_from_slice(bytes),
        Mutation::Splice(at) => {
            let at = at % out.len().min(other.len());
            out.truncate(at);
            out.extend_from_slice(&other[at..]);
        }
    }
    out
}

fn suite(aes: bool) -> Suite {
    if aes {
        Suite::Aes256Gcm
    } else {
        Suite::ChaCha20Poly1305
    }
}

/// The server closes as docs/PROTOCOL.md §4.4 says: 1002 or 1008 with a
/// reason for public fields, 1008 with none for anything cryptographic,
/// 4001 for a replay.
fn allowed_close(error: &HandshakeError) -> bool {
    let (code, reason) = (error.reason().code(), error.reason().text());
    match error {
        HandshakeError::Malformed(_) => code == CloseCode::ProtocolError && !reason.is_empty(),
        HandshakeError::Unsupported(_) => code == CloseCode::PolicyViolation && !reason.is_empty(),
        HandshakeError::Rejected => code == CloseCode::PolicyViolation && reason.is_empty(),
        HandshakeError::Stale => code == CloseCode::StaleHandshake,
        _ => false,
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn mutated_hs1_is_refused_with_a_documented_close(
        aes in any::<bool>(),
        other_aes in any::<bool>(),
        other_secret in any::<bool>(),
        mutation in mutation(),
    ) {
        let acceptor = acceptor(1 << 20);
        let (_client, hs1) =
            ClientHandshake::start(&secret(), suite(aes), Mode::Encrypted, None).unwrap();
        let other_key = if other_secret { wrong_secret() } else { secret() };
        let (_other, other) =
            ClientHandshake::start(&other_key, suite(other_aes), Mode::Encrypted, None).unwrap();
        let mutated = apply(&hs1, &other, &mutation);
        let result = acceptor.accept(&mutated, None, Limits::default());
        // A splice at 0 is the other HS1 whole: valid if made with our secret.
        if mutated == hs1 || (mutated == other && !other_secret) {
            prop_assert!(result.is_ok());
        } else {
            let Err(error) = result else {
                return Err(TestCaseError::fail("a mutated HS1 was accepted"));
            };
            prop_assert!(allowed_close(&error), "{error:?}");
        }
    }

    #[test]
    fn mutated_or_foreign_hs2_is_never_accepted(
        aes in any::<bool>(),
        mutation in mutation(),
        foreign in any::<bool>(),
    ) {
        let acceptor = acceptor(1 << 20);
        let (client, hs1) =
            ClientHandshake::start(&secret(), suite(aes), Mode::Encrypted, None).unwrap();
        let (_session, hs2) = acceptor.accept(&hs1, None, Limits::default()).unwrap();
        // An HS2 the same server gave another client with the same settings.
        let (_other_client, other_hs1) =
            ClientHandshake::start(&secret(), suite(aes), Mode::Encrypted, None).unwrap();
        let (_other_session, other_hs2) =
            acceptor.accept(&other_hs1, None, Limits::default()).unwrap();
        let delivered = if foreign { other_hs2.clone() } else { apply(&hs2, &other_hs2, &mutation) };
        let result = client.finish(&delivered, Limits::default());
        if delivered == hs2 {
            prop_assert!(result.is_ok());
        } else {
            prop_assert_eq!(result.err(), Some(HandshakeError::ServerNotVerified));
        }
    }
}
