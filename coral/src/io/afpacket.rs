//! AF_PACKET with `PACKET_VNET_HDR`: the front's view of its LAN interface.
//!
//! The backup's packet engine receives every client frame here (its kernel
//! does not have the service address, so the kernel itself ignores them) and
//! forwards each recorded frame to the primary by writing it back out.
//!
//! Veth senders offload checksums and segmentation: a captured TCP frame may
//! carry only a partial checksum and may be larger than the MTU. With
//! `PACKET_VNET_HDR` every frame comes with the virtio-net header that says
//! so, and passing that header back on send lets the kernel (or the next
//! device) finish the checksum and segment the frame. Recomputing checksums
//! alone was not enough on this machine (docs/DESIGN.md section 7): large uploads
//! then crawled through retransmissions.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::io::sockopt;

/// `PACKET_IGNORE_OUTGOING` (Linux 4.20+): do not capture our own sends.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `ETH_P_ALL` in network byte order, as `socket()` and `bind()` want it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();
/// `ETH_P_ARP` in network byte order.
const ETH_P_ARP_BE: u16 = (libc::ETH_P_ARP as u16).to_be();

/// `struct virtio_net_hdr` (10 bytes), as the kernel prepends it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM` (1) and friends.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`: 0 none, 1 TCPv4, 3 UDP, 4 TCPv6.
    pub gso_type: u8,
    /// Length of the headers (Ethernet + IP + TCP) for GSO.
    pub hdr_len: u16,
    /// Segment payload size for GSO.
    pub gso_size: u16,
    /// Where checksumming starts (offset from the frame start).
    pub csum_start: u16,
    /// Where the checksum goes, relative to `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Size of the header on the wire of the packet socket.
    pub const LEN: usize = 10;
    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum is partial.
    pub const F_NEEDS_CSUM: u8 = 1;

    /// Parse from the first [`VnetHdr::LEN`] bytes (host byte order, as
    /// the kernel writes it for a little-endian virtio device).
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        if b.len() < Self::LEN {
            return None;
        }
        let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    /// Serialise into `out[..LEN]`.
    pub fn write(&self, out: &mut [u8]) {
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
    }
}

/// A packet socket bound to one interface, with virtio-net headers on.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

/// The interface index of `name` in the current network namespace.
pub fn ifindex(name: &str) -> io::Result<i32> {
    let c = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface {name:?} in this namespace"),
        ))
    } else {
        Ok(idx as i32)
    }
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(())
    }
}

impl PacketSocket {
    /// Open a packet socket on interface `name` receiving every protocol,
    /// with `PACKET_VNET_HDR` on and our own transmissions not captured.
    pub fn open(name: &str) -> io::Result<PacketSocket> {
        Self::bound(name, ETH_P_ALL_BE)
    }

    /// Open a packet socket on `name` that receives nothing (protocol 0):
    /// for sending ARP only, at no cost per received frame.
    pub fn open_send_only(name: &str) -> io::Result<PacketSocket> {
        Self::bound(name, 0)
    }

    /// Open a packet socket on `name` that receives ARP only (the eBPF
    /// front answers ARP through it; every other frame never wakes it).
    pub fn open_arp(name: &str) -> io::Result<PacketSocket> {
        Self::bound(name, ETH_P_ARP_BE)
    }

