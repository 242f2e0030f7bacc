//! The RPC envelope: what travels inside a DATA frame.
//!
//! Plain data with no behaviour beyond naming. [`super::codec`] turns it into
//! bytes and back; docs/PROTOCOL.md gives the byte layout.

use std::borrow::Cow;

use bytes::Bytes;

use super::EncodedValue;

/// One RPC envelope, the plaintext of one (possibly chunked) DATA frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A call that expects exactly one [`Reply`] with the same id.
    Call(Call),
    /// The answer to a [`Call`].
    Reply(Reply),
    /// A call that expects no reply.
    Notify(Notify),
    /// The caller no longer waits for call `id`; the callee should abandon it.
    Cancel {
        /// The id of the call to abandon.
        id: u64,
    },
    /// A heartbeat probe; the peer answers with [`Message::Pong`] carrying the same nonce.
    Ping {
        /// Echoed back unchanged.
        nonce: u64,
    },
    /// The answer to a [`Message::Ping`].
    Pong {
        /// The nonce of the ping being answered.
        nonce: u64,
    },
    /// The receiver of stream half (`id`, `half`) lets its sender send
    /// `items` more items and `bytes` more bytes (docs/PROTOCOL.md §9.7).
    Credit {
        /// The stream: the id of the call that opened it.
        id: u64,
        /// Which half of the stream the credit is for.
        half: Half,
        /// More items the sender may send.
        items: u32,
        /// More payload bytes the sender may send.
        bytes: u32,
    },
    /// One item of stream half (`id`, `half`).
    Item {
        /// The stream: the id of the call that opened it.
        id: u64,
        /// Which half of the stream the item travels on.
        half: Half,
        /// Exactly one MessagePack value: the item.
        item: Bytes,
    },
    /// The sender of stream half (`id`, `half`) sends no more items: `None`
    /// when it finished, the error that ended it otherwise.
    End {
        /// The stream: the id of the call that opened it.
        id: u64,
        /// Which half ended.
        half: Half,
        /// Why it ended, when it did not simply finish.
        error: Option<RemoteError>,
    },
    /// The receiver of stream half (`id`, `half`) wants no more items: the
    /// sender stops and sends nothing more on it, not even an END.
    Stop {
        /// The stream: the id of the call that opened it.
        id: u64,
        /// Which half to stop.
        half: Half,
    },
}

/// The half of a stream an envelope is about (docs/PROTOCOL.md §9.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Half {
    /// 0: items travel from the callee to the caller (a method returning a stream).
    Down,
    /// 1: items travel from the caller to the callee (a method taking a stream).
    Up,
}

impl Half {
    /// The half's number on the wire.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Down => 0,
            Self::Up => 1,
        }
    }

    /// The half for a number from the wire.
    pub fn from_u64(value: u64) -> Option<Self> {
        match value {
            0 => Some(Self::Down),
            1 => Some(Self::Up),
            _ => None,
        }
    }
}

impl Message {
    /// The envelope's payload, its last field: a call's or notification's
    /// arguments, a successful reply's value, a stream's item; `None` for
    /// the others.
    pub fn payload(&self) -> Option<&[u8]> {
        match self {
            Message::Call(call) => Some(&call.args),
            Message::Notify(notify) => Some(&notify.args),
            Message::Reply(Reply {
                outcome: Outcome::Ok(value),
                ..
            }) => Some(value),
            Message::Item { item, .. } => Some(item),
            _ => None,
        }
    }

    /// The envelope's payload as [`Bytes`]: shared when it is (a large
    /// one always is), copied when it is held inline.
    pub fn payload_bytes(&self) -> Option<Bytes> {
        match self {
            Message::Call(Call { args: value, .. })
            | Message::Notify(Notify { args: value, .. })
            | Message::Reply(Reply {
                outcome: Outcome::Ok(value),
                ..
            }) => Some(value.clone().into_bytes()),
            Message::Item { item, .. } => Some(item.clone()),
            _ => None,
        }
    }
}

/// A call that expects a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Chosen by the caller, unique among its calls in flight on this connection.
    pub id: u64,
    /// The method's wire name, `service.method`: borrowed when sent by a
    /// generated client, owned when decoded.
    pub method: Cow<'static, str>,
    /// The time the caller still waits, in milliseconds, measured when the call
    /// was sent. Relative, so clocks need not agree. `None`: no deadline.
    pub timeout_ms: Option<u32>,
    /// The arguments: exactly one MessagePack value (an array, one element per argument).
    pub args: EncodedValue,
}

/// The answer to a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The id of the call being answered.
    pub id: u64,
    /// What came of it.
    pub outcome: Outcome,
}

/// How a call ended on the callee's side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The handler returned: exactly one MessagePack value, the method's declared return value.
    Ok(EncodedValue),
    /// The call did not reach the handler, or the handler did not return.
    Err(RemoteError),
}

/// A framework-level failure reported by the callee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// A human-readable detail; never contains secrets.
    pub message: String,
}

/// A call without a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    /// The method's wire name, `service.method`: borrowed when sent by a
    /// generated client, owned when decoded.
    pub method: Cow<'static, str>,
    /// The arguments: exactly one MessagePack value.
    pub args: EncodedValue,
}

/// The code of a [`RemoteError`]; `0` on the wire means success and is not a variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The callee serves no method of that name.
    UnknownMethod,
    /// The arguments did not decode as the method's parameters.
    BadRequest,
    /// The connection is a guest session and the method is not open.
    Unauthorized,
    /// A limit was reached (calls in flight); the call was not run.
    Rejected,
    /// The call's deadline passed before the handler finished; the work was abandoned.
    Timeout,
    /// The handler panicked or its result could not be encoded.
    Internal,
    /// The callee is shutting down and takes no new calls.
    ShuttingDown,
    /// A guard refused the call for a reason it named: the caller may not
    /// call the method (its role, its account, the method's policy).
    Forbidden,
    /// A subscriber fell too far behind its topic and was ended
    /// (`Topic::subscribe_until_lag`): the message says how many items it missed.
    Lagged,
    /// A code this implementation does not know; kept so it can be reported.
    Other(u16),
}

impl ErrorCode {
    /// The code's number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::UnknownMethod => 1,
            Self::BadRequest => 2,
            Self::Unauthorized => 3,
            Self::Rejected => 4,
            Self::Timeout => 5,
            Self::Internal => 6,
            Self::ShuttingDown => 7,
            Self::Forbidden => 8,
            Self::Lagged => 9,
            Self::Other(code) => code,
        }
    }

    /// The code for a number from the wire; `None` for `0`, which means success.
    pub fn from_u16(code: u16) -> Option<Self> {
        Some(match code {
            0 => return None,
            1 => Self::UnknownMethod,
            2 => Self::BadRequest,
            3 => Self::Unauthorized,
            4 => Self::Rejected,
            5 => Self::Timeout,
            6 => Self::Internal,
            7 => Self::ShuttingDown,
            8 => Self::Forbidden,
            9 => Self::Lagged,
            other => Self::Other(other),
        })
    }
}
