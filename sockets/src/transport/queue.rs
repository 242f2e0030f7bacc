//! What a transport has to write: framing and small payloads copied into one
//! buffer, large payloads kept in their own buffers, written together with
//! vectored writes. So a 1 MiB payload leaves from where it was sealed,
//! without a copy into a write buffer.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

/// Slices handed to one vectored write.
pub(crate) const MAX_SLICES: usize = 64;

/// A copy buffer larger than this is given back by [`WriteQueue::release`],
/// so a connection that once wrote a burst does not keep the memory while
/// idle; until then it is reused, so a client masking large messages into
/// it does not take fresh memory for each.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Bytes waiting to be written, in order.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    /// Buffers to write before `staged`, oldest first.
    chunks: VecDeque<Bytes>,
    /// Bytes copied in since the last large payload.
    staged: BytesMut,
    len: usize,
}

impl WriteQueue {
    /// Bytes waiting.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Nothing is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Memory held: the bytes waiting and the copy buffer's capacity.
    pub(crate) fn allocated(&self) -> usize {
        self.staged.capacity() + self.chunks.iter().map(Bytes::len).sum::<usize>()
    }

    /// Appends a copy of `data`.
    pub(crate) fn put_slice(&mut self, data: &[u8]) {
        self.staged.extend_from_slice(data);
        self.len += data.len();
    }

    /// Appends `data` XORed with the masking `key` (a client's payload).
    pub(crate) fn put_masked(&mut self, data: &[u8], key: [u8; 4]) {
        let start = self.staged.len();
        self.staged.extend_from_slice(data);
        super::ws::apply_mask(&mut self.staged[start..], key);
        self.len += data.len();
    }

    /// Appends `data` without copying it.
    pub(crate) fn put_bytes(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        if !self.staged.is_empty() {
            let staged = self.staged.split().freeze();
            self.chunks.push_back(staged);
        }
        self.len += data.len();
        self.chunks.push_back(data);
    }

    /// The next bytes to write, as slices for one vectored write; how many
    /// of `out` it filled.
    pub(crate) fn slices<'a>(&'a self, out: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
        let mut n = 0;
        for chunk in self.chunks.iter().take(MAX_SLICES - 1) {
            out[n] = IoSlice::new(chunk);
            n += 1;
        }
        if n == self.chunks.len() && !self.staged.is_empty() {
            out[n] = IoSlice::new(&self.staged);
            n += 1;
        }
        n
    }

    /// Drops the first `n` bytes, which were written.
    pub(crate) fn advance(&mut self, mut n: usize) {
        self.len -= n.min(self.len);
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                let take = n.min(self.staged.len());
                self.staged.advance(take);
                break;
            };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.chunks.pop_front();
        }
        if self.len == 0 {
            self.staged.clear();
        }
    }

    /// Gives back a large copy buffer once nothing waits in it (call when
    /// the connection is quiet).
    pub(crate) fn release(&mut self) {
        if self.len == 0 && self.staged.capacity() > KEEP_CAPACITY {
            self.staged = BytesMut::new();
        }
    }

    /// Everything waiting, copied out (tests).
    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for chunk in &self.chunks {
            out.extend_from_slice(chunk);
        }
        out.extend_from_slice(&self.staged);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_kept_across_copies_and_large_payloads() {
        let mut queue = WriteQueue::default();
        queue.put_slice(b"ab");
        queue.put_bytes(Bytes::from_static(b"CDE"));
        queue.put_slice(b"f");
        queue.put_bytes(Bytes::new());
        queue.put_bytes(Bytes::from_static(b"GH"));
        queue.put_slice(b"ij");
        assert_eq!(queue.to_vec(), b"abCDEfGHij");
        assert_eq!(queue.len(), 10);
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = queue.slices(&mut slices);
        let joined: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(joined, b"abCDEfGHij");
        // Partial writes, at every boundary and inside chunks.
        queue.advance(1);
        assert_eq!(queue.to_vec(), b"bCDEfGHij");
        queue.advance(3);
        assert_eq!(queue.to_vec(), b"EfGHij");
        queue.advance(4);
        assert_eq!(queue.to_vec(), b"ij");
        queue.advance(2);
        assert!(queue.is_empty());
        assert_eq!(queue.to_vec(), b"");
    }

    #[test]
    fn a_large_copy_buffer_is_reused_until_released_when_nothing_waits() {
        let mut queue = WriteQueue::default();
        queue.put_masked(&vec![1; 100_000], [1, 2, 3, 4]);
        let first = queue.staged.as_ptr();
        assert!(queue.allocated() >= 100_000);
        // Written in two parts: the buffer stays for the next message.
        queue.advance(60_000);
        queue.release();
        assert!(queue.allocated() >= 40_000, "not released while bytes wait");
        queue.advance(40_000);
        queue.put_masked(&vec![1; 100_000], [1, 2, 3, 4]);
        assert_eq!(
            queue.staged.as_ptr(),
            first,
            "the same memory, no new block"
        );
        assert_eq!(queue.to_vec()[..4], [0, 3, 2, 5]);
        queue.advance(100_000);
        queue.release();
        assert_eq!(queue.allocated(), 0, "given back once nothing waits");
    }
}
