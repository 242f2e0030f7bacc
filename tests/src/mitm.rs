//! A man in the middle at the WebSocket layer: it terminates the client's
//! WebSocket, opens its own to the server, and passes every binary message
//! of the first connection through a rule per direction that may drop,
//! duplicate, reorder or rewrite it. Every message it sees is recorded, so a
//! test can replay it later. Connections after the first are relayed as they are.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as Ws};

/// Which way a message travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Client → server.
    Up,
    /// Server → client.
    Down,
}

/// What to do with the `n`-th binary message (0-based) of one direction:
/// the messages to forward in its place (none to drop it). A rule may keep
/// state, to hold a message back and release it later.
pub type Rule = Box<dyn FnMut(usize, Bytes) -> Vec<Bytes> + Send>;

/// Forwards every message unchanged.
pub fn pass() -> Rule {
    Box::new(|_, message| vec![message])
}

/// Applies `edit` to message `at` only.
pub fn at(at: usize, edit: impl FnMut(Bytes) -> Vec<Bytes> + Send + 'static) -> Rule {
    let mut edit = edit;
    Box::new(move |n, message| {
        if n == at {
            edit(message)
        } else {
            vec![message]
        }
    })
}

/// `message` with bit `bit` of byte `byte` flipped (bytes past the end are left alone).
pub fn flip(message: &Bytes, byte: usize, bit: u8) -> Bytes {
    let mut bytes = message.to_vec();
    if let Some(b) = bytes.get_mut(byte) {
        *b ^= 1 << (bit % 8);
    }
    bytes.into()
}

/// A running man in the middle; stops accepting when dropped.
pub struct Mitm {
    /// Where clients connect.
    pub addr: SocketAddr,
    recorded: Arc<Mutex<Vec<(Dir, Bytes)>>>,
    count: tokio::sync::watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

/// The record of every message, and how many there are (to wait on).
#[derive(Clone)]
struct Record {
    messages: Arc<Mutex<Vec<(Dir, Bytes)>>>,
    count: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Record {
    fn push(&self, dir: Dir, message: Bytes) {
        let mut messages = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        messages.push((dir, message));
        self.count.send_replace(messages.len());
    }
}

fn unlimited() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None)
}

impl Mitm {
    /// Relays connections on a free port of 127.0.0.1 to the server at
    /// `target`, the first through `up` and `down`.
    ///
    /// # Panics
    /// When it cannot bind.
    pub async fn start(target: SocketAddr, up: Rule, down: Rule) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mitm");
        let addr = listener.local_addr().expect("mitm address");
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(tokio::sync::watch::Sender::new(0));
        let count_rx = count.subscribe();
        let record = Record {
            messages: Arc::clone(&recorded),
            count,
        };
        let task = tokio::spawn(async move {
            let mut rules = Some((up, down));
            while let Ok((tcp, _)) = listener.accept().await {
                let (up, down) = rules.take().unwrap_or_else(|| (pass(), pass()));
                let record = record.clone();
                tokio::spawn(async move {
                    let Ok(client) =
                        tokio_tungstenite::accept_async_with_config(tcp, Some(unlimited())).await
                    else {
                        return;
                    };
                    let Ok((server, _)) = tokio_tungstenite::connect_async_with_config(
                        crate::url(target),
                        Some(unlimited()),
                        false,
                    )
                    .await
                    else {
                        return;
                    };
                    let (client_tx, client_rx) = client.split();
                    let (server_tx, server_rx) = server.split();
                    tokio::join!(
                        relay(client_rx, server_tx, up, Dir::Up, record.clone()),
                        relay(server_rx, client_tx, down, Dir::Down, record),
                    );
                });
            }
        });
        Self {
            addr,
            recorded,
            count: count_rx,
            task,
        }
    }

    /// Every binary message seen so far, in order of arrival.
    pub fn recorded(&self) -> Vec<(Dir, Bytes)> {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Mitm {
    /// Waits until `n` messages (both directions) were seen.
    ///
    /// # Panics
    /// When they do not come (see [`crate::within`]).
    pub async fn wait_recorded(&self, n: usize) {
        let mut count = self.count.clone();
        let seen = crate::within(async { count.wait_for(|c| *c >= n).await.is_ok() }).await;
        assert!(seen, "the man in the middle stopped");
    }
}

impl Drop for Mitm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    mut from: impl Stream<Item = Result<Ws, WsError>> + Unpin,
    mut to: impl Sink<Ws, Error = WsError> + Unpin,
    mut rule: Rule,
    dir: Dir,
    record: Record,
) {
    let mut n = 0;
    while let Some(message) = from.next().await {
        match message {
            Ok(Ws::Binary(bytes)) => {
                record.push(dir, bytes.clone());
                for out in rule(n, bytes) {
                    if to.send(Ws::Binary(out)).await.is_err() {
                        return;
                    }
                }
                n += 1;
            }
            Ok(close @ Ws::Close(_)) => {
                let _ = to.send(close).await;
                return;
            }
            Ok(Ws::Text(text)) => {
                if to.send(Ws::Text(text)).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = to.close().await;
}
