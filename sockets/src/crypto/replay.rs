//! The server's memory of recent client ephemerals, to refuse a replayed HS1.
//!
//! Only HS1s that verified under a PSK get here, so only secret holders can
//! fill it. Bounded: entries expire after their TTL, and when the cache is full
//! the oldest entry goes first (an entry that old is usually outside the
//! timestamp window anyway).

use std::collections::{HashMap, VecDeque};

pub(crate) struct ReplayCache {
    capacity: usize,
    ttl_ms: u64,
    expiry: HashMap<[u8; 32], u64>,
    order: VecDeque<([u8; 32], u64)>,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize, ttl_ms: u64) -> ReplayCache {
        ReplayCache {
            capacity,
            ttl_ms,
            expiry: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `key` at `now_ms`; `false` when it was already recorded and has not expired.
    pub(crate) fn insert(&mut self, key: [u8; 32], now_ms: u64) -> bool {
        if self.capacity == 0 {
            return true;
        }
        while let Some(&(old, expires)) = self.order.front() {
            if expires > now_ms && self.order.len() < self.capacity {
                break;
            }
            self.order.pop_front();
            // Remove the map entry only if it still belongs to this queue entry.
            if self.expiry.get(&old) == Some(&expires) {
                self.expiry.remove(&old);
            }
        }
        if let Some(&expires) = self.expiry.get(&key) {
            if expires > now_ms {
                return false;
            }
        }
        let expires = now_ms.saturating_add(self.ttl_ms);
        self.expiry.insert(key, expires);
        self.order.push_back((key, expires));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::ReplayCache;

    #[test]
    fn remembers_within_ttl_and_stays_bounded() {
        let mut cache = ReplayCache::new(2, 100);
        assert!(cache.insert([1; 32], 0));
        assert!(!cache.insert([1; 32], 50));
        assert!(cache.insert([1; 32], 100), "expired entries are forgotten");
        assert!(cache.insert([2; 32], 101));
        assert!(cache.insert([3; 32], 102));
        assert!(cache.order.len() <= 2 && cache.expiry.len() <= 2);
        assert!(!cache.insert([3; 32], 103));
        assert!(ReplayCache::new(0, 100).insert([1; 32], 0));
    }
}
