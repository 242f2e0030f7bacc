//! Sans-IO security tests of the handshake and the session (the layer's share of T1–T22).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::handshake::{HandshakeError, Seam, dh_count};
use super::session::{AUTH_MAX_FRAME, HEADER_LEN, Session, SessionError};
use super::*;
use crate::protocol::{CloseCode, Reason};

const SUITES: [Suite; 2] = [Suite::Aes256Gcm, Suite::ChaCha20Poly1305];

fn secret() -> Secret {
    Secret::from_key(&[42; 32])
}

fn acceptor_for(secrets: Vec<Secret>) -> Acceptor {
    Acceptor::new(AcceptorConfig {
        secrets,
        allow_plaintext: true,
        ..AcceptorConfig::default()
    })
    .unwrap()
}

/// A client and server session through the public API.
fn pair(suite: Suite, mode: Mode, limits: Limits) -> (Session, Session) {
    pair_with(suite, mode, limits.clone(), limits)
}

/// As [`pair`], with different limits on each side.
fn pair_with(suite: Suite, mode: Mode, client: Limits, server: Limits) -> (Session, Session) {
    let secret = secret();
    let (handshake, hs1) = ClientHandshake::start(&secret, suite, mode, None).unwrap();
    let (server, hs2) = acceptor_for(vec![secret])
        .accept(&hs1, None, server)
        .unwrap();
    let (client, _) = handshake.finish(&hs2, client).unwrap();
    (client, server)
}

/// Sealers and openers after AUTH / AUTH_RESULT: (client sealer, client opener, server sealer, server opener).
fn authenticated(suite: Suite, mode: Mode, limits: Limits) -> (Sealer, Opener, Sealer, Opener) {
    authenticated_with(suite, mode, limits.clone(), limits)
}

/// As [`authenticated`], with different limits on each side.
fn authenticated_with(
    suite: Suite,
    mode: Mode,
    client: Limits,
    server: Limits,
) -> (Sealer, Opener, Sealer, Opener) {
    let (client, server) = pair_with(suite, mode, client, server);
    let (mut c_seal, mut c_open) = client.split();
    let (mut s_seal, mut s_open) = server.split();
    let mut out = Vec::new();
    c_seal.seal(FrameKind::Auth, b"creds", &mut out).unwrap();
    assert_eq!(
        open_all(&mut s_open, out.drain(..))[0].kind,
        FrameKind::Auth
    );
    s_seal.seal(FrameKind::AuthResult, b"ok", &mut out).unwrap();
    s_open.set_authenticated();
    assert_eq!(
        open_all(&mut c_open, out.drain(..))[0].kind,
        FrameKind::AuthResult
    );
    c_open.set_authenticated();
    (c_seal, c_open, s_seal, s_open)
}

fn open_all(opener: &mut Opener, frames: impl IntoIterator<Item = Bytes>) -> Vec<Opened> {
    frames
        .into_iter()
        .filter_map(|frame| opener.open(frame).unwrap())
        .collect()
}

fn seal(sealer: &mut Sealer, kind: FrameKind, plaintext: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    sealer.seal(kind, plaintext, &mut out).unwrap();
    out
}

fn fixed(ephemeral: u8, now_ms: u64) -> Seam {
    Seam {
        ephemeral: Some([ephemeral; 32]),
        now_ms: Some(now_ms),
    }
}

/// The close code and text an error is sent with (through its reason).
trait Close {
    fn close(&self) -> (CloseCode, &'static str);
}

impl Close for HandshakeError {
    fn close(&self) -> (CloseCode, &'static str) {
        (self.reason().code(), self.reason().text())
    }
}

impl Close for SessionError {
    fn close(&self) -> (CloseCode, &'static str) {
        (self.reason().code(), self.reason().text())
    }
}

#[test]
fn public_types_are_send_and_the_acceptor_is_sync() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Acceptor>();
    send_sync::<Secret>();
    send::<ClientHandshake>();
    send::<Session>();
    send::<Sealer>();
    send::<Opener>();
}

#[test]
fn t1_happy_path_both_suites_both_modes() {
    for suite in SUITES {
        for mode in [Mode::Encrypted, Mode::Plaintext] {
            let (client, server) = pair(suite, mode, Limits::default());
            assert_eq!(client.handshake_hash(), server.handshake_hash());
            assert_eq!((client.suite(), client.mode()), (suite, mode));
            assert_eq!((server.suite(), server.mode()), (suite, mode));
            assert_eq!(*client.export(b"x"), *server.export(b"x"));
            assert_ne!(*client.export(b"x"), *client.export(b"y"));
            let (client2, _) = pair(suite, mode, Limits::default());
            assert_ne!(client.handshake_hash(), client2.handshake_hash());

            let (mut c_seal, mut c_open) = client.split();
            let (mut s_seal, mut s_open) = server.split();
            assert_ne!(c_seal.traffic_secret(), s_seal.traffic_secret());
            let got = open_all(&mut s_open, seal(&mut c_seal, FrameKind::Auth, b"creds"));
            assert_eq!(
                (got[0].kind, &got[0].plaintext[..]),
                (FrameKind::Auth, &b"creds"[..])
            );
            let got = open_all(&mut c_open, seal(&mut s_seal, FrameKind::AuthResult, b"ok"));
            assert_eq!(&got[0].plaintext[..], b"ok");
            s_open.set_authenticated();
            c_open.set_authenticated();

            let big = (0..3 << 20).map(|i| i as u8).collect::<Vec<_>>();
            let frames = seal(&mut c_seal, FrameKind::Data, &big);
            assert_eq!(
                frames.len(),
                4,
                "3 MiB travels as a MORE chain of 1 MiB frames"
            );
            assert!(frames.iter().all(|f| f.len() <= 1 << 20));
            let got = open_all(&mut s_open, frames);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].plaintext, big);
            let sent = if mode == Mode::Encrypted { 5 } else { 0 };
            assert_eq!(c_seal.position(), (0, sent));
            assert_eq!(s_open.position(), (0, sent));

            let got = open_all(&mut s_open, seal(&mut c_seal, FrameKind::Data, b""));
            assert_eq!(got[0].plaintext.len(), 0, "an empty DATA is one frame");
            let got = open_all(&mut c_open, seal(&mut s_seal, FrameKind::Close, b"bye"));
            assert_eq!(got[0].kind, FrameKind::Close);
            assert!(c_open.open(Bytes::from_static(b"anything")).is_err());
        }
    }
}

#[test]
fn t2_wrong_secret_is_rejected_silently_without_dh() {
    for suite in SUITES {
        let client_secret = Secret::from_key(&[1; 32]);
        let acceptor = acceptor_for(vec![Secret::from_key(&[2; 32]), Secret::from_key(&[3; 32])]);
        let (_, hs1) =
            ClientHandshake::start(&client_secret, suite, Mode::Encrypted, None).unwrap();
        let before = dh_count();
        let error = acceptor.accept(&hs1, None, Limits::default()).unwrap_err();
        assert_eq!(error, HandshakeError::Rejected);
        assert_eq!(error.close(), (CloseCode::PolicyViolation, ""));
        assert_eq!(dh_count(), before, "a rejected HS1 costs no Diffie-Hellman");
    }
}

