//! The reader and writer tasks of an established connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::{Handle, Shared, remote_error};
use crate::crypto::{FrameKind, Opener, Sealer};
use crate::dispatch;
use crate::error::Disconnect;
use crate::heartbeat::{Action, Heartbeat};
use crate::protocol::codec;
use crate::protocol::{CloseCode, Message, Outcome};
use crate::transport::{Incoming, Receiver, Sender, TransportError};

/// The payload of a CLOSE frame.
#[derive(Serialize, Deserialize)]
pub(crate) struct CloseBody {
    pub(crate) code: u16,
    pub(crate) reason: String,
}

/// Stop adding envelopes to a batch once its plaintext is this large.
const BATCH_BYTES: usize = 64 * 1024;

/// How long the last CLOSE may take to leave when closing.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// Starts the reader and writer of an established connection. `on_done`
/// runs once both have ended, with the reason the connection closed.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    queue: mpsc::Receiver<Message>,
    (sender, sealer): (Sender, Sealer),
    (receiver, opener): (Receiver, Opener),
    on_done: impl FnOnce(Disconnect) + Send + 'static,
) -> Handle {
    let writer = tokio::spawn(write_loop(Arc::clone(&shared), sender, sealer, queue));
    let reader_shared = Arc::clone(&shared);
    tokio::spawn(async move {
        read_loop(&reader_shared, receiver, opener).await;
        let _ = writer.await;
        let reason = reader_shared
            .closed_reason()
            .unwrap_or_else(|| Disconnect::new(CloseCode::Other(1006), "connection lost"));
        reader_shared.finish(reason.clone());
        on_done(reason);
    });
    Handle(shared)
}

fn truncated(frame: Option<(u16, String)>) -> Disconnect {
    let code = frame.map_or(CloseCode::Other(1006), |(code, _)| {
        CloseCode::from_u16(code)
    });
    Disconnect::new(
        code,
        "connection truncated: closed without an authenticated CLOSE",
    )
}

fn transport_failed(error: &TransportError) -> Disconnect {
    match error {
        TransportError::NotBinary => {
            Disconnect::new(CloseCode::ProtocolError, "non-binary websocket message")
        }
        TransportError::TooLarge => Disconnect::new(CloseCode::TooBig, "message too large"),
        other => Disconnect::new(
            CloseCode::Other(1006),
            format!("connection truncated: {other}"),
        ),
    }
}

async fn read_loop(shared: &Arc<Shared>, mut receiver: Receiver, mut opener: Opener) {
    let config = &shared.config;
    let mut heartbeat = Heartbeat::new(
        config.heartbeat_interval,
        config.heartbeat_timeout,
        Instant::now(),
    );
    let mut closing = shared.closing.subscribe();
    // One timer for the connection's life. Traffic only moves the next wake
    // later, so the timer is reset when it fires rather than per frame.
    let timer = sleep_until(heartbeat.next_wake());
    tokio::pin!(timer);
    loop {
        let incoming = tokio::select! {
            _ = closing.wait_for(Option::is_some) => return,
            () = &mut timer => {
                let action = heartbeat.poll(Instant::now());
                timer.as_mut().reset(heartbeat.next_wake());
                match action {
                    Some(Action::Ping(nonce)) => {
                        // A full queue already means traffic is waiting to go out.
                        let _ = shared.queue.try_send(Message::Ping { nonce });
                    }
                    Some(Action::TimedOut) => {
                        shared.close(
                            Disconnect::new(CloseCode::HeartbeatTimeout, "heartbeat timeout"),
                            true,
                        );
                        return;
                    }
                    None => {}
                }
                continue;
            }
            incoming = receiver.recv() => incoming,
        };
        let wire = match incoming {
            Ok(Incoming::Binary(wire)) => wire,
            Ok(Incoming::Closed(frame)) => {
                shared.close(truncated(frame), false);
                return;
            }
            Err(error) => {
                let send_close =
                    matches!(error, TransportError::NotBinary | TransportError::TooLarge);
                shared.close(transport_failed(&error), send_close);
                return;
            }
        };
        heartbeat.heard(Instant::now());
        let opened = match opener.open(wire) {
            Ok(Some(opened)) => opened,
            Ok(None) => continue,
            Err(error) => {
                let (code, reason) = error.close();
                tracing::debug!(id = %shared.id, %error, "frame rejected");
                shared.close(Disconnect::new(code, reason), true);
                return;
            }
        };
        match opened.kind {
            FrameKind::Data => {}
            FrameKind::Close => {
                let reason = match codec::decode_value::<CloseBody>(&opened.plaintext) {
                    Ok(body) => Disconnect::new(CloseCode::from_u16(body.code), body.reason),
                    Err(_) => Disconnect::new(CloseCode::ProtocolError, "malformed CLOSE"),
                };
                shared.close(reason, true);
                return;
            }
            FrameKind::Auth | FrameKind::AuthResult => {
                shared.close(
                    Disconnect::new(CloseCode::ProtocolError, "unexpected frame"),
                    true,
                );
                return;
            }
        }
        // One envelope at a time: a plaintext of many tiny envelopes costs
        // no more memory than the plaintext.
        for message in codec::messages(opened.plaintext) {
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    tracing::debug!(id = %shared.id, %error, "undecodable envelope");
                    shared.close(
                        Disconnect::new(CloseCode::ProtocolError, "malformed envelope"),
                        true,
                    );
                    return;
                }
            };
            match message {
                Message::Call(call) => dispatch::call(shared, call).await,
                Message::Notify(notify) => dispatch::notify(shared, notify),
                Message::Cancel { id } => dispatch::cancel(shared, id),
                Message::Reply(reply) => {
                    let result = match reply.outcome {
                        Outcome::Ok(value) => Ok(value),
                        Outcome::Err(error) => Err(remote_error(error)),
                    };
                    shared.complete(reply.id, result);
                }
                Message::Ping { nonce } => {
                    // Waits when the queue is full: the peer is not reading, and
                    // the writer's timeout decides its fate.
                    if shared.queue.send(Message::Pong { nonce }).await.is_err() {
                        return;
                    }
                }
                Message::Pong { nonce } => {
                    if let Some(rtt) = heartbeat.pong(nonce, Instant::now()) {
                        shared.rtt.set(rtt);
                    }
                }
            }
        }
    }
}

