//! Reassembly of the client's byte stream from TCP segments.
//!
//! Positions are 64-bit *stream offsets*: offset 0 is the first data byte,
//! client sequence number ISN+1. A segment's sequence number is unwrapped
//! relative to the current contiguous end, so the stream may cross 2^32 any
//! number of times. Retransmissions and overlaps keep the bytes received
//! first (a correct client sends the same bytes again anyway).
//!
//! Memory is bounded: the bytes held (contiguous but not yet released, plus
//! out-of-order) never exceed `max_bytes`. **Policy when the bound is hit:**
//! a segment whose new bytes would not fit is refused *whole*
//! ([`Insert::Full`]) and nothing of it is recorded, so the caller must not
//! forward it (record before forward); the client retransmits it later, by
//! which time released requests may have made room. The connection layer
//! decides what to do when waiting cannot help (see `conn`).

use crate::seq::SeqNum;
use std::collections::{BTreeMap, VecDeque};

/// Result of offering one segment's data to the reassembler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Every byte was already known (retransmission) or the data is empty.
    Duplicate,
    /// New bytes were recorded; `newly_contiguous` of them (including any
    /// earlier out-of-order bytes now joined) extended the contiguous end.
    Recorded {
        /// How far the contiguous end advanced.
        newly_contiguous: u64,
    },
    /// Recording the new bytes would exceed the bound; nothing was recorded.
    Full,
}

/// Reassembles one direction of a TCP connection into a contiguous stream.
#[derive(Debug, Clone)]
pub struct Reassembler {
    isn: SeqNum,
    /// Stream offset of `held[0]`; everything before was released.
    base: u64,
    held: VecDeque<u8>,
    /// Out-of-order runs, non-overlapping, non-touching, all beyond `end()`.
    ooo: BTreeMap<u64, Vec<u8>>,
    ooo_bytes: usize,
    max_bytes: usize,
    highest: u64,
}

impl Reassembler {
    /// A reassembler for a stream whose SYN carried sequence number `isn`,
    /// holding at most `max_bytes` bytes.
    pub fn new(isn: SeqNum, max_bytes: usize) -> Reassembler {
        Reassembler {
            isn,
            base: 0,
            held: VecDeque::new(),
            ooo: BTreeMap::new(),
            ooo_bytes: 0,
            max_bytes,
            highest: 0,
        }
    }

    /// The ISN the stream starts after.
    pub fn isn(&self) -> SeqNum {
        self.isn
    }

    /// Sequence number of stream offset `off`.
    pub fn seq_at(&self, off: u64) -> SeqNum {
        self.isn.plus(1).plus(off)
    }

    /// Stream offset of `seq`, unwrapped near the contiguous end; `None` if
    /// it would lie before the stream began.
    pub fn offset_of(&self, seq: SeqNum) -> Option<u64> {
        let end = self.end();
        seq.unwrap_near(self.seq_at(end), end)
    }

    /// Offset one past the last contiguous byte received (`rcv_nxt`).
    pub fn end(&self) -> u64 {
        self.base + self.held.len() as u64
    }

    /// Offset of the first byte still held (everything before was released).
    pub fn released_upto(&self) -> u64 {
        self.base
    }

    /// One past the highest byte ever received, in or out of order.
    pub fn highest_received(&self) -> u64 {
        self.highest.max(self.end())
    }

    /// Bytes currently held (contiguous unreleased plus out-of-order).
    pub fn held_bytes(&self) -> usize {
        self.held.len() + self.ooo_bytes
    }

    /// Bytes held out of order.
    pub fn out_of_order_bytes(&self) -> usize {
        self.ooo_bytes
    }

    /// The bound given at construction.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Offer `data` that starts at sequence number `seq`.
    pub fn insert(&mut self, seq: SeqNum, data: &[u8]) -> Insert {
        if data.is_empty() {
            return Insert::Duplicate;
        }
        let end = self.end();
        let start = end as i64 + i64::from(seq.distance_from(self.seq_at(end)));
        let data_end = start + data.len() as i64;
        if data_end <= end as i64 {
            return Insert::Duplicate;
        }
        // From here data_end > end >= 0, so the new part is [max(start,end), data_end).
        let (start, data) = if start < end as i64 {
            let skip = (end as i64 - start) as usize;
            (end, &data[skip..])
        } else {
            (start as u64, data)
        };
        let data_end = start + data.len() as u64;
        // Count the bytes that are really new (not already out of order).
        let mut covered = 0u64;
        for (&k, v) in self.ooo.range(..data_end) {
            let ke = k + v.len() as u64;
            if ke > start {
                covered += ke.min(data_end) - k.max(start);
            }
        }
        let new = data.len() as u64 - covered;
        if new == 0 {
            return Insert::Duplicate;
        }
        if self.held_bytes() as u64 + new > self.max_bytes as u64 {
            return Insert::Full;
        }
        self.highest = self.highest.max(data_end);
        if start == end {
            self.held.extend(data);
            let before = end;
            self.absorb_out_of_order();
            Insert::Recorded {
                newly_contiguous: self.end() - before,
            }
        } else {
            self.insert_out_of_order(start, data);
            Insert::Recorded {
                newly_contiguous: 0,
            }
        }
    }

