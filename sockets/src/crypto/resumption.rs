//! Session resumption: proving, on a new connection, that one took part in
//! an earlier one, without sending anything the earlier one could replay.
//!
//! ```text
//! rs    = HKDF-Expand(PRK, "rpcws1 resumption", 32)              per connection, both sides; never sent
//! proof = HMAC-SHA256(rs_prev, "rpcws1 resume" || h_new || u64be(id))
//! ```
//!
//! `rs_prev` is the resumption secret of the connection being resumed,
//! `h_new` the handshake hash of the new connection (fresh ephemeral keys and
//! the shared secret went into it), `id` the session id the server gave.
//! The proof travels inside the new connection's AUTH frame, so it is bound
//! to the shared-secret handshake it rides in: it verifies for that
//! handshake only, and a recorded one is worth nothing on another. The
//! server keeps `rs` per session and replaces it with the new connection's
//! on every successful resumption, so each secret opens one resumption at
//! most. Both sides compare in constant time (docs/PROTOCOL.md §9.6).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::schedule::Key32;

/// What opens the resumption proof's MAC.
const PROOF_LABEL: &[u8] = b"rpcws1 resume";

/// One connection's resumption secret: the key of the proof that resumes
/// its session on a later connection. Wiped on drop; `Debug` shows nothing.
pub struct ResumptionSecret(Key32);

impl fmt::Debug for ResumptionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResumptionSecret(..)")
    }
}

impl ResumptionSecret {
    pub(crate) fn new(secret: Key32) -> Self {
        Self(secret)
    }

    /// The proof that resumes session `id` on the connection whose handshake
    /// hash is `handshake_hash`.
    pub fn proof(&self, handshake_hash: &[u8; 32], id: u64) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(PROOF_LABEL);
        mac.update(handshake_hash);
        mac.update(&id.to_be_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether `proof` is [`ResumptionSecret::proof`] for this handshake and
    /// session, compared in constant time (a proof of another length is wrong).
    pub fn verify(&self, handshake_hash: &[u8; 32], id: u64, proof: &[u8]) -> bool {
        let expected = self.proof(handshake_hash, id);
        proof.len() == expected.len() && bool::from(expected.ct_eq(proof))
    }

    /// The secret's bytes, for the vector tests.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> [u8; 32] {
        *self.0
    }
}

#[cfg(test)]
mod tests {
    use zeroize::Zeroizing;

    use super::ResumptionSecret;

    fn secret(byte: u8) -> ResumptionSecret {
        ResumptionSecret::new(Zeroizing::new([byte; 32]))
    }

    #[test]
    fn a_proof_verifies_for_its_handshake_and_session_only() {
        let rs = secret(1);
        let (h, other_h) = ([2; 32], [3; 32]);
        let proof = rs.proof(&h, 7);
        assert!(rs.verify(&h, 7, &proof));
        assert!(!rs.verify(&other_h, 7, &proof), "another handshake");
        assert!(!rs.verify(&h, 8, &proof), "another session");
        assert!(!secret(9).verify(&h, 7, &proof), "another secret");
        assert!(!rs.verify(&h, 7, &proof[..31]), "truncated");
        assert!(!rs.verify(&h, 7, &[]), "empty");
        let mut flipped = proof;
        flipped[31] ^= 1;
        assert!(!rs.verify(&h, 7, &flipped), "one bit off");
    }

    #[test]
    fn debug_shows_nothing_of_the_secret() {
        assert_eq!(format!("{:?}", secret(0xab)), "ResumptionSecret(..)");
    }
}
