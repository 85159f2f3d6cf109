//! ARP for Ethernet/IPv4 (RFC 826): checked view, parsed form and emitter.

use super::ethernet::{EthernetAddress, EthernetFrame, ETHERTYPE_ARP, HEADER_LEN};
use super::WireError;
use std::net::Ipv4Addr;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// Who-has (1).
    Request,
    /// Is-at (2).
    Reply,
    /// Any other operation code.
    Unknown(u16),
}

impl ArpOperation {
    fn from_u16(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            x => ArpOperation::Unknown(x),
        }
    }
    fn to_u16(self) -> u16 {
        match self {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(x) => x,
        }
    }
}

/// A view of an Ethernet/IPv4 ARP packet over a checked buffer.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wrap `buffer`, checking its length and that it is Ethernet/IPv4 ARP
    /// (hardware type 1, protocol 0x0800, lengths 6 and 4).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(WireError::Truncated("arp packet"));
        }
        if b[0..2] != [0, 1] || b[2..4] != [0x08, 0x00] || b[4] != 6 || b[5] != 4 {
            return Err(WireError::Unsupported("arp not ethernet/ipv4"));
        }
        Ok(ArpPacket { buffer })
    }
    /// Operation code.
    pub fn operation(&self) -> ArpOperation {
        let b = self.buffer.as_ref();
        ArpOperation::from_u16(u16::from_be_bytes([b[6], b[7]]))
    }
    /// Sender hardware address.
    pub fn sender_hw(&self) -> EthernetAddress {
        let mut a = [0u8; 6];
        a.copy_from_slice(&self.buffer.as_ref()[8..14]);
        EthernetAddress(a)
    }
    /// Sender protocol (IPv4) address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[14], b[15], b[16], b[17])
    }
    /// Target hardware address.
    pub fn target_hw(&self) -> EthernetAddress {
        let mut a = [0u8; 6];
        a.copy_from_slice(&self.buffer.as_ref()[18..24]);
        EthernetAddress(a)
    }
    /// Target protocol (IPv4) address.
    pub fn target_ip(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[24], b[25], b[26], b[27])
    }
}

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// Operation.
    pub operation: ArpOperation,
    /// Sender MAC.
    pub sender_hw: EthernetAddress,
    /// Sender IPv4 address.
    pub sender_ip: Ipv4Addr,
    /// Target MAC.
    pub target_hw: EthernetAddress,
    /// Target IPv4 address.
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Parse a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> ArpRepr {
        ArpRepr {
            operation: p.operation(),
            sender_hw: p.sender_hw(),
            sender_ip: p.sender_ip(),
            target_hw: p.target_hw(),
            target_ip: p.target_ip(),
        }
    }

    /// Write the 28-byte packet into the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        if buf.len() < PACKET_LEN {
            return Err(WireError::BufferTooSmall);
        }
        buf[0..2].copy_from_slice(&1u16.to_be_bytes());
        buf[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
        buf[4] = 6;
        buf[5] = 4;
        buf[6..8].copy_from_slice(&self.operation.to_u16().to_be_bytes());
        buf[8..14].copy_from_slice(&self.sender_hw.0);
        buf[14..18].copy_from_slice(&self.sender_ip.octets());
        buf[18..24].copy_from_slice(&self.target_hw.0);
        buf[24..28].copy_from_slice(&self.target_ip.octets());
        Ok(())
    }

    /// The reply a node owning `my_ip` at `my_mac` sends to this request.
    /// `None` if this is not a request for `my_ip`.
    pub fn reply_for(&self, my_ip: Ipv4Addr, my_mac: EthernetAddress) -> Option<ArpRepr> {
        if self.operation != ArpOperation::Request || self.target_ip != my_ip {
            return None;
        }
        Some(ArpRepr {
            operation: ArpOperation::Reply,
            sender_hw: my_mac,
            sender_ip: my_ip,
            target_hw: self.sender_hw,
            target_ip: self.sender_ip,
        })
    }

    /// A gratuitous ARP (a request announcing `ip` is at `mac`, sender and
    /// target protocol address both `ip`).
    pub fn gratuitous(ip: Ipv4Addr, mac: EthernetAddress) -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            sender_hw: mac,
            sender_ip: ip,
            target_hw: EthernetAddress([0; 6]),
            target_ip: ip,
        }
    }
}

/// Build a complete Ethernet frame (42 bytes, unpadded) carrying `arp`.
pub fn build_arp_frame(
    eth_src: EthernetAddress,
    eth_dst: EthernetAddress,
    arp: &ArpRepr,
) -> Vec<u8> {
    let mut buf = vec![0u8; HEADER_LEN + PACKET_LEN];
    let mut f = EthernetFrame::new_checked(&mut buf[..]).expect("length is fixed");
    f.set_dst_addr(eth_dst);
    f.set_src_addr(eth_src);
    f.set_ethertype(ETHERTYPE_ARP);
    arp.emit(f.payload_mut()).expect("length is fixed");
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_reply_roundtrip() {
        let client = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let me = EthernetAddress([2, 0, 0, 0, 0, 2]);
        let req = ArpRepr {
            operation: ArpOperation::Request,
            sender_hw: client,
            sender_ip: Ipv4Addr::new(192, 0, 2, 1),
            target_hw: EthernetAddress([0; 6]),
            target_ip: Ipv4Addr::new(192, 0, 2, 100),
        };
        let frame = build_arp_frame(client, EthernetAddress::BROADCAST, &req);
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        let parsed = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap());
        assert_eq!(parsed, req);
        let rep = parsed.reply_for(Ipv4Addr::new(192, 0, 2, 100), me).unwrap();
        assert_eq!(rep.target_hw, client);
        assert_eq!(rep.sender_hw, me);
        assert!(parsed.reply_for(Ipv4Addr::new(192, 0, 2, 99), me).is_none());
    }

    #[test]
    fn rejects_non_ipv4_arp() {
        let mut b = [0u8; 28];
        b[1] = 6; // hardware type 6
        assert!(ArpPacket::new_checked(&b[..]).is_err());
        assert!(ArpPacket::new_checked(&b[..10]).is_err());
    }
}
