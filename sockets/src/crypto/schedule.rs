//! The key schedule after the handshake (HKDF-SHA256, RFC 5869; ASCII labels).
//!
//! ```text
//! PRK      = HKDF-Extract(salt = h, IKM = k_i2r || k_r2i)
//! ts_c2s_0 = HKDF-Expand(PRK, "rpcws1 c2s", 32)
//! ts_s2c_0 = HKDF-Expand(PRK, "rpcws1 s2c", 32)
//! exporter = HKDF-Expand(PRK, "rpcws1 exporter", 32)
//! fin_c    = HKDF-Expand(PRK, "rpcws1 client finished", 32)
//! rs       = HKDF-Expand(PRK, "rpcws1 resumption", 32)
//! key_j    = HKDF-Expand(ts_j, "rpcws1 key", 32)
//! ts_j+1   = HKDF-Expand(ts_j, "rpcws1 update", 32)
//! ```

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::Suite;
use super::aead::AeadKey;

/// A 32-byte secret that is wiped on drop.
pub(crate) type Key32 = Zeroizing<[u8; 32]>;

/// HKDF-Expand(prk, label, 32).
pub(crate) fn expand(prk: &[u8; 32], label: &[u8]) -> Key32 {
    let mut out = Zeroizing::new([0u8; 32]);
    match Hkdf::<Sha256>::from_prk(prk) {
        Ok(hkdf) if hkdf.expand(label, out.as_mut_slice()).is_ok() => out,
        _ => unreachable!("a 32-byte PRK and a 32-byte output are valid for HKDF-SHA256"),
    }
}

/// The secrets of one connection, straight out of the handshake.
pub(crate) struct Schedule {
    pub(crate) c2s: Key32,
    pub(crate) s2c: Key32,
    pub(crate) exporter: Key32,
    pub(crate) fin_c: Key32,
    /// The resumption secret: what proves, on a later connection, that one
    /// took part in this one (see [`super::resumption`]).
    pub(crate) resumption: Key32,
}

impl Schedule {
    /// Runs the schedule from Noise's handshake hash and raw split.
    pub(crate) fn derive(h: &[u8; 32], k_i2r: &[u8; 32], k_r2i: &[u8; 32]) -> Schedule {
        let prk = prk(h, k_i2r, k_r2i);
        Schedule {
            c2s: expand(&prk, b"rpcws1 c2s"),
            s2c: expand(&prk, b"rpcws1 s2c"),
            exporter: expand(&prk, b"rpcws1 exporter"),
            fin_c: expand(&prk, b"rpcws1 client finished"),
            resumption: expand(&prk, b"rpcws1 resumption"),
        }
    }
}

/// PRK = HKDF-Extract(salt = h, IKM = k_i2r || k_r2i).
pub(crate) fn prk(h: &[u8; 32], k_i2r: &[u8; 32], k_r2i: &[u8; 32]) -> Key32 {
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(k_i2r);
    ikm[32..].copy_from_slice(k_r2i);
    let (prk, _) = Hkdf::<Sha256>::extract(Some(h), ikm.as_slice());
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&prk);
    out
}

/// The client-finished MAC of mode P: HMAC-SHA256(fin_c, "rpcws1 client finished" || h).
pub(crate) fn finished_mac(fin_c: &[u8; 32], h: &[u8; 32]) -> Key32 {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(fin_c)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"rpcws1 client finished");
    mac.update(h);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// One direction's keys: the traffic secret of the current epoch and its AEAD key.
pub(crate) struct Traffic {
    suite: Suite,
    secret: Key32,
    aead: AeadKey,
    epoch: u32,
}

impl Traffic {
    /// Epoch 0 from the direction's first traffic secret.
    pub(crate) fn new(suite: Suite, secret: Key32) -> Traffic {
        let aead = AeadKey::new(suite, &expand(&secret, b"rpcws1 key"));
        Traffic {
            suite,
            secret,
            aead,
            epoch: 0,
        }
    }

    pub(crate) fn aead(&self) -> &AeadKey {
        &self.aead
    }

    pub(crate) fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Moves to the next epoch: ts_j+1 = Expand(ts_j, "rpcws1 update"); the old
    /// secret and key are wiped. `None` when the epoch counter is exhausted.
    pub(crate) fn ratchet(&mut self) -> Option<()> {
        let epoch = self.epoch.checked_add(1)?;
        self.secret = expand(&self.secret, b"rpcws1 update");
        self.aead = AeadKey::new(self.suite, &expand(&self.secret, b"rpcws1 key"));
        self.epoch = epoch;
        Some(())
    }

    /// Sets the epoch number without changing keys (tests of the epoch limit).
    #[cfg(test)]
    pub(crate) fn force_epoch(&mut self, epoch: u32) {
        self.epoch = epoch;
    }

    /// The current traffic secret, for the vector tests.
    #[cfg(test)]
    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}
