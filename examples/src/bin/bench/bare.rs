//! The ceiling: a bare tokio-tungstenite binary echo, no RPC layer, no crypto.
//!
//! It is written to be as fast as we know how, so ratios against it are not
//! flattered: TCP_NODELAY, the same WebSocket buffer sizes as the runtime's
//! transport, and batched writes on both sides (feed every message that is
//! ready, flush once when nothing more is queued).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::BoxError;

/// The runtime's transport settings (sockets/src/transport.rs): 4 KiB read
/// buffer, 64 KiB write buffer. The message limit is raised to fit W4's 1 MiB
/// payload in one message.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(64 * 1024)
        .max_message_size(Some(2 << 20))
        .max_frame_size(Some(2 << 20))
}

/// A running echo server.
pub struct Echo {
    pub addr: SocketAddr,
    /// Connections whose WebSocket upgrade completed.
    pub accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the echo server on 127.0.0.1:0.
pub async fn start() -> Result<Echo, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                if let Ok(ws) =
                    tokio_tungstenite::accept_async_with_config(tcp, Some(config())).await
                {
                    counter.fetch_add(1, Ordering::Relaxed);
                    let _ = serve(ws).await;
                }
            });
        }
    });
    Ok(Echo {
        addr,
        accepted,
        task,
    })
}

/// Echoes every binary message, feeding all that are ready before one flush.
async fn serve(mut ws: WebSocketStream<TcpStream>) -> Result<(), BoxError> {
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_binary() {
            ws.feed(message).await?;
        }
        while let Some(Some(message)) = ws.next().now_or_never() {
            let message = message?;
            if message.is_binary() {
                ws.feed(message).await?;
            }
        }
        // Also sends tungstenite's reply to a close.
        ws.flush().await?;
    }
    Ok(())
}

/// Opens one client connection.
pub async fn connect(addr: SocketAddr) -> Result<WebSocketStream<TcpStream>, BoxError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(format!("ws://{addr}/"), tcp, Some(config()))
            .await?;
    Ok(ws)
}

/// Sends one message and waits for its echo.
pub async fn round_trip(
    ws: &mut WebSocketStream<TcpStream>,
    payload: &Bytes,
) -> Result<(), BoxError> {
    ws.send(Message::Binary(payload.clone())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(reply))) if reply.len() == payload.len() => return Ok(()),
            Some(Ok(Message::Binary(_))) => return Err("echo of the wrong size".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Err("the echo server went away".into()),
        }
    }
}

/// Keeps `in_flight` messages outstanding until `stop`, then drains; returns
/// the echoes received.
pub async fn pipeline(
    ws: &mut WebSocketStream<TcpStream>,
    payload: &Bytes,
    in_flight: usize,
    stop: Instant,
) -> Result<u64, BoxError> {
    for _ in 0..in_flight {
        ws.feed(Message::Binary(payload.clone())).await?;
    }
    ws.flush().await?;
    let mut outstanding = in_flight;
    let mut done = 0u64;
    while outstanding > 0 {
        let mut replies = match ws.next().await {
            Some(Ok(message)) => usize::from(message.is_binary()),
            Some(Err(e)) => return Err(e.into()),
            None => return Err("the echo server went away".into()),
        };
        while let Some(Some(message)) = ws.next().now_or_never() {
            replies += usize::from(message?.is_binary());
        }
        outstanding -= replies;
        done += replies as u64;
        if Instant::now() < stop && replies > 0 {
            for _ in 0..replies {
                ws.feed(Message::Binary(payload.clone())).await?;
            }
            ws.flush().await?;
            outstanding += replies;
        }
    }
    Ok(done)
}

/// Closes a client connection and waits for the server's close.
pub async fn close(mut ws: WebSocketStream<TcpStream>) -> Result<(), BoxError> {
    ws.close(None).await?;
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = ws.next() => match next {
                None | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => continue,
            },
            () = &mut deadline => return Err("the close was not answered".into()),
        }
    }
}
