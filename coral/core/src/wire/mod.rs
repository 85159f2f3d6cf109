//! Wire formats: checked views over byte buffers (the smoltcp shape) for
//! Ethernet II, ARP, IPv4 and TCP, with emitters for the frames CoRAL writes.
//!
//! Entry point for captured frames: [`parse_frame`]. It validates every
//! length and never panics on any input; it does *not* reject a bad TCP
//! checksum (frames captured on a veth with offload carry partial checksums),
//! and it reports the IPv4 header checksum result instead of dropping.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod ipv4;
pub mod tcp;

pub use arp::{build_arp_frame, ArpOperation, ArpPacket, ArpRepr};
pub use checksum::checksum;
pub use ethernet::{rewrite_macs, EthernetAddress, EthernetFrame};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use tcp::{SackBlock, TcpFlags, TcpOptions, TcpPacket, TcpRepr};

use crate::seq::SeqNum;
use crate::types::FourTuple;
use std::net::Ipv4Addr;

/// Why a frame could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer ends before the named part.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A field has an impossible value.
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// A well-formed packet of a kind this crate does not handle.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// An output buffer is too small for what is to be written.
    #[error("output buffer too small")]
    BufferTooSmall,
    /// What is to be written exceeds a length field.
    #[error("packet too long")]
    TooLong,
}

/// A TCP segment carried in IPv4, parsed from a frame; borrows its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination.
    pub dst_ip: Ipv4Addr,
    /// TCP source port.
    pub src_port: u16,
    /// TCP destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: SeqNum,
    /// Acknowledgment number (meaningful when `flags.ack()`).
    pub ack: SeqNum,
    /// Flags.
    pub flags: TcpFlags,
    /// Raw window field.
    pub window: u16,
    /// Parsed options.
    pub options: TcpOptions,
    /// Data.
    pub payload: &'a [u8],
    /// IPv4 TTL (kept for re-injection).
    pub ttl: u8,
}

impl<'a> TcpSegment<'a> {
    /// Parse a bare IPv4 packet carrying TCP (what a raw socket or a
    /// TUN device yields). Fragments are refused.
    pub fn parse_ipv4(packet: &'a [u8]) -> Result<TcpSegment<'a>, WireError> {
        let ip = Ipv4Packet::new_checked(packet)?;
        Self::from_ipv4(&ip, packet)
    }

    fn from_ipv4(ip: &Ipv4Packet<&'a [u8]>, packet: &'a [u8]) -> Result<TcpSegment<'a>, WireError> {
        if ip.protocol() != ipv4::PROTO_TCP {
            return Err(WireError::Unsupported("ip protocol is not tcp"));
        }
        if ip.is_fragment() {
            return Err(WireError::Unsupported("ipv4 fragment"));
        }
        let payload = &packet[ip.header_len()..ip.total_len()];
        let t = TcpPacket::new_checked(payload)?;
        let options = t.options()?;
        let data = &payload[t.header_len()..];
        Ok(TcpSegment {
            src_ip: ip.src_addr(),
            dst_ip: ip.dst_addr(),
            src_port: t.src_port(),
            dst_port: t.dst_port(),
            seq: t.seq(),
            ack: t.ack(),
            flags: t.flags(),
            window: t.window(),
            options,
            payload: data,
            ttl: ip.ttl(),
        })
    }

    /// The connection this segment belongs to, taking its sender as the
    /// client (true for every frame the front captures).
    pub fn client_tuple(&self) -> FourTuple {
        FourTuple {
            client_ip: self.src_ip,
            client_port: self.src_port,
            server_ip: self.dst_ip,
            server_port: self.dst_port,
        }
    }

    /// Sequence space the segment occupies: data length plus one for SYN
    /// and one for FIN.
    pub fn seq_len(&self) -> u64 {
        self.payload.len() as u64 + u64::from(self.flags.syn()) + u64::from(self.flags.fin())
    }

