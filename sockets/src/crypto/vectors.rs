//! The rpcws1 test vectors: docs/vectors/rpcws1.json, reproduced byte for byte.
//!
//! Each case is recomputed from its inputs through the real handshake and
//! session (fixed ephemerals and clock through the `cfg(test)` seam) and must
//! equal the file. The file's values that PROTOCOL-NOTES.md Appendix C states
//! (from an independent implementation) are also checked against a copy of
//! that appendix here. `RPCWS1_BLESS=1 cargo test -p sockets --lib vectors`
//! rewrites the file after a deliberate change (then review the diff).

use bytes::Bytes;
use serde_json::{Value, json};

use super::handshake::{HandshakeError, Seam};
use super::schedule::{self, expand};
use super::session::{Session, SessionError};
use super::*;

const FILE: &str = include_str!("../../../docs/vectors/rpcws1.json");
const FILE_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/vectors/rpcws1.json");

/// The cacophony ephemerals (snow's tests/vectors/cacophony.txt).
const E_C: &str = "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a";
const E_S: &str = "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b";
const PASSPHRASE: &str = "correct horse battery staple";
const SALT: &str = "000102030405060708090a0b0c0d0e0f";
const TS_MS: u64 = 1_700_000_000_000;
const MF: u32 = 1 << 24;
const AUTH: &str = "81a5746f6b656ea574306b336e"; // {"token":"t0k3n"}
const AUTH_RESULT: &str = "81a26f6bc3"; // {"ok":true}
const DATA_C2S: &str = "940001a470696e6790"; // [0,1,"ping",[]] as in Appendix C (opaque here)
const DATA_S2C: &str = "94010100c401c0"; // reply envelope [1, 1, 0, bin(nil)]

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap()
}

fn key32(text: &str) -> [u8; 32] {
    unhex(text).try_into().unwrap()
}

/// One case's inputs.
#[derive(Clone)]
struct Input {
    name: &'static str,
    suite: Suite,
    mode: Mode,
    tls_exporter: Option<[u8; 32]>,
}

fn inputs() -> Vec<Input> {
    vec![
        Input {
            name: "E, AES-256-GCM",
            suite: Suite::Aes256Gcm,
            mode: Mode::Encrypted,
            tls_exporter: None,
        },
        Input {
            name: "E, ChaCha20-Poly1305",
            suite: Suite::ChaCha20Poly1305,
            mode: Mode::Encrypted,
            tls_exporter: None,
        },
        Input {
            name: "P, AES-256-GCM, TLS exporter bound",
            suite: Suite::Aes256Gcm,
            mode: Mode::Plaintext,
            tls_exporter: Some([0xaa; 32]),
        },
    ]
}

fn limits() -> Limits {
    Limits {
        max_frame: MF as usize,
        rekey_after_frames: 2,
        ..Limits::default()
    }
}

fn seam(ephemeral: &str) -> Seam {
    Seam {
        ephemeral: Some(key32(ephemeral)),
        now_ms: Some(TS_MS),
    }
}

/// The deterministic handshake of a case: (client session, server session, hs1, hs2).
fn handshake(secret: &Secret, input: &Input) -> (Session, Session, Vec<u8>, Vec<u8>) {
    let exporter = input.tls_exporter.as_ref();
    let (client, hs1) =
        ClientHandshake::start_with(secret, input.suite, input.mode, exporter, &seam(E_C)).unwrap();
    let (server, hs2) = acceptor(secret)
        .accept_with(&hs1, exporter, limits(), &seam(E_S))
        .unwrap();
    let (client, hello) = client.finish(&hs2, limits()).unwrap();
    assert_eq!(hello.max_frame, MF);
    (client, server, hs1, hs2)
}

fn acceptor(secret: &Secret) -> Acceptor {
    Acceptor::new(AcceptorConfig {
        secrets: vec![secret.clone()],
        allow_plaintext: true,
        max_frame: MF,
        ..AcceptorConfig::default()
    })
    .unwrap()
}

/// A snow builder with a PSK in slot 0, a prologue and a fixed ephemeral.
fn noise_builder<'a>(
    name: &str,
    psk: &'a [u8; 32],
    prologue: &'a [u8],
    ephemeral: &'a [u8],
) -> snow::Builder<'a> {
    snow::Builder::new(name.parse().unwrap())
        .psk(0, psk)
        .unwrap()
        .prologue(prologue)
        .unwrap()
        .fixed_ephemeral_key_for_testing_only(ephemeral)
}

