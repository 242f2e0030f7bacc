//! The handshake: Noise `NNpsk0` carried in two binary WebSocket messages.
//!
//! ```text
//! client                                                   server
//! HS1 = HH1 || e_c || AEAD_{psk,e_c}({"ts": ms})   ──────►  public checks → try each PSK
//!                                                            (no DH) → freshness
//!       ◄──────  HS2 = HH2 || e_s || AEAD_{psk,ee}({"mf": max frame})
//! HH2 == HH1 with type 2? HS2 verifies?
//! ```
//!
//! Sans-IO: [`ClientHandshake::start`] returns HS1, [`ClientHandshake::finish`]
//! takes HS2; [`Acceptor::accept`] takes HS1 and returns HS2. Both produce a
//! [`Session`]. The Noise state is dropped as soon as the keys are split off.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use super::keys::Secret;
use super::replay::ReplayCache;
use super::schedule::Schedule;
use super::session::{Limits, Role, Session};
use super::{Mode, Suite};
use crate::protocol::payloads::{Payload1, Payload2};
use crate::protocol::{Reason, VERSION, codec};

/// The label that opens the Noise prologue.
const PROLOGUE_LABEL: &[u8] = b"rpcws1 prologue";
/// The length of the handshake header.
pub(crate) const HH_LEN: usize = 8;
/// The shortest handshake message: header, ephemeral key, empty payload's tag.
pub(crate) const HS_MIN: usize = HH_LEN + 32 + 16;
/// The longest handshake message.
pub(crate) const HS_MAX: usize = 1024;
/// Handshake header type byte of HS1.
const TYPE_HS1: u8 = 0x01;
/// Handshake header type byte of HS2.
const TYPE_HS2: u8 = 0x02;
/// Flags bit 0: the TLS exporter is in the prologue.
const FLAG_TLS_BINDING: u8 = 0x01;
/// Flags bit 1: the AUTH frame carries a resumption request.
const FLAG_RESUME: u8 = 0x02;
/// The smallest `mf` a server may announce.
pub const MIN_MAX_FRAME: u32 = 1024;
/// The largest `mf` a server may announce (16 MiB).
pub const MAX_MAX_FRAME: u32 = 1 << 24;

/// Why a handshake failed.
///
/// Display strings are lowercase and reveal nothing secret; [`HandshakeError::reason`]
/// says what a server sends.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// A public header field is wrong (size, type, reserved bits, flags).
    /// The server closes with 1002 and this reason.
    #[error("malformed handshake: {0}")]
    Malformed(Reason),
    /// The suite, mode, version or channel binding is not allowed here.
    /// The server closes with 1008 and this reason.
    #[error("unsupported handshake: {0}")]
    Unsupported(Reason),
    /// Server: HS1 does not verify under any configured secret (wrong secret,
    /// tampering). Closes with 1008 and an empty reason; no HS2 is sent.
    #[error("handshake rejected")]
    Rejected,
    /// Server: HS1 is a replay, or its timestamp is outside the window.
    /// Closes with 4001 "stale handshake".
    #[error("stale handshake")]
    Stale,
    /// Client: HS2 does not verify or does not echo HS1's header. The client
    /// sends nothing more.
    #[error("the server did not prove knowledge of the shared secret")]
    ServerNotVerified,
    /// The local configuration cannot work (no secret, no suite, inconsistent limits).
    #[error("invalid handshake configuration: {0}")]
    Config(&'static str),
    /// A local failure unrelated to the peer (the random generator failed).
    #[error("internal handshake failure: {0}")]
    Internal(&'static str),
}

impl HandshakeError {
    /// The close reason (and with it the code) a server sends for this error.
    pub fn reason(&self) -> Reason {
        match self {
            HandshakeError::Malformed(reason) | HandshakeError::Unsupported(reason) => *reason,
            HandshakeError::Rejected | HandshakeError::ServerNotVerified => {
                Reason::HandshakeRejected
            }
            HandshakeError::Stale => Reason::StaleHandshake,
            HandshakeError::Config(_) | HandshakeError::Internal(_) => Reason::Internal,
        }
    }
}

/// What the server announced in HS2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerHello {
    /// `mf`: the largest frame (WebSocket message, header + ciphertext + tag)
    /// either side may send on this connection.
    pub max_frame: u32,
}

fn header(kind: u8, suite: Suite, mode: Mode, flags: u8) -> [u8; HH_LEN] {
    [VERSION, kind, suite.id(), mode.id(), flags, 0, 0, 0]
}