#[test]
fn rotation_accepts_the_previous_secret() {
    let old = Secret::from_key(&[1; 32]);
    let acceptor = acceptor_for(vec![Secret::from_key(&[2; 32]), old.clone()]);
    let (client, hs1) =
        ClientHandshake::start(&old, Suite::Aes256Gcm, Mode::Encrypted, None).unwrap();
    let (server, hs2) = acceptor.accept(&hs1, None, Limits::default()).unwrap();
    let (client, _) = client.finish(&hs2, Limits::default()).unwrap();
    assert_eq!(client.handshake_hash(), server.handshake_hash());
}

#[test]
fn t3_impostor_server_is_not_verified() {
    for suite in SUITES {
        let real = Secret::from_key(&[1; 32]);
        let impostor = Secret::from_key(&[2; 32]);
        // The impostor answers with a valid HS2 for the client's very ephemeral, under its own secret.
        let seam = fixed(9, 1_700_000_000_000);
        let (client, _) =
            ClientHandshake::start_with(&real, suite, Mode::Encrypted, None, &seam).unwrap();
        let (_, impostor_hs1) =
            ClientHandshake::start_with(&impostor, suite, Mode::Encrypted, None, &seam).unwrap();
        let (_, hs2) = acceptor_for(vec![impostor])
            .accept_with(
                &impostor_hs1,
                None,
                Limits::default(),
                &fixed(8, 1_700_000_000_000),
            )
            .unwrap();
        assert_eq!(
            client.finish(&hs2, Limits::default()).unwrap_err(),
            HandshakeError::ServerNotVerified
        );
        // Garbage of the right shape is refused the same way.
        let (client, hs1) = ClientHandshake::start(&real, suite, Mode::Encrypted, None).unwrap();
        let mut fake = hs1.clone();
        fake[1] = 2;
        assert_eq!(
            client.finish(&fake, Limits::default()).unwrap_err(),
            HandshakeError::ServerNotVerified
        );
    }
}

#[test]
fn t4_every_bit_flip_in_hs1_is_refused_without_dh() {
    let secret = secret();
    let acceptor = Acceptor::new(AcceptorConfig {
        secrets: vec![secret.clone()],
        freshness_window: None,
        ..AcceptorConfig::default()
    })
    .unwrap();
    for suite in SUITES {
        let (_, hs1) = ClientHandshake::start(&secret, suite, Mode::Encrypted, None).unwrap();
        let before = dh_count();
        for at in 0..hs1.len() {
            for bit in 0..8 {
                let mut tampered = hs1.clone();
                tampered[at] ^= 1 << bit;
                let error = acceptor
                    .accept(&tampered, None, Limits::default())
                    .unwrap_err();
                if at >= 8 {
                    assert_eq!(error, HandshakeError::Rejected, "byte {at} bit {bit}");
                } else {
                    let public = matches!(
                        error,
                        HandshakeError::Malformed(_) | HandshakeError::Unsupported(_)
                    );
                    assert!(
                        public || error == HandshakeError::Rejected,
                        "byte {at}: {error:?}"
                    );
                }
            }
        }
        assert_eq!(dh_count(), before, "no tampered HS1 cost a Diffie-Hellman");
    }
    // Lengths outside 56..=1024 are refused before any work.
    for len in [0, 8, 55, 1025, 4096] {
        assert_eq!(
            acceptor
                .accept(&vec![1; len], None, Limits::default())
                .unwrap_err(),
            HandshakeError::Malformed(Reason::HandshakeLength)
        );
    }
}

#[test]
fn t4_every_bit_flip_in_hs2_fails_server_verification() {
    let secret = secret();
    for suite in SUITES {
        let seam = fixed(5, 1_700_000_000_000);
        let (_, hs1) =
            ClientHandshake::start_with(&secret, suite, Mode::Encrypted, None, &seam).unwrap();
        let (_, hs2) = acceptor_for(vec![secret.clone()])
            .accept_with(&hs1, None, Limits::default(), &seam)
            .unwrap();
        for at in 0..hs2.len() {
            for bit in [0, 3, 7] {
                let (client, _) =
                    ClientHandshake::start_with(&secret, suite, Mode::Encrypted, None, &seam)
                        .unwrap();
                let mut tampered = hs2.clone();
                tampered[at] ^= 1 << bit;
                assert_eq!(
                    client.finish(&tampered, Limits::default()).unwrap_err(),
                    HandshakeError::ServerNotVerified,
                    "byte {at} bit {bit}"
                );
            }
        }
    }
}

#[test]
fn t5_replayed_or_out_of_window_hs1_is_stale() {
    let secret = secret();
    let acceptor = acceptor_for(vec![secret.clone()]);
    let (_, hs1) =
        ClientHandshake::start(&secret, Suite::Aes256Gcm, Mode::Encrypted, None).unwrap();
    acceptor.accept(&hs1, None, Limits::default()).unwrap();
    let error = acceptor.accept(&hs1, None, Limits::default()).unwrap_err();
    assert_eq!(error, HandshakeError::Stale);
    assert_eq!(
        error.close(),
        (CloseCode::StaleHandshake, "stale handshake")
    );

    let now: u64 = 1_700_000_000_000;
    for skew in [-301_000i64, 301_000] {
        let client_seam = Seam {
            ephemeral: None,
            now_ms: Some(now.checked_add_signed(skew).unwrap()),
        };
        let (_, hs1) = ClientHandshake::start_with(
            &secret,
            Suite::Aes256Gcm,
            Mode::Encrypted,
            None,
            &client_seam,
        )
        .unwrap();
        let server_seam = Seam {
            ephemeral: None,
            now_ms: Some(now),
        };
        assert_eq!(
            acceptor
                .accept_with(&hs1, None, Limits::default(), &server_seam)
                .unwrap_err(),
            HandshakeError::Stale
        );
    }

    // Freshness off: the replay gets an HS2, but its session cannot open
    // anything the original client sends, so no AUTH ever verifies.
    let lax = Acceptor::new(AcceptorConfig {
        secrets: vec![secret.clone()],
        freshness_window: None,
        ..AcceptorConfig::default()
    })
    .unwrap();
    let (client, hs1) =
        ClientHandshake::start(&secret, Suite::Aes256Gcm, Mode::Encrypted, None).unwrap();
    let (_, hs2) = lax.accept(&hs1, None, Limits::default()).unwrap();
    let (replayed, _) = lax.accept(&hs1, None, Limits::default()).unwrap();
    let (client, _) = client.finish(&hs2, Limits::default()).unwrap();
    let (mut c_seal, _) = client.split();
    let (_, mut r_open) = replayed.split();
    let auth = seal(&mut c_seal, FrameKind::Auth, b"creds");
    assert_eq!(r_open.open(auth[0].clone()), Err(SessionError::Decrypt));
}

