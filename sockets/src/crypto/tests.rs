//! Sans-IO security tests of the handshake and the session (the layer's share of T1–T22).

use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use super::handshake::{HandshakeError, Seam, dh_count};
use super::session::{AUTH_MAX_FRAME, HEADER_LEN};
use super::*;
use crate::protocol::CloseCode;

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
            HandshakeError::Malformed("bad handshake length")
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
                Err(SessionError::UnexpectedFrame("session closed")),
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
                        assert_eq!(result, Err(SessionError::Malformed("frame too short")));
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