    fn insert_out_of_order(&mut self, start: u64, data: &[u8]) {
        let data_end = start + data.len() as u64;
        // Runs overlapping or touching [start, data_end].
        let touching: Vec<u64> = self
            .ooo
            .range(..=data_end)
            .filter(|(&k, v)| k + v.len() as u64 >= start)
            .map(|(&k, _)| k)
            .collect();
        let mut lo = start;
        let mut hi = data_end;
        for k in &touching {
            lo = lo.min(*k);
            hi = hi.max(k + self.ooo[k].len() as u64);
        }
        let mut merged = vec![0u8; (hi - lo) as usize];
        let s = (start - lo) as usize;
        merged[s..s + data.len()].copy_from_slice(data);
        for k in touching {
            let v = self.ooo.remove(&k).expect("key listed above");
            self.ooo_bytes -= v.len();
            let o = (k - lo) as usize;
            merged[o..o + v.len()].copy_from_slice(&v); // first-received bytes win
        }
        self.ooo_bytes += merged.len();
        self.ooo.insert(lo, merged);
    }

    fn absorb_out_of_order(&mut self) {
        while let Some((&k, _)) = self.ooo.first_key_value() {
            let end = self.end();
            if k > end {
                break;
            }
            let v = self.ooo.remove(&k).expect("first key exists");
            self.ooo_bytes -= v.len();
            let skip = (end - k) as usize;
            if skip < v.len() {
                self.held.extend(&v[skip..]);
            }
        }
    }

    /// The out-of-order runs held beyond `end()`, as (offset, bytes), in
    /// order; runs never overlap or touch.
    pub fn out_of_order_runs(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.ooo.iter().map(|(&k, v)| (k, v.as_slice()))
    }

    /// Forget contiguous bytes before offset `upto` (clamped to `end()`).
    pub fn release(&mut self, upto: u64) {
        let upto = upto.min(self.end());
        if upto > self.base {
            self.held.drain(..(upto - self.base) as usize);
            self.base = upto;
        }
    }

    /// Contiguous bytes from offset `from` to `end()`; `None` if `from` was
    /// already released or lies beyond `end()`.
    pub fn contiguous_from(&self, from: u64) -> Option<Vec<u8>> {
        if from < self.base || from > self.end() {
            return None;
        }
        Some(
            self.held
                .range((from - self.base) as usize..)
                .copied()
                .collect(),
        )
    }

