//! The server's sessions and its rooms.
//!
//! A session is what a client's connections share: its id, its rooms, and
//! the resumption secret of its latest connection. It is **live** while a
//! connection serves it. When that connection is lost, a resumable session
//! **waits** for the resumption window: it keeps its id and its rooms, and
//! the notifications sent to it are buffered (bounded by count and bytes;
//! past either bound the oldest are dropped and counted as missed) until the
//! client resumes it on a new connection, or the window ends and the
//! session with it.
//!
//! ```text
//!   admitted ──► live ──(connection lost)──► waiting ──(window ends)──► ended
//!                 ▲ │                           │
//!                 │ └─(closed on purpose)──► ended
//!                 └────────(resumed: buffered notifications first)──────┘
//!   a live session resumed on a new connection (renewal) stays live;
//!   the old connection is superseded and leaves no trace here when it ends
//! ```

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use tokio::task::AbortHandle;

use crate::connection::Handle;
use crate::crypto::ResumptionSecret;
use crate::identity::{ConnectionId, Meta, SessionKind};
use crate::protocol::{Message, Notify};

/// A snapshot of one open connection.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The session's id: the connection's own, or that of the session it
    /// resumed. Never reused in this process.
    pub id: ConnectionId,
    /// The client's address.
    pub peer_addr: SocketAddr,
    /// Authenticated or guest.
    pub session: SessionKind,
    /// What the auth hook stored (or [`Server::set_meta`](super::Server::set_meta) since).
    pub meta: Meta,
    /// The latest heartbeat round-trip time, once measured.
    pub rtt: Option<Duration>,
    /// When the connection was admitted.
    pub connected_since: SystemTime,
}

impl ConnectionInfo {
    pub(crate) fn of(handle: &Handle) -> Self {
        Self {
            id: handle.id(),
            peer_addr: handle.peer_addr(),
            session: handle.session(),
            meta: handle.meta(),
            rtt: handle.rtt().get(),
            connected_since: handle.connected_since(),
        }
    }
}

/// How long lost sessions wait, and what each may buffer meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ResumptionConfig {
    /// How long a session waits for its client after the connection is
    /// lost; zero: sessions end with their connection.
    pub(crate) window: Duration,
    /// Notifications a waiting session buffers, at most.
    pub(crate) max_messages: usize,
    /// Bytes (method names and arguments) a waiting session buffers, at most.
    pub(crate) max_bytes: usize,
    /// Sessions waiting at once, at most; past it a lost session ends.
    pub(crate) max_waiting: usize,
}

impl Default for ResumptionConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(120),
            max_messages: 1024,
            max_bytes: 256 * 1024,
            max_waiting: 10_000,
        }
    }
}

impl ResumptionConfig {
    /// Sessions are kept for resumption at all.
    pub(crate) fn enabled(&self) -> bool {
        !self.window.is_zero()
    }
}

/// One session.
enum Entry {
    Live {
        handle: Handle,
        secret: ResumptionSecret,
    },
    Waiting(Box<Waiting>),
}

/// A session whose connection was lost, waiting for its client.
struct Waiting {
    secret: ResumptionSecret,
    session: SessionKind,
    /// Tells the expiry task that finds it whether it is still the same wait.
    generation: u64,
    expiry: Option<AbortHandle>,
    buffer: VecDeque<Notify>,
    bytes: usize,
    missed: u64,
}

impl Waiting {
    /// Buffers a notification, dropping the oldest past the bounds.
    fn push(&mut self, notify: Notify, config: &ResumptionConfig) -> isize {
        let before = self.bytes;
        self.bytes += notify_size(&notify);
        self.buffer.push_back(notify);
        while self.buffer.len() > config.max_messages || self.bytes > config.max_bytes {
            let Some(oldest) = self.buffer.pop_front() else {
                break;
            };
            self.bytes -= notify_size(&oldest);
            self.missed += 1;
        }
        self.bytes as isize - before as isize
    }
}

