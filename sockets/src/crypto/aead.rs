//! One AEAD type for both suites: the only place that names the frame cipher crate (ring).
//!
//! Nonce = `0x00000000 || u64be(seq)` for both suites. The 32-byte key handed
//! in is the caller's `Zeroizing` buffer; ring does not wipe its own copy (the
//! expanded key schedule) when the key is dropped, see docs/SECURITY.md.

use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};

use super::Suite;

/// The length of an authentication tag.
pub(crate) const TAG_LEN: usize = 16;

/// A key of one suite, ready to seal or open.
///
/// Boxed: ring's key schedule is about 540 bytes, and the Sealer and Opener
/// that hold it travel by value into the connection's task futures (which
/// may keep more than one copy of their arguments); inline it cost about
/// 3 KiB of RSS per connection end in W5.
pub(crate) struct AeadKey(Box<LessSafeKey>);

/// The authentication tag did not verify.
#[derive(Debug)]
pub(crate) struct TagMismatch;

/// The plaintext is beyond the cipher's length limit (far beyond any frame:
/// about 64 GiB for AES-256-GCM, 256 GiB for ChaCha20-Poly1305).
#[derive(Debug)]
pub(crate) struct TooLong;

fn nonce(seq: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&seq.to_be_bytes());
    nonce
}

impl AeadKey {
    pub(crate) fn new(suite: Suite, key: &[u8; 32]) -> AeadKey {
        let algorithm = match suite {
            Suite::Aes256Gcm => &AES_256_GCM,
            Suite::ChaCha20Poly1305 => &CHACHA20_POLY1305,
        };
        // ring rejects only a key of the wrong length; both suites take 32 bytes.
        let key = UnboundKey::new(algorithm, key)
            .unwrap_or_else(|_| unreachable!("both suites take 32-byte keys"));
        AeadKey(Box::new(LessSafeKey::new(key)))
    }

    /// Encrypts `buf` in place and returns the tag.
    ///
    /// On error `buf` is unchanged or holds no usable ciphertext and must be discarded.
    pub(crate) fn seal(
        &self,
        seq: u64,
        ad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], TooLong> {
        let nonce = Nonce::assume_unique_for_key(nonce(seq));
        let tag = self
            .0
            .seal_in_place_separate_tag(nonce, Aad::from(ad), buf)
            .map_err(|_| TooLong)?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
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
        let nonce = Nonce::assume_unique_for_key(nonce(seq));
        // ring reports a bad tag and an over-long input alike; both are a
        // frame that does not open.
        self.0
            .open_in_place_separate_tag(nonce, Aad::from(ad), Tag::from(*tag), buf, 0..)
            .map(|_| ())
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
            let tag = key.seal(3, b"ad", &mut buf).unwrap();
            assert_ne!(&buf, b"hello");
            let mut copy = buf;
            assert!(key.open(4, b"ad", &mut copy, &tag).is_err());
            let mut copy = buf;
            assert!(key.open(3, b"ae", &mut copy, &tag).is_err());
            let mut copy = buf;
            let mut bad = tag;
            bad[15] ^= 1;
            assert!(key.open(3, b"ad", &mut copy, &bad).is_err());
            key.open(3, b"ad", &mut buf, &tag).unwrap();
            assert_eq!(&buf, b"hello");
        }
    }

    #[test]
    fn empty_plaintext_seals_to_a_tag_alone() {
        for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
            let key = AeadKey::new(suite, &[9; 32]);
            let tag = key.seal(0, b"ad", &mut []).unwrap();
            key.open(0, b"ad", &mut [], &tag).unwrap();
            assert!(key.open(1, b"ad", &mut [], &tag).is_err());
        }
    }
}