/// Noise's raw split and hash for the case, computed with snow directly (not through our code).
fn noise_reference(psk: &[u8; 32], input: &Input, hs1: &[u8]) -> ([u8; 32], [u8; 32], [u8; 32]) {
    let mut prologue = b"rpcws1 prologue".to_vec();
    prologue.extend_from_slice(&hs1[..8]);
    if let Some(exporter) = &input.tls_exporter {
        prologue.extend_from_slice(exporter);
    }
    let (e_c, e_s) = (unhex(E_C), unhex(E_S));
    let name = input.suite.noise_name();
    let mut initiator = noise_builder(name, psk, &prologue, &e_c)
        .build_initiator()
        .unwrap();
    let mut responder = noise_builder(name, psk, &prologue, &e_s)
        .build_responder()
        .unwrap();
    let (mut m1, mut m2, mut payload) = ([0u8; 1024], [0u8; 1024], [0u8; 1024]);
    let n1 = initiator
        .write_message(&unhex("81a27473cf0000018bcfe56800"), &mut m1)
        .unwrap();
    assert_eq!(&m1[..n1], &hs1[8..], "HS1 body equals snow's message 1");
    responder.read_message(&m1[..n1], &mut payload).unwrap();
    let n2 = responder
        .write_message(&unhex("81a26d66ce01000000"), &mut m2)
        .unwrap();
    initiator.read_message(&m2[..n2], &mut payload).unwrap();
    let h: [u8; 32] = initiator.get_handshake_hash().try_into().unwrap();
    let (k_i2r, k_r2i) = initiator.dangerously_get_raw_split();
    assert_eq!(responder.dangerously_get_raw_split(), (k_i2r, k_r2i));
    (h, k_i2r, k_r2i)
}

fn frame_json(dir: &str, frame: &Bytes, plaintext: &str) -> Value {
    let epoch = u32::from_be_bytes(frame[4..8].try_into().unwrap());
    let kind = match frame[1] {
        0x10 => "DATA",
        0x11 => "KEY_UPDATE",
        0x12 => "CLOSE",
        0x14 => "AUTH",
        _ => "AUTH_RESULT",
    };
    json!({"dir": dir, "type": kind, "epoch": epoch, "plaintext": plaintext, "wire": hex::encode(frame)})
}

fn error_name(error: &SessionError) -> &'static str {
    match error {
        SessionError::Malformed(_) => "malformed",
        SessionError::Decrypt => "decrypt",
        SessionError::UnexpectedFrame(_) => "unexpected_frame",
        SessionError::FrameTooLarge => "frame_too_large",
        SessionError::MessageTooLarge => "message_too_large",
        SessionError::LimitExceeded => "limit_exceeded",
        SessionError::Exhausted => "exhausted",
    }
}