fn notify_size(notify: &Notify) -> usize {
    notify.method.len() + notify.args.len()
}

/// What became of a session when its connection ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Released {
    /// The session waits for its client; the expiry of this wait carries `generation`.
    Waiting { generation: u64 },
    /// The session ended with its connection.
    Ended,
    /// A newer connection serves the session (or it was gone): nothing changed.
    Superseded,
}

/// A session resumed on a new connection.
pub(crate) struct Resumed {
    /// The notifications buffered while it waited, oldest first.
    pub(crate) backlog: Vec<Message>,
    /// Notifications dropped from the buffer.
    pub(crate) missed: u64,
    /// The connection that served it until now, if it was live (a renewal,
    /// or a loss this side has not noticed yet).
    pub(crate) superseded: Option<Handle>,
}

/// Why a resumption was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No such session: it ended, its window passed, or it lived in another
    /// process (a restarted server, another node).
    Unknown,
    /// The proof does not verify: a replayed, forged or stale ticket.
    BadProof,
}

/// Where a notification for one session went.
pub(crate) enum Delivery {
    /// To this connection's queue (the caller sends it).
    Live(Handle),
    /// Into the waiting session's buffer.
    Buffered,
    /// Nowhere: no such session.
    Unknown,
}

/// Sessions by id, and room memberships.
pub(crate) struct Registry {
    sessions: RwLock<HashMap<ConnectionId, Entry>>,
    rooms: Mutex<Rooms>,
    config: ResumptionConfig,
    /// Sessions waiting now, and the bytes their buffers hold: read without
    /// the lock (a broadcast with none waiting needs only the read lock).
    waiting: AtomicUsize,
    waiting_bytes: AtomicUsize,
    generation: AtomicU64,
}

#[derive(Default)]
struct Rooms {
    members: HashMap<String, BTreeSet<ConnectionId>>,
    joined: HashMap<ConnectionId, HashSet<String>>,
}

impl Rooms {
    /// Takes `id` out of every room.
    fn forget(&mut self, id: ConnectionId) {
        if let Some(joined) = self.joined.remove(&id) {
            for room in joined {
                if let Some(members) = self.members.get_mut(&room) {
                    members.remove(&id);
                    if members.is_empty() {
                        self.members.remove(&room);
                    }
                }
            }
        }
    }
}