    /// The header fields of this segment as an emitter input.
    pub fn repr(&self) -> TcpRepr {
        TcpRepr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            options: self.options,
        }
    }

    /// For re-injection after takeover (docs/DESIGN.md section 5 step 4): the bare IPv4
    /// packet carrying only the part of this segment at or after `from`
    /// (client sequence space), with fresh checksums. `None` if nothing of
    /// the segment (data or FIN) lies at or after `from`. SYN segments are
    /// never trimmed (returns `None`).
    pub fn ipv4_packet_from(&self, from: SeqNum) -> Option<Vec<u8>> {
        if self.flags.syn() {
            return None;
        }
        let end = self.seq.plus(self.payload.len() as u64);
        let skip = from.distance_from(self.seq);
        let (seq, data) = if skip <= 0 {
            (self.seq, self.payload)
        } else if (skip as usize) < self.payload.len() {
            (from, &self.payload[skip as usize..])
        } else {
            // Only a FIN may remain, and only if it sits at or after `from`.
            if !self.flags.fin() || from.after(end) {
                return None;
            }
            (end, &self.payload[self.payload.len()..])
        };
        let mut repr = self.repr();
        repr.seq = seq;
        // SACK blocks in a rewritten segment would be stale; keep the rest.
        repr.options.sack_len = 0;
        build_ipv4_tcp_packet(self.src_ip, self.dst_ip, self.ttl, 0, &repr, data).ok()
    }
}

/// What a frame carries, as far as the front is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramePayload<'a> {
    /// An Ethernet/IPv4 ARP packet.
    Arp(ArpRepr),
    /// A TCP segment in an unfragmented IPv4 packet.
    Tcp(TcpSegment<'a>),
    /// An IPv4 fragment (any protocol): its data cannot be recorded; the
    /// front should drop it (Linux TCP sets DF, so these are rare).
    Ipv4Fragment {
        /// Source.
        src: Ipv4Addr,
        /// Destination.
        dst: Ipv4Addr,
    },
    /// Another IPv4 protocol (ICMP, UDP...).
    Ipv4Other {
        /// Source.
        src: Ipv4Addr,
        /// Destination.
        dst: Ipv4Addr,
        /// Protocol number.
        protocol: u8,
    },
    /// Another EtherType (IPv6, VLAN-tagged...).
    Other,
}

/// A parsed Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedFrame<'a> {
    /// Destination MAC.
    pub eth_dst: EthernetAddress,
    /// Source MAC.
    pub eth_src: EthernetAddress,
    /// EtherType.
    pub ethertype: u16,
    /// For IPv4 frames: whether the IPv4 header checksum is correct.
    /// `true` for non-IPv4 frames.
    pub ip_checksum_ok: bool,
    /// The contents.
    pub payload: FramePayload<'a>,
}

/// Parse one Ethernet frame. Every length is checked; no input panics.
/// Errors: truncated or malformed Ethernet, ARP (Ethernet/IPv4 only), IPv4
/// or TCP headers, including malformed TCP options.
pub fn parse_frame(frame: &[u8]) -> Result<ParsedFrame<'_>, WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    let mut out = ParsedFrame {
        eth_dst: eth.dst_addr(),
        eth_src: eth.src_addr(),
        ethertype: eth.ethertype(),
        ip_checksum_ok: true,
        payload: FramePayload::Other,
    };
    let body = &frame[ethernet::HEADER_LEN..];
    match out.ethertype {
        ethernet::ETHERTYPE_ARP => {
            let p = ArpPacket::new_checked(body)?;
            out.payload = FramePayload::Arp(ArpRepr::parse(&p));
        }
        ethernet::ETHERTYPE_IPV4 => {
            let ip = Ipv4Packet::new_checked(body)?;
            out.ip_checksum_ok = ip.verify_checksum();
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            out.payload = if ip.is_fragment() {
                FramePayload::Ipv4Fragment { src, dst }
            } else if ip.protocol() == ipv4::PROTO_TCP {
                FramePayload::Tcp(TcpSegment::from_ipv4(&ip, body)?)
            } else {
                FramePayload::Ipv4Other {
                    src,
                    dst,
                    protocol: ip.protocol(),
                }
            };
        }
        _ => {}
    }
    Ok(out)
}

