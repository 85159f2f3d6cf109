//! Ethernet II frames: a checked view over a byte buffer.

use super::WireError;
use std::fmt;

/// Length of an Ethernet II header (no VLAN tag).
pub const HEADER_LEN: usize = 14;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// A 48-bit Ethernet (MAC) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);
    /// Read an address from the first 6 bytes of `b` (caller checks length).
    fn from_slice(b: &[u8]) -> EthernetAddress {
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[..6]);
        EthernetAddress(a)
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// A view of an Ethernet II frame over a buffer whose length was checked.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wrap `buffer`, checking that it holds at least a full header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated("ethernet header"));
        }
        Ok(EthernetFrame { buffer })
    }
    /// Destination address.
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress::from_slice(&self.buffer.as_ref()[0..6])
    }
    /// Source address.
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress::from_slice(&self.buffer.as_ref()[6..12])
    }
    /// EtherType field.
    pub fn ethertype(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[12], b[13]])
    }
    /// Everything after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// Give back the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Overwrite the destination address.
    pub fn set_dst_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[0..6].copy_from_slice(&a.0);
    }
    /// Overwrite the source address.
    pub fn set_src_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[6..12].copy_from_slice(&a.0);
    }
    /// Overwrite the EtherType.
    pub fn set_ethertype(&mut self, t: u16) {
        self.buffer.as_mut()[12..14].copy_from_slice(&t.to_be_bytes());
    }
    /// Mutable access to everything after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// Rewrite the source and destination MAC of the frame in place (what the
/// front does before forwarding a client frame to the primary).
pub fn rewrite_macs(
    frame: &mut [u8],
    src: EthernetAddress,
    dst: EthernetAddress,
) -> Result<(), WireError> {
    let mut f = EthernetFrame::new_checked(frame)?;
    f.set_src_addr(src);
    f.set_dst_addr(dst);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_frame_is_an_error() {
        assert!(EthernetFrame::new_checked(&[0u8; 13][..]).is_err());
    }

    #[test]
    fn rewrite_and_read_back() {
        let mut f = vec![0u8; 20];
        f[12] = 0x08;
        rewrite_macs(
            &mut f,
            EthernetAddress([1, 2, 3, 4, 5, 6]),
            EthernetAddress::BROADCAST,
        )
        .unwrap();
        let v = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(v.src_addr().to_string(), "01:02:03:04:05:06");
        assert_eq!(v.dst_addr(), EthernetAddress::BROADCAST);
        assert_eq!(v.ethertype(), ETHERTYPE_IPV4);
        assert_eq!(v.payload().len(), 6);
    }
}
