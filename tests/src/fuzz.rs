//! What the property tests (`tests/tests/fuzz_*.rs`) share: a case count that
//! `PROPTEST_CASES` overrides, and sessions made without a network.
//!
//! The default counts keep the default `cargo test` run to a few seconds;
//! a long run is the same tests with, say, `PROPTEST_CASES=1000000`
//! (docs/SECURITY.md, "Fuzzing").

use proptest::test_runner::Config;
use sockets::__internal::crypto::{
    Acceptor, AcceptorConfig, ClientHandshake, FrameKind, Limits, Mode, Opener, Sealer,
};
use sockets::crypto::Suite;

/// A proptest configuration running `cases` cases unless `PROPTEST_CASES` says otherwise.
pub fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        // Failures are reported with their minimal input; regression cases
        // worth keeping become named tests.
        failure_persistence: None,
        ..Config::default()
    }
}

/// A server's acceptor for the tests' secret.
///
/// # Panics
/// Never for these settings.
pub fn acceptor(max_frame: u32) -> Acceptor {
    Acceptor::new(AcceptorConfig {
        secrets: vec![crate::secret()],
        max_frame,
        allow_plaintext: true,
        // Property tests replay nothing across cases on purpose, but make
        // many handshakes quickly: keep the freshness check, drop the cache.
        replay_cache_capacity: 0,
        ..AcceptorConfig::default()
    })
    .expect("acceptor")
}

/// The four halves of an authenticated session, made in memory:
/// `(client sealer, client opener, server sealer, server opener)`.
///
/// # Panics
/// When the handshake fails (it cannot with these inputs).
pub fn session(suite: Suite, mode: Mode, limits: &Limits) -> (Sealer, Opener, Sealer, Opener) {
    session_with(suite, mode, limits, limits)
}

/// As [`session`], with different limits on each side (the acceptor
/// announces the server's `max_frame`).
///
/// # Panics
/// When the handshake fails (it cannot with valid limits).
pub fn session_with(
    suite: Suite,
    mode: Mode,
    client_limits: &Limits,
    server_limits: &Limits,
) -> (Sealer, Opener, Sealer, Opener) {
    let acceptor = acceptor(u32::try_from(server_limits.max_frame).unwrap_or(u32::MAX));
    let (client, hs1) = ClientHandshake::start(&crate::secret(), suite, mode, None).expect("HS1");
    let (server, hs2) = acceptor
        .accept(&hs1, None, server_limits.clone())
        .expect("accept");
    let (client, _hello) = client.finish(&hs2, client_limits.clone()).expect("finish");
    let (mut c_seal, mut c_open) = client.split();
    let (mut s_seal, mut s_open) = server.split();
    let mut frames = Vec::new();
    c_seal
        .seal(FrameKind::Auth, &[0xc0], &mut frames)
        .expect("AUTH");
    for frame in frames.drain(..) {
        s_open.open(frame).expect("open AUTH");
    }
    s_open.set_authenticated();
    s_seal
        .seal(FrameKind::AuthResult, &[0x80], &mut frames)
        .expect("AUTH_RESULT");
    for frame in frames.drain(..) {
        c_open.open(frame).expect("open AUTH_RESULT");
    }
    c_open.set_authenticated();
    (c_seal, c_open, s_seal, s_open)
}