/// Seals `plaintext` and writes the frames, flushing once.
async fn write_frames(
    sender: &mut Sender,
    sealer: &mut Sealer,
    kind: FrameKind,
    plaintext: &[u8],
    wire: &mut Vec<Bytes>,
) -> Result<(), Disconnect> {
    wire.clear();
    if let Err(error) = sealer.seal(kind, plaintext, wire) {
        let (code, reason) = error.close();
        tracing::warn!(%error, "cannot seal a frame");
        return Err(Disconnect::new(code, reason));
    }
    for frame in wire.drain(..) {
        sender.feed(frame).await.map_err(|e| transport_failed(&e))?;
    }
    sender.flush().await.map_err(|e| transport_failed(&e))
}

/// Writes one batch within the write timeout; a peer that does not drain
/// its socket in time is a slow consumer.
async fn write_batch(
    sender: &mut Sender,
    sealer: &mut Sealer,
    plaintext: &[u8],
    wire: &mut Vec<Bytes>,
    write_timeout: Duration,
) -> Result<(), Disconnect> {
    let write = write_frames(sender, sealer, FrameKind::Data, plaintext, wire);
    tokio::time::timeout(write_timeout, write)
        .await
        .unwrap_or_else(|_| Err(slow_consumer()))
}

async fn write_loop(
    shared: Arc<Shared>,
    mut sender: Sender,
    mut sealer: Sealer,
    mut queue: mpsc::Receiver<Message>,
) {
    let mut closing = shared.closing.subscribe();
    let mut plain = Vec::with_capacity(1024);
    let mut wire = Vec::with_capacity(4);
    let max_message = shared.config.max_message;
    let write_timeout = shared.config.write_timeout;
    loop {
        let first = tokio::select! {
            biased;
            _ = closing.wait_for(Option::is_some) => break,
            message = queue.recv() => message,
        };
        let Some(first) = first else { break };
        plain.clear();
        codec::encode_message(&first, &mut plain);
        // Envelopes already waiting join the same DATA plaintext (one seal,
        // one flush), as long as it stays within the message limit.
        let mut written = Ok(());
        while plain.len() < BATCH_BYTES {
            let Ok(next) = queue.try_recv() else { break };
            let before = plain.len();
            codec::encode_message(&next, &mut plain);
            if plain.len() > max_message {
                let full = plain.get(..before).unwrap_or_default();
                written =
                    write_batch(&mut sender, &mut sealer, full, &mut wire, write_timeout).await;
                plain.drain(..before);
                if written.is_err() {
                    break;
                }
            }
        }
        if written.is_ok() {
            written = write_batch(&mut sender, &mut sealer, &plain, &mut wire, write_timeout).await;
        }
        if let Err(reason) = written {
            shared.close(reason, false);
            break;
        }
    }
    let closing = shared.closing.borrow().clone();
    let Some(closing) = closing else { return };
    if !closing.send_close {
        return;
    }
    let reason = closing.reason;
    let farewell = async {
        // What was queued before the close still goes out, then the CLOSE.
        plain.clear();
        while let Ok(message) = queue.try_recv() {
            codec::encode_message(&message, &mut plain);
            if plain.len() >= BATCH_BYTES {
                write_frames(&mut sender, &mut sealer, FrameKind::Data, &plain, &mut wire).await?;
                plain.clear();
            }
        }
        if !plain.is_empty() {
            write_frames(&mut sender, &mut sealer, FrameKind::Data, &plain, &mut wire).await?;
        }
        let body = CloseBody {
            code: reason.code.to_u16(),
            reason: reason.reason.clone(),
        };
        let body = codec::to_vec(&body).map_err(|_| reason.clone())?;
        write_frames(&mut sender, &mut sealer, FrameKind::Close, &body, &mut wire).await?;
        let code = websocket_code(reason.code);
        sender
            .close(code, "")
            .await
            .map_err(|e| transport_failed(&e))
    };
    let _ = tokio::time::timeout(CLOSE_FLUSH, farewell).await;
}

/// The WebSocket close code that goes with a CLOSE frame's code: the same,
/// unless the code may not be sent in a WebSocket close (RFC 6455 §7.4).
fn websocket_code(code: CloseCode) -> u16 {
    match code.to_u16() {
        code @ (1000..=1003 | 1007..=1011 | 3000..=4999) => code,
        _ => CloseCode::Normal.to_u16(),
    }
}

fn slow_consumer() -> Disconnect {
    Disconnect::new(
        CloseCode::SlowConsumer,
        "the peer did not read its socket in time",
    )
}
