//! The ceiling of the TCP and Unix targets: a bare echo of length-prefixed
//! binary messages (`u32be length | payload`, the framing of docs/PROTOCOL.md
//! §2.1 without its preamble and close), no RPC layer, no crypto.
//!
//! Written to be fast, like the WebSocket echo: TCP_NODELAY, one task per
//! connection end that reads and writes (no hand-off between tasks), and
//! batched writes: every message that is ready is copied into one write
//! buffer, written with as few system calls as the socket allows. Both
//! buffers are reused: a 1 MiB message is read into the read buffer, copied
//! out and released, so the next one lands in the same memory. (Echoing the
//! received buffer itself, without the copy, was slower on W4: it kept each
//! 1 MiB buffer alive until written, so every message needed fresh memory and
//! its page faults.) Reading and writing are polled together, so a peer that
//! writes 4 MiB before reading (W4) cannot deadlock it.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::BoxError;
use crate::drive::Ceiling;

/// Bytes asked of one read when no large message is pending.
const READ_CHUNK: usize = 4 * 1024;
/// The largest message accepted.
const MAX_MESSAGE: usize = 2 << 20;

/// A byte stream: TCP or Unix.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Length-prefixed messages over one stream, read and written by one task.
pub struct Wire {
    io: Box<dyn Io>,
    read: BytesMut,
    /// Bytes the message being read needs in `read`, once its length is known.
    need: usize,
    /// Bytes queued for writing.
    out: BytesMut,
}

impl Wire {
    fn new(io: Box<dyn Io>) -> Self {
        Self {
            io,
            read: BytesMut::new(),
            need: 0,
            out: BytesMut::new(),
        }
    }

    /// Queues one message; it is written by the next [`Wire::exchange`] or [`Wire::flush`].
    fn push(&mut self, message: &[u8]) {
        let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
        self.out.reserve(4 + message.len());
        self.out.put_u32(length);
        self.out.put_slice(message);
    }

    /// Writes until everything queued is written (`Ready`) or the socket is full (`Pending`).
    fn poll_write_queued(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(written);
        }
        Poll::Ready(Ok(()))
    }

    /// Moves every complete message in the read buffer to `into`.
    fn decode(&mut self, into: &mut Vec<Bytes>) -> io::Result<()> {
        while let Some(length) = self.read.first_chunk::<4>() {
            let length = u32::from_be_bytes(*length) as usize;
            if length > MAX_MESSAGE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "message too large",
                ));
            }
            if self.read.len() < 4 + length {
                self.need = 4 + length;
                return Ok(());
            }
            self.read.advance(4);
            into.push(self.read.split_to(length).freeze());
        }
        self.need = 0;
        Ok(())
    }

    /// Writes what is queued while reading; returns once at least one
    /// message was read into `into` (`true`), or at the end of the stream
    /// (`false`).
    async fn exchange(&mut self, into: &mut Vec<Bytes>) -> io::Result<bool> {
        poll_fn(|cx| {
            if let Poll::Ready(written) = self.poll_write_queued(cx) {
                written?;
            }
            loop {
                self.decode(into)?;
                if !into.is_empty() {
                    return Poll::Ready(Ok(true));
                }
                let want = self.need.saturating_sub(self.read.len()).max(READ_CHUNK);
                self.read.reserve(want);
                let read = ready!(tokio_util::io::poll_read_buf(
                    Pin::new(&mut self.io),
                    cx,
                    &mut self.read
                ))?;
                if read == 0 {
                    return Poll::Ready(Ok(false));
                }
            }
        })
        .await
    }

    /// Writes everything queued.
    async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_write_queued(cx)).await?;
        self.io.flush().await
    }
}

/// Echoes every message, a batch per read.
async fn serve(io: Box<dyn Io>) -> io::Result<()> {
    let mut wire = Wire::new(io);
    let mut batch = Vec::new();
    while wire.exchange(&mut batch).await? {
        for message in batch.drain(..) {
            wire.push(&message);
        }
    }
    wire.flush().await
}

/// Where the echo listens.
#[derive(Clone, Debug)]
enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A running echo server.
pub struct Echo {
    endpoint: Endpoint,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
        if let Endpoint::Unix(path) = &self.endpoint {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Starts the echo on TCP 127.0.0.1:0.
pub async fn start_tcp() -> Result<Echo, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = Endpoint::Tcp(listener.local_addr()?);
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = tcp.set_nodelay(true);
            tokio::spawn(serve(Box::new(tcp)));
        }
    });
    Ok(Echo {
        endpoint,
        accepted,
        task,
    })
}

/// Starts the echo on a Unix socket at `path` (replaced if it exists).
pub async fn start_unix(path: PathBuf) -> Result<Echo, BoxError> {
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        while let Ok((unix, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(serve(Box::new(unix)));
        }
    });
    Ok(Echo {
        endpoint: Endpoint::Unix(path),
        accepted,
        task,
    })
}

impl Ceiling for Echo {
    type Stream = Wire;

    async fn connect(&self) -> Result<Wire, BoxError> {
        let io: Box<dyn Io> = match &self.endpoint {
            Endpoint::Tcp(addr) => {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                Box::new(tcp)
            }
            Endpoint::Unix(path) => Box::new(UnixStream::connect(path).await?),
        };
        Ok(Wire::new(io))
    }

    async fn round_trip(wire: &mut Wire, payload: &Bytes) -> Result<(), BoxError> {
        wire.push(payload);
        let mut replies = Vec::with_capacity(1);
        if !wire.exchange(&mut replies).await? {
            return Err("the echo server went away".into());
        }
        match replies.as_slice() {
            [reply] if reply.len() == payload.len() => Ok(()),
            _ => Err("not one echo of the right size".into()),
        }
    }

    async fn pipeline(
        wire: &mut Wire,
        payload: &Bytes,
        in_flight: usize,
        stop: Instant,
    ) -> Result<u64, BoxError> {
        for _ in 0..in_flight {
            wire.push(payload);
        }
        let mut outstanding = in_flight;
        let mut done = 0u64;
        let mut replies = Vec::with_capacity(in_flight);
        while outstanding > 0 {
            if !wire.exchange(&mut replies).await? {
                return Err("the echo server went away".into());
            }
            if replies.iter().any(|reply| reply.len() != payload.len()) {
                return Err("echo of the wrong size".into());
            }
            let count = replies.len();
            replies.clear();
            outstanding -= count;
            done += count as u64;
            if Instant::now() < stop {
                for _ in 0..count {
                    wire.push(payload);
                }
                outstanding += count;
            }
        }
        Ok(done)
    }

    async fn close(mut wire: Wire) -> Result<(), BoxError> {
        wire.flush().await?;
        wire.io.shutdown().await?;
        // The server flushes and closes at our end of stream.
        let mut rest = Vec::new();
        let drained = tokio::time::timeout(Duration::from_secs(5), wire.io.read_to_end(&mut rest));
        match drained.await {
            Ok(_) => Ok(()),
            Err(_) => Err("the close was not answered".into()),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}
