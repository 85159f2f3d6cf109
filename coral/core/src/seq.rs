//! TCP sequence numbers: 32-bit values compared modulo 2^32 (RFC 9293 §3.4).
//!
//! `a < b` means "b is after a", which is only meaningful when the two are
//! less than 2^31 apart; that is always the case inside one TCP window.

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, Sub};

/// A TCP sequence number with wrapping arithmetic and wrapping comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// Signed distance from `earlier` to `self` (`self - earlier`), in
    /// `-2^31 ..= 2^31-1`.
    pub fn distance_from(self, earlier: SeqNum) -> i32 {
        self.0.wrapping_sub(earlier.0) as i32
    }
    /// `self` comes strictly after `other` (modulo 2^32).
    pub fn after(self, other: SeqNum) -> bool {
        self.distance_from(other) > 0
    }
    /// `self` comes strictly before `other` (modulo 2^32).
    pub fn before(self, other: SeqNum) -> bool {
        self.distance_from(other) < 0
    }
    /// The later of the two (modulo 2^32).
    pub fn max_seq(self, other: SeqNum) -> SeqNum {
        if other.after(self) {
            other
        } else {
            self
        }
    }
    /// The earlier of the two (modulo 2^32).
    pub fn min_seq(self, other: SeqNum) -> SeqNum {
        if other.before(self) {
            other
        } else {
            self
        }
    }
    /// The sequence number `n` bytes after `self` (wrapping).
    pub fn plus(self, n: u64) -> SeqNum {
        SeqNum(self.0.wrapping_add(n as u32))
    }
    /// Unwrap `self` into a 64-bit stream offset, given that sequence number
    /// `base_seq` corresponds to offset `base_off`. Returns `None` when the
    /// result would be negative (a number from before the stream began).
    pub fn unwrap_near(self, base_seq: SeqNum, base_off: u64) -> Option<u64> {
        let d = i64::from(self.distance_from(base_seq));
        let off = base_off as i64 + d;
        if off < 0 {
            None
        } else {
            Some(off as u64)
        }
    }
}

impl PartialOrd for SeqNum {
    /// Wrapping order: only consistent for numbers less than 2^31 apart.
    fn partial_cmp(&self, other: &SeqNum) -> Option<Ordering> {
        Some(self.distance_from(*other).cmp(&0))
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    fn add(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(rhs))
    }
}

impl Sub<SeqNum> for SeqNum {
    type Output = i32;
    fn sub(self, rhs: SeqNum) -> i32 {
        self.distance_from(rhs)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_wraps_at_2_32() {
        let a = SeqNum(u32::MAX - 5);
        let b = a + 10;
        assert_eq!(b, SeqNum(4));
        assert!(b.after(a));
        assert!(a.before(b));
        assert!(a < b);
        assert_eq!(b - a, 10);
        assert_eq!(a - b, -10);
        assert_eq!(a.max_seq(b), b);
        assert_eq!(a.min_seq(b), a);
        assert!(!a.after(a));
    }

    #[test]
    fn unwrap_across_wrap() {
        let base = SeqNum(u32::MAX - 1);
        assert_eq!(SeqNum(3).unwrap_near(base, 100), Some(105));
        assert_eq!(SeqNum(u32::MAX - 3).unwrap_near(base, 100), Some(98));
        assert_eq!(SeqNum(u32::MAX - 3).unwrap_near(base, 1), None);
        assert_eq!(base.plus(1u64 << 32), base);
    }
}