fn prologue(hh1: &[u8; HH_LEN], tls_exporter: Option<&[u8; 32]>) -> Vec<u8> {
    let mut prologue = Vec::with_capacity(PROLOGUE_LABEL.len() + HH_LEN + 32);
    prologue.extend_from_slice(PROLOGUE_LABEL);
    prologue.extend_from_slice(hh1);
    if let Some(exporter) = tls_exporter {
        prologue.extend_from_slice(exporter);
    }
    prologue
}

fn noise_params(suite: Suite) -> Result<snow::params::NoiseParams, HandshakeError> {
    suite
        .noise_name()
        .parse()
        .map_err(|_| HandshakeError::Internal("noise parameters"))
}

/// Noise's handshake hash and raw split, wrapped for wiping, then the Noise state is dropped.
fn finish_noise(mut noise: snow::HandshakeState) -> Result<([u8; 32], Schedule), HandshakeError> {
    let h: [u8; 32] = noise
        .get_handshake_hash()
        .try_into()
        .map_err(|_| HandshakeError::Internal("handshake hash length"))?;
    let (k_i2r, k_r2i) = noise.dangerously_get_raw_split();
    let (k_i2r, k_r2i) = (Zeroizing::new(k_i2r), Zeroizing::new(k_r2i));
    drop(noise);
    Ok((h, Schedule::derive(&h, &k_i2r, &k_r2i)))
}

/// The client's side, between sending HS1 and receiving HS2.
pub struct ClientHandshake {
    noise: snow::HandshakeState,
    hh1: [u8; HH_LEN],
    suite: Suite,
    mode: Mode,
}

impl fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("suite", &self.suite)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl ClientHandshake {
    /// Starts a handshake and returns its state plus HS1, to be sent as one
    /// binary WebSocket message.
    ///
    /// `tls_exporter`: the RFC 9266 `tls-exporter` value of the TLS connection
    /// underneath, when this process terminates TLS itself; it binds the
    /// handshake to that TLS session.
    ///
    /// # Errors
    /// [`HandshakeError::Internal`] if the random generator fails.
    pub fn start(
        secret: &Secret,
        suite: Suite,
        mode: Mode,
        tls_exporter: Option<&[u8; 32]>,
    ) -> Result<(ClientHandshake, Vec<u8>), HandshakeError> {
        ClientHandshake::start_with(secret, suite, mode, tls_exporter, &Seam::REAL)
    }

    /// As [`ClientHandshake::start`], announcing (flags bit 1) that the
    /// AUTH frame will carry a resumption request (docs/PROTOCOL.md §9.6).
    ///
    /// # Errors
    /// As [`ClientHandshake::start`].
    pub fn start_resuming(
        secret: &Secret,
        suite: Suite,
        mode: Mode,
        tls_exporter: Option<&[u8; 32]>,
    ) -> Result<(ClientHandshake, Vec<u8>), HandshakeError> {
        ClientHandshake::start_flagged(secret, suite, mode, tls_exporter, true, &Seam::REAL)
    }

    pub(crate) fn start_with(
        secret: &Secret,
        suite: Suite,
        mode: Mode,
        tls_exporter: Option<&[u8; 32]>,
        seam: &Seam,
    ) -> Result<(ClientHandshake, Vec<u8>), HandshakeError> {
        ClientHandshake::start_flagged(secret, suite, mode, tls_exporter, false, seam)
    }

    pub(crate) fn start_flagged(
        secret: &Secret,
        suite: Suite,
        mode: Mode,
        tls_exporter: Option<&[u8; 32]>,
        resume: bool,
        seam: &Seam,
    ) -> Result<(ClientHandshake, Vec<u8>), HandshakeError> {
        let mut flags = if tls_exporter.is_some() {
            FLAG_TLS_BINDING
        } else {
            0
        };
        if resume {
            flags |= FLAG_RESUME;
        }
        let hh1 = header(TYPE_HS1, suite, mode, flags);
        let prologue = prologue(&hh1, tls_exporter);
        let builder = snow::Builder::new(noise_params(suite)?)
            .psk(0, secret.psk())
            .and_then(|b| b.prologue(&prologue))
            .map_err(|_| HandshakeError::Internal("noise setup"))?;
        let mut noise = seam
            .builder(builder)
            .build_initiator()
            .map_err(|_| HandshakeError::Internal("noise setup"))?;
        let payload = codec::to_vec(&Payload1 { ts: seam.now_ms() })
            .map_err(|_| HandshakeError::Internal("payload encoding"))?;
        let mut hs1 = vec![0u8; HS_MAX];
        hs1[..HH_LEN].copy_from_slice(&hh1);
        let len = noise
            .write_message(&payload, &mut hs1[HH_LEN..])
            .map_err(|_| HandshakeError::Internal("noise message 1"))?;
        hs1.truncate(HH_LEN + len);
        let state = ClientHandshake {
            noise,
            hh1,
            suite,
            mode,
        };
        Ok((state, hs1))
    }

