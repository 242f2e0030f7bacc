//! What went wrong, and the exit code that says so: one per kind of error,
//! so scripts can tell them apart.
//!
//! | code | meaning |
//! |---:|---|
//! | 0 | success |
//! | 1 | an unexpected failure of the tool itself (writing output, ...) |
//! | 2 | bad command line (clap's usage errors) |
//! | 3 | bad arguments: not JSON, or not fitting the method's signature |
//! | 4 | unknown method: not in the server's descriptor, or refused as unknown |
//! | 5 | configuration: no secret, bad URL, bad credentials, bad TLS file |
//! | 6 | the connection failed (refused, reset, not a `sockets` server) |
//! | 7 | handshake failed: the server does not know the secret |
//! | 8 | authentication rejected by the server's auth hook |
//! | 9 | timed out |
//! | 10 | disconnected |
//! | 11 | unauthorized: a guest session called a method that is not open |
//! | 12 | rejected by a limit (calls in flight, server full, shutting down) |
//! | 13 | bad request: the server could not decode the arguments |
//! | 14 | the server's handler panicked or its result did not encode |
//! | 15 | protocol or codec error (a broken peer or reply) |
//! | 16 | incompatible services |
//! | 17 | the server answered with an error code this tool does not know |
//! | 19 | the method returns a stream, which `call` and `bench` do not open |
//! | 20 | the method returned its declared error (`Err`), printed as JSON |

use sockets::Error;

/// Everything that ends a command early.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The runtime's error.
    #[error(transparent)]
    Sockets(#[from] Error),
    /// Arguments that are not JSON or do not fit the signature; the
    /// message shows the expected signature.
    #[error("{0}")]
    Arguments(String),
    /// A method the descriptor does not have.
    #[error("{0}")]
    UnknownMethod(String),
    /// Bad settings of the tool itself.
    #[error("{0}")]
    Config(String),
    /// The method returns a stream: not something `call` or `bench` open.
    #[error("{0}")]
    Stream(String),
    /// The method returned its declared error (already printed).
    #[error("the method returned its declared error")]
    Declared,
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        Self::Other(error.to_string())
    }
}

impl CliError {
    /// The process exit code.
    pub fn code(&self) -> u8 {
        match self {
            Self::Other(_) => 1,
            Self::Arguments(_) => 3,
            Self::UnknownMethod(_) => 4,
            Self::Config(_) => 5,
            Self::Stream(_) => 19,
            Self::Declared => 20,
            Self::Sockets(error) => sockets_code(error),
        }
    }
}

/// The exit code of a runtime error.
pub fn sockets_code(error: &Error) -> u8 {
    match error {
        Error::UnknownMethod(_) => 4,
        Error::Config(_) => 5,
        Error::Io(_) => 6,
        Error::HandshakeFailed => 7,
        Error::AuthRejected(_) => 8,
        Error::Timeout => 9,
        Error::Disconnected(_) | Error::UnknownConnection(_) => 10,
        Error::Unauthorized => 11,
        Error::Rejected(_) => 12,
        Error::BadRequest(_) => 13,
        Error::Internal(_) => 14,
        Error::Protocol(_) | Error::Codec(_) | Error::KindMismatch { .. } => 15,
        Error::Incompatible(_) => 16,
        Error::Remote { .. } => 17,
        Error::Forbidden(_) => 18,
        _ => 1,
    }
}

/// A short name for an error's kind (bench's error counts).
pub fn kind(error: &Error) -> &'static str {
    match error {
        Error::UnknownMethod(_) => "unknown method",
        Error::Config(_) => "configuration",
        Error::Io(_) => "i/o",
        Error::HandshakeFailed => "handshake failed",
        Error::AuthRejected(_) => "auth rejected",
        Error::Timeout => "timeout",
        Error::Disconnected(_) | Error::UnknownConnection(_) => "disconnected",
        Error::Unauthorized => "unauthorized",
        Error::Rejected(_) => "rejected",
        Error::BadRequest(_) => "bad request",
        Error::Internal(_) => "remote internal",
        Error::Protocol(_) | Error::Codec(_) | Error::KindMismatch { .. } => "protocol",
        Error::Incompatible(_) => "incompatible",
        Error::Remote { .. } => "remote error",
        Error::Forbidden(_) => "forbidden",
        _ => "other",
    }
}
