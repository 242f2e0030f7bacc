//! The secure session core: the `rpcws1` handshake and frame protection.
//!
//! What a user of this crate needs from here is the shared secret
//! ([`Secret`], made from a random key from [`generate_key`], or a passphrase
//! and a salt) and the cipher [`Suite`]. The rest is internal: the runtime
//! runs the handshake and protects every frame.
//!
//! Sans-IO: every function takes bytes and returns bytes; sockets, timers and
//! tasks belong to the connection. docs/PROTOCOL.md is the normative
//! description; this is the map of the code.
//!
//! # Phases
//!
//! 1. [`Secret`]: the shared secret, turned **once** at start-up into the
//!    32-byte Noise pre-shared key (PSK). A random key is the recommended form;
//!    a passphrase goes through scrypt (N=2^17, r=8, p=1) with a
//!    per-deployment salt.
//! 2. `ClientHandshake` / `Acceptor`: Noise `NNpsk0` over X25519 and
//!    SHA-256. Two binary WebSocket messages, HS1 and HS2. The server learns
//!    whether the client knows the PSK from one AEAD tag check (no
//!    Diffie-Hellman, no scrypt) and answers a wrong secret with silence. The
//!    client learns the same about the server from HS2, before it sends
//!    anything else.
//! 3. `Session` → `Sealer` + `Opener`: every later WebSocket message is a
//!    frame, AEAD-sealed under a per-direction key with a per-direction counter
//!    nonce (mode E), or sent in clear behind TLS (mode P).
//!
//! # What is authenticated
//!
//! * **The negotiation.** The suite selects the Noise protocol name (hashed
//!   first), and the whole 8-byte handshake header (version, suite, mode,
//!   flags) plus the TLS exporter, when present, form the Noise prologue. A
//!   rewrite of any of them breaks HS1's tag.
//! * **Both handshake payloads**, hence the handshake hash `h`, which salts the
//!   key schedule: both sides' keys depend on every handshake byte.
//! * **Every frame**: its plaintext, its 8-byte header (type, flags, epoch) and,
//!   through the associated data, its direction and sequence number, which are
//!   implicit (not on the wire).
//!
//! # Nonce rules
//!
//! * A frame's nonce is `0x00000000 || u64be(seq)` for both suites (not Noise's
//!   little-endian ChaCha nonce: our frames are not Noise transport messages).
//! * `seq` counts the frames of one direction in one epoch, from 0; each side
//!   keeps its own send and receive counter and never sends a counter on the
//!   wire. `Sealer` alone owns the send counter and `Opener` alone the
//!   receive counter, so a nonce cannot be used twice under one key.
//! * Keys are one per direction per epoch; a KEY_UPDATE frame ends an epoch
//!   and ratchets the direction's traffic secret one way. Senders rekey at the
//!   soft limits of `Limits`; receivers close on a peer that passes the hard
//!   limits. The counter never gets near wrapping.
//!
//! # Layouts
//!
//! ```text
//! handshake header HH (8 bytes, in clear, in the prologue)
//!  0         1        2        3        4        5   6   7
//! ┌─────────┬────────┬────────┬────────┬────────┬───────────┐
//! │ version │  type  │ suite  │  mode  │ flags  │ reserved  │
//! │  0x01   │ 1 / 2  │ 1 / 2  │ 1 / 2  │ bit0   │  0 0 0    │
//! └─────────┴────────┴────────┴────────┴────────┴───────────┘
//!
//! HS1 (client → server), 56..=1024 bytes
//! ┌──────────┬──────────────────┬───────────────────────────────┬─────────┐
//! │ HH1 (8)  │ e_c (32, clear)  │ enc(payload1 = {"ts": u64})   │ tag(16) │
//! └──────────┴──────────────────┴───────────────────────────────┴─────────┘
//! HS2 (server → client), 56..=1024 bytes; HH2 = HH1 with type 2
//! ┌──────────┬──────────────────┬───────────────────────────────┬─────────┐
//! │ HH2 (8)  │ e_s (32, clear)  │ enc(payload2 = {"mf": u32})   │ tag(16) │
//! └──────────┴──────────────────┴───────────────────────────────┴─────────┘
//!
//! frame (one binary WebSocket message), mode E
//!  0         1        2        3          4 .. 8
//! ┌─────────┬────────┬────────┬──────────┬────────────┬──────────────┬─────────┐
//! │ version │  type  │ flags  │ reserved │ epoch u32be│ ciphertext   │ tag(16) │
//! └─────────┴────────┴────────┴──────────┴────────────┴──────────────┴─────────┘
//!   nonce = 0x00000000 || u64be(seq)
//!   ad    = "rpcws1" || dir (0x01 c→s, 0x02 s→c) || u64be(seq) || header
//! mode P: header || plaintext, and the client's AUTH frame is
//!   header || HMAC-SHA256(fin_c, "rpcws1 client finished" || h) || payload
//! ```

mod aead;
pub(crate) mod handshake;
mod keys;
pub(crate) mod mode;
mod replay;
pub(crate) mod resumption;
mod schedule;
pub(crate) mod session;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

pub(crate) use handshake::{Acceptor, AcceptorConfig, ClientHandshake};
pub use keys::{KeyError, Secret, generate_key};
pub(crate) use mode::Mode;
pub(crate) use resumption::ResumptionSecret;
pub(crate) use session::{FrameKind, Limits, Opened, Opener, Sealer};

/// The label that opens every key-schedule input and every frame's associated data.
pub(crate) const LABEL: &[u8] = b"rpcws1";

/// The AEAD (and Noise cipher) of a connection, chosen by the client and bound into the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// `0x01`: AES-256-GCM, with `Noise_NNpsk0_25519_AESGCM_SHA256`.
    Aes256Gcm,
    /// `0x02`: ChaCha20-Poly1305, with `Noise_NNpsk0_25519_ChaChaPoly_SHA256`.
    ChaCha20Poly1305,
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
cpufeatures::new!(aes_intrinsics, "aes", "pclmulqdq");
// On AArch64 the "aes" feature includes the polynomial multiply GCM needs.
#[cfg(target_arch = "aarch64")]
cpufeatures::new!(aes_intrinsics, "aes");

impl Suite {
    /// AES-256-GCM when this CPU has AES and carry-less-multiply instructions,
    /// otherwise ChaCha20-Poly1305 (faster and constant-time in software).
    pub fn preferred() -> Suite {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64"))]
        if aes_intrinsics::get() {
            return Suite::Aes256Gcm;
        }
        Suite::ChaCha20Poly1305
    }

    /// The suite byte of the handshake header.
    pub fn id(self) -> u8 {
        match self {
            Suite::Aes256Gcm => 0x01,
            Suite::ChaCha20Poly1305 => 0x02,
        }
    }

    /// The suite for a suite byte; `None` for an unknown one.
    pub fn from_id(id: u8) -> Option<Suite> {
        match id {
            0x01 => Some(Suite::Aes256Gcm),
            0x02 => Some(Suite::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// The Noise protocol name this suite selects.
    pub(crate) fn noise_name(self) -> &'static str {
        match self {
            Suite::Aes256Gcm => "Noise_NNpsk0_25519_AESGCM_SHA256",
            Suite::ChaCha20Poly1305 => "Noise_NNpsk0_25519_ChaChaPoly_SHA256",
        }
    }
}