/// Computes every output of a case through the real code.
fn run_case(secret: &Secret, input: &Input) -> Value {
    let (client, server, hs1, hs2) = handshake(secret, input);
    let (h, k_i2r, k_r2i) = noise_reference(secret.psk(), input, &hs1);
    assert_eq!(client.handshake_hash(), h);
    assert_eq!(server.handshake_hash(), h);
    let prk = schedule::prk(&h, &k_i2r, &k_r2i);
    let ts_c2s_0 = expand(&prk, b"rpcws1 c2s");
    let ts_s2c_0 = expand(&prk, b"rpcws1 s2c");
    let ts_c2s_1 = expand(&ts_c2s_0, b"rpcws1 update");
    let exporter = expand(&prk, b"rpcws1 exporter");
    let fin_c = expand(&prk, b"rpcws1 client finished");
    let export = client.export(b"token-binding");
    assert_eq!(*export, *server.export(b"token-binding"));

    let (mut c_seal, mut c_open) = client.split();
    let (mut s_seal, mut s_open) = server.split();
    assert_eq!(c_seal.traffic_secret(), *ts_c2s_0);
    assert_eq!(s_seal.traffic_secret(), *ts_s2c_0);
    let mut c2s = Vec::new();
    let mut s2c = Vec::new();
    c_seal
        .seal(FrameKind::Auth, &unhex(AUTH), &mut c2s)
        .unwrap();
    s_seal
        .seal(FrameKind::AuthResult, &unhex(AUTH_RESULT), &mut s2c)
        .unwrap();
    c_seal
        .seal(FrameKind::Data, &unhex(DATA_C2S), &mut c2s)
        .unwrap();
    c_seal
        .seal(FrameKind::Data, &unhex(DATA_C2S), &mut c2s)
        .unwrap();
    s_seal
        .seal(FrameKind::Data, &unhex(DATA_S2C), &mut s2c)
        .unwrap();
    if input.mode == Mode::Encrypted {
        assert_eq!(
            c_seal.traffic_secret(),
            *ts_c2s_1,
            "ratcheted after KEY_UPDATE"
        );
    }

    let mut frames = Vec::new();
    let mut opened = Vec::new();
    for frame in &c2s {
        if let Some(message) = s_open.open(frame.clone()).unwrap() {
            opened.push(hex::encode(&message.plaintext));
        }
        s_open.set_authenticated();
    }
    for frame in &s2c {
        if let Some(message) = c_open.open(frame.clone()).unwrap() {
            opened.push(hex::encode(&message.plaintext));
        }
        c_open.set_authenticated();
    }
    assert_eq!(opened, [AUTH, DATA_C2S, DATA_C2S, AUTH_RESULT, DATA_S2C]);
    let c2s_plain = if input.mode == Mode::Encrypted {
        vec![AUTH, DATA_C2S, "", DATA_C2S]
    } else {
        vec![AUTH, DATA_C2S, DATA_C2S]
    };
    for (frame, plaintext) in c2s.iter().zip(c2s_plain) {
        frames.push(frame_json("c2s", frame, plaintext));
    }
    for (frame, plaintext) in s2c.iter().zip([AUTH_RESULT, DATA_S2C]) {
        frames.push(frame_json("s2c", frame, plaintext));
    }

    let mut out = json!({
        "prologue": hex::encode([b"rpcws1 prologue".as_slice(), &hs1[..8], input.tls_exporter.as_ref().map_or(&[][..], |e| &e[..])].concat()),
        "hs1": hex::encode(&hs1),
        "hs2": hex::encode(&hs2),
        "h": hex::encode(h),
        "k_i2r": hex::encode(k_i2r),
        "k_r2i": hex::encode(k_r2i),
        "prk": hex::encode(*prk),
        "ts_c2s_0": hex::encode(*ts_c2s_0),
        "ts_s2c_0": hex::encode(*ts_s2c_0),
        "key_c2s_0": hex::encode(*expand(&ts_c2s_0, b"rpcws1 key")),
        "key_s2c_0": hex::encode(*expand(&ts_s2c_0, b"rpcws1 key")),
        "ts_c2s_1": hex::encode(*ts_c2s_1),
        "key_c2s_1": hex::encode(*expand(&ts_c2s_1, b"rpcws1 key")),
        "exporter": hex::encode(*exporter),
        "export_token_binding": hex::encode(*export),
        "frames": frames,
        "negative_frames": negatives(secret, input, &c2s, &s2c),
        "negative_handshakes": handshake_negatives(secret, input, &hs1, &hs2),
    });
    if input.mode == Mode::Plaintext {
        out["fin_c"] = json!(hex::encode(*fin_c));
        out["finished_mac"] = json!(hex::encode(*schedule::finished_mac(&fin_c, &h)));
    }
    out
}

/// Tampered c2s frames: (description, frames delivered first, wire).
fn tampered(input: &Input, c2s: &[Bytes], s2c: &[Bytes]) -> Vec<(&'static str, usize, Vec<u8>)> {
    let flip = |frame: &Bytes, at: usize, bit: u8| {
        let mut wire = frame.to_vec();
        let at = at.min(wire.len() - 1);
        wire[at] ^= bit;
        wire
    };
    let auth = &c2s[0];
    let last = auth.len() - 1;
    let mut cases = vec![
        ("AUTH with a header version of 2", 0, flip(auth, 0, 0x03)),
        ("AUTH with an unknown flag bit", 0, flip(auth, 2, 0x80)),
        ("AUTH with the reserved byte set", 0, flip(auth, 3, 0x01)),
        (
            "AUTH cut to 23 bytes (shorter than a header and a tag)",
            0,
            auth[..session::HEADER_LEN + 15].to_vec(),
        ),
    ];
    match input.mode {
        Mode::Encrypted => cases.extend([
            ("AUTH with a ciphertext bit flipped", 0, flip(auth, 8, 0x01)),
            ("AUTH with a tag bit flipped", 0, flip(auth, last, 0x80)),
            (
                "AUTH with its type rewritten to DATA",
                0,
                flip(auth, 1, 0x04),
            ),
            ("AUTH with its epoch rewritten to 1", 0, flip(auth, 7, 0x01)),
            ("AUTH truncated by one byte", 0, auth[..last].to_vec()),
            (
                "the server's AUTH_RESULT reflected to the server",
                0,
                s2c[0].to_vec(),
            ),
            ("AUTH replayed as the second frame", 1, auth.to_vec()),
            (
                "DATA seq 1 dropped: KEY_UPDATE (seq 2) arrives next",
                1,
                c2s[2].to_vec(),
            ),
            (
                "epoch-1 DATA before the KEY_UPDATE that starts epoch 1",
                2,
                c2s[3].to_vec(),
            ),
            (
                "epoch-0 DATA replayed after the KEY_UPDATE",
                3,
                c2s[1].to_vec(),
            ),
        ]),
        Mode::Plaintext => cases.extend([
            (
                "AUTH with a finished-MAC bit flipped",
                0,
                flip(auth, 8, 0x01),
            ),
            (
                "AUTH without its finished MAC",
                0,
                [&auth[..8], &auth[40..]].concat(),
            ),
            ("KEY_UPDATE in plaintext mode", 1, unhex("0111000000000000")),
        ]),
    }
    cases
}