    /// Verifies HS2. On success the server has proved it knows the secret, and
    /// the session's first frame must be the client's AUTH.
    ///
    /// # Errors
    /// [`HandshakeError::ServerNotVerified`] for every kind of bad HS2 (wrong
    /// size or header, failed tag, bad payload); [`HandshakeError::Config`] when
    /// `limits` are inconsistent.
    pub fn finish(
        self,
        hs2: &[u8],
        limits: Limits,
    ) -> Result<(Session, ServerHello), HandshakeError> {
        limits.validate().map_err(HandshakeError::Config)?;
        let mut noise = self.noise;
        let mut expected = self.hh1;
        expected[1] = TYPE_HS2;
        if !(HS_MIN..=HS_MAX).contains(&hs2.len()) || hs2.get(..HH_LEN) != Some(&expected[..]) {
            return Err(HandshakeError::ServerNotVerified);
        }
        let mut payload = [0u8; HS_MAX];
        count_dh();
        let len = noise
            .read_message(&hs2[HH_LEN..], &mut payload)
            .map_err(|_| HandshakeError::ServerNotVerified)?;
        let hello: Payload2 = payload
            .get(..len)
            .and_then(|bytes| codec::decode_value(bytes).ok())
            .ok_or(HandshakeError::ServerNotVerified)?;
        if !(MIN_MAX_FRAME..=MAX_MAX_FRAME).contains(&hello.mf) {
            return Err(HandshakeError::ServerNotVerified);
        }
        let (h, schedule) = finish_noise(noise)?;
        let mf = hello.mf as usize;
        let send_max = mf.min(limits.max_frame);
        let mut session = Session::new(
            Role::Client,
            self.suite,
            self.mode,
            h,
            schedule,
            limits,
            (send_max, mf),
        );
        session.set_resuming(self.hh1[4] & FLAG_RESUME != 0);
        Ok((
            session,
            ServerHello {
                max_frame: hello.mf,
            },
        ))
    }
}

/// How a server accepts handshakes.
#[derive(Clone, Debug)]
pub struct AcceptorConfig {
    /// The secrets HS1 may verify under: the current one first, then previous
    /// ones during a rotation. Each costs a few HMACs per rejected HS1.
    pub secrets: Vec<Secret>,
    /// The suites clients may choose.
    pub suites: Vec<Suite>,
    /// Whether clients may choose mode P (plaintext frames; behind TLS only).
    pub allow_plaintext: bool,
    /// `mf`: the largest frame (header + ciphertext + tag) either side may
    /// send, announced in HS2; 1024 to 16 MiB. A connection announces the
    /// smaller of this and the `max_frame` of the [`Limits`] given to
    /// [`Acceptor::accept`]. Set the WebSocket message limit to the same value.
    pub max_frame: u32,
    /// How far HS1's timestamp may be from this server's clock; `None` turns
    /// the freshness check (window and replay cache) off.
    pub freshness_window: Option<Duration>,
    /// How many recent client ephemerals the replay cache holds (entries live
    /// twice the window). 0 turns the cache off.
    pub replay_cache_capacity: usize,
}

impl Default for AcceptorConfig {
    fn default() -> Self {
        AcceptorConfig {
            secrets: Vec::new(),
            suites: vec![Suite::Aes256Gcm, Suite::ChaCha20Poly1305],
            allow_plaintext: false,
            max_frame: 1 << 20,
            freshness_window: Some(Duration::from_secs(300)),
            replay_cache_capacity: 100_000,
        }
    }
}