    /// A packet socket on `name` for `protocol` (network byte order; 0 =
    /// receive nothing), virtio-net headers on, own sends not captured.
    fn bound(name: &str, protocol: u16) -> io::Result<PacketSocket> {
        let ifindex = ifindex(name)?;
        // SAFETY: plain socket(2) call; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(protocol),
            )
        };
        check(raw, "socket(AF_PACKET)")?;
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        sockopt::set(
            raw,
            libc::SOL_PACKET,
            libc::PACKET_VNET_HDR,
            &1i32,
            "PACKET_VNET_HDR",
        )?;
        sockopt::set(
            raw,
            libc::SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            &1i32,
            "PACKET_IGNORE_OUTGOING",
        )?;
        // SAFETY: zeroed sockaddr_ll is a valid value; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = protocol;
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll of the length passed.
        let rc = unsafe {
            libc::bind(
                raw,
                &sll as *const _ as *const libc::sockaddr,
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        check(rc, "bind(AF_PACKET)")?;
        Ok(PacketSocket { fd, ifindex })
    }

    /// Deliver only what the front handles: ARP, and IPv4 frames to one of
    /// `vips` (a classic BPF filter, `arp or (ip and dst host VIP ...)`).
    /// Log-channel segments, heartbeats and every other frame on the LAN
    /// then never wake the engine (measured without the filter, they were a
    /// large share of its wake-ups). Frames longer than the MTU (GSO) pass
    /// whole.
    pub fn set_front_filter(&self, vips: &[std::net::Ipv4Addr]) -> io::Result<()> {
        let prog = front_filter(vips)?;
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        sockopt::set(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog,
            "SO_ATTACH_FILTER",
        )
    }

    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// Set the receive buffer to `bytes` (`SO_RCVBUFFORCE`, root only, so
    /// bursts are not dropped while the engine is busy).
    pub fn set_recv_buffer(&self, bytes: usize) -> io::Result<()> {
        let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        sockopt::set(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &v,
            "SO_RCVBUFFORCE",
        )
    }

    /// Bound how long [`PacketSocket::recv`] blocks (`None` = forever).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        let tv = match t {
            Some(d) => libc::timeval {
                tv_sec: d.as_secs() as libc::time_t,
                tv_usec: d.subsec_micros() as libc::suseconds_t,
            },
            None => libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
        };
        sockopt::set(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv,
            "SO_RCVTIMEO",
        )
    }

    /// Receive one frame into `buf`: returns the virtio-net header and the
    /// frame's length; the frame is `buf[VnetHdr::LEN..VnetHdr::LEN + len]`.
    /// `buf` should hold 64 KiB + header (offloaded frames exceed the MTU).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(VnetHdr, usize)> {
        self.recv_with(buf, 0)
    }

    /// [`PacketSocket::recv`] without blocking (`WouldBlock` when no frame
    /// waits), for an owner that polls the descriptor.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<(VnetHdr, usize)> {
        self.recv_with(buf, libc::MSG_DONTWAIT)
    }

    fn recv_with(&self, buf: &mut [u8], flags: libc::c_int) -> io::Result<(VnetHdr, usize)> {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                flags,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        let hdr = VnetHdr::parse(&buf[..n]).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "packet shorter than its virtio-net header",
            )
        })?;
        Ok((hdr, n - VnetHdr::LEN))
    }

    /// Send `buf`, which must start with a virtio-net header followed by a
    /// whole Ethernet frame (the layout [`PacketSocket::recv`] produces).
    pub fn send_raw(&self, buf: &[u8]) -> io::Result<()> {
        // SAFETY: `buf` is readable for its length.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                buf.as_ptr() as *const libc::c_void,
                buf.len(),
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write on packet socket",
            ));
        }
        Ok(())
    }

    /// Send one frame with a given virtio-net header.
    pub fn send(&self, hdr: &VnetHdr, frame: &[u8]) -> io::Result<()> {
        let mut buf = vec![0u8; VnetHdr::LEN + frame.len()];
        hdr.write(&mut buf);
        buf[VnetHdr::LEN..].copy_from_slice(frame);
        self.send_raw(&buf)
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The classic BPF program of [`PacketSocket::set_front_filter`]:
///
/// ```text
/// 0      ldh [12]                    ethertype
/// 1      jeq #0x806   -> accept
/// 2      jeq #0x800   else -> drop
/// 3      ld  [30]                    IPv4 destination
/// 4+k    jeq #vip_k   -> accept      (one per address)
/// 4+n    ret #0                      drop
/// 5+n    ret #0xffffffff             accept, whole frame
/// ```
fn front_filter(vips: &[std::net::Ipv4Addr]) -> io::Result<Vec<libc::sock_filter>> {
    let n = vips.len();
    if n == 0 || n > 200 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a front filter takes 1 to 200 addresses, not {n}"),
        ));
    }
    let op = |code: u32, jt: usize, jf: usize, k: u32| libc::sock_filter {
        code: code as u16,
        jt: jt as u8,
        jf: jf as u8,
        k,
    };
    let (ld_h, ld_w, jeq, ret) = (
        libc::BPF_LD | libc::BPF_H | libc::BPF_ABS,
        libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
        libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
        libc::BPF_RET | libc::BPF_K,
    );
    let mut p = vec![
        op(ld_h, 0, 0, 12),
        op(jeq, 3 + n, 0, 0x0806),
        op(jeq, 0, 1 + n, 0x0800),
        op(ld_w, 0, 0, 30),
    ];
    for (k, vip) in vips.iter().enumerate() {
        p.push(op(jeq, n - k, 0, u32::from(*vip)));
    }
    p.push(op(ret, 0, 0, 0));
    p.push(op(ret, 0, 0, u32::MAX));
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_filter_jumps_land_on_accept_and_drop() {
        let vips: Vec<std::net::Ipv4Addr> = vec![[192, 0, 2, 100].into(), [192, 0, 2, 101].into()];
        let p = front_filter(&vips).unwrap();
        assert_eq!(p.len(), 4 + vips.len() + 2);
        let accept = p.len() - 1;
        let drop = p.len() - 2;
        assert_eq!(p[accept].k, u32::MAX);
        assert_eq!(p[drop].k, 0);
        // ARP accepted, other ethertypes dropped.
        assert_eq!(1 + 1 + usize::from(p[1].jt), accept);
        assert_eq!(2 + 1 + usize::from(p[2].jf), drop);
        for k in 0..vips.len() {
            assert_eq!(4 + k + 1 + usize::from(p[4 + k].jt), accept);
            assert_eq!(p[4 + k].k, u32::from(vips[k]));
        }
        assert!(front_filter(&[]).is_err());
    }
}
