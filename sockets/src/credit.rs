//! Credit-based flow control of one stream half: sans-IO, events in,
//! decisions out, like `correlation` and `heartbeat`.
//!
//! The receiver of a stream grants the sender a window of items and bytes
//! (docs/PROTOCOL.md §9.7). The sender may send an item while it holds at
//! least one item of credit and at least one byte of credit; the item's
//! length is then taken from the byte credit, which may not go below zero
//! (an item longer than the byte credit left uses it all up). So an item
//! larger than the whole byte window still moves, and the receiver holds at
//! most `window.items` items and `window.bytes` bytes plus one item.
//!
//! ```text
//!  receiver                                     sender
//!  Receiver::new(window) ── CREDIT(items, bytes) ──► Sender::grant
//!  Receiver::received   ◄──────── ITEM ──────────── Sender::spend (if can_send)
//!  Receiver::consumed (each item taken)
//!  Receiver::grant ─► Some(grant) ──── CREDIT ──────► Sender::grant
//! ```
//!
//! The application may take many items before the receiver decides: it
//! records each with `consumed` and asks `grant` once, so a batch taken at
//! once is answered with one CREDIT for all the room it made, never with a
//! half-window grant and a remainder too small to send.
//!
//! The receiver gives credit back once the application has consumed half of
//! a window (items or bytes), so a steady stream sends one CREDIT per half
//! window. A sender that sends past its credit, or a grant that would take
//! the sender's credit past what any window can hold, is a protocol error.

use std::fmt;

/// How much a stream's receiver lets its sender send ahead: items and bytes.
///
/// The default is 8,192 items and 256 KiB: items of 32 bytes or more are
/// held to the bytes, which bound what a reader holds; the count bounds
/// how many smaller ones it holds (and is high enough that a firehose of
/// 32-byte items does not wait on credit). A window of zero items or
/// zero bytes is raised to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    items: u32,
    bytes: u32,
}

impl Window {
    /// The window used when neither the method nor the call sets one.
    pub const DEFAULT: Window = Window {
        items: 8192,
        bytes: 256 * 1024,
    };

    /// A window of `items` items and `bytes` bytes (each at least one).
    pub const fn new(items: u32, bytes: u32) -> Self {
        Self {
            items: if items == 0 { 1 } else { items },
            bytes: if bytes == 0 { 1 } else { bytes },
        }
    }

    /// Items the sender may send ahead.
    pub const fn items(&self) -> u32 {
        self.items
    }

    /// Bytes (of item payloads) the sender may send ahead.
    pub const fn bytes(&self) -> u32 {
        self.bytes
    }
}

impl Default for Window {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A flow-control rule the peer broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CreditError {
    /// A grant of nothing, or one that takes the credit past `u32::MAX`.
    BadGrant,
    /// An item arrived while the sender held no credit for it.
    PastCredit,
}

impl fmt::Display for CreditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadGrant => "empty or overflowing stream credit",
            Self::PastCredit => "stream item past its credit",
        })
    }
}

/// Credit to send: the payload of one CREDIT envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) items: u32,
    pub(crate) bytes: u32,
}

/// The sending side's credit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sender {
    items: u32,
    bytes: u32,
}

impl Sender {
    /// The receiver granted more credit.
    ///
    /// # Errors
    /// [`CreditError::BadGrant`] for a grant of zero items and zero bytes,
    /// or one that takes either credit past `u32::MAX`.
    pub(crate) fn grant(&mut self, items: u32, bytes: u32) -> Result<(), CreditError> {
        if items == 0 && bytes == 0 {
            return Err(CreditError::BadGrant);
        }
        let items = self.items.checked_add(items).ok_or(CreditError::BadGrant)?;
        let bytes = self.bytes.checked_add(bytes).ok_or(CreditError::BadGrant)?;
        (self.items, self.bytes) = (items, bytes);
        Ok(())
    }

    /// Whether an item may be sent now.
    pub(crate) fn can_send(&self) -> bool {
        self.items > 0 && self.bytes > 0
    }

    /// An item of `len` bytes is sent; `false` (and nothing changes) when
    /// there is no credit for it.
    pub(crate) fn spend(&mut self, len: usize) -> bool {
        if !self.can_send() {
            return false;
        }
        self.items -= 1;
        self.bytes = self
            .bytes
            .saturating_sub(u32::try_from(len).unwrap_or(u32::MAX));
        true
    }
}