impl Registry {
    pub(crate) fn new(config: ResumptionConfig) -> Self {
        Self {
            sessions: RwLock::new(HashMap::new()),
            rooms: Mutex::new(Rooms::default()),
            config,
            waiting: AtomicUsize::new(0),
            waiting_bytes: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<ConnectionId, Entry>> {
        self.sessions.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<ConnectionId, Entry>> {
        self.sessions.write().unwrap_or_else(|p| p.into_inner())
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, Rooms> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The resumption settings.
    pub(crate) fn config(&self) -> &ResumptionConfig {
        &self.config
    }

    /// A new session, live on `handle`.
    pub(crate) fn insert(&self, handle: Handle, secret: ResumptionSecret) {
        self.write()
            .insert(handle.id(), Entry::Live { handle, secret });
    }

    /// Resumes session `id` on a new connection, if `verify` accepts the
    /// secret the session holds: `handle` (made with the session's id) then
    /// serves it, and `secret` is the one its next resumption must prove.
    /// The old secret is gone: a proof opens one resumption at most. Refused,
    /// `secret` comes back, for a new session.
    pub(crate) fn resume(
        &self,
        id: ConnectionId,
        verify: impl FnOnce(&ResumptionSecret) -> bool,
        handle: Handle,
        secret: ResumptionSecret,
    ) -> Result<Resumed, (Refused, ResumptionSecret)> {
        let mut sessions = self.write();
        let Some(entry) = sessions.get_mut(&id) else {
            return Err((Refused::Unknown, secret));
        };
        let held = match entry {
            Entry::Live { secret, .. } => &*secret,
            Entry::Waiting(waiting) => &waiting.secret,
        };
        if !verify(held) {
            return Err((Refused::BadProof, secret));
        }
        let previous = std::mem::replace(entry, Entry::Live { handle, secret });
        Ok(match previous {
            Entry::Live { handle, .. } => Resumed {
                backlog: Vec::new(),
                missed: 0,
                superseded: Some(handle),
            },
            Entry::Waiting(waiting) => {
                if let Some(expiry) = &waiting.expiry {
                    expiry.abort();
                }
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                self.waiting_bytes
                    .fetch_sub(waiting.bytes, Ordering::Relaxed);
                Resumed {
                    backlog: waiting.buffer.into_iter().map(Message::Notify).collect(),
                    missed: waiting.missed,
                    superseded: None,
                }
            }
        })
    }

    /// The connection `handle` ended: its session waits for its client (when
    /// `wait`, sessions are resumable and there is room), or ends with it.
    /// Nothing changes if another connection serves the session now.
    pub(crate) fn release(&self, handle: &Handle, wait: bool) -> Released {
        let id = handle.id();
        let mut sessions = self.write();
        let Some(Entry::Live { handle: live, .. }) = sessions.get(&id) else {
            return Released::Superseded;
        };
        if !live.same(handle) {
            return Released::Superseded;
        }
        let room = self.waiting.load(Ordering::Relaxed) < self.config.max_waiting;
        if wait && self.config.enabled() && room {
            let Some(Entry::Live { secret, .. }) = sessions.remove(&id) else {
                unreachable!("the entry was live a moment ago, under the same lock");
            };
            let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
            let waiting = Waiting {
                secret,
                session: handle.session(),
                generation,
                expiry: None,
                buffer: VecDeque::new(),
                bytes: 0,
                missed: 0,
            };
            sessions.insert(id, Entry::Waiting(Box::new(waiting)));
            self.waiting.fetch_add(1, Ordering::Relaxed);
            return Released::Waiting { generation };
        }
        if wait && self.config.enabled() {
            tracing::debug!(%id, "too many sessions waiting: the session ends");
        }
        sessions.remove(&id);
        drop(sessions);
        self.rooms().forget(id);
        Released::Ended
    }

    /// Attaches the task that ends wait `generation` of session `id`. `false`
    /// if that wait is over already (resumed): the caller stops the task.
    pub(crate) fn set_expiry(&self, id: ConnectionId, generation: u64, task: AbortHandle) -> bool {
        match self.write().get_mut(&id) {
            Some(Entry::Waiting(waiting)) if waiting.generation == generation => {
                waiting.expiry = Some(task);
                true
            }
            _ => false,
        }
    }

    /// Ends session `id` if it is still in wait `generation`; whether it did.
    pub(crate) fn expire(&self, id: ConnectionId, generation: u64) -> bool {
        let mut sessions = self.write();
        match sessions.get(&id) {
            Some(Entry::Waiting(waiting)) if waiting.generation == generation => {}
            _ => return false,
        }
        if let Some(Entry::Waiting(waiting)) = sessions.remove(&id) {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            self.waiting_bytes
                .fetch_sub(waiting.bytes, Ordering::Relaxed);
        }
        drop(sessions);
        self.rooms().forget(id);
        true
    }

    /// Ends every waiting session (the server is stopping); their ids.
    pub(crate) fn end_waiting(&self) -> Vec<ConnectionId> {
        let mut sessions = self.write();
        let ids: Vec<ConnectionId> = sessions
            .iter()
            .filter(|(_, entry)| matches!(entry, Entry::Waiting(_)))
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            if let Some(Entry::Waiting(waiting)) = sessions.remove(id)
                && let Some(expiry) = waiting.expiry
            {
                expiry.abort();
            }
        }
        self.waiting.store(0, Ordering::Relaxed);
        self.waiting_bytes.store(0, Ordering::Relaxed);
        drop(sessions);
        let mut rooms = self.rooms();
        for id in &ids {
            rooms.forget(*id);
        }
        ids
    }

    /// Live sessions.
    pub(crate) fn len(&self) -> usize {
        let sessions = self.read();
        // The count changes under the write lock only: exact under the read lock.
        sessions.len() - self.waiting.load(Ordering::Relaxed)
    }

    /// Sessions waiting, and the bytes their buffers hold.
    pub(crate) fn waiting(&self) -> (usize, usize) {
        (
            self.waiting.load(Ordering::Relaxed),
            self.waiting_bytes.load(Ordering::Relaxed),
        )
    }

    /// The connection serving session `id`, if it is live.
    pub(crate) fn get(&self, id: ConnectionId) -> Option<Handle> {
        match self.read().get(&id) {
            Some(Entry::Live { handle, .. }) => Some(handle.clone()),
            _ => None,
        }
    }

    /// Whether session `id` exists (live or waiting).
    pub(crate) fn contains(&self, id: ConnectionId) -> bool {
        self.read().contains_key(&id)
    }

    /// The connections of every live session, ordered by id.
    pub(crate) fn all(&self) -> Vec<Handle> {
        let mut all: Vec<Handle> = self
            .read()
            .values()
            .filter_map(|entry| match entry {
                Entry::Live { handle, .. } => Some(handle.clone()),
                Entry::Waiting(_) => None,
            })
            .collect();
        all.sort_by_key(Handle::id);
        all
    }

    /// A notification for session `id`: the connection to send it on, or
    /// buffered if the session waits.
    pub(crate) fn notify(&self, id: ConnectionId, notify: &Notify) -> Delivery {
        if let Some(Entry::Live { handle, .. }) = self.read().get(&id) {
            return Delivery::Live(handle.clone());
        }
        let mut sessions = self.write();
        match sessions.get_mut(&id) {
            Some(Entry::Live { handle, .. }) => Delivery::Live(handle.clone()),
            Some(Entry::Waiting(waiting)) => {
                self.buffer(waiting, notify);
                Delivery::Buffered
            }
            None => Delivery::Unknown,
        }
    }

    /// Buffers a notification for a waiting session; its method name (a
    /// static one, from a generated request) and arguments are shared by
    /// every session that buffers it.
    fn buffer(&self, waiting: &mut Waiting, notify: &Notify) {
        let grown = waiting.push(notify.clone(), &self.config);
        if grown >= 0 {
            self.waiting_bytes
                .fetch_add(grown.unsigned_abs(), Ordering::Relaxed);
        } else {
            self.waiting_bytes
                .fetch_sub(grown.unsigned_abs(), Ordering::Relaxed);
        }
    }

    /// A notification for the authenticated sessions among `ids` (every
    /// session when `None`): the live ones' connections, ordered by id, to
    /// send it on; the waiting ones buffer it. Also how many buffered it.
    pub(crate) fn fan_out(
        &self,
        ids: Option<&[ConnectionId]>,
        notify: &Notify,
    ) -> (Vec<Handle>, usize) {
        let live = |entry: &Entry| match entry {
            Entry::Live { handle, .. } if handle.session() == SessionKind::Authenticated => {
                Some(handle.clone())
            }
            _ => None,
        };
        let mut handles: Vec<Handle>;
        let mut buffered = 0;
        if self.waiting.load(Ordering::Relaxed) == 0 {
            let sessions = self.read();
            handles = match ids {
                Some(ids) => ids
                    .iter()
                    .filter_map(|id| sessions.get(id).and_then(live))
                    .collect(),
                None => sessions.values().filter_map(live).collect(),
            };
        } else {
            let mut sessions = self.write();
            handles = Vec::new();
            let mut visit = |entry: &mut Entry| match entry {
                Entry::Waiting(waiting) if waiting.session == SessionKind::Authenticated => {
                    self.buffer(waiting, notify);
                    buffered += 1;
                }
                other => handles.extend(live(other)),
            };
            match ids {
                Some(ids) => {
                    for id in ids {
                        if let Some(entry) = sessions.get_mut(id) {
                            visit(entry);
                        }
                    }
                }
                None => sessions.values_mut().for_each(visit),
            }
        }
        handles.sort_by_key(Handle::id);
        (handles, buffered)
    }

    /// Adds `id` to `room`. `false` if no such session exists.
    pub(crate) fn join(&self, id: ConnectionId, room: &str) -> bool {
        // Holding the sessions lock keeps `release` and `expire` from racing past us.
        let sessions = self.read();
        if !sessions.contains_key(&id) {
            return false;
        }
        let mut rooms = self.rooms();
        rooms.members.entry(room.to_owned()).or_default().insert(id);
        rooms.joined.entry(id).or_default().insert(room.to_owned());
        true
    }

    /// Takes `id` out of `room`; `true` if it was a member.
    pub(crate) fn leave(&self, id: ConnectionId, room: &str) -> bool {
        let mut rooms = self.rooms();
        let was_member = rooms
            .members
            .get_mut(room)
            .is_some_and(|members| members.remove(&id));
        if rooms.members.get(room).is_some_and(BTreeSet::is_empty) {
            rooms.members.remove(room);
        }
        if let Some(joined) = rooms.joined.get_mut(&id) {
            joined.remove(room);
            if joined.is_empty() {
                rooms.joined.remove(&id);
            }
        }
        was_member
    }

    /// The members of `room`, ordered by id (waiting sessions included).
    pub(crate) fn members(&self, room: &str) -> Vec<ConnectionId> {
        let rooms = self.rooms();
        rooms
            .members
            .get(room)
            .map(|members| members.iter().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use bytes::Bytes;
    use zeroize::Zeroizing;

    use super::*;

    fn notify(n: usize, len: usize) -> Notify {
        Notify {
            method: Cow::Owned(format!("m{n}")),
            args: Bytes::from(vec![0u8; len]).into(),
        }
    }

    fn waiting() -> Waiting {
        Waiting {
            secret: ResumptionSecret::new(Zeroizing::new([0; 32])),
            session: SessionKind::Authenticated,
            generation: 1,
            expiry: None,
            buffer: VecDeque::new(),
            bytes: 0,
            missed: 0,
        }
    }

    #[test]
    fn the_buffer_drops_the_oldest_past_either_bound_and_counts_them() {
        let config = ResumptionConfig {
            max_messages: 3,
            max_bytes: 100,
            ..ResumptionConfig::default()
        };
        let mut waiting = waiting();
        for n in 0..5 {
            waiting.push(notify(n, 8), &config);
        }
        // The count bound: the two oldest went.
        let kept: Vec<_> = waiting
            .buffer
            .iter()
            .map(|n| n.method.to_string())
            .collect();
        assert_eq!(kept, ["m2", "m3", "m4"]);
        assert_eq!(waiting.missed, 2);
        assert_eq!(waiting.bytes, 3 * (2 + 8));
        // The byte bound: one large notification pushes out all but itself.
        waiting.push(notify(5, 80), &config);
        let kept: Vec<_> = waiting
            .buffer
            .iter()
            .map(|n| n.method.to_string())
            .collect();
        assert_eq!(kept, ["m4", "m5"]);
        assert_eq!(waiting.missed, 4);
        assert_eq!(waiting.bytes, 10 + 82);
        // One larger than the whole bound is dropped itself.
        waiting.push(notify(6, 200), &config);
        assert!(waiting.buffer.is_empty());
        assert_eq!((waiting.missed, waiting.bytes), (7, 0));
    }
}
