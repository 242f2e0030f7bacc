//! Who is on the other end of a connection: its id, whether it authenticated
//! or is a guest, what the auth hook stored for it, and the auth hook's
//! inputs and verdict.
//!
//! A leaf: these are plain values that every layer above names (errors name
//! a connection id, handlers read the metadata, the server's admission
//! produces the verdict), so they live below all of them.

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A connection's id: unique within the process, never reused.
///
/// On the wire (it is `Serialize`/`Deserialize`) it is its number, so a
/// service may pass ids around (`Client::server_connection_id` gives a
/// client its id on the server).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// The id's number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The id with this number; only the runtime hands out new ones.
    pub(crate) fn from_u64(id: u64) -> Self {
        Self(id)
    }

    /// A fresh id, never handed out before in this process.
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Whether a connection authenticated or was let in as a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// The auth hook accepted the credentials.
    Authenticated,
    /// The auth hook admitted a guest: only open methods may be called.
    Guest,
}

/// What the auth hook stored for a connection, shared by all its handlers.
///
/// It holds one value of the application's type, chosen by the auth hook
/// ([`AuthDecision::accept`]); [`Meta::get`] gives it back as that type.
/// Asking for another type is a bug in the application, not a condition
/// to handle: it is logged at ERROR with both type names and fails a
/// debug assertion, rather than reading as a quiet `None` that looks like
/// an anonymous session. ([`Meta::peek`] asks without that, for code that
/// really does not know the type.) A server generic over its metadata type
/// would catch the mistake at compile time, but every handler, context and
/// generated service would carry the parameter; one type per server, named
/// in the auth hook, checked loudly at the first wrong read, costs users nothing.
///
/// It may also carry a label naming the user for logs and spans
/// ([`AuthDecision::label`]): the field `user` of the connection's span.
#[derive(Clone)]
pub struct Meta(Option<Stored>, Option<Arc<str>>);

#[derive(Clone)]
struct Stored {
    value: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
}

impl Meta {
    /// No metadata (a guest session, or an auth hook that stores none).
    pub fn none() -> Self {
        Self(None, None)
    }

    /// Metadata holding `value`.
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Self(
            Some(Stored {
                value: Arc::new(value),
                type_name: std::any::type_name::<T>(),
            }),
            None,
        )
    }

    /// The same metadata labelled `label`: a name for the user in logs and
    /// spans (the connection span's `user`). Keep secrets and credentials
    /// out of it: it is logged as it is.
    pub fn with_label(mut self, label: impl Into<Arc<str>>) -> Self {
        self.1 = Some(label.into());
        self
    }

    /// The label for logs and spans, if one was set.
    pub fn label(&self) -> Option<&str> {
        self.1.as_deref()
    }

    /// The metadata as a `T`; `None` when there is none.
    ///
    /// # Panics
    /// In debug builds, when the metadata is of another type than `T` (in
    /// release builds: an ERROR log line naming both types, and `None`).
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        let stored = self.0.as_ref()?;
        let value = stored.value.downcast_ref();
        if value.is_none() {
            let asked = std::any::type_name::<T>();
            tracing::error!(
                stored = stored.type_name,
                asked,
                "connection metadata read as the wrong type"
            );
            debug_assert!(
                false,
                "connection metadata is a `{}`, read as a `{asked}`",
                stored.type_name
            );
        }
        value
    }

    /// The metadata, if it is a `T`, without complaint if it is not.
    pub fn peek<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.as_ref()?.value.downcast_ref()
    }

    /// Whether there is metadata.
    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// The name of the stored value's type, if there is one.
    pub fn type_name(&self) -> Option<&'static str> {
        self.0.as_ref().map(|stored| stored.type_name)
    }
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The type, never the value: it may hold a user's secrets.
        let type_name = self.0.as_ref().map_or("none", |stored| stored.type_name);
        match &self.1 {
            Some(label) => write!(f, "Meta({type_name}, label {label:?})"),
            None => write!(f, "Meta({type_name})"),
        }
    }
}

/// What the server knows of a connecting client when its auth hook runs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The id the connection will keep.
    pub id: ConnectionId,
    /// The client's address; the unspecified address `0.0.0.0:0` when it has
    /// none (a Unix socket, a stream of the application's without one).
    pub addr: SocketAddr,
    /// The headers of the HTTP request that opened a WebSocket (cookies,
    /// `Authorization`), for an auth hook that checks them; empty on other
    /// transports.
    pub headers: Headers,
}

/// The headers of an HTTP request, names in lowercase. `Debug` shows the
/// names only: values often carry credentials, and must not reach a log.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// Headers from `(name, value)` pairs; names are lowercased.
    pub fn new<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(name, value)| (name.into().to_ascii_lowercase(), value.into()))
                .collect(),
        )
    }

    /// The first value of header `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header, in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.0.iter().map(|(n, _)| n))
            .finish()
    }
}

/// The auth hook's verdict on a client's credentials.
#[derive(Debug)]
pub enum AuthDecision {
    /// Authenticated; handlers see `meta` in their [`Context`](crate::Context).
    Accept(Meta),
    /// A guest session: only methods marked open may be called.
    Guest,
    /// Refused: the connection closes with `AuthRejected` and this reason,
    /// which the client's `connect` reports as `Error::AuthRejected`.
    Reject(String),
}

impl AuthDecision {
    /// Authenticated, storing `meta` for the connection's handlers.
    pub fn accept<T: Any + Send + Sync>(meta: T) -> Self {
        Self::Accept(Meta::new(meta))
    }

    /// Refused with `reason` (sent to the client; keep secrets out of it).
    pub fn reject(reason: impl Into<String>) -> Self {
        Self::Reject(reason.into())
    }

    /// Labels an accepted connection for logs, spans and
    /// [`Context::label`](crate::Context::label): the `user` field of its
    /// `sockets.connection` span. A name or an account id, never a secret or
    /// the credentials (it is logged as it is). A guest or a rejection
    /// carries no label: on those it does nothing.
    ///
    /// ```
    /// # use sockets::AuthDecision;
    /// let decision = AuthDecision::accept(42_u64).label("ada");
    /// assert!(matches!(decision, AuthDecision::Accept(meta) if meta.label() == Some("ada")));
    /// ```
    #[must_use]
    pub fn label(self, label: impl Into<Arc<str>>) -> Self {
        match self {
            Self::Accept(meta) => Self::Accept(meta.with_label(label)),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Meta;

    #[test]
    fn metadata_reads_back_as_its_own_type_and_names_it() {
        let meta = Meta::new(String::from("ada"));
        assert_eq!(meta.get::<String>().map(String::as_str), Some("ada"));
        assert_eq!(meta.type_name(), Some("alloc::string::String"));
        assert_eq!(format!("{meta:?}"), "Meta(alloc::string::String)");
        assert!(
            Meta::none().get::<String>().is_none(),
            "none is not a mismatch"
        );
        assert_eq!(meta.peek::<u64>(), None, "peek asks quietly");
        let labelled = meta.with_label("ada");
        assert_eq!(labelled.label(), Some("ada"));
        assert_eq!(
            format!("{labelled:?}"),
            "Meta(alloc::string::String, label \"ada\")"
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "connection metadata is a `alloc::string::String`, read as a `&str`")]
    fn reading_metadata_as_another_type_is_loud() {
        let meta = Meta::new(String::from("ada"));
        let _ = meta.get::<&'static str>();
    }
}