fn negatives(secret: &Secret, input: &Input, c2s: &[Bytes], s2c: &[Bytes]) -> Value {
    let mut out = Vec::new();
    for (description, after, wire) in tampered(input, c2s, s2c) {
        let error = deliver(secret, input, after, &wire, c2s);
        out.push(json!({"description": description, "after_c2s_frames": after, "wire": hex::encode(&wire), "error": error}));
    }
    Value::Array(out)
}

/// Delivers `after` good c2s frames to a fresh server session, then `wire`; returns the error's name.
fn deliver(secret: &Secret, input: &Input, after: usize, wire: &[u8], c2s: &[Bytes]) -> String {
    let (_, server, _, _) = handshake(secret, input);
    let (_, mut opener) = server.split();
    for frame in &c2s[..after] {
        opener.open(frame.clone()).unwrap();
        opener.set_authenticated();
    }
    let error = opener
        .open(Bytes::copy_from_slice(wire))
        .expect_err("a tampered frame must be rejected");
    error_name(&error).to_owned()
}

fn handshake_error_name(error: &HandshakeError) -> &'static str {
    match error {
        HandshakeError::Malformed(_) => "malformed",
        HandshakeError::Unsupported(_) => "unsupported",
        HandshakeError::Rejected => "rejected",
        HandshakeError::Stale => "stale",
        HandshakeError::ServerNotVerified => "server_not_verified",
        _ => "other",
    }
}

/// Rewritten handshake messages: downgrades and tampering.
fn handshake_negatives(secret: &Secret, input: &Input, hs1: &[u8], hs2: &[u8]) -> Value {
    let exporter = input.tls_exporter.as_ref();
    let rewrite = |message: &[u8], at: usize, value: u8| {
        let mut message = message.to_vec();
        message[at] = value;
        message
    };
    let other_suite = if input.suite == Suite::Aes256Gcm {
        2
    } else {
        1
    };
    let other_mode = if input.mode == Mode::Encrypted { 2 } else { 1 };
    let mut out = Vec::new();
    let hs1_cases = [
        ("HS1 suite byte rewritten", rewrite(hs1, 2, other_suite)),
        ("HS1 mode byte rewritten", rewrite(hs1, 3, other_mode)),
        ("HS1 TLS-binding flag toggled", rewrite(hs1, 4, hs1[4] ^ 1)),
        ("HS1 resumption flag toggled", rewrite(hs1, 4, hs1[4] ^ 2)),
        ("HS1 version rewritten to 2", rewrite(hs1, 0, 2)),
        ("HS1 ephemeral key bit flipped", rewrite(hs1, 8, hs1[8] ^ 1)),
        (
            "HS1 tag bit flipped",
            rewrite(hs1, hs1.len() - 1, hs1[hs1.len() - 1] ^ 1),
        ),
    ];
    for (description, message) in hs1_cases {
        // Toggling the binding flag off leaves a valid header the server can check.
        let error = acceptor(secret)
            .accept_with(
                &message,
                exporter.or(Some(&[0xaa; 32])),
                limits(),
                &seam(E_S),
            )
            .expect_err("a rewritten HS1 must be refused");
        out.push(json!({"description": description, "hs1": hex::encode(&message), "error": handshake_error_name(&error)}));
    }
    let hs2_cases = [
        ("HS2 type byte left at 1", rewrite(hs2, 1, 1)),
        ("HS2 suite byte rewritten", rewrite(hs2, 2, other_suite)),
        ("HS2 mode byte rewritten", rewrite(hs2, 3, other_mode)),
        ("HS2 ephemeral key bit flipped", rewrite(hs2, 8, hs2[8] ^ 1)),
        (
            "HS2 tag bit flipped",
            rewrite(hs2, hs2.len() - 1, hs2[hs2.len() - 1] ^ 1),
        ),
    ];
    for (description, message) in hs2_cases {
        let (client, _) =
            ClientHandshake::start_with(secret, input.suite, input.mode, exporter, &seam(E_C))
                .unwrap();
        let error = client
            .finish(&message, limits())
            .expect_err("a rewritten HS2 must be refused");
        out.push(json!({"description": description, "hs2": hex::encode(&message), "error": handshake_error_name(&error)}));
    }
    Value::Array(out)
}

