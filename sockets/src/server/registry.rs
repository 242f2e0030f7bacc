//! The server's open connections and its rooms.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::connection::Handle;
use crate::identity::{ConnectionId, Meta, SessionKind};

/// A snapshot of one open connection.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The connection's id; never reused in this process.
    pub id: ConnectionId,
    /// The client's address.
    pub peer_addr: SocketAddr,
    /// Authenticated or guest.
    pub session: SessionKind,
    /// What the auth hook stored.
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
            meta: handle.meta().clone(),
            rtt: handle.rtt().get(),
            connected_since: handle.connected_since(),
        }
    }
}

/// Open connections by id, and room memberships.
#[derive(Default)]
pub(crate) struct Registry {
    connections: RwLock<HashMap<ConnectionId, Handle>>,
    rooms: Mutex<Rooms>,
}

#[derive(Default)]
struct Rooms {
    members: HashMap<String, BTreeSet<ConnectionId>>,
    joined: HashMap<ConnectionId, HashSet<String>>,
}

impl Registry {
    pub(crate) fn insert(&self, handle: Handle) {
        let mut connections = self.connections.write().unwrap_or_else(|p| p.into_inner());
        connections.insert(handle.id(), handle);
    }

    /// Forgets a closed connection and takes it out of every room.
    pub(crate) fn remove(&self, id: ConnectionId) {
        self.connections
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(joined) = rooms.joined.remove(&id) {
            for room in joined {
                if let Some(members) = rooms.members.get_mut(&room) {
                    members.remove(&id);
                    if members.is_empty() {
                        rooms.members.remove(&room);
                    }
                }
            }
        }
    }

    /// Connections registered.
    pub(crate) fn len(&self) -> usize {
        self.connections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub(crate) fn get(&self, id: ConnectionId) -> Option<Handle> {
        self.connections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// Every open connection, ordered by id.
    pub(crate) fn all(&self) -> Vec<Handle> {
        let mut all: Vec<Handle> = self
            .connections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by_key(Handle::id);
        all
    }

    /// Adds `id` to `room`. `false` if the connection is not open.
    pub(crate) fn join(&self, id: ConnectionId, room: &str) -> bool {
        // Holding the connections lock keeps `remove` from racing past us.
        let connections = self.connections.read().unwrap_or_else(|p| p.into_inner());
        if !connections.contains_key(&id) {
            return false;
        }
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.members.entry(room.to_owned()).or_default().insert(id);
        rooms.joined.entry(id).or_default().insert(room.to_owned());
        true
    }

    /// Takes `id` out of `room`; `true` if it was a member.
    pub(crate) fn leave(&self, id: ConnectionId, room: &str) -> bool {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
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

    /// The members of `room`, ordered by id.
    pub(crate) fn members(&self, room: &str) -> Vec<ConnectionId> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms
            .members
            .get(room)
            .map(|members| members.iter().copied().collect())
            .unwrap_or_default()
    }
}
