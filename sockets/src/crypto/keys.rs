//! The shared secret, derived once at start-up into the Noise pre-shared key.
//!
//! ```text
//! IKM = key (32 bytes)                                    from_key / from_base64
//! IKM = scrypt(passphrase, salt, N=2^17, r=8, p=1, 32)    from_passphrase
//! PSK = HKDF-SHA256(salt = "rpcws1", IKM, info = "rpcws1 psk", L = 32)
//! ```
//!
//! Only the PSK is kept (zeroized on drop); the key, passphrase and IKM are
//! wiped as soon as the PSK exists. Nothing here runs per connection.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::LABEL;

/// scrypt cost: log2(N). N = 2^17 is the OWASP minimum; there is no API to lower it.
const SCRYPT_LOG_N: u8 = 17;
/// scrypt block size r.
const SCRYPT_R: u32 = 8;
/// scrypt parallelism p.
const SCRYPT_P: u32 = 1;
/// The shortest salt a passphrase may be used with.
pub const MIN_SALT_LEN: usize = 16;
// The fixed parameters must never drift below the documented minimum.
const _: () = assert!(SCRYPT_LOG_N >= 17 && SCRYPT_R >= 8 && SCRYPT_P >= 1);

/// Why a secret could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is not standard base64 (padding included).
    #[error("the key is not valid base64")]
    Base64,
    /// The key does not decode to exactly 32 bytes; carries the length it had.
    #[error("the key must be 32 bytes, got {0}")]
    KeyLength(usize),
    /// The passphrase is empty.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// The salt is shorter than 16 bytes; carries the length it had.
    #[error("the salt must be at least 16 bytes, got {0}")]
    SaltTooShort(usize),
}

/// The shared secret of a deployment, held as the derived 32-byte PSK.
///
/// Cheap to clone (one shared, zeroized-on-drop buffer). `Debug` prints
/// `Secret(..)` and nothing else.
#[derive(Clone)]
pub struct Secret {
    psk: Arc<Zeroizing<[u8; 32]>>,
}

impl Secret {
    /// The secret for a random 32-byte key: the recommended form (see [`generate_key`]).
    pub fn from_key(key: &[u8; 32]) -> Secret {
        Secret::from_ikm(key)
    }

    /// The secret for a 32-byte key in standard base64, as [`generate_key`]
    /// prints it. Surrounding whitespace is ignored.
    ///
    /// # Errors
    /// [`KeyError::Base64`] when the text is not base64, [`KeyError::KeyLength`]
    /// when it does not hold exactly 32 bytes.
    pub fn from_base64(key: &str) -> Result<Secret, KeyError> {
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(key.trim())
                .map_err(|_| KeyError::Base64)?,
        );
        let key: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::KeyLength(bytes.len()))?;
        Ok(Secret::from_ikm(key))
    }

    /// The secret for a passphrase and a per-deployment salt, through scrypt
    /// with N = 2^17, r = 8, p = 1 (128 MiB, about 0.4 s optimised).
    ///
    /// Blocking: call it once at start-up (in `spawn_blocking` inside async
    /// code), never per connection. The passphrase's UTF-8 bytes are used as
    /// they are, without Unicode normalisation. The salt need not be secret but
    /// must be random per deployment and the same on both sides.
    ///
    /// # Errors
    /// [`KeyError::EmptyPassphrase`], or [`KeyError::SaltTooShort`] for a salt
    /// under 16 bytes.
    pub fn from_passphrase(passphrase: &str, salt: &[u8]) -> Result<Secret, KeyError> {
        if passphrase.is_empty() {
            return Err(KeyError::EmptyPassphrase);
        }
        if salt.len() < MIN_SALT_LEN {
            return Err(KeyError::SaltTooShort(salt.len()));
        }
        let ikm = scrypt_ikm(passphrase.as_bytes(), salt);
        Ok(Secret::from_ikm(&ikm))
    }

    /// The secret for an input keying material (a key, or scrypt's output).
    pub(crate) fn from_ikm(ikm: &[u8; 32]) -> Secret {
        let mut psk = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(LABEL), ikm)
            .expand(b"rpcws1 psk", psk.as_mut_slice())
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 output length"));
        Secret { psk: Arc::new(psk) }
    }

    /// The Noise PSK.
    pub(crate) fn psk(&self) -> &[u8; 32] {
        &self.psk
    }
}

/// scrypt(passphrase, salt) with the fixed parameters, into a zeroized buffer.
pub(crate) fn scrypt_ikm(passphrase: &[u8], salt: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    let params = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, 32)
        .unwrap_or_else(|_| unreachable!("the fixed scrypt parameters are valid"));
    scrypt::scrypt(passphrase, salt, &params, out.as_mut_slice())
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid scrypt output length"));
    out
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A fresh random key in standard base64 (32 bytes from the operating
/// system's generator), for [`Secret::from_base64`]. The `keygen` example prints one.
///
/// # Panics
/// If the operating system's random generator is unavailable: no key can be
/// made safely then.
pub fn generate_key() -> String {
    let mut key = Zeroizing::new([0u8; 32]);
    if let Err(error) = getrandom::fill(key.as_mut_slice()) {
        panic!("the operating system's random generator failed: {error}");
    }
    base64::engine::general_purpose::STANDARD.encode(key.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_debug_is_redacted() {
        assert_eq!(
            Secret::from_base64("not base64!").err(),
            Some(KeyError::Base64)
        );
        assert_eq!(
            Secret::from_base64("AAAA").err(),
            Some(KeyError::KeyLength(3))
        );
        assert_eq!(
            Secret::from_passphrase("pw", &[0; 15]).err(),
            Some(KeyError::SaltTooShort(15))
        );
        assert_eq!(
            Secret::from_passphrase("", &[0; 16]).err(),
            Some(KeyError::EmptyPassphrase)
        );
        let key = generate_key();
        let secret = Secret::from_base64(&format!(" {key}\n")).unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(..)");
        assert_ne!(generate_key(), key);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&key)
            .unwrap();
        let same = Secret::from_key(bytes.as_slice().try_into().unwrap());
        assert_eq!(same.psk(), secret.psk());
        // The PSK is derived, never the key itself.
        assert_ne!(same.psk().as_slice(), bytes.as_slice());
    }
}