/// The server's side: verifies HS1s and answers them. Shared by all
/// connections of a server (`Send + Sync`, use it through an `Arc`).
pub struct Acceptor {
    config: AcceptorConfig,
    replay: Mutex<ReplayCache>,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Acceptor {
    /// An acceptor for `config`.
    ///
    /// # Errors
    /// [`HandshakeError::Config`] when there is no secret or no suite, or
    /// `max_frame` is outside 1024..=16 MiB.
    pub fn new(config: AcceptorConfig) -> Result<Acceptor, HandshakeError> {
        if config.secrets.is_empty() {
            return Err(HandshakeError::Config("no secret configured"));
        }
        if config.suites.is_empty() {
            return Err(HandshakeError::Config("no suite allowed"));
        }
        if !(MIN_MAX_FRAME..=MAX_MAX_FRAME).contains(&config.max_frame) {
            return Err(HandshakeError::Config("max_frame must be 1024 to 16 MiB"));
        }
        let ttl_ms = config
            .freshness_window
            .map_or(0, |window| window.as_millis().saturating_mul(2))
            .try_into()
            .unwrap_or(u64::MAX);
        let replay = ReplayCache::new(config.replay_cache_capacity, ttl_ms);
        Ok(Acceptor {
            config,
            replay: Mutex::new(replay),
        })
    }

    /// Verifies HS1 and returns the session plus HS2 to send.
    ///
    /// Public fields are checked first; then HS1 is tried under each secret
    /// (no Diffie-Hellman, no scrypt); then its freshness. Only then does the
    /// server do its one key generation and Diffie-Hellman and write HS2.
    ///
    /// # Errors
    /// [`HandshakeError::Malformed`] / [`HandshakeError::Unsupported`] for
    /// public fields, [`HandshakeError::Rejected`] when no secret verifies,
    /// [`HandshakeError::Stale`] for a replay or a timestamp outside the
    /// window; [`HandshakeError::reason`] gives the close to send.
    pub fn accept(
        &self,
        hs1: &[u8],
        tls_exporter: Option<&[u8; 32]>,
        limits: Limits,
    ) -> Result<(Session, Vec<u8>), HandshakeError> {
        self.accept_with(hs1, tls_exporter, limits, &Seam::REAL)
    }

    pub(crate) fn accept_with(
        &self,
        hs1: &[u8],
        tls_exporter: Option<&[u8; 32]>,
        limits: Limits,
        seam: &Seam,
    ) -> Result<(Session, Vec<u8>), HandshakeError> {
        limits.validate().map_err(HandshakeError::Config)?;
        let (hh1, suite, mode) = self.check_header(hs1, tls_exporter.is_some())?;
        let binding = if hh1[4] & FLAG_TLS_BINDING != 0 {
            tls_exporter
        } else {
            None
        };
        let prologue = prologue(&hh1, binding);
        let params = noise_params(suite)?;
        let body = hs1.get(HH_LEN..).unwrap_or_default();

        let mut payload = [0u8; HS_MAX];
        let mut verified = None;
        for secret in &self.config.secrets {
            let mut noise = snow::Builder::new(params.clone())
                .psk(0, secret.psk())
                .and_then(|b| b.prologue(&prologue))
                .and_then(|b| seam.builder(b).build_responder())
                .map_err(|_| HandshakeError::Internal("noise setup"))?;
            // Message 1 of NNpsk0 is "psk, e": hashing and one AEAD check, no DH.
            if let Ok(len) = noise.read_message(body, &mut payload) {
                verified = Some((noise, len));
                break;
            }
        }
        let (mut noise, len) = verified.ok_or(HandshakeError::Rejected)?;

        let hello: Payload1 = payload
            .get(..len)
            .and_then(|bytes| codec::decode_value(bytes).ok())
            .ok_or(HandshakeError::Malformed(Reason::HandshakePayload))?;
        self.check_fresh(hs1, hello.ts, seam.now_ms())?;

        let mf = self
            .config
            .max_frame
            .min(u32::try_from(limits.max_frame).unwrap_or(u32::MAX))
            .max(MIN_MAX_FRAME);
        let payload2 = codec::to_vec(&Payload2 { mf })
            .map_err(|_| HandshakeError::Internal("payload encoding"))?;
        let mut hs2 = vec![0u8; HS_MAX];
        let mut hh2 = hh1;
        hh2[1] = TYPE_HS2;
        hs2[..HH_LEN].copy_from_slice(&hh2);
        count_dh();
        let len = noise
            .write_message(&payload2, &mut hs2[HH_LEN..])
            .map_err(|_| HandshakeError::Internal("noise message 2"))?;
        hs2.truncate(HH_LEN + len);
        let (h, schedule) = finish_noise(noise)?;
        let mf = mf as usize;
        let mut session = Session::new(Role::Server, suite, mode, h, schedule, limits, (mf, mf));
        session.set_resuming(hh1[4] & FLAG_RESUME != 0);
        Ok((session, hs2))
    }

    /// Checks the public fields of HS1.
    fn check_header(
        &self,
        hs1: &[u8],
        have_exporter: bool,
    ) -> Result<([u8; HH_LEN], Suite, Mode), HandshakeError> {
        if !(HS_MIN..=HS_MAX).contains(&hs1.len()) {
            return Err(HandshakeError::Malformed(Reason::HandshakeLength));
        }
        let hh1: [u8; HH_LEN] = hs1
            .get(..HH_LEN)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(HandshakeError::Malformed(Reason::HandshakeLength))?;
        let [version, kind, suite, mode, flags, r0, r1, r2] = hh1;
        if version != VERSION {
            return Err(HandshakeError::Unsupported(Reason::UnsupportedVersion));
        }
        if kind != TYPE_HS1 {
            return Err(HandshakeError::Malformed(Reason::HandshakeType));
        }
        if [r0, r1, r2] != [0, 0, 0] {
            return Err(HandshakeError::Malformed(Reason::HandshakeReserved));
        }
        if flags & !(FLAG_TLS_BINDING | FLAG_RESUME) != 0 {
            return Err(HandshakeError::Malformed(Reason::UnknownFlags));
        }
        let suite = Suite::from_id(suite)
            .filter(|suite| self.config.suites.contains(suite))
            .ok_or(HandshakeError::Unsupported(Reason::UnsupportedSuite))?;
        let mode = match Mode::from_id(mode) {
            Some(Mode::Encrypted) => Mode::Encrypted,
            Some(Mode::Plaintext) if self.config.allow_plaintext => Mode::Plaintext,
            Some(Mode::Plaintext) => {
                return Err(HandshakeError::Unsupported(Reason::PlaintextNotAllowed));
            }
            None => return Err(HandshakeError::Unsupported(Reason::UnsupportedMode)),
        };
        if flags & FLAG_TLS_BINDING != 0 && !have_exporter {
            return Err(HandshakeError::Unsupported(Reason::BindingUnavailable));
        }
        Ok((hh1, suite, mode))
    }

    /// The timestamp window and the replay cache of client ephemerals.
    fn check_fresh(&self, hs1: &[u8], ts: u64, now_ms: u64) -> Result<(), HandshakeError> {
        let Some(window) = self.config.freshness_window else {
            return Ok(());
        };
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        if now_ms.abs_diff(ts) > window_ms {
            return Err(HandshakeError::Stale);
        }
        let e_c: [u8; 32] = hs1
            .get(HH_LEN..HH_LEN + 32)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(HandshakeError::Malformed(Reason::HandshakeLength))?;
        let fresh = self
            .replay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(e_c, now_ms);
        if fresh {
            Ok(())
        } else {
            Err(HandshakeError::Stale)
        }
    }
}

fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Test-only inputs: a fixed ephemeral key and a fixed clock. In builds
/// without `cfg(test)` this type has no fields and cannot fix anything.
#[cfg(test)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Seam {
    pub(crate) ephemeral: Option<[u8; 32]>,
    pub(crate) now_ms: Option<u64>,
}

