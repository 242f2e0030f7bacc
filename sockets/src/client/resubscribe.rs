//! A stream that re-opens itself after a reconnect (`CallOptions::resubscribe`).
//!
//! When the connection under it is lost, the stream does not end: it waits
//! for the client's next connection, opens the same method with the same
//! arguments and window on it, and yields a [`Feed::Gap`] where the gap was,
//! so the application knows items may have been missed. One loss yields one
//! marker, however many connections are lost before the stream is open
//! again. It ends as any stream does otherwise: when the peer ends it, or
//! refuses to open it again (that refusal is its last item), or when the
//! client is closed or gives up reconnecting ([`Error::Disconnected`]).
//!
//! [`Feed::Gap`]: crate::Feed::Gap

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::{FutureExt, Stream as FuturesStream, StreamExt};

use super::{ClientState, Inner, stopped, usable};
use crate::connection::Handle;
use crate::error::Error;
use crate::identity::ConnectionId;
use crate::protocol::EncodedValue;
use crate::service::BoxFuture;
use crate::stream::{GAP, RawItems, RawStream, Window};

/// What [`Resubscribing`] needs to open its method again.
#[derive(Clone)]
struct Opening {
    inner: Arc<Inner>,
    method: Cow<'static, str>,
    args: EncodedValue,
    window: Window,
}

impl Opening {
    /// Waits for a connection other than `lost` and opens the stream on it;
    /// waits again when that connection is lost too before the stream is
    /// open. `Disconnected` once the client is closed or has given up.
    async fn reopen(self, mut lost: ConnectionId) -> Result<(ConnectionId, RawStream), Error> {
        loop {
            let Some(handle) = next_connection(&self.inner, lost).await else {
                return Err(self.inner.disconnected());
            };
            match handle
                .open_stream(self.method.clone(), self.args.clone(), self.window, None)
                .await
            {
                Ok(stream) => return Ok((handle.id(), stream)),
                Err(Error::Disconnected(reason)) => {
                    tracing::debug!(method = %self.method, connection = %handle.id(), %reason,
                        "connection lost while re-opening a stream; waiting for the next");
                    lost = handle.id();
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// The client's next usable connection other than `lost`; `None` once the
/// client is closed, or closed itself (reconnecting disabled or given up).
async fn next_connection(inner: &Inner, lost: ConnectionId) -> Option<Handle> {
    tokio::select! {
        biased;
        () = stopped(&inner.user_closed) => None,
        () = inner.state.wait_for(|s| (*s == ClientState::Closed).then_some(())) => None,
        handle = inner.current.wait_for(|c| usable(c).filter(|h| h.id() != lost)) => Some(handle),
    }
}

/// A stream that re-opens itself after a reconnect.
pub(super) struct Resubscribing {
    opening: Opening,
    /// The open stream; `None` while re-opening, and once ended.
    current: Option<RawStream>,
    /// The connection `current` is (or was last) open on.
    on: ConnectionId,
    reopening: Option<BoxFuture<'static, Result<(ConnectionId, RawStream), Error>>>,
    /// A gap was marked and no item came since: another loss now is the same gap.
    marked: bool,
}

impl Resubscribing {
    /// Keeps `stream`, opened on connection `on` with `method`, `args` and
    /// `window`, open across reconnects.
    pub(super) fn boxed(
        inner: Arc<Inner>,
        on: ConnectionId,
        stream: RawStream,
        method: Cow<'static, str>,
        args: EncodedValue,
        window: Window,
    ) -> RawStream {
        Box::pin(Self {
            opening: Opening {
                inner,
                method,
                args,
                window,
            },
            current: Some(stream),
            on,
            reopening: None,
            marked: false,
        })
    }
}

impl FuturesStream for Resubscribing {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(reopening) = &mut this.reopening {
                let opened = ready!(reopening.poll_unpin(cx));
                this.reopening = None;
                match opened {
                    Ok((on, stream)) => {
                        tracing::debug!(method = %this.opening.method, connection = %on,
                            "stream re-opened after a reconnect");
                        this.on = on;
                        this.current = Some(stream);
                        if !this.marked {
                            this.marked = true;
                            return Poll::Ready(Some(Ok(Bytes::from_static(GAP))));
                        }
                        continue;
                    }
                    Err(error) => {
                        tracing::debug!(method = %this.opening.method, %error,
                            "stream not re-opened; it ends");
                        return Poll::Ready(Some(Err(error)));
                    }
                }
            }
            let Some(current) = &mut this.current else {
                return Poll::Ready(None);
            };
            match ready!(current.poll_next_unpin(cx)) {
                Some(Ok(item)) => {
                    this.marked = false;
                    return Poll::Ready(Some(Ok(item)));
                }
                Some(Err(Error::Disconnected(reason))) => {
                    tracing::debug!(method = %this.opening.method, connection = %this.on, %reason,
                        "stream lost with its connection; re-opening it on the next");
                    this.current = None;
                    this.reopening = Some(Box::pin(this.opening.clone().reopen(this.on)));
                }
                end => {
                    this.current = None;
                    return Poll::Ready(end);
                }
            }
        }
    }
}

impl RawItems for Resubscribing {
    fn backlog(&self) -> usize {
        self.current.as_ref().map_or(0, |current| current.backlog())
    }
}