    /// Contiguous bytes in `from .. to`; `None` unless `base <= from <= to <= end()`.
    pub fn range(&self, from: u64, to: u64) -> Option<Vec<u8>> {
        if from < self.base || to > self.end() || from > to {
            return None;
        }
        let a = (from - self.base) as usize;
        let b = (to - self.base) as usize;
        Some(self.held.range(a..b).copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(r: &Reassembler) -> Vec<u8> {
        r.contiguous_from(r.released_upto()).unwrap()
    }

    #[test]
    fn in_order_and_retransmission() {
        let mut r = Reassembler::new(SeqNum(1000), 1 << 20);
        assert_eq!(
            r.insert(SeqNum(1001), b"abc"),
            Insert::Recorded {
                newly_contiguous: 3
            }
        );
        assert_eq!(r.insert(SeqNum(1001), b"abc"), Insert::Duplicate);
        assert_eq!(
            r.insert(SeqNum(1002), b"bcdef"),
            Insert::Recorded {
                newly_contiguous: 3
            }
        );
        assert_eq!(all(&r), b"abcdef");
        assert_eq!(r.end(), 6);
        assert_eq!(r.seq_at(6), SeqNum(1007));
    }

    #[test]
    fn out_of_order_fills_hole() {
        let mut r = Reassembler::new(SeqNum(0), 1 << 20);
        assert_eq!(
            r.insert(SeqNum(7), b"gh"),
            Insert::Recorded {
                newly_contiguous: 0
            }
        );
        assert_eq!(
            r.insert(SeqNum(4), b"de"),
            Insert::Recorded {
                newly_contiguous: 0
            }
        );
        assert_eq!(r.out_of_order_bytes(), 4);
        assert_eq!(
            r.insert(SeqNum(5), b"EF"),
            Insert::Recorded {
                newly_contiguous: 0
            }
        );
        // "de" kept (first received), F new at offset 5 -> runs 3..8 merged.
        assert_eq!(r.out_of_order_bytes(), 5);
        assert_eq!(r.highest_received(), 8);
        assert_eq!(
            r.insert(SeqNum(1), b"abc"),
            Insert::Recorded {
                newly_contiguous: 8
            }
        );
        assert_eq!(all(&r), b"abcdeFgh");
        assert_eq!(r.out_of_order_bytes(), 0);
    }

    #[test]
    fn wraps_at_2_32() {
        let isn = SeqNum(u32::MAX - 3);
        let mut r = Reassembler::new(isn, 1 << 20);
        r.insert(SeqNum(3), b"ghij"); // offsets 6..10, past the wrap
        r.insert(isn.plus(1), b"abcdef");
        assert_eq!(all(&r), b"abcdefghij");
        assert_eq!(r.offset_of(SeqNum(3)), Some(6));
        assert_eq!(r.offset_of(SeqNum(u32::MAX)), Some(2));
        assert_eq!(r.offset_of(isn), None);
    }

    #[test]
    fn bound_refuses_whole_segment() {
        let mut r = Reassembler::new(SeqNum(0), 8);
        assert_eq!(
            r.insert(SeqNum(1), b"abcde"),
            Insert::Recorded {
                newly_contiguous: 5
            }
        );
        assert_eq!(r.insert(SeqNum(6), b"fghi"), Insert::Full);
        assert_eq!(r.end(), 5);
        assert_eq!(r.insert(SeqNum(20), b"xxxx"), Insert::Full);
        r.release(3);
        assert_eq!(r.held_bytes(), 2);
        assert_eq!(
            r.insert(SeqNum(6), b"fghi"),
            Insert::Recorded {
                newly_contiguous: 4
            }
        );
        assert_eq!(r.contiguous_from(3).unwrap(), b"defghi");
        assert_eq!(r.contiguous_from(2), None);
        assert_eq!(r.range(4, 6).unwrap(), b"ef");
        // A duplicate costs nothing even when full.
        r.insert(SeqNum(20), b"zz");
        assert_eq!(r.insert(SeqNum(20), b"zz"), Insert::Duplicate);
    }

    proptest! {
        /// Random segmentation, duplication and reordering of a stream,
        /// starting at a random ISN (often near 2^32), reassembles to the
        /// original stream.
        #[test]
        fn random_segments_give_back_the_stream(
            stream in proptest::collection::vec(any::<u8>(), 1..3000),
            isn in prop_oneof![any::<u32>(), (u32::MAX - 2000)..=u32::MAX],
            cuts in proptest::collection::vec((0usize..3000, 1usize..400), 1..60),
            order in proptest::collection::vec(any::<u32>(), 0..80),
        ) {
            let n = stream.len();
            // Segments: the cuts (overlapping, arbitrary) plus a cover of the
            // whole stream so it can complete.
            let mut segs: Vec<(usize, usize)> = cuts.iter()
                .map(|&(s, l)| (s % n, (s % n + l).min(n))).collect();
            let mut i = 0;
            while i < n { segs.push((i, (i + 97).min(n))); i += 97; }
            // Shuffle deterministically from `order`, duplicating some.
            for (j, o) in order.iter().enumerate() {
                let a = j % segs.len();
                let b = (*o as usize) % segs.len();
                segs.swap(a, b);
                if o % 5 == 0 { let s = segs[b]; segs.push(s); }
            }
            let isn = SeqNum(isn);
            let mut r = Reassembler::new(isn, 1 << 20);
            for (s, e) in segs {
                let seq = isn.plus(1).plus(s as u64);
                let _ = r.insert(seq, &stream[s..e]);
                prop_assert!(r.held_bytes() <= n);
            }
            prop_assert_eq!(r.end(), n as u64);
            prop_assert_eq!(all(&r), stream);
            prop_assert_eq!(r.out_of_order_bytes(), 0);
        }
    }
}
