//! IPv4 packets: checked view, header checksum, parsed form and emitter.

use super::checksum;
use super::WireError;
use std::net::Ipv4Addr;

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;

/// A view of an IPv4 packet over a buffer whose lengths were checked:
/// version 4, IHL >= 5, header within the buffer, total length within the
/// buffer and not shorter than the header. Bytes past the total length
/// (Ethernet padding) are ignored by [`payload`](Self::payload).
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wrap `buffer` after validating the header and total length.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated("ipv4 header"));
        }
        if b[0] >> 4 != 4 {
            return Err(WireError::Malformed("ip version is not 4"));
        }
        let hl = usize::from(b[0] & 0x0f) * 4;
        if hl < MIN_HEADER_LEN {
            return Err(WireError::Malformed("ipv4 header length below 20"));
        }
        if b.len() < hl {
            return Err(WireError::Truncated("ipv4 options"));
        }
        let total = usize::from(u16::from_be_bytes([b[2], b[3]]));
        if total < hl {
            return Err(WireError::Malformed(
                "ipv4 total length below header length",
            ));
        }
        if b.len() < total {
            return Err(WireError::Truncated("ipv4 payload"));
        }
        Ok(Ipv4Packet { buffer })
    }
    /// Header length in bytes (IHL x 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[0] & 0x0f) * 4
    }
    /// Total length field.
    pub fn total_len(&self) -> usize {
        let b = self.buffer.as_ref();
        usize::from(u16::from_be_bytes([b[2], b[3]]))
    }
    /// Identification field.
    pub fn ident(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[4], b[5]])
    }
    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.buffer.as_ref()[6] & 0x40 != 0
    }
    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        self.buffer.as_ref()[6] & 0x20 != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        let b = self.buffer.as_ref();
        usize::from(u16::from_be_bytes([b[6] & 0x1f, b[7]])) * 8
    }
    /// True if this packet is a fragment (first or later) of a larger one.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[8]
    }
    /// Protocol number.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[9]
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[10], b[11]])
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }
    /// True if the header (with options) sums to 0xffff.
    pub fn verify_checksum(&self) -> bool {
        let hl = self.header_len();
        checksum::fold(checksum::sum_words(0, &self.buffer.as_ref()[..hl])) == 0xffff
    }
    /// The payload, `header_len .. total_len`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Recompute and store the header checksum.
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.buffer.as_mut();
        b[10] = 0;
        b[11] = 0;
        let c = checksum::checksum(&b[..hl]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
    }
    /// Mutable payload, `header_len .. total_len`.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), self.total_len());
        &mut self.buffer.as_mut()[hl..tl]
    }
}

/// The fields of an IPv4 header (no options) to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol number.
    pub protocol: u8,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl Ipv4Repr {
    /// Write a 20-byte header with a correct checksum into the start of
    /// `buf`. Errors if `buf` is too short or the total length exceeds 65535.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let total = MIN_HEADER_LEN + self.payload_len;
        if total > usize::from(u16::MAX) {
            return Err(WireError::TooLong);
        }
        if buf.len() < MIN_HEADER_LEN {
            return Err(WireError::BufferTooSmall);
        }
        let h = &mut buf[..MIN_HEADER_LEN];
        h[0] = 0x45;
        h[1] = 0;
        h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        h[4..6].copy_from_slice(&self.ident.to_be_bytes());
        h[6] = if self.dont_frag { 0x40 } else { 0 };
        h[7] = 0;
        h[8] = self.ttl;
        h[9] = self.protocol;
        h[10] = 0;
        h[11] = 0;
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        let c = checksum::checksum(h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A widely published IPv4 header (Wikipedia, "Internet checksum"
    /// example) whose checksum field 0xb861 was computed by a real stack.
    const KNOWN: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn known_header_checksum() {
        let mut buf = KNOWN.to_vec();
        buf.resize(0x73, 0);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.checksum(), 0xb861);
        assert_eq!(p.protocol(), 17);
        assert!(p.dont_frag());
        assert!(!p.is_fragment());
        // Our emitter produces the same header and checksum.
        let repr = Ipv4Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: 17,
            ttl: 64,
            ident: 0,
            dont_frag: true,
            payload_len: 0x73 - 20,
        };
        let mut out = [0u8; 20];
        repr.emit(&mut out).unwrap();
        assert_eq!(out, KNOWN);
        // fill_checksum reproduces it after corruption.
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.buffer[10] = 0;
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert_eq!(p.checksum(), 0xb861);
    }

    #[test]
    fn length_checks() {
        assert!(Ipv4Packet::new_checked(&KNOWN[..19]).is_err());
        // total length 0x73 but only 20 bytes present
        assert!(Ipv4Packet::new_checked(&KNOWN[..]).is_err());
        let mut b = KNOWN.to_vec();
        b[0] = 0x44; // IHL 4
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
        b[0] = 0x65; // version 6
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
        let mut b = KNOWN.to_vec();
        b[2] = 0;
        b[3] = 10; // total < header
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
        b[0] = 0x4f; // IHL 15 = 60 bytes > buffer
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
    }

    #[test]
    fn padding_is_ignored() {
        let mut b = KNOWN.to_vec();
        b[2] = 0;
        b[3] = 24;
        b[10] = 0;
        b[11] = 0;
        b.extend_from_slice(&[1, 2, 3, 4, 9, 9, 9]);
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
    }
}