#[test]
fn t6_replayed_hs2_fails_for_a_new_client() {
    let secret = secret();
    let acceptor = acceptor_for(vec![secret.clone()]);
    for suite in SUITES {
        let (first, hs1) = ClientHandshake::start(&secret, suite, Mode::Encrypted, None).unwrap();
        let (_, old_hs2) = acceptor.accept(&hs1, None, Limits::default()).unwrap();
        first.finish(&old_hs2, Limits::default()).unwrap();
        let (second, _) = ClientHandshake::start(&secret, suite, Mode::Encrypted, None).unwrap();
        assert_eq!(
            second.finish(&old_hs2, Limits::default()).unwrap_err(),
            HandshakeError::ServerNotVerified
        );
    }
}

#[test]
fn t7_to_t10_replay_reorder_drop_reflect_splice_are_detected() {
    for suite in SUITES {
        for scenario in ["replay", "reorder", "drop", "reflect", "splice"] {
            let (mut c_seal, mut c_open, _, mut s_open) =
                authenticated(suite, Mode::Encrypted, Limits::default());
            let frames: Vec<Bytes> = (0..3u8)
                .flat_map(|i| seal(&mut c_seal, FrameKind::Data, &[i; 10]))
                .collect();
            let (opener, wire) = match scenario {
                "replay" => {
                    s_open.open(frames[0].clone()).unwrap();
                    (&mut s_open, frames[0].clone())
                }
                "reorder" => (&mut s_open, frames[1].clone()),
                "drop" => {
                    s_open.open(frames[0].clone()).unwrap();
                    (&mut s_open, frames[2].clone())
                }
                "reflect" => (&mut c_open, frames[0].clone()),
                _ => {
                    // Another session under the same secret, in the same state.
                    let (_, _, _, other) = authenticated(suite, Mode::Encrypted, Limits::default());
                    s_open = other;
                    (&mut s_open, frames[0].clone())
                }
            };
            assert_eq!(opener.open(wire), Err(SessionError::Decrypt), "{scenario}");
            assert_eq!(
                opener.open(frames[1].clone()),
                Err(SessionError::UnexpectedFrame(Reason::SessionClosed)),
                "{scenario}: errors are final"
            );
        }
    }
}

#[test]
fn t11_truncated_frames_are_typed_errors() {
    for mode in [Mode::Encrypted, Mode::Plaintext] {
        let (mut c_seal, _, _, _) = authenticated(Suite::Aes256Gcm, mode, Limits::default());
        let frame = seal(&mut c_seal, FrameKind::Data, b"hello world")[0].clone();
        for len in 0..frame.len() {
            let (_, _, _, mut s_open) = authenticated(Suite::Aes256Gcm, mode, Limits::default());
            let result = s_open.open(frame.slice(..len));
            match mode {
                Mode::Encrypted => assert!(result.is_err(), "length {len}"),
                // Mode P relies on TLS for integrity: a shorter DATA is a shorter message,
                // but nothing shorter than a header is a frame, and sessions are distinct.
                Mode::Plaintext => {
                    if len < HEADER_LEN {
                        assert_eq!(result, Err(SessionError::Malformed(Reason::FrameTooShort)));
                    }
                }
            }
        }
    }
}

