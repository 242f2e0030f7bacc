//! Measures the secure session core on one core: handshakes per second and
//! seal + open throughput for both suites. Prints one JSON object per line.
//!
//! ```text
//! cargo run --release -p examples --bin crypto_bench            # about 6 s
//! cargo run --release -p examples --bin crypto_bench -- --quick # about 1 s
//! ```
//!
//! A handshake is the full sans-IO exchange: client start (HS1), server accept
//! (HS2), client finish. Throughput seals a DATA plaintext into frames (a MORE
//! chain when it exceeds one 1 MiB frame) and opens them again; MB/s counts
//! plaintext bytes, 10^6 per MB.

use std::hint::black_box;
use std::time::{Duration, Instant};

use sockets::__internal::crypto::{
    Acceptor, AcceptorConfig, ClientHandshake, FrameKind, Limits, Mode, Opener, Sealer,
};
use sockets::crypto::{Secret, Suite};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let budget = if quick {
        Duration::from_millis(150)
    } else {
        Duration::from_millis(1000)
    };
    let secret = Secret::from_base64(&sockets::crypto::generate_key())?;
    for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
        let acceptor = Acceptor::new(AcceptorConfig {
            secrets: vec![secret.clone()],
            ..AcceptorConfig::default()
        })?;
        let (count, elapsed) = repeat(budget, || {
            let (client, hs1) = ClientHandshake::start(&secret, suite, Mode::Encrypted, None)?;
            let (server, hs2) = acceptor.accept(&hs1, None, Limits::default())?;
            let (client, _) = client.finish(&hs2, Limits::default())?;
            black_box((client, server));
            Ok(())
        })?;
        println!(
            "{{\"bench\":\"handshake\",\"suite\":\"{}\",\"count\":{count},\"per_second\":{:.0}}}",
            name(suite),
            count as f64 / elapsed.as_secs_f64()
        );
    }
    for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
        for size in [1024usize, 1 << 20] {
            let (mut sealer, mut opener) = authenticated_pair(&secret, suite)?;
            let plaintext = vec![0x5a; size];
            let mut frames = Vec::new();
            let (count, elapsed) = repeat(budget, || {
                sealer.seal(FrameKind::Data, &plaintext, &mut frames)?;
                for frame in frames.drain(..) {
                    black_box(opener.open(frame)?);
                }
                Ok(())
            })?;
            let megabytes = (count * size as u64) as f64 / 1e6;
            println!(
                "{{\"bench\":\"seal_open\",\"suite\":\"{}\",\"size\":{size},\"messages\":{count},\"mb_per_s\":{:.1}}}",
                name(suite),
                megabytes / elapsed.as_secs_f64()
            );
        }
    }
    Ok(())
}

fn name(suite: Suite) -> &'static str {
    match suite {
        Suite::Aes256Gcm => "aes-256-gcm",
        Suite::ChaCha20Poly1305 => "chacha20-poly1305",
    }
}

/// Runs `op` until `budget` has passed; returns how often and how long.
fn repeat(
    budget: Duration,
    mut op: impl FnMut() -> Result<(), Box<dyn std::error::Error>>,
) -> Result<(u64, Duration), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < budget {
        op()?;
        count += 1;
    }
    Ok((count, start.elapsed()))
}

/// A client sealer and a server opener past AUTH / AUTH_RESULT.
fn authenticated_pair(
    secret: &Secret,
    suite: Suite,
) -> Result<(Sealer, Opener), Box<dyn std::error::Error>> {
    let acceptor = Acceptor::new(AcceptorConfig {
        secrets: vec![secret.clone()],
        ..AcceptorConfig::default()
    })?;
    let (client, hs1) = ClientHandshake::start(secret, suite, Mode::Encrypted, None)?;
    let (server, hs2) = acceptor.accept(&hs1, None, Limits::default())?;
    let (client, _) = client.finish(&hs2, Limits::default())?;
    let (mut c_seal, mut c_open) = client.split();
    let (mut s_seal, mut s_open) = server.split();
    let mut wire = Vec::new();
    c_seal.seal(FrameKind::Auth, &[0x80], &mut wire)?;
    for frame in wire.drain(..) {
        s_open.open(frame)?;
    }
    s_seal.seal(FrameKind::AuthResult, &[0x80], &mut wire)?;
    for frame in wire.drain(..) {
        c_open.open(frame)?;
    }
    s_open.set_authenticated();
    Ok((c_seal, s_open))
}
