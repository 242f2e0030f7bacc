//! The reserved method `sockets.describe`, and the compatibility check at
//! connect that calls it.
//!
//! Every server and client answers `sockets.describe` (no arguments) with
//! the [`Document`] of the services it serves: one MessagePack value shaped
//! as the JSON of `docs/DESCRIPTOR.md`. The document is built and encoded
//! once, when the server or client is built. The method belongs to a service
//! named `sockets`, so no user service may take that name. Who may call it
//! is [`DescribeAccess`]: authenticated sessions by default.
//!
//! A client built with
//! [`ClientBuilder::expect_services`](crate::ClientBuilder::expect_services)
//! calls it right after authentication, on every connection, and compares
//! the answer with its own generated descriptors
//! ([`descriptor::compare`](crate::descriptor::compare)); a server built with
//! [`ServerBuilder::expect_client_services`](crate::ServerBuilder::expect_client_services)
//! does the same with each client it admits.

use std::sync::Arc;

use crate::descriptor::{
    DESCRIBE_METHOD, Difference, Document, Incompatible, ServiceDescriptor, compare,
};
use crate::error::Error;
use bytes::Bytes;

use crate::protocol::{EncodedValue, codec};
use crate::service::{
    CallOptions, Context, DispatchError, HandlerFuture, MethodInfo, Peer, Service, ServiceInfo,
};

/// Who may call `sockets.describe` on this side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DescribeAccess {
    /// Nobody: the method is not served (`UnknownMethod`).
    Off,
    /// Authenticated sessions; a guest gets `Unauthorized`. The default.
    #[default]
    Authenticated,
    /// Guest sessions too, as a method marked `#[sockets(open)]`.
    Guests,
}

/// The service's name: the prefix of the reserved method.
pub(crate) const SERVICE: &str = "sockets";

static CLOSED: ServiceInfo = ServiceInfo {
    name: SERVICE,
    methods: &[MethodInfo {
        name: DESCRIBE_METHOD,
        open: false,
        notify: false,
        stream: false,
        stream_in: false,
    }],
};

static OPEN: ServiceInfo = ServiceInfo {
    name: SERVICE,
    methods: &[MethodInfo {
        name: DESCRIBE_METHOD,
        open: true,
        notify: false,
        stream: false,
        stream_in: false,
    }],
};

/// Serves `sockets.describe`: the document of the other services, encoded once.
pub(crate) struct DescribeService {
    info: &'static ServiceInfo,
    document: Bytes,
}

impl DescribeService {
    /// The service describing `services`; `None` when `access` is off.
    ///
    /// # Errors
    /// [`Error::Codec`] if the document does not encode (it always does).
    pub(crate) fn new<'a>(
        services: impl IntoIterator<Item = &'a Arc<dyn Service>>,
        access: DescribeAccess,
    ) -> Result<Option<Self>, Error> {
        let info = match access {
            DescribeAccess::Off => return Ok(None),
            DescribeAccess::Authenticated => &CLOSED,
            DescribeAccess::Guests => &OPEN,
        };
        let document = Document::new(
            services
                .into_iter()
                .filter_map(|service| service.descriptor().cloned()),
        );
        Ok(Some(Self {
            info,
            document: codec::to_vec(&document)?.into(),
        }))
    }
}

impl Service for DescribeService {
    fn info(&self) -> &'static ServiceInfo {
        self.info
    }

    fn dispatch(
        self: Arc<Self>,
        _cx: Context,
        method: &str,
        args: &[u8],
    ) -> Result<HandlerFuture, DispatchError> {
        if method != DESCRIBE_METHOD {
            return Err(DispatchError::UnknownMethod(method.to_owned()));
        }
        codec::decode_value::<[(); 0]>(args).map_err(|e| {
            DispatchError::BadRequest(format!("`{DESCRIBE_METHOD}` takes no arguments: {e}"))
        })?;
        let document = self.document.clone();
        Ok(Box::pin(std::future::ready(Ok(EncodedValue::from(
            document,
        )))))
    }
}

/// Fetches the peer's document.
///
/// # Errors
/// As [`Peer::call`].
pub(crate) async fn fetch(peer: &Peer, options: CallOptions) -> Result<Document, Error> {
    peer.call::<_, Document>(DESCRIBE_METHOD, &[(); 0], options)
        .await
}

/// Asks the peer for its services and compares them with `expected`
/// (`guest`: this side is the peer's guest).
///
/// # Errors
/// [`Error::Incompatible`] listing each difference, also when the peer does
/// not answer `sockets.describe`; the call's own error when it fails otherwise
/// ([`Error::Timeout`], [`Error::Disconnected`]).
pub(crate) async fn check(
    peer: &Peer,
    expected: &[&'static ServiceDescriptor],
    guest: bool,
) -> Result<(), Error> {
    let document = match fetch(peer, CallOptions::default()).await {
        Ok(document) => document,
        Err(error @ (Error::UnknownMethod(_) | Error::Unauthorized)) => {
            return Err(Error::Incompatible(Incompatible {
                differences: vec![Difference::new(
                    DESCRIBE_METHOD,
                    format!("the peer does not describe its services to this session ({error})"),
                )],
            }));
        }
        Err(error) => return Err(error),
    };
    let differences = compare(expected.iter().copied(), &document, guest);
    if differences.is_empty() {
        Ok(())
    } else {
        Err(Error::Incompatible(Incompatible { differences }))
    }
}