#[test]
fn t13_t14_oversized_frames_and_messages_are_refused_before_allocating() {
    let small = Limits {
        max_frame: 4096,
        max_message: 10_000,
        ..Limits::default()
    };
    // Before authentication: frames over min(max_frame, 64 KiB) are refused by length alone.
    let (_, server) = pair(Suite::Aes256Gcm, Mode::Encrypted, small.clone());
    let (_, mut s_open) = server.split();
    assert_eq!(
        s_open.open(Bytes::from(vec![1u8; 4097])),
        Err(SessionError::FrameTooLarge)
    );
    let (_, server) = pair(Suite::Aes256Gcm, Mode::Encrypted, Limits::default());
    let (_, mut s_open) = server.split();
    assert_eq!(
        s_open.open(Bytes::from(vec![1u8; AUTH_MAX_FRAME + 1])),
        Err(SessionError::FrameTooLarge)
    );
    // The sender refuses an AUTH that does not fit one frame, and appends nothing.
    let (client, _) = pair(Suite::Aes256Gcm, Mode::Encrypted, small.clone());
    let (mut c_seal, _) = client.split();
    let mut out = Vec::new();
    assert_eq!(
        c_seal.seal(FrameKind::Auth, &[0; 4096], &mut out),
        Err(SessionError::MessageTooLarge)
    );
    assert!(out.is_empty());

    // After authentication.
    let (mut c_seal, _, _, mut s_open) = authenticated_with(
        Suite::Aes256Gcm,
        Mode::Encrypted,
        Limits::default(),
        small.clone(),
    );
    assert_eq!(
        c_seal.seal(FrameKind::Data, &[0; (16 << 20) + 1], &mut out),
        Err(SessionError::MessageTooLarge),
        "the sender refuses a message over its max_message"
    );
    // Frames sealed before stay as they were: a failed seal takes back only its own.
    let mut out = Vec::new();
    c_seal.seal(FrameKind::Data, b"first", &mut out).unwrap();
    let first = out.clone();
    assert_eq!(
        c_seal.seal(FrameKind::Data, &[0; (16 << 20) + 1], &mut out),
        Err(SessionError::MessageTooLarge)
    );
    assert_eq!(out, first);
    assert!(matches!(s_open.open(first[0].clone()), Ok(Some(_))));
    // The server announced mf = 4096, so the client's frames fit it.
    let chain = seal(&mut c_seal, FrameKind::Data, &[7; 20_000]);
    assert!(chain.iter().all(|frame| frame.len() <= 4096));
    // The chain passes the receiver's max_message at the third chunk: refused
    // there, before that chunk is copied into the reassembly buffer.
    let mut results = chain.into_iter().map(|frame| s_open.open(frame));
    assert_eq!(results.next(), Some(Ok(None)));
    assert_eq!(results.next(), Some(Ok(None)));
    assert_eq!(results.next(), Some(Err(SessionError::MessageTooLarge)));
    assert_eq!(
        SessionError::MessageTooLarge.close(),
        (CloseCode::TooBig, "message too large")
    );

    let (_, _, _, mut s_open) = authenticated(Suite::Aes256Gcm, Mode::Encrypted, small);
    assert_eq!(
        s_open.open(Bytes::from(vec![1u8; 4097])),
        Err(SessionError::FrameTooLarge)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// T12: a bit flip anywhere in any frame of a stream is detected, and
    /// nothing of that frame or after it is delivered.
    #[test]
    fn t12_bit_flips_anywhere_are_detected(
        suite_aes in any::<bool>(),
        frame in 0usize..5,
        position in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let suite = if suite_aes { Suite::Aes256Gcm } else { Suite::ChaCha20Poly1305 };
        let limits = Limits { rekey_after_frames: 2, reject_after_frames: 4, ..Limits::default() };
        let (mut c_seal, _, _, mut s_open) = authenticated(suite, Mode::Encrypted, limits);
        // AUTH was seq 0: DATA, KEY_UPDATE, then in epoch 1 DATA, DATA, KEY_UPDATE.
        let mut frames = seal(&mut c_seal, FrameKind::Data, b"first message");
        frames.extend(seal(&mut c_seal, FrameKind::Data, &[9; 100]));
        frames.extend(seal(&mut c_seal, FrameKind::Data, b"third"));
        prop_assert_eq!(frames.len(), 5);
        let mut tampered = frames[frame].to_vec();
        let at = position.index(tampered.len());
        tampered[at] ^= 1 << bit;
        for good in &frames[..frame] {
            s_open.open(good.clone()).unwrap();
        }
        let result = s_open.open(Bytes::from(tampered));
        prop_assert!(result.is_err(), "{:?}", result);
        if at >= HEADER_LEN || [1, 4, 5, 6, 7].contains(&at) {
            // Body, tag, type and epoch are authenticated, not parsed.
            prop_assert!(
                matches!(result, Err(SessionError::Decrypt | SessionError::Malformed(_))),
                "{:?}", result
            );
        }
        prop_assert!(s_open.open(frames[frame].clone()).is_err());
    }

    /// Arbitrary bytes never panic the acceptor and end in a typed error.
    #[test]
    fn fuzz_accept(
        header in prop::collection::vec(any::<u8>(), 8),
        body in prop::collection::vec(any::<u8>(), 0..1100),
        valid_header in any::<bool>(),
    ) {
        let acceptor = acceptor_for(vec![secret()]);
        let mut hs1 = if valid_header { vec![1, 1, 1, 1, 0, 0, 0, 0] } else { header };
        hs1.extend(body);
        prop_assert!(acceptor.accept(&hs1, None, Limits::default()).is_err());
    }

    /// Arbitrary bytes never panic a client finishing its handshake.
    #[test]
    fn fuzz_finish(body in prop::collection::vec(any::<u8>(), 0..1100), echo in any::<bool>()) {
        let (client, hs1) =
            ClientHandshake::start(&secret(), Suite::Aes256Gcm, Mode::Encrypted, None).unwrap();
        let mut hs2 = if echo { [&[1u8, 2][..], &hs1[2..8]].concat() } else { Vec::new() };
        hs2.extend(body);
        prop_assert_eq!(
            client.finish(&hs2, Limits::default()).unwrap_err(),
            HandshakeError::ServerNotVerified
        );
    }

    /// Arbitrary bytes never panic an opener, before or after authentication, in either mode.
    #[test]
    fn fuzz_open(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..4),
        header in prop::sample::select(vec![0x10u8, 0x11, 0x12, 0x14, 0x15]),
        authed in any::<bool>(),
        plaintext_mode in any::<bool>(),
    ) {
        let mode = if plaintext_mode { Mode::Plaintext } else { Mode::Encrypted };
        let mut s_open = if authed {
            authenticated(Suite::ChaCha20Poly1305, mode, Limits::default()).3
        } else {
            pair(Suite::ChaCha20Poly1305, mode, Limits::default()).1.split().1
        };
        let mut failed = false;
        for (i, body) in frames.into_iter().enumerate() {
            let wire = if i % 2 == 0 { [&[1u8, header, 0, 0, 0, 0, 0, 0][..], &body].concat() } else { body };
            match s_open.open(Bytes::from(wire)) {
                Ok(_) => prop_assert!(mode == Mode::Plaintext && !failed),
                Err(_) => failed = true,
            }
        }
        prop_assert!(failed || mode == Mode::Plaintext);
    }
}

#[test]
fn t16_protocol_junk_is_refused() {
    let (mut c_seal, _, _, _) = authenticated(Suite::Aes256Gcm, Mode::Encrypted, Limits::default());
    let frame = seal(&mut c_seal, FrameKind::Data, b"x")[0].to_vec();
    let cases: [(usize, u8, SessionError); 4] = [
        (0, 2, SessionError::Malformed(Reason::FrameVersion)),
        (1, 0x13, SessionError::Malformed(Reason::FrameType)),
        (2, 0x02, SessionError::Malformed(Reason::UnknownFlags)),
        (3, 0x01, SessionError::Malformed(Reason::FrameReserved)),
    ];
    for (at, value, expected) in cases {
        let (_, _, _, mut s_open) =
            authenticated(Suite::Aes256Gcm, Mode::Encrypted, Limits::default());
        let mut junk = frame.clone();
        junk[at] = value;
        assert_eq!(s_open.open(Bytes::from(junk)), Err(expected.clone()));
        assert_eq!(expected.close().0, CloseCode::ProtocolError);
    }
}

#[test]
fn t19_rekey_across_the_boundary_with_tiny_limits() {
    for suite in SUITES {
        let limits = Limits {
            rekey_after_frames: 4,
            reject_after_frames: 6,
            ..Limits::default()
        };
        let (mut c_seal, _, _, mut s_open) = authenticated(suite, Mode::Encrypted, limits.clone());
        let mut secrets = vec![c_seal.traffic_secret()];
        let mut epochs = Vec::new();
        for i in 0..20u8 {
            let frames = seal(&mut c_seal, FrameKind::Data, &[i; 33]);
            let key_updates = frames.iter().filter(|f| f[1] == 0x11).count();
            assert!(key_updates <= 1);
            let got = open_all(&mut s_open, frames);
            assert_eq!(&got[0].plaintext[..], &[i; 33]);
            assert_eq!(s_open.position(), c_seal.position());
            if key_updates == 1 {
                secrets.push(c_seal.traffic_secret());
                epochs.push(c_seal.position().0);
            }
        }
        // AUTH was frame 0 of epoch 0; then KEY_UPDATE every 4 frames.
        assert_eq!(epochs, [1, 2, 3, 4, 5]);
        let mut distinct = secrets.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), secrets.len(), "every epoch has its own key");

        // Rekeying by bytes.
        let by_bytes = Limits {
            max_frame: 1024,
            rekey_after_bytes: 3000,
            reject_after_bytes: 3000 + 1024 + 24,
            ..Limits::default()
        };
        let (mut c_seal, _, _, mut s_open) = authenticated(suite, Mode::Encrypted, by_bytes);
        let frames = seal(&mut c_seal, FrameKind::Data, &[1; 5000]);
        assert!(frames.iter().any(|f| f[1] == 0x11));
        assert_eq!(open_all(&mut s_open, frames)[0].plaintext.len(), 5000);
        assert!(c_seal.position().0 >= 1);
    }
}

