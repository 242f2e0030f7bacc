//! Sans-IO security tests of the handshake and the session (the layer's share of T1–T22).

use bytes::Bytes;

use super::handshake::Seam;
use super::*;

/// A client and server session for `secret`, through the public API.
pub(super) fn pair(suite: Suite, mode: Mode, limits: Limits) -> (Session, Session) {
    let secret = Secret::from_key(&[42; 32]);
    let config = AcceptorConfig {
        secrets: vec![secret.clone()],
        allow_plaintext: true,
        ..AcceptorConfig::default()
    };
    let acceptor = Acceptor::new(config).unwrap();
    let (client, hs1) = ClientHandshake::start(&secret, suite, mode, None).unwrap();
    let (server, hs2) = acceptor.accept(&hs1, None, limits.clone()).unwrap();
    let (client, hello) = client.finish(&hs2, limits).unwrap();
    assert_eq!(hello.max_frame, 1 << 20);
    (client, server)
}

fn open_all(opener: &mut Opener, frames: Vec<Bytes>) -> Vec<Opened> {
    frames
        .into_iter()
        .filter_map(|frame| opener.open(frame).unwrap())
        .collect()
}

#[test]
fn happy_path_both_suites_both_modes() {
    let _ = Seam::REAL;
    let before = handshake::dh_count();
    for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
        for mode in [Mode::Encrypted, Mode::Plaintext] {
            let (client, server) = pair(suite, mode, Limits::default());
            assert_eq!(client.handshake_hash(), server.handshake_hash());
            assert!(handshake::dh_count() > before);
            assert_eq!(*client.export(b"x"), *server.export(b"x"));
            assert_ne!(*client.export(b"x"), *client.export(b"y"));
            let (mut c_seal, mut c_open) = client.split();
            let (mut s_seal, mut s_open) = server.split();
            let mut out = Vec::new();
            c_seal.seal(FrameKind::Auth, b"creds", &mut out).unwrap();
            let got = open_all(&mut s_open, std::mem::take(&mut out));
            assert_eq!(got[0].kind, FrameKind::Auth);
            assert_eq!(&got[0].plaintext[..], b"creds");
            s_seal.seal(FrameKind::AuthResult, b"ok", &mut out).unwrap();
            s_open.set_authenticated();
            let got = open_all(&mut c_open, std::mem::take(&mut out));
            assert_eq!(&got[0].plaintext[..], b"ok");
            c_open.set_authenticated();
            let big = vec![7u8; 3 << 20];
            c_seal.seal(FrameKind::Data, &big, &mut out).unwrap();
            assert_eq!(out.len(), 4, "3 MiB in 1 MiB frames");
            let got = open_all(&mut s_open, std::mem::take(&mut out));
            assert_eq!(c_seal.position(), s_open.position());
            let sent = if mode == Mode::Encrypted { 5 } else { 0 };
            assert_eq!(c_seal.position(), (0, sent));
            assert_ne!(c_seal.traffic_secret(), s_seal.traffic_secret());
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].plaintext, big);
            s_seal.seal(FrameKind::Close, b"bye", &mut out).unwrap();
            let got = open_all(&mut c_open, std::mem::take(&mut out));
            assert_eq!(got[0].kind, FrameKind::Close);
        }
    }
}