/// The resumption of docs/PROTOCOL.md §9.6: the first case's connection is
/// resumed on a second one (same inputs, flags bit 1 set) as session 5.
fn resumption(secret: &Secret) -> Value {
    let input = &inputs()[0];
    let (first, first_server, _, _) = handshake(secret, input);
    let rs = first.resumption_secret();
    assert_eq!(rs.bytes(), first_server.resumption_secret().bytes());
    let (client, hs1) =
        ClientHandshake::start_flagged(secret, input.suite, input.mode, None, true, &seam(E_C))
            .unwrap();
    let (server, hs2) = acceptor(secret)
        .accept_with(&hs1, None, limits(), &seam(E_S))
        .unwrap();
    let (client, _) = client.finish(&hs2, limits()).unwrap();
    assert!(server.resuming() && client.resuming());
    let h_new = client.handshake_hash();
    assert_eq!(h_new, server.handshake_hash());
    let id = 5;
    let proof = rs.proof(&h_new, id);
    assert!(rs.verify(&h_new, id, &proof));
    let request = crate::protocol::payloads::Resume {
        id,
        proof: serde_bytes::ByteBuf::from(proof.to_vec()),
    };
    // [credentials, {"id": 5, "proof": bin}]
    let auth = [
        &[0x92][..],
        &unhex(AUTH),
        &crate::protocol::codec::to_vec(&request).unwrap(),
    ]
    .concat();
    let (credentials, resume) = crate::protocol::codec::split_pair(&auth).unwrap();
    assert_eq!(credentials, unhex(AUTH));
    assert_eq!(
        crate::protocol::codec::decode_value::<crate::protocol::payloads::Resume>(resume).unwrap(),
        request
    );
    json!({
        "about": "The connection of the first case, resumed on a second connection with the same ephemerals and clock and flags bit 1 set in HS1, as session id 5.",
        "rs": hex::encode(rs.bytes()),
        "hs1": hex::encode(&hs1),
        "h_new": hex::encode(h_new),
        "id": id,
        "proof": hex::encode(proof),
        "auth_plaintext": hex::encode(&auth),
        "rs_new": hex::encode(client.resumption_secret().bytes()),
    })
}