#[test]
fn t19_a_peer_ignoring_the_limit_is_closed_and_we_never_pass_ours() {
    let lax = Limits {
        rekey_after_frames: 100,
        reject_after_frames: 200,
        ..Limits::default()
    };
    let strict = Limits {
        rekey_after_frames: 4,
        reject_after_frames: 6,
        ..Limits::default()
    };
    let (mut c_seal, _, _, mut s_open) =
        authenticated_with(Suite::Aes256Gcm, Mode::Encrypted, lax, strict);
    // AUTH was seq 0; seqs 1..=5 are accepted, seq 6 passes the hard limit.
    for i in 1..=5u8 {
        open_all(&mut s_open, seal(&mut c_seal, FrameKind::Data, &[i]));
    }
    let frame = seal(&mut c_seal, FrameKind::Data, b"too many");
    assert_eq!(
        s_open.open(frame[0].clone()),
        Err(SessionError::LimitExceeded)
    );

    // The epoch counter cannot wrap: the sender refuses, the receiver closes.
    let (mut c_seal, _, _, _) = authenticated(
        Suite::Aes256Gcm,
        Mode::Encrypted,
        Limits {
            rekey_after_frames: 2,
            reject_after_frames: 3,
            ..Limits::default()
        },
    );
    c_seal.force_last_epoch();
    let mut out = Vec::new();
    assert_eq!(
        c_seal.seal(FrameKind::Data, b"x", &mut out),
        Err(SessionError::Exhausted)
    );
    assert!(out.is_empty());
    assert_eq!(
        c_seal.seal(FrameKind::Data, b"x", &mut out),
        Err(SessionError::UnexpectedFrame(Reason::SessionClosed))
    );
    // A KEY_UPDATE at the last epoch: authentic, but the receiver cannot ratchet past it.
    let (mut c_seal, _, _, mut s_open) =
        authenticated(Suite::Aes256Gcm, Mode::Encrypted, Limits::default());
    c_seal.force_last_epoch();
    s_open.force_last_epoch();
    let key_update = c_seal.raw_frame(0x11, 0, b"");
    assert_eq!(s_open.open(key_update), Err(SessionError::LimitExceeded));
}

#[test]
fn invalid_limits_and_configs_are_refused() {
    let secret = secret();
    let bad = [
        Limits {
            max_frame: 100,
            ..Limits::default()
        },
        Limits {
            rekey_after_frames: 0,
            ..Limits::default()
        },
        Limits {
            rekey_after_frames: 10,
            reject_after_frames: 10,
            ..Limits::default()
        },
        Limits {
            rekey_after_bytes: 1 << 37,
            ..Limits::default()
        },
    ];
    for limits in bad {
        let (client, hs1) =
            ClientHandshake::start(&secret, Suite::Aes256Gcm, Mode::Encrypted, None).unwrap();
        assert!(matches!(
            acceptor_for(vec![secret.clone()]).accept(&hs1, None, limits.clone()),
            Err(HandshakeError::Config(_))
        ));
        assert!(matches!(
            client.finish(&[0; 60], limits),
            Err(HandshakeError::Config(_))
        ));
    }
    let config = |f: fn(&mut AcceptorConfig)| {
        let mut config = AcceptorConfig {
            secrets: vec![secret.clone()],
            ..AcceptorConfig::default()
        };
        f(&mut config);
        Acceptor::new(config)
    };
    assert!(matches!(
        config(|c| c.secrets.clear()),
        Err(HandshakeError::Config(_))
    ));
    assert!(matches!(
        config(|c| c.suites.clear()),
        Err(HandshakeError::Config(_))
    ));
    assert!(matches!(
        config(|c| c.max_frame = 100),
        Err(HandshakeError::Config(_))
    ));
    assert!(matches!(
        config(|c| c.max_frame = (16 << 20) + 1),
        Err(HandshakeError::Config(_))
    ));
    assert!(config(|c| c.freshness_window = Some(Duration::from_secs(1))).is_ok());
}

#[test]
fn t20_configuration_mismatches_are_explicit_and_nothing_falls_back() {
    let secret = secret();
    let e_only = Acceptor::new(AcceptorConfig {
        secrets: vec![secret.clone()],
        suites: vec![Suite::ChaCha20Poly1305],
        ..AcceptorConfig::default()
    })
    .unwrap();
    let (_, hs1) =
        ClientHandshake::start(&secret, Suite::ChaCha20Poly1305, Mode::Plaintext, None).unwrap();
    let error = e_only.accept(&hs1, None, Limits::default()).unwrap_err();
    assert_eq!(
        error,
        HandshakeError::Unsupported(Reason::PlaintextNotAllowed)
    );
    assert_eq!(
        error.close(),
        (CloseCode::PolicyViolation, "plaintext mode not allowed")
    );
    let (_, hs1) =
        ClientHandshake::start(&secret, Suite::Aes256Gcm, Mode::Encrypted, None).unwrap();
    assert_eq!(
        e_only.accept(&hs1, None, Limits::default()).unwrap_err(),
        HandshakeError::Unsupported(Reason::UnsupportedSuite)
    );
    // A client binding to TLS meets a server without an exporter.
    let (_, hs1) = ClientHandshake::start(
        &secret,
        Suite::ChaCha20Poly1305,
        Mode::Encrypted,
        Some(&[1; 32]),
    )
    .unwrap();
    assert_eq!(
        e_only.accept(&hs1, None, Limits::default()).unwrap_err(),
        HandshakeError::Unsupported(Reason::BindingUnavailable)
    );
    // T21: a relay between two TLS sessions (different exporters) fails the handshake.
    assert_eq!(
        e_only
            .accept(&hs1, Some(&[2; 32]), Limits::default())
            .unwrap_err(),
        HandshakeError::Rejected
    );
    let (client, hs1) = ClientHandshake::start(
        &secret,
        Suite::ChaCha20Poly1305,
        Mode::Encrypted,
        Some(&[1; 32]),
    )
    .unwrap();
    let (_, hs2) = e_only
        .accept(&hs1, Some(&[1; 32]), Limits::default())
        .unwrap();
    client.finish(&hs2, Limits::default()).unwrap();
}

