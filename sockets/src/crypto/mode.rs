//! The frame mode a client chooses: encrypted, or in clear behind TLS.

/// Whether frames are encrypted (E) or sent in clear behind TLS (P).
///
/// Both modes run the same handshake, so in both the secret never travels and
/// each side proves it knows it. Only E protects frames by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `0x01`: every frame is AEAD-sealed.
    Encrypted,
    /// `0x02`: frames are in clear; for use behind TLS (`wss://`) only.
    Plaintext,
}

impl Mode {
    /// The mode byte of the handshake header.
    pub fn id(self) -> u8 {
        match self {
            Mode::Encrypted => 0x01,
            Mode::Plaintext => 0x02,
        }
    }

    /// The mode for a mode byte; `None` for an unknown one.
    pub fn from_id(id: u8) -> Option<Mode> {
        match id {
            0x01 => Some(Mode::Encrypted),
            0x02 => Some(Mode::Plaintext),
            _ => None,
        }
    }
}