/// The receiving side: the credit the sender holds, what is buffered, and
/// when to grant more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Receiver {
    window: Window,
    /// The credit the sender holds, as far as the receiver knows.
    credit_items: u32,
    credit_bytes: u32,
    /// Received and not yet consumed by the application.
    buffered_items: u32,
    buffered_bytes: u64,
}

impl Receiver {
    /// A receiver with `window`, and the grant that opens it (the whole window).
    pub(crate) fn new(window: Window) -> (Self, Grant) {
        let receiver = Self {
            window,
            credit_items: window.items,
            credit_bytes: window.bytes,
            buffered_items: 0,
            buffered_bytes: 0,
        };
        let grant = Grant {
            items: window.items,
            bytes: window.bytes,
        };
        (receiver, grant)
    }

    /// An item of `len` bytes arrived.
    ///
    /// # Errors
    /// [`CreditError::PastCredit`] when the sender had no credit for it.
    pub(crate) fn received(&mut self, len: usize) -> Result<(), CreditError> {
        if self.credit_items == 0 || self.credit_bytes == 0 {
            return Err(CreditError::PastCredit);
        }
        self.credit_items -= 1;
        self.credit_bytes = self
            .credit_bytes
            .saturating_sub(u32::try_from(len).unwrap_or(u32::MAX));
        self.buffered_items += 1;
        self.buffered_bytes += len as u64;
        Ok(())
    }

    /// The application consumed an item of `len` bytes ([`Receiver::grant`]
    /// says whether that makes credit worth giving back).
    pub(crate) fn consumed(&mut self, len: usize) {
        self.buffered_items = self.buffered_items.saturating_sub(1);
        self.buffered_bytes = self.buffered_bytes.saturating_sub(len as u64);
    }

    /// The credit to grant now, once half a window (of items or of bytes)
    /// can be given back, or at once when the sender is stuck: it holds no
    /// credit of one kind and nothing waits to be consumed.
    pub(crate) fn grant(&mut self) -> Option<Grant> {
        let held_items = self.credit_items + self.buffered_items;
        let held_bytes = u64::from(self.credit_bytes) + self.buffered_bytes;
        let items = self.window.items.saturating_sub(held_items);
        let bytes = u32::try_from(u64::from(self.window.bytes).saturating_sub(held_bytes))
            .unwrap_or(u32::MAX);
        let worth_it = items >= self.window.items.div_ceil(2)
            || bytes >= self.window.bytes.div_ceil(2)
            // The sender is stuck: it holds no credit of one kind.
            || (self.credit_items == 0 || self.credit_bytes == 0) && self.buffered_items == 0;
        if !worth_it || (items == 0 && bytes == 0) {
            return None;
        }
        // A grant of bytes alone would leave a sender without items stuck:
        // give at least one item when the sender holds none.
        let items = if items == 0 && self.credit_items == 0 {
            1
        } else {
            items
        };
        self.credit_items += items;
        self.credit_bytes = self.credit_bytes.saturating_add(bytes);
        Some(Grant { items, bytes })
    }

    /// Items received and not yet consumed.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> u32 {
        self.buffered_items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_sender_stops_at_its_credit_and_goes_on_after_a_grant() {
        let (mut rx, grant) = Receiver::new(Window::new(2, 1000));
        let mut tx = Sender::default();
        assert!(!tx.can_send());
        tx.grant(grant.items, grant.bytes).unwrap();
        assert!(tx.spend(10) && tx.spend(10));
        assert!(!tx.spend(10), "two items of credit");
        rx.received(10).unwrap();
        rx.received(10).unwrap();
        assert_eq!(rx.received(10), Err(CreditError::PastCredit));
        rx.consumed(10);
        let grant = rx.grant().expect("half a window consumed");
        assert_eq!(grant.items, 1);
        tx.grant(grant.items, grant.bytes).unwrap();
        assert!(tx.spend(10));
    }

    #[test]
    fn an_item_larger_than_the_byte_window_still_moves() {
        let (mut rx, grant) = Receiver::new(Window::new(4, 100));
        let mut tx = Sender::default();
        tx.grant(grant.items, grant.bytes).unwrap();
        assert!(tx.spend(1000));
        assert!(!tx.can_send(), "the byte credit is used up");
        rx.received(1000).unwrap();
        rx.consumed(1000);
        let grant = rx.grant().expect("the sender is stuck");
        tx.grant(grant.items, grant.bytes).unwrap();
        assert!(tx.spend(1000));
    }