#[test]
fn t15_frame_order_rules() {
    let suite = Suite::Aes256Gcm;
    let unexpected = |result: Result<Option<Opened>, SessionError>| {
        assert!(
            matches!(result, Err(SessionError::UnexpectedFrame(_))),
            "{result:?}"
        );
    };
    // Sealers: the first frame is AUTH (client) / AUTH_RESULT (server); then DATA and CLOSE only.
    for kind in [FrameKind::Data, FrameKind::AuthResult, FrameKind::Close] {
        let (mut c_seal, _) = pair(suite, Mode::Encrypted, Limits::default()).0.split();
        assert!(matches!(
            c_seal.seal(kind, b"", &mut Vec::new()),
            Err(SessionError::UnexpectedFrame(_))
        ));
    }
    for kind in [FrameKind::Data, FrameKind::Auth, FrameKind::Close] {
        let (mut s_seal, _) = pair(suite, Mode::Encrypted, Limits::default()).1.split();
        assert!(matches!(
            s_seal.seal(kind, b"", &mut Vec::new()),
            Err(SessionError::UnexpectedFrame(_))
        ));
    }
    let (mut c_seal, _, mut s_seal, _) = authenticated(suite, Mode::Encrypted, Limits::default());
    assert!(c_seal.seal(FrameKind::Auth, b"", &mut Vec::new()).is_err());
    assert!(
        s_seal
            .seal(FrameKind::AuthResult, b"", &mut Vec::new())
            .is_err()
    );
    let (mut c_seal, _, _, _) = authenticated(suite, Mode::Encrypted, Limits::default());
    seal(&mut c_seal, FrameKind::Close, b"");
    assert!(
        c_seal.seal(FrameKind::Data, b"", &mut Vec::new()).is_err(),
        "nothing after CLOSE"
    );

    // Openers, with frames forged by a sealer that ignores the rules.
    for (kind, flags) in [(0x10, 0), (0x12, 0), (0x15, 0), (0x11, 0), (0x10, 1)] {
        let (client, server) = pair(suite, Mode::Encrypted, Limits::default());
        let (mut c_seal, _) = client.split();
        let (_, mut s_open) = server.split();
        unexpected(s_open.open(c_seal.raw_frame(kind, flags, b"x")));
    }
    // The server: after AUTH, no DATA until it admitted the client (it
    // reads pipelined DATA only then), and never a second AUTH.
    for kind in [0x10, 0x14] {
        let (client, server) = pair(suite, Mode::Encrypted, Limits::default());
        let (mut c_seal, _) = client.split();
        let (_, mut s_open) = server.split();
        open_all(&mut s_open, seal(&mut c_seal, FrameKind::Auth, b"c"));
        unexpected(s_open.open(c_seal.raw_frame(kind, 0, b"x")));
    }
    // Pipelined DATA opens once the server admitted the client.
    let (client, server) = pair(suite, Mode::Encrypted, Limits::default());
    let (mut c_seal, _) = client.split();
    let (_, mut s_open) = server.split();
    open_all(&mut s_open, seal(&mut c_seal, FrameKind::Auth, b"c"));
    let data = seal(&mut c_seal, FrameKind::Data, b"early");
    s_open.set_authenticated();
    let opened = s_open
        .open(data[0].clone())
        .unwrap()
        .expect("a whole message");
    assert_eq!(&opened.plaintext[..], b"early");
    // The client: DATA only after set_authenticated; CLOSE may follow a refusal.
    let (client, server) = pair(suite, Mode::Encrypted, Limits::default());
    let (_, mut c_open) = client.split();
    let (mut s_seal, _) = server.split();
    unexpected(c_open.open(s_seal.raw_frame(0x10, 0, b"x")));
    let (client, server) = pair(suite, Mode::Encrypted, Limits::default());
    let (_, mut c_open) = client.split();
    let (mut s_seal, _) = server.split();
    open_all(&mut c_open, seal(&mut s_seal, FrameKind::AuthResult, b"no"));
    unexpected(c_open.open(s_seal.raw_frame(0x10, 1, b"x")));
    let (client, server) = pair(suite, Mode::Encrypted, Limits::default());
    let (_, mut c_open) = client.split();
    let (mut s_seal, _) = server.split();
    open_all(&mut c_open, seal(&mut s_seal, FrameKind::AuthResult, b"no"));
    assert_eq!(
        open_all(&mut c_open, seal(&mut s_seal, FrameKind::Close, b"bye"))[0].kind,
        FrameKind::Close
    );
    unexpected(c_open.open(s_seal.raw_frame(0x10, 0, b"x")));

    // After authentication: no second AUTH, no CLOSE inside a MORE chain, no empty MORE chunk,
    // MORE only on DATA.
    for (kind, flags, expect_malformed) in [(0x14, 0, false), (0x15, 0, false), (0x12, 1, true)] {
        let (mut c_seal, _, _, mut s_open) =
            authenticated(suite, Mode::Encrypted, Limits::default());
        let result = s_open.open(c_seal.raw_frame(kind, flags, b"x"));
        if expect_malformed {
            assert_eq!(result, Err(SessionError::Malformed(Reason::MoreNotData)));
        } else {
            unexpected(result);
        }
    }
    let (mut c_seal, _, _, mut s_open) = authenticated(suite, Mode::Encrypted, Limits::default());
    assert_eq!(s_open.open(c_seal.raw_frame(0x10, 1, b"part")), Ok(None));
    unexpected(s_open.open(c_seal.raw_frame(0x12, 0, b"")));
    let (mut c_seal, _, _, mut s_open) = authenticated(suite, Mode::Encrypted, Limits::default());
    assert_eq!(
        s_open.open(c_seal.raw_frame(0x10, 1, b"")),
        Err(SessionError::Malformed(Reason::EmptyMoreChunk))
    );
    let (mut c_seal, _, _, mut s_open) = authenticated(suite, Mode::Encrypted, Limits::default());
    assert_eq!(
        s_open.open(c_seal.raw_frame(0x11, 0, b"x")),
        Err(SessionError::Malformed(Reason::KeyUpdateNotEmpty))
    );
}

#[test]
fn t21_secrets_never_reach_the_wire_or_debug_output() {
    let passphrase = "correct horse battery staple";
    let salt = [7u8; 16];
    let key = [0x5au8; 32];
    // One scrypt run: the passphrase path itself is checked against its vector elsewhere.
    let ikm = keys::scrypt_ikm(passphrase.as_bytes(), &salt);
    for (secret, raw) in [
        (Secret::from_ikm(&ikm), ikm.to_vec()),
        (Secret::from_key(&key), key.to_vec()),
    ] {
        for mode in [Mode::Encrypted, Mode::Plaintext] {
            let mut wire: Vec<u8> = Vec::new();
            let mut debug = format!("{secret:?}");
            let acceptor = acceptor_for(vec![secret.clone()]);
            let (client, hs1) =
                ClientHandshake::start(&secret, Suite::Aes256Gcm, mode, None).unwrap();
            debug += &format!("{client:?}{acceptor:?}");
            let (server, hs2) = acceptor.accept(&hs1, None, Limits::default()).unwrap();
            let (client, hello) = client.finish(&hs2, Limits::default()).unwrap();
            wire.extend(&hs1);
            wire.extend(&hs2);
            let mut secrets = client.secrets_for_test();
            secrets.extend(server.secrets_for_test());
            secrets.push(*secret.psk());
            secrets.push(raw.clone().try_into().unwrap());
            debug += &format!("{client:?}{server:?}{hello:?}");
            let (mut c_seal, c_open) = client.split();
            let (mut s_seal, mut s_open) = server.split();
            let mut frames = seal(&mut c_seal, FrameKind::Auth, b"token");
            frames.extend(seal(&mut s_seal, FrameKind::AuthResult, b"ok"));
            for frame in &frames {
                wire.extend(frame);
            }
            let opened = s_open.open(frames[0].clone()).unwrap();
            debug += &format!("{opened:?}{c_seal:?}{c_open:?}{s_seal:?}{s_open:?}");
            assert!(!debug.contains("token"), "credentials in Debug output");
            for needle in secrets
                .iter()
                .map(|s| &s[..])
                .chain([passphrase.as_bytes()])
            {
                assert!(
                    !wire.windows(16).any(|w| needle.windows(16).any(|n| n == w)),
                    "secret bytes on the wire"
                );
                assert!(
                    !debug.contains(&hex::encode(&needle[..8])),
                    "secret in Debug output"
                );
                assert!(
                    !debug.contains(
                        &format!("{:?}", &needle[..4])
                            .trim_end_matches(']')
                            .to_string()
                    ),
                    "secret bytes in Debug output"
                );
            }
            assert!(!debug.contains(passphrase));
        }
    }
}