/// Build a bare IPv4 packet (20-byte header, DF set) carrying one TCP
/// segment, both checksums correct.
pub fn build_ipv4_tcp_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    ident: u16,
    tcp: &TcpRepr,
    payload: &[u8],
) -> Result<Vec<u8>, WireError> {
    let tcp_len = tcp.header_len() + payload.len();
    let ip = Ipv4Repr {
        src,
        dst,
        protocol: ipv4::PROTO_TCP,
        ttl,
        ident,
        dont_frag: true,
        payload_len: tcp_len,
    };
    let mut buf = vec![0u8; ipv4::MIN_HEADER_LEN + tcp_len];
    ip.emit(&mut buf)?;
    tcp.emit(&mut buf[ipv4::MIN_HEADER_LEN..], src, dst, payload)?;
    Ok(buf)
}

/// Build an Ethernet frame around [`build_ipv4_tcp_packet`].
#[allow(clippy::too_many_arguments)]
pub fn build_tcp_frame(
    eth_src: EthernetAddress,
    eth_dst: EthernetAddress,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    ident: u16,
    tcp: &TcpRepr,
    payload: &[u8],
) -> Result<Vec<u8>, WireError> {
    let ip = build_ipv4_tcp_packet(src, dst, ttl, ident, tcp, payload)?;
    let mut buf = vec![0u8; ethernet::HEADER_LEN];
    {
        let mut f = EthernetFrame::new_checked(&mut buf[..])?;
        f.set_src_addr(eth_src);
        f.set_dst_addr(eth_dst);
        f.set_ethertype(ethernet::ETHERTYPE_IPV4);
    }
    buf.extend_from_slice(&ip);
    Ok(buf)
}

/// Recompute the IPv4 header checksum and the TCP checksum of a bare IPv4
/// packet carrying TCP, in place.
pub fn recompute_ipv4_tcp_checksums(packet: &mut [u8]) -> Result<(), WireError> {
    let mut ip = Ipv4Packet::new_checked(&mut *packet)?;
    if ip.protocol() != ipv4::PROTO_TCP {
        return Err(WireError::Unsupported("ip protocol is not tcp"));
    }
    if ip.is_fragment() {
        return Err(WireError::Unsupported("ipv4 fragment"));
    }
    ip.fill_checksum();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let mut t = TcpPacket::new_checked(ip.payload_mut())?;
    t.fill_checksum(src, dst)
}

