//! The connection options every command shares: the same `SOCKETS_*`
//! variables the runtime reads, or flags.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sockets::crypto::{Secret, Suite};
use sockets::{Client, ClientBuilder, Reconnect};

use crate::exit::CliError;

/// How to reach and authenticate to a server.
#[derive(clap::Args, Clone, Debug)]
pub struct Connection {
    /// The shared key: 32 bytes in base64 (`sockets keygen` makes one).
    #[arg(long, env = "SOCKETS_SECRET", hide_env_values = true, global = true)]
    pub secret: Option<String>,
    /// A passphrase instead of a key (needs --salt).
    #[arg(
        long,
        env = "SOCKETS_PASSPHRASE",
        hide_env_values = true,
        global = true
    )]
    pub passphrase: Option<String>,
    /// The passphrase's per-deployment salt (at least 16 bytes).
    #[arg(long, env = "SOCKETS_SALT", global = true)]
    pub salt: Option<String>,
    /// Credentials for the server's auth hook, as JSON: `'"token"'`, `'{"user": "ada"}'`.
    #[arg(
        long,
        env = "SOCKETS_CREDENTIALS",
        hide_env_values = true,
        global = true
    )]
    pub credentials: Option<String>,
    /// The cipher suite.
    #[arg(
        long,
        env = "SOCKETS_CIPHER",
        value_enum,
        default_value = "auto",
        global = true
    )]
    pub cipher: Cipher,
    /// Unencrypted frames (behind TLS only; the handshake still proves the secret).
    #[arg(long, env = "SOCKETS_PLAINTEXT", global = true)]
    pub plaintext: bool,
    /// Allow --plaintext on a ws:// url (tests, trusted sockets).
    #[arg(long, env = "SOCKETS_PLAINTEXT_OVER_WS", global = true)]
    pub plaintext_over_ws: bool,
    /// A PEM file of CA certificates to trust for wss:// urls.
    #[arg(long, env = "SOCKETS_CA", global = true)]
    pub ca: Option<PathBuf>,
    /// How long a call may take, in milliseconds.
    #[arg(
        long,
        env = "SOCKETS_CALL_TIMEOUT_MS",
        default_value_t = 30_000,
        global = true
    )]
    pub timeout_ms: u64,
}

/// `SOCKETS_CIPHER`'s values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    /// AES-256-GCM where the CPU accelerates it, else ChaCha20-Poly1305.
    Auto,
    /// AES-256-GCM.
    #[value(name = "aes-256-gcm", alias = "aes")]
    Aes256Gcm,
    /// ChaCha20-Poly1305.
    #[value(name = "chacha20-poly1305", alias = "chacha")]
    Chacha20Poly1305,
}

impl Connection {
    /// The shared secret from the key, or the passphrase and its salt.
    ///
    /// # Errors
    /// [`CliError::Config`] when neither is given or one is invalid.
    pub fn secret(&self) -> Result<Secret, CliError> {
        if let Some(key) = &self.secret {
            return Secret::from_base64(key.trim())
                .map_err(|e| CliError::Config(format!("SOCKETS_SECRET: {e}")));
        }
        match (&self.passphrase, &self.salt) {
            (Some(passphrase), Some(salt)) => Secret::from_passphrase(passphrase, salt.as_bytes())
                .map_err(|e| CliError::Config(format!("SOCKETS_PASSPHRASE/SOCKETS_SALT: {e}"))),
            (Some(_), None) => Err(CliError::Config(
                "SOCKETS_PASSPHRASE is set but SOCKETS_SALT is missing".into(),
            )),
            _ => Err(CliError::Config(
                "no shared secret: set SOCKETS_SECRET or pass --secret (or SOCKETS_PASSPHRASE and SOCKETS_SALT)".into(),
            )),
        }
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// A client builder for `url` with these options; it does not reconnect.
    ///
    /// # Errors
    /// [`CliError::Config`] for a bad secret, credentials or CA file.
    pub fn builder(&self, url: &str) -> Result<ClientBuilder, CliError> {
        let mut builder = Client::builder()
            .url(url)
            .secret(self.secret()?)
            .reconnect(Reconnect::disabled())
            .call_timeout(self.timeout())
            .handshake_timeout(self.timeout().min(Duration::from_secs(30)))
            .plaintext(self.plaintext)
            .plaintext_over_ws(self.plaintext_over_ws);
        match self.cipher {
            Cipher::Auto => {}
            Cipher::Aes256Gcm => builder = builder.suite(Suite::Aes256Gcm),
            Cipher::Chacha20Poly1305 => builder = builder.suite(Suite::ChaCha20Poly1305),
        }
        if let Some(credentials) = &self.credentials {
            let value: serde_json::Value = serde_json::from_str(credentials)
                .map_err(|e| CliError::Config(format!("credentials are not JSON: {e}")))?;
            builder = builder.credentials(&value);
        }
        if let Some(ca) = &self.ca {
            builder = builder.tls(tls_config(ca)?);
        }
        Ok(builder)
    }

    /// Connects to `url`.
    ///
    /// # Errors
    /// As [`Connection::builder`], and the runtime's connect errors.
    pub async fn connect(&self, url: &str) -> Result<Client, CliError> {
        Ok(self.builder(url)?.connect().await?)
    }
}

/// A rustls client configuration trusting the certificates in `ca`.
fn tls_config(ca: &std::path::Path) -> Result<Arc<sockets::rustls::ClientConfig>, CliError> {
    use sockets::rustls::pki_types::CertificateDer;
    use sockets::rustls::pki_types::pem::PemObject;
    use sockets::rustls::{ClientConfig, RootCertStore};

    let pem = std::fs::read(ca)
        .map_err(|e| CliError::Config(format!("cannot read {}: {e}", ca.display())))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| CliError::Config(format!("{}: {e}", ca.display())))?;
        roots
            .add(cert)
            .map_err(|e| CliError::Config(format!("{}: {e}", ca.display())))?;
    }
    if roots.is_empty() {
        return Err(CliError::Config(format!(
            "{} holds no PEM certificate",
            ca.display()
        )));
    }
    let provider = Arc::new(sockets::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