#[test]
fn aes_gcm_is_at_least_0_10_3() {
    // RUSTSEC-2023-0096: aes-gcm before 0.10.3 exposed plaintext on a failed tag check.
    let lock = include_str!("../../../Cargo.lock");
    let version = lock
        .split("[[package]]")
        .find(|package| package.contains("name = \"aes-gcm\"\n"))
        .and_then(|package| package.split("version = \"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("aes-gcm is in Cargo.lock");
    let parts: Vec<u64> = version.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(
        parts >= vec![0, 10, 3],
        "aes-gcm {version} is older than 0.10.3"
    );
    assert!(lock.contains("name = \"snow\"\nversion = \"0.10.0\""));
}

#[test]
fn handshake_and_session_errors_map_to_close_codes() {
    assert_eq!(
        HandshakeError::Malformed(Reason::HandshakeLength).close(),
        (CloseCode::ProtocolError, "bad handshake length")
    );
    assert_eq!(
        HandshakeError::Unsupported(Reason::UnsupportedSuite).close(),
        (CloseCode::PolicyViolation, "unsupported suite")
    );
    assert_eq!(
        HandshakeError::Rejected.close(),
        (CloseCode::PolicyViolation, "")
    );
    assert_eq!(
        SessionError::Decrypt.close(),
        (CloseCode::ProtocolError, "decryption failed")
    );
    assert_eq!(
        SessionError::FrameTooLarge.close(),
        (CloseCode::TooBig, "frame too large")
    );
    assert_eq!(
        SessionError::LimitExceeded.close().0,
        CloseCode::ProtocolError
    );
    assert_eq!(SessionError::Exhausted.close().0, CloseCode::InternalError);
    assert_eq!(
        Suite::from_id(Suite::Aes256Gcm.id()),
        Some(Suite::Aes256Gcm)
    );
    assert_eq!(
        Suite::from_id(Suite::ChaCha20Poly1305.id()),
        Some(Suite::ChaCha20Poly1305)
    );
    assert_eq!(Suite::from_id(3), None);
    assert_eq!(Mode::from_id(Mode::Plaintext.id()), Some(Mode::Plaintext));
    assert_eq!(Mode::from_id(0), None);
    let _ = Suite::preferred();
}

#[test]
fn chains_open_alike_from_shared_and_unique_buffers_and_tampering_is_refused() {
    let limits = Limits {
        max_frame: 4096,
        ..Limits::default()
    };
    let message = (0..20_000u32).map(|i| i as u8).collect::<Vec<_>>();
    for suite in SUITES {
        // Shared buffers (as the transport hands them over: the frame is a
        // slice of its read buffer) and unique ones open to the same message.
        for shared in [true, false] {
            let (mut c_seal, _, _, mut s_open) =
                authenticated(suite, Mode::Encrypted, limits.clone());
            for round in 0..2 {
                let frames = seal(&mut c_seal, FrameKind::Data, &message);
                assert!(frames.len() > 2, "{} frames", frames.len());
                let keep: Vec<Bytes> = if shared { frames.clone() } else { Vec::new() };
                let got = open_all(&mut s_open, frames);
                assert_eq!(got.len(), 1, "round {round}");
                assert_eq!(got[0].plaintext, message);
                drop(keep);
                // A single frame after the chain still opens.
                let got = open_all(&mut s_open, seal(&mut c_seal, FrameKind::Data, b"after"));
                assert_eq!(&got[0].plaintext[..], b"after");
            }
        }
        // A flipped bit in a middle chunk's body, tag or header: refused,
        // nothing delivered, and the opener is done.
        for at in [HEADER_LEN, 1000, 4095, 7] {
            let (mut c_seal, _, _, mut s_open) =
                authenticated(suite, Mode::Encrypted, limits.clone());
            let mut frames = seal(&mut c_seal, FrameKind::Data, &message).into_iter();
            assert_eq!(s_open.open(frames.next().unwrap()), Ok(None));
            let mut tampered = frames.next().unwrap().to_vec();
            tampered[at] ^= 0x40;
            assert_eq!(
                s_open.open(Bytes::from(tampered)),
                Err(SessionError::Decrypt),
                "bit flipped at {at}"
            );
            assert!(frames.all(|frame| s_open.open(frame).is_err()));
        }
    }
}

#[test]
fn sealing_parts_is_sealing_their_concatenation() {
    let limits = Limits {
        max_frame: 4096,
        ..Limits::default()
    };
    let message = (0..20_000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>();
    // Splits around and across frame boundaries, with empty parts.
    let splits: [&[usize]; 6] = [
        &[],
        &[0],
        &[1, 1, 4000],
        &[4072, 4073, 8146],
        &[10_000, 10_000, 19_999],
        &[20_000],
    ];
    for mode in [Mode::Plaintext, Mode::Encrypted] {
        for suite in SUITES {
            let (mut whole, _, _, mut whole_open) = authenticated(suite, mode, limits.clone());
            let (mut parted, _, _, mut parted_open) = authenticated(suite, mode, limits.clone());
            for cuts in splits {
                let mut parts = Vec::new();
                let mut from = 0;
                for &cut in cuts {
                    parts.push(&message[from..cut]);
                    from = cut;
                }
                parts.push(&message[from..]);
                let expected = seal(&mut whole, FrameKind::Data, &message);
                let mut frames = Vec::new();
                parted
                    .seal_parts(FrameKind::Data, &parts, &mut frames)
                    .unwrap();
                let lens = |frames: &[Bytes]| frames.iter().map(Bytes::len).collect::<Vec<_>>();
                assert_eq!(lens(&frames), lens(&expected), "{cuts:?}");
                if mode == Mode::Plaintext {
                    assert_eq!(frames, expected, "{cuts:?}");
                }
                let got = open_all(&mut parted_open, frames);
                assert_eq!(got.len(), 1);
                assert_eq!(got[0].plaintext, message);
                open_all(&mut whole_open, expected);
            }
            // Empty parts make one empty DATA, as an empty plaintext does.
            let mut frames = Vec::new();
            parted
                .seal_parts(FrameKind::Data, &[&[], &[]], &mut frames)
                .unwrap();
            let got = open_all(&mut parted_open, frames);
            assert!(got[0].plaintext.is_empty());
        }
    }
}

/// Large messages reuse the sealer's frame buffer once their frames are
/// gone (no fresh memory per message), stay correct, and a quiet
/// connection gives the buffer back.
#[test]
fn sealing_reuses_the_frame_buffer_once_its_frames_are_dropped() {
    let limits = Limits {
        max_message: 4 << 20,
        ..Limits::default()
    };
    let (mut c_seal, _c_open, _s_seal, mut s_open) =
        authenticated(Suite::Aes256Gcm, Mode::Encrypted, limits);
    let message = vec![7u8; 3 << 20];
    let first = seal(&mut c_seal, FrameKind::Data, &message);
    assert!(first.len() > 1, "a MORE chain");
    // The allocation the first message's frames were cut from (the AUTH frame
    // came before them in it).
    let start = first[0].as_ptr() as usize;
    let end = first
        .last()
        .map_or(start, |f| f.as_ptr() as usize + f.len());
    let opened = open_all(&mut s_open, first);
    assert_eq!(
        opened.last().map(|o| o.plaintext.to_vec()),
        Some(message.clone())
    );
    let second = seal(&mut c_seal, FrameKind::Data, &message);
    let reused = second[0].as_ptr() as usize;
    assert!(
        (start.saturating_sub(64)..end).contains(&reused),
        "the second message's frames are cut from the same allocation"
    );
    let opened = open_all(&mut s_open, second);
    assert_eq!(opened.last().map(|o| o.plaintext.to_vec()), Some(message));
    assert!(c_seal.buffer_capacity() > 64 * 1024, "kept between seals");
    c_seal.release_buffer();
    assert_eq!(
        c_seal.buffer_capacity(),
        0,
        "the large buffer was given back"
    );
    let small = seal(&mut c_seal, FrameKind::Data, b"hello");
    assert_eq!(open_all(&mut s_open, small)[0].plaintext.as_ref(), b"hello");
}

#[test]
fn a_chain_reuses_the_last_large_message_once_its_reader_let_go() {
    let limits = Limits {
        max_frame: 16 * 1024,
        ..Limits::default()
    };
    let (mut c_seal, _, _, mut s_open) = authenticated(Suite::Aes256Gcm, Mode::Encrypted, limits);
    let message = (0..100_000u32).map(|i| (i * 13) as u8).collect::<Vec<_>>();
    let mut receive = |opener: &mut Opener| {
        let frames = seal(&mut c_seal, FrameKind::Data, &message);
        assert!(frames.len() > 2, "a MORE chain");
        let opened = open_all(opener, frames);
        assert_eq!(opened.len(), 1);
        assert_eq!(opened[0].plaintext, message);
        opened
            .into_iter()
            .next()
            .map(|o| o.plaintext)
            .unwrap_or_default()
    };

    let first = receive(&mut s_open);
    let at = first.as_ptr();
    drop(first);
    let second = receive(&mut s_open);
    assert_eq!(
        second.as_ptr(),
        at,
        "the released message's buffer is reused"
    );

    // Still held by its reader: the next chain gets a buffer of its own,
    // and the held message is untouched.
    let third = receive(&mut s_open);
    assert_ne!(third.as_ptr(), second.as_ptr());
    assert_eq!(second, message);
    drop((second, third));

    // Given back when the connection is quiet: nothing to reuse after.
    s_open.release_buffer();
    let fourth = receive(&mut s_open);
    assert_eq!(fourth, message);
}

/// The walk-through that used to open the module's docs: both ends in one
/// process, each `Vec<u8>` / `Bytes` one binary WebSocket message.
#[test]
fn both_ends_in_one_process() -> Result<(), Box<dyn std::error::Error>> {
    let secret = Secret::from_base64(&generate_key())?;
    let acceptor = Acceptor::new(AcceptorConfig {
        secrets: vec![secret.clone()],
        ..AcceptorConfig::default()
    })?;

    let (handshake, hs1) =
        ClientHandshake::start(&secret, Suite::preferred(), Mode::Encrypted, None)?;
    let (server, hs2) = acceptor.accept(&hs1, None, Limits::default())?;
    let (client, hello) = handshake.finish(&hs2, Limits::default())?;
    assert_eq!(client.handshake_hash(), server.handshake_hash());
    assert_eq!(hello.max_frame, 1 << 20);

    let (mut client_tx, mut client_rx) = client.split();
    let (mut server_tx, mut server_rx) = server.split();
    let mut wire = Vec::new();
    client_tx.seal(FrameKind::Auth, b"\x81\xa5token\xa2ok", &mut wire)?;
    let auth = server_rx
        .open(wire.remove(0))?
        .expect("AUTH is a whole message");
    assert_eq!(auth.kind, FrameKind::Auth);

    server_tx.seal(FrameKind::AuthResult, b"\x81\xa2ok\xc3", &mut wire)?;
    server_rx.set_authenticated();
    client_rx.open(wire.remove(0))?;
    client_rx.set_authenticated();

    client_tx.seal(FrameKind::Data, &vec![0u8; 3 << 20], &mut wire)?; // a MORE chain
    let mut delivered = None;
    for frame in wire.drain(..) {
        delivered = server_rx.open(frame)?.or(delivered);
    }
    assert_eq!(delivered.map(|m| m.plaintext.len()), Some(3 << 20));
    Ok(())
}

#[test]
fn a_frame_in_a_buffer_of_its_own_is_opened_where_it_lies() {
    for mode in [Mode::Encrypted, Mode::Plaintext] {
        let (mut c_seal, _, _, mut s_open) =
            authenticated(Suite::Aes256Gcm, mode, Limits::default());
        let frame = seal(&mut c_seal, FrameKind::Data, b"a call, say")
            .pop()
            .unwrap();
        let wire = BytesMut::from(&frame[..]);
        let inside = wire.as_ptr_range();
        let Ok(Some(opened)) = s_open.open_owned(wire) else {
            panic!("the frame opens ({mode:?})");
        };
        assert_eq!(&opened.plaintext[..], b"a call, say");
        assert!(
            inside.contains(&opened.plaintext.as_ptr()),
            "the plaintext is a view of the received buffer, not a copy ({mode:?})"
        );
    }
}