/// The whole file's content, computed.
fn generate() -> Value {
    let ikm = keys::scrypt_ikm(PASSPHRASE.as_bytes(), &unhex(SALT));
    let secret = Secret::from_passphrase(PASSPHRASE, &unhex(SALT)).unwrap();
    let key = key32("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    let cases: Vec<Value> = inputs()
        .iter()
        .map(|input| {
            json!({
                "name": input.name,
                "inputs": {
                    "suite": input.suite.id(),
                    "mode": input.mode.id(),
                    "flags": u8::from(input.tls_exporter.is_some()),
                    "tls_exporter": input.tls_exporter.map(hex::encode),
                },
                "outputs": run_case(&secret, input),
            })
        })
        .collect();
    json!({
        "protocol": "rpcws1",
        "about": "Test vectors of docs/PROTOCOL.md. All byte strings are hex. Every value is reproduced by sockets/src/crypto/vectors.rs. The values PROTOCOL-NOTES.md Appendix C lists (psk, scrypt_out, hs1, hs2, h, k_i2r, k_r2i, prk, ts_c2s_0, ts_s2c_0, key_c2s_0, key_s2c_0, exporter, ts_c2s_1, key_c2s_1, the AUTH, AUTH_RESULT, DATA, KEY_UPDATE and epoch-1 DATA frames, fin_c and the P-mode AUTH) come from an independent implementation and match. Filled in by this implementation (Appendix E.6 gaps and additions): prk and traffic secrets for ChaCha20-Poly1305; k_i2r, k_r2i, prk, traffic keys, exporter, AUTH_RESULT and DATA for P mode; s2c DATA seq 1; the key-mode PSK; export_token_binding; finished_mac; all negative vectors.",
        "common_inputs": {
            "passphrase": PASSPHRASE,
            "salt": SALT,
            "scrypt": {"log_n": 17, "r": 8, "p": 1, "dk_len": 32},
            "e_c_priv": E_C,
            "e_s_priv": E_S,
            "ts_ms": TS_MS,
            "payload1": "81a27473cf0000018bcfe56800",
            "payload2": "81a26d66ce01000000",
            "mf": MF,
            "rekey_after_frames": 2,
            "auth": AUTH,
            "auth_result": AUTH_RESULT,
            "data_c2s": DATA_C2S,
            "data_s2c": DATA_S2C,
            "export_label": "token-binding",
        },
        "scrypt_out": hex::encode(*ikm),
        "psk": hex::encode(secret.psk()),
        "key_mode": {"key": hex::encode(key), "psk": hex::encode(Secret::from_key(&key).psk())},
        "cases": cases,
        "resumption": resumption(&secret),
    })
}

/// Appendix C of PROTOCOL-NOTES.md, as printed there: (case index, field, value).
const APPENDIX_C: &[(usize, &str, &str)] = &[
    (
        0,
        "prologue",
        "7270637773312070726f6c6f6775650101010100000000",
    ),
    (
        0,
        "hs1",
        "0101010100000000ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944800ed2832ac4307d933b16dbfc42a8262807176b8e05a0dc26c6f2ae28",
    ),
    (
        0,
        "hs2",
        "010201010000000095ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843dc5d306a88aba11dc5d4e2397175920a75aa12a2fbb79c575b",
    ),
    (
        0,
        "h",
        "777a7ed854556bc04cae84c3386b1e6cb8672456d34d82e84732d631c03103ed",
    ),
    (
        0,
        "k_i2r",
        "4c07c13a865458075d6a3c0460300def4297939b118caa256b9861e5b4bb766a",
    ),
    (
        0,
        "k_r2i",
        "390ac57a09a7cd4dfc35872a41a7771e8673399ecd8e97466f57a90df9b32b3e",
    ),
    (
        0,
        "prk",
        "317e18912b53c683229ffa159e09018002bccfde3f3002f82df8de03faee49c2",
    ),
    (
        0,
        "ts_c2s_0",
        "d0c662751d316ff23e097262f9b062425e7dac72bdbf1e85c330b503cadbb9ba",
    ),
    (
        0,
        "ts_s2c_0",
        "940e5b45b6578fc434540ff5c31186f0977bcc89f453246b2a9035063bf16ab7",
    ),
    (
        0,
        "key_c2s_0",
        "b28d215d17671f14c42d1eac824220d5ef628822fc31606963c42c30e8605069",
    ),
    (
        0,
        "key_s2c_0",
        "2dd5d562933aa82d8b16a9500e24568d1dfc50044a48314064d390b1c13c553c",
    ),
    (
        0,
        "exporter",
        "f58be99c526e5bab75064f72a72127fe6c03bb9c72b502a67934b7fbbd1077a8",
    ),
    (
        0,
        "ts_c2s_1",
        "cf082ba2e40137ebe40670d660b710ec81bcd0233020bbe84d173a707bea9ccb",
    ),
    (
        0,
        "key_c2s_1",
        "0210cfc7deaf05434f7aee44690f684c5d7918e21a305c25e1b3a2170316765d",
    ),
    (
        0,
        "frame c2s AUTH",
        "011400000000000071ba619ff21662b2e47b8abf6745bb4b08fa36cf3c36bad12b1dc4f844",
    ),
    (
        0,
        "frame s2c AUTH_RESULT",
        "0115000000000000695f02a7a30d82f84fb99888f889c87330e2f1073e",
    ),
    (
        0,
        "frame c2s DATA",
        "011000000000000076993161c07c94054c27b637bc2d9ddeae376c798ab38fd1dc",
    ),
    (
        0,
        "frame c2s KEY_UPDATE",
        "0111000000000000b7bdfe4242736cae2b6748e65d72bccd",
    ),
    (
        0,
        "frame c2s DATA epoch 1",
        "0110000000000001032ae722699ef47fe2150fe5d01b88aeb49f9e342ac14dd1cf",
    ),
    (
        1,
        "prologue",
        "7270637773312070726f6c6f6775650101020100000000",
    ),
    (
        1,
        "hs1",
        "0101020100000000ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79447ac5ce8163cf97e0768f9f6263ee29933ace274455192110619c5c827d",
    ),
    (
        1,
        "hs2",
        "010202010000000095ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843f7e610198bdd90444d4b6272f08ea00c6eb60b79eed50e8d52",
    ),
    (
        1,
        "h",
        "4e951f43d5656de873b745fa1d01136c16366cfb8a5816509a8bfc3bebd96c3c",
    ),
    (
        1,
        "k_i2r",
        "e21385f5b3ac7e1c36eb67065918bfa3a301b0178b4c312cffd4fab825f6ecbd",
    ),
    (
        1,
        "k_r2i",
        "8cf80132c25a330fe0090737f97b2f0640ad8a07a2e6c81b77f0ee5d388c6fdf",
    ),
    (
        1,
        "key_c2s_0",
        "fcc63370c37d1702ee544ac500fe10d091be6732d37c121cfb4a91359ab0120f",
    ),
    (
        1,
        "key_s2c_0",
        "ef417816794670c7e3e1ff6a04880e41a2ef838833d8661d44df75c72953b8d3",
    ),
    (
        1,
        "exporter",
        "52fe90b2cd90340f0e3368b88693cb4a23a3c1cf20627d0712f85234a103e847",
    ),
    (
        1,
        "key_c2s_1",
        "365e53625b9ed548b8e26e7af9bd405f3a20b9ea69f31de9338798fa1a0ad47d",
    ),
    (
        1,
        "frame c2s AUTH",
        "0114000000000000a505f0032da9ca85981830a3d4466704b197c8a9f3ee06839cf4c8ac71",
    ),
    (
        1,
        "frame s2c AUTH_RESULT",
        "011500000000000061dc7f41b039c026f8141c4d27b62ddcc62861ae99",
    ),
    (
        1,
        "frame c2s DATA",
        "01100000000000002b00b016b570d74b7776f9331ea5d319e503a2e65e6fab6faf",
    ),
    (
        1,
        "frame c2s KEY_UPDATE",
        "0111000000000000bb55aab5c8590bc4c12f272db7dd706b",
    ),
    (
        1,
        "frame c2s DATA epoch 1",
        "01100000000000013119f13f07db8a7479f2a12d719828c13834dd4f93790d6eb3",
    ),
    (
        2,
        "hs1",
        "0101010201000000ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944800ed2832ac4307d933b16dbfc7c25c05b529a6b621ccbabd2df706b33",
    ),
    (
        2,
        "hs2",
        "010201020100000095ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843dc5d306a88aba11dc5534c4ae7c3ad0b33b709865b99076724",
    ),
    (
        2,
        "h",
        "6a20ab7f408658145c25afd863ac2e783fbe1341971a8e120d24190507732946",
    ),
    (
        2,
        "fin_c",
        "b69ad3c59d3be902f61cf3a756c39ae1cd85f9bec491c9df5d9162cd7539aa80",
    ),
    (
        2,
        "frame c2s AUTH",
        "01140000000000004131d24bc4715037e881377a0bd631ca215057760811f03aa4e49fffda2659c081a5746f6b656ea574306b336e",
    ),
];

/// A field of a case in the file, with frames named "frame <dir> <TYPE>[ epoch 1]".
fn field<'a>(case: &'a Value, name: &str) -> &'a str {
    let outputs = &case["outputs"];
    if let Some(frame) = name.strip_prefix("frame ") {
        let (dir, rest) = frame.split_once(' ').unwrap();
        let (kind, epoch) = match rest.strip_suffix(" epoch 1") {
            Some(kind) => (kind, 1),
            None => (rest, 0),
        };
        let found = outputs["frames"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["dir"] == dir && f["type"] == kind && f["epoch"] == epoch)
            .unwrap_or_else(|| panic!("no frame {name}"));
        return found["wire"].as_str().unwrap();
    }
    outputs[name]
        .as_str()
        .unwrap_or_else(|| panic!("no field {name}"))
}

