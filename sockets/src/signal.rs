//! A value tasks can wait on: what a `tokio::sync::watch` channel offers
//! within one struct, without its allocation.
//!
//! A watch channel allocates about 350 bytes (eight `Notify`s, to spread
//! contention among many receivers). Per-connection and per-client state
//! with one or two waiters does not need that: a [`Signal`] is a mutex and
//! a single `Notify`, kept inline.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

/// A value, and a way to wait until it satisfies a condition.
#[derive(Debug, Default)]
pub(crate) struct Signal<T> {
    value: Mutex<T>,
    changed: Notify,
}

impl<T> Signal<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            value: Mutex::new(value),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, T> {
        // Plain data: go on with it after a panic elsewhere.
        self.value
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the value.
    pub(crate) fn with<R>(&self, read: impl FnOnce(&T) -> R) -> R {
        read(&self.lock())
    }

    /// Replaces the value, wakes every waiter and returns the old value.
    pub(crate) fn replace(&self, value: T) -> T {
        let old = std::mem::replace(&mut *self.lock(), value);
        self.changed.notify_waiters();
        old
    }

    /// Changes the value in place; wakes every waiter when `change` says it
    /// changed something they may wait for. Returns what `change` returned.
    pub(crate) fn update(&self, change: impl FnOnce(&mut T) -> bool) -> bool {
        let changed = change(&mut self.lock());
        if changed {
            self.changed.notify_waiters();
        }
        changed
    }

    /// Waits until `ready` returns something, checking now and after each change.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing happens until it resolves.
    pub(crate) async fn wait_for<R>(&self, mut ready: impl FnMut(&T) -> Option<R>) -> R {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the check: a change in between still wakes us.
            notified.as_mut().enable();
            if let Some(found) = ready(&self.lock()) {
                return found;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn waiters_see_the_change_they_wait_for() {
        let signal = Arc::new(Signal::new(0u32));
        let waiter = tokio::spawn({
            let signal = Arc::clone(&signal);
            async move { signal.wait_for(|n| (*n >= 2).then_some(*n)).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(signal.replace(1), 0);
        assert_eq!(signal.replace(2), 1);
        let seen = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen, 2);
        assert_eq!(signal.with(|n| *n), 2);
        // Already true: resolves at once.
        assert_eq!(signal.wait_for(|n| Some(*n)).await, 2);
    }
}
