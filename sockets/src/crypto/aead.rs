//! One AEAD type for both suites: the only place that names the cipher crates.
//!
//! Nonce = `0x00000000 || u64be(seq)` for both suites. Keys are wiped on drop
//! (the cipher crates zeroize their key schedules).

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

use super::Suite;

/// The length of an authentication tag.
pub(crate) const TAG_LEN: usize = 16;

/// A key of one suite, ready to seal or open.
pub(crate) enum AeadKey {
    Aes(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// The authentication tag did not verify.
#[derive(Debug)]
pub(crate) struct TagMismatch;

fn nonce(seq: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&seq.to_be_bytes());
    nonce
}

impl AeadKey {
    pub(crate) fn new(suite: Suite, key: &[u8; 32]) -> AeadKey {
        match suite {
            Suite::Aes256Gcm => AeadKey::Aes(Box::new(Aes256Gcm::new(key.into()))),
            Suite::ChaCha20Poly1305 => AeadKey::ChaCha(Box::new(ChaCha20Poly1305::new(key.into()))),
        }
    }

    /// Encrypts `buf` in place and returns the tag.
    pub(crate) fn seal(&self, seq: u64, ad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let nonce = nonce(seq);
        let tag = match self {
            AeadKey::Aes(cipher) => cipher.encrypt_in_place_detached((&nonce).into(), ad, buf),
            AeadKey::ChaCha(cipher) => cipher.encrypt_in_place_detached((&nonce).into(), ad, buf),
        };
        // Both ciphers fail only for plaintexts far beyond any frame (2^36 bytes, 256 GiB).
        tag.map(Into::into)
            .unwrap_or_else(|_| unreachable!("frames are far below the AEAD length limits"))
    }

    /// Checks `tag` and decrypts `buf` in place. On failure `buf` holds no
    /// plaintext worth reading and the caller must discard it.
    pub(crate) fn open(
        &self,
        seq: u64,
        ad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), TagMismatch> {
        let nonce = nonce(seq);
        match self {
            AeadKey::Aes(cipher) => {
                cipher.decrypt_in_place_detached((&nonce).into(), ad, buf, tag.into())
            }
            AeadKey::ChaCha(cipher) => {
                cipher.decrypt_in_place_detached((&nonce).into(), ad, buf, tag.into())
            }
        }
        .map_err(|_| TagMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_big_endian_after_four_zero_bytes() {
        assert_eq!(
            nonce(0x0102_0304_0506_0708),
            [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn both_suites_round_trip_and_reject_tampering() {
        for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
            let key = AeadKey::new(suite, &[7; 32]);
            let mut buf = *b"hello";
            let tag = key.seal(3, b"ad", &mut buf);
            assert_ne!(&buf, b"hello");
            let mut copy = buf;
            assert!(key.open(4, b"ad", &mut copy, &tag).is_err());
            let mut copy = buf;
            assert!(key.open(3, b"ae", &mut copy, &tag).is_err());
            key.open(3, b"ad", &mut buf, &tag).unwrap();
            assert_eq!(&buf, b"hello");
        }
    }
}