#[test]
fn vectors_file_matches_the_implementation_and_appendix_c() {
    let computed = generate();
    if std::env::var_os("RPCWS1_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&computed).unwrap() + "\n";
        std::fs::write(FILE_PATH, text).unwrap();
    }
    let file: Value = serde_json::from_str(FILE).expect("docs/vectors/rpcws1.json is JSON");
    // Appendix C (independent implementation) against the file.
    assert_eq!(
        file["scrypt_out"],
        "1b2946da71f41179e83b99dc33842d15741b87c4121c8c7f3781c1df864fb58b"
    );
    assert_eq!(
        file["psk"],
        "cd8d698bc20486b2e7bcec66e6686c729d0637becc19c4284a9e0551cdb23ae0"
    );
    for (case, name, value) in APPENDIX_C {
        assert_eq!(
            field(&file["cases"][case], name),
            *value,
            "case {case} {name}"
        );
    }
    // The file against this implementation, value for value.
    for key in [
        "scrypt_out",
        "psk",
        "key_mode",
        "common_inputs",
        "resumption",
    ] {
        assert_eq!(file[key], computed[key], "{key}");
    }
    let (file_cases, cases) = (
        file["cases"].as_array().unwrap(),
        computed["cases"].as_array().unwrap(),
    );
    assert_eq!(file_cases.len(), cases.len());
    for (expected, actual) in file_cases.iter().zip(cases) {
        for (key, value) in expected["outputs"].as_object().unwrap() {
            assert_eq!(&actual["outputs"][key], value, "{} {key}", expected["name"]);
        }
        assert_eq!(expected, actual);
    }
    // Every negative vector says what its tampering must produce.
    for case in file_cases {
        for negative in case["outputs"]["negative_frames"].as_array().unwrap() {
            assert_ne!(negative["error"], "", "{negative}");
        }
    }
}