#[cfg(test)]
impl Seam {
    pub(crate) const REAL: Seam = Seam {
        ephemeral: None,
        now_ms: None,
    };

    fn now_ms(&self) -> u64 {
        self.now_ms.unwrap_or_else(wall_clock_ms)
    }

    fn builder<'a>(&'a self, builder: snow::Builder<'a>) -> snow::Builder<'a> {
        match &self.ephemeral {
            Some(key) => builder.fixed_ephemeral_key_for_testing_only(key),
            None => builder,
        }
    }
}

/// Release builds: the real clock and fresh ephemerals, nothing else possible.
#[cfg(not(test))]
#[derive(Clone, Copy, Default)]
pub(crate) struct Seam;

#[cfg(not(test))]
impl Seam {
    const REAL: Seam = Seam;

    fn now_ms(&self) -> u64 {
        wall_clock_ms()
    }

    fn builder<'a>(&'a self, builder: snow::Builder<'a>) -> snow::Builder<'a> {
        builder
    }
}

#[cfg(test)]
thread_local! {
    /// Diffie-Hellman operations begun on this thread (tests assert a rejected HS1 costs none).
    static DH_COUNT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts one Diffie-Hellman operation (tests only).
fn count_dh() {
    #[cfg(test)]
    DH_COUNT.with(|count| count.set(count.get() + 1));
}

/// Diffie-Hellman operations begun on this thread so far.
#[cfg(test)]
pub(crate) fn dh_count() -> u64 {
    DH_COUNT.with(std::cell::Cell::get)
}