/// Recompute both checksums of an Ethernet/IPv4/TCP frame, in place.
pub fn recompute_frame_checksums(frame: &mut [u8]) -> Result<(), WireError> {
    let mut eth = EthernetFrame::new_checked(&mut *frame)?;
    if eth.ethertype() != ethernet::ETHERTYPE_IPV4 {
        return Err(WireError::Unsupported("not ipv4"));
    }
    recompute_ipv4_tcp_checksums(eth.payload_mut())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_frame(payload: &[u8], flags: u8) -> Vec<u8> {
        let repr = TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq: SeqNum(u32::MAX - 2),
            ack: SeqNum(77),
            flags: TcpFlags(flags),
            window: 1000,
            options: TcpOptions {
                timestamps: Some((1, 2)),
                ..Default::default()
            },
        };
        build_tcp_frame(
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            EthernetAddress([2, 0, 0, 0, 0, 2]),
            Ipv4Addr::new(198, 51, 100, 7),
            Ipv4Addr::new(192, 0, 2, 100),
            64,
            9,
            &repr,
            payload,
        )
        .unwrap()
    }

    #[test]
    fn parse_built_frame() {
        let f = sample_frame(b"hello", TcpFlags::ACK | TcpFlags::PSH);
        let p = parse_frame(&f).unwrap();
        assert!(p.ip_checksum_ok);
        let FramePayload::Tcp(s) = p.payload else {
            panic!("not tcp")
        };
        assert_eq!(s.payload, b"hello");
        assert_eq!(s.seq, SeqNum(u32::MAX - 2));
        assert_eq!(
            s.client_tuple().to_string(),
            "198.51.100.7:40000->192.0.2.100:80"
        );
        assert_eq!(s.seq_len(), 5);
    }

    #[test]
    fn every_prefix_is_an_error_not_a_panic() {
        let f = sample_frame(b"hello", TcpFlags::ACK);
        // Prefixes shorter than the IPv4 total length must fail.
        for n in 0..f.len() {
            assert!(parse_frame(&f[..n]).is_err(), "prefix {n}");
        }
        // Ethernet padding after the IP packet is fine.
        let mut padded = f.clone();
        padded.extend_from_slice(&[0; 8]);
        let FramePayload::Tcp(s) = parse_frame(&padded).unwrap().payload else {
            panic!()
        };
        assert_eq!(s.payload, b"hello");
    }

    #[test]
    fn recompute_after_corruption() {
        let mut f = sample_frame(b"abc", TcpFlags::ACK);
        let good = f.clone();
        f[14 + 10] ^= 0xff; // IP checksum
        f[14 + 20 + 16] ^= 0xff; // TCP checksum
        assert!(!parse_frame(&f).unwrap().ip_checksum_ok);
        recompute_frame_checksums(&mut f).unwrap();
        assert_eq!(f, good);
    }

    #[test]
    fn trimmed_reinjection() {
        let f = sample_frame(b"0123456789", TcpFlags::ACK | TcpFlags::FIN);
        let FramePayload::Tcp(s) = parse_frame(&f).unwrap().payload else {
            panic!()
        };
        // From 4 bytes in, across the 2^32 wrap.
        let from = s.seq.plus(4);
        let pkt = s.ipv4_packet_from(from).unwrap();
        let t = TcpSegment::parse_ipv4(&pkt).unwrap();
        assert_eq!(t.seq, SeqNum(1));
        assert_eq!(t.payload, b"456789");
        assert!(t.flags.fin());
        let ip = Ipv4Packet::new_checked(&pkt[..]).unwrap();
        assert!(ip.verify_checksum());
        assert!(TcpPacket::new_checked(ip.payload())
            .unwrap()
            .verify_checksum(t.src_ip, t.dst_ip));
        // Only the FIN left.
        let pkt = s.ipv4_packet_from(s.seq.plus(10)).unwrap();
        let t = TcpSegment::parse_ipv4(&pkt).unwrap();
        assert!(t.payload.is_empty() && t.flags.fin());
        // Nothing left.
        assert!(s.ipv4_packet_from(s.seq.plus(11)).is_none());
        // Everything (from before the segment).
        let pkt = s
            .ipv4_packet_from(s.seq.plus(0).min_seq(SeqNum(0)))
            .unwrap();
        assert_eq!(TcpSegment::parse_ipv4(&pkt).unwrap().payload, b"0123456789");
    }

    #[test]
    fn non_tcp_and_fragments() {
        let mut f = sample_frame(b"x", TcpFlags::ACK);
        f[14 + 6] = 0x20; // MF set
        assert!(matches!(
            parse_frame(&f).unwrap().payload,
            FramePayload::Ipv4Fragment { .. }
        ));
        f[14 + 6] = 0x40;
        f[14 + 9] = 17;
        assert!(matches!(
            parse_frame(&f).unwrap().payload,
            FramePayload::Ipv4Other { protocol: 17, .. }
        ));
        f[12] = 0x86;
        f[13] = 0xdd;
        assert_eq!(parse_frame(&f).unwrap().payload, FramePayload::Other);
    }
}

#[cfg(test)]
mod fuzzish {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Random bytes and random corruptions of a valid frame never panic.
        #[test]
        fn parse_frame_never_panics(
            junk in proptest::collection::vec(any::<u8>(), 0..200),
            flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..8),
            cut in 0usize..200,
        ) {
            let _ = parse_frame(&junk);
            let repr = TcpRepr {
                src_port: 1, dst_port: 80, seq: SeqNum(1), ack: SeqNum(2),
                flags: TcpFlags(TcpFlags::ACK), window: 10,
                options: TcpOptions { mss: Some(1), timestamps: Some((1, 2)), ..Default::default() },
            };
            let mut f = build_tcp_frame(EthernetAddress([1; 6]), EthernetAddress([2; 6]),
                Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(192, 0, 2, 1), 64, 0, &repr, b"data").unwrap();
            for (i, b) in flips {
                let n = f.len();
                f[i % n] = b;
            }
            let _ = parse_frame(&f);
            let _ = parse_frame(&f[..cut.min(f.len())]);
            let _ = TcpSegment::parse_ipv4(&f[14..]);
            let _ = recompute_frame_checksums(&mut f);
        }
    }
}