    #[test]
    fn a_batch_consumed_at_once_gives_back_all_the_room_it_made_in_one_grant() {
        // Items of 1027 bytes (a 1 KiB `bin` and its header) fill the byte
        // window before the item window: the sender stops after 256.
        let (mut rx, _) = Receiver::new(Window::new(2048, 256 * 1024));
        for _ in 0..256 {
            rx.received(1027).unwrap();
        }
        for _ in 0..256 {
            rx.consumed(1027);
        }
        let grant = rx.grant().expect("the whole batch was consumed");
        assert_eq!(
            (grant.items, grant.bytes),
            (256, 256 * 1024),
            "all of it, not half a window and a remainder under half"
        );
        assert_eq!(rx.grant(), None, "nothing more to give back");
    }

    #[test]
    fn empty_and_overflowing_grants_are_refused() {
        let mut tx = Sender::default();
        assert_eq!(tx.grant(0, 0), Err(CreditError::BadGrant));
        tx.grant(u32::MAX, 1).unwrap();
        assert_eq!(tx.grant(1, 0), Err(CreditError::BadGrant));
        assert_eq!(
            tx,
            Sender {
                items: u32::MAX,
                bytes: 1
            },
            "unchanged"
        );
    }

    #[derive(Clone, Debug)]
    enum Step {
        /// The sender sends an item of this length if it may.
        Send(usize),
        /// The application consumes up to this many of the oldest buffered
        /// items, then the receiver decides whether to grant.
        Consume(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0usize..5000).prop_map(Step::Send),
            (1usize..80).prop_map(Step::Consume),
        ]
    }

    proptest! {
        /// Whatever the order of sends and consumption, an honest sender is
        /// never past its credit, the receiver never holds more than the
        /// window (plus one item's bytes), and no stream stalls: once
        /// everything is consumed the sender may send again.
        #[test]
        fn credit_bounds_the_receiver_and_never_stalls(
            items in 1u32..64,
            bytes in 1u32..20_000,
            steps in proptest::collection::vec(step(), 0..400),
        ) {
            let window = Window::new(items, bytes);
            let (mut rx, grant) = Receiver::new(window);
            let mut tx = Sender::default();
            tx.grant(grant.items, grant.bytes).unwrap();
            let mut buffer = std::collections::VecDeque::new();
            let mut max_len = 0u64;
            for step in steps {
                match step {
                    Step::Send(len) => {
                        if tx.spend(len) {
                            prop_assert!(rx.received(len).is_ok());
                            buffer.push_back(len);
                            max_len = max_len.max(len as u64);
                        }
                    }
                    Step::Consume(n) => {
                        for _ in 0..n {
                            if let Some(len) = buffer.pop_front() {
                                rx.consumed(len);
                            }
                        }
                        if let Some(grant) = rx.grant() {
                            prop_assert!(tx.grant(grant.items, grant.bytes).is_ok());
                        }
                    }
                }
                prop_assert!(buffer.len() as u32 <= window.items());
                prop_assert_eq!(rx.buffered(), buffer.len() as u32);
                let held: u64 = buffer.iter().map(|l| *l as u64).sum();
                prop_assert!(held <= u64::from(window.bytes()) + max_len);
                prop_assert!(rx.credit_items <= window.items());
            }
            while let Some(len) = buffer.pop_front() {
                rx.consumed(len);
                if let Some(grant) = rx.grant() {
                    prop_assert!(tx.grant(grant.items, grant.bytes).is_ok());
                }
            }
            prop_assert!(tx.can_send(), "a drained stream is never stuck");
        }

        /// A peer that sends past the credit it was given is caught on the
        /// first item too many.
        #[test]
        fn an_item_past_credit_is_caught(items in 1u32..32, extra in 1usize..10) {
            let (mut rx, _) = Receiver::new(Window::new(items, u32::MAX));
            for _ in 0..items {
                prop_assert!(rx.received(1).is_ok());
            }
            for _ in 0..extra {
                prop_assert_eq!(rx.received(1), Err(CreditError::PastCredit));
            }
        }
    }
}