/// snow against the official cacophony vectors, and our AEAD wrapper on its raw split.
#[test]
fn snow_raw_split_matches_cacophony() {
    struct Cacophony {
        name: &'static str,
        suite: Suite,
        hash: &'static str,
        message1: &'static str,
        message2: &'static str,
        /// Transport messages i2r nonce 0 and r2i nonce 0: (ciphertext, payload).
        first: [(&'static str, &'static str); 2],
    }
    let vectors = [
        Cacophony {
            name: "Noise_NNpsk0_25519_AESGCM_SHA256",
            suite: Suite::Aes256Gcm,
            hash: "9f3b1f9afd7767767b5b9d1069844a6154fdbdcc36dfb3e31c0fffc5c973d530",
            message1: "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79447c37a89fc17813788d30df2d59501d6066f5f8aecc3406bbd9829f2d24a531b1",
            message2: "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f1448088432f29d79368ef9de4e1ae7a362fb05bf0ad668e026bf5714554497b3a720461",
            first: [
                (
                    "7c01e898a6201f36aecee532e29cd0b7f8ffa29d3366ad0dce39a6",
                    "462e20412e20486179656b",
                ),
                (
                    "a9ff535aace3db6a1da1a7fb00fe2de2622bb373abad9fb42c00e0",
                    "4361726c204d656e676572",
                ),
            ],
        },
        Cacophony {
            name: "Noise_NNpsk0_25519_ChaChaPoly_SHA256",
            suite: Suite::ChaCha20Poly1305,
            hash: "f4d03dc34495c95729ea6de9e1b59004b59733102488b3e24bc441e0be208eaf",
            message1: "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c794479b962b8aff8485742ac32f905ba45369e2465fb59e138a93d67a0d1266b6a54",
            message2: "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843d6062704d5a9c422a8e834423f8c1feada7e8d0d910a1a2cd030fb584221e3",
            first: [
                (
                    "e632c3763d7669067383433197a3baddf146e9e70ad4b4e9e59e0f",
                    "462e20412e20486179656b",
                ),
                (
                    "64c6bee32ea91c8474bb4c21d7a700109ad45af77b29764ba5eb1e",
                    "4361726c204d656e676572",
                ),
            ],
        },
    ];
    let (e_c, e_s) = (unhex(E_C), unhex(E_S));
    for vector in vectors {
        assert_eq!(vector.suite.noise_name(), vector.name);
        let psk = b"This is my Austrian perspective!";
        let mut initiator = noise_builder(vector.name, psk, b"John Galt", &e_c)
            .build_initiator()
            .unwrap();
        let mut responder = noise_builder(vector.name, psk, b"John Galt", &e_s)
            .build_responder()
            .unwrap();
        let (mut m, mut p) = ([0u8; 1024], [0u8; 1024]);
        let n = initiator
            .write_message(&unhex("4c756477696720766f6e204d69736573"), &mut m)
            .unwrap();
        assert_eq!(hex::encode(&m[..n]), vector.message1);
        responder.read_message(&m[..n], &mut p).unwrap();
        let n = responder
            .write_message(&unhex("4d757272617920526f746862617264"), &mut m)
            .unwrap();
        assert_eq!(hex::encode(&m[..n]), vector.message2);
        initiator.read_message(&m[..n], &mut p).unwrap();
        assert_eq!(hex::encode(initiator.get_handshake_hash()), vector.hash);
        let (k_i2r, k_r2i) = initiator.dangerously_get_raw_split();
        if vector.suite == Suite::Aes256Gcm {
            // The notes' raw split, printed abbreviated there.
            let (i2r, r2i) = (hex::encode(k_i2r), hex::encode(k_r2i));
            assert!(
                i2r.starts_with("0563843574") && i2r.ends_with("d0d4c7"),
                "{i2r}"
            );
            assert!(
                r2i.starts_with("0276f48d51") && r2i.ends_with("5e4b29"),
                "{r2i}"
            );
        }
        // The first transport message of each direction opens with our AEAD on the raw keys.
        for ((ciphertext, payload), key) in vector.first.into_iter().zip([k_i2r, k_r2i]) {
            let mut body = unhex(ciphertext);
            let tag: [u8; 16] = body.split_off(body.len() - 16).try_into().unwrap();
            aead::AeadKey::new(vector.suite, &key)
                .open(0, &[], &mut body, &tag)
                .unwrap();
            assert_eq!(hex::encode(body), payload);
        }
        // Nonce 1: Noise's AESGCM nonce is big-endian like ours, so the third
        // transport message (i2r, nonce 1) must open too. (Noise's ChaChaPoly
        // nonce is little-endian and ours is not, by design.)
        if vector.suite == Suite::Aes256Gcm {
            let mut body =
                unhex("6cfc49a3e65472edc2d0152abe5ce950170a8a47c959f30bd48b5f0aacf29adbfd");
            let tag: [u8; 16] = body.split_off(body.len() - 16).try_into().unwrap();
            aead::AeadKey::new(vector.suite, &k_i2r)
                .open(1, &[], &mut body, &tag)
                .unwrap();
            assert_eq!(hex::encode(body), "4a65616e2d426170746973746520536179");
        }
    }
}
