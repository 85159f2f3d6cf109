//! Identity takeover on the LAN (paper section 3.1): gratuitous ARP for a
//! service address, and the confirming ping to an outside host *from the
//! service address* (a ping from the node's own address proves nothing about
//! the router's entry for the service address). If no reply comes within the
//! timeout, the gratuitous ARP is sent again.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use coral_core::wire::checksum;
use coral_core::wire::EthernetAddress;
use coral_core::wire::{build_arp_frame, ArpOperation, ArpRepr};

use crate::io::afpacket::{PacketSocket, VnetHdr};

/// Send a gratuitous ARP for `vip` at `mac`: a broadcast request and a
/// broadcast reply (hosts differ in which one they honour).
pub fn gratuitous_arp(sock: &PacketSocket, vip: Ipv4Addr, mac: [u8; 6]) -> io::Result<()> {
    let me = EthernetAddress(mac);
    let req = ArpRepr::gratuitous(vip, me);
    sock.send(
        &VnetHdr::default(),
        &build_arp_frame(me, EthernetAddress::BROADCAST, &req),
    )?;
    let rep = ArpRepr {
        operation: ArpOperation::Reply,
        target_hw: EthernetAddress::BROADCAST,
        ..req
    };
    sock.send(
        &VnetHdr::default(),
        &build_arp_frame(me, EthernetAddress::BROADCAST, &rep),
    )
}

/// A raw ICMP socket bound to one local address, for echo requests.
pub struct Pinger {
    fd: OwnedFd,
    id: u16,
    seq: u16,
}

impl Pinger {
    /// Open a raw ICMP socket with source address `from` (must be local).
    pub fn new(from: Ipv4Addr) -> io::Result<Pinger> {
        // SAFETY: plain socket(2); checked below.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMP,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sa = sockaddr(SocketAddrV4::new(from, 0));
        // SAFETY: `sa` is a valid sockaddr_in.
        let rc = unsafe {
            libc::bind(
                raw,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pinger {
            fd,
            id: (std::process::id() & 0xffff) as u16,
            seq: 0,
        })
    }

    /// Send one echo request to `to` and wait up to `timeout` for its reply;
    /// returns the round-trip time.
    pub fn ping(&mut self, to: Ipv4Addr, timeout: Duration) -> io::Result<Option<Duration>> {
        self.seq = self.seq.wrapping_add(1);
        let mut pkt = [0u8; 16];
        pkt[0] = 8; // echo request
        pkt[4..6].copy_from_slice(&self.id.to_be_bytes());
        pkt[6..8].copy_from_slice(&self.seq.to_be_bytes());
        pkt[8..16].copy_from_slice(b"coral-ok");
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
        let sa = sockaddr(SocketAddrV4::new(to, 0));
        let start = Instant::now();
        // SAFETY: `pkt` and `sa` are live for the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                pkt.as_ptr() as *const libc::c_void,
                pkt.len(),
                0,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 1500];
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Ok(None);
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) };
            if r <= 0 {
                continue;
            }
            // SAFETY: `buf` is writable for its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                )
            };
            if n < 28 {
                continue;
            }
            let ihl = usize::from(buf[0] & 0x0f) * 4;
            let icmp = &buf[ihl..n as usize];
            let src = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
            if icmp.len() >= 8
                && icmp[0] == 0
                && src == to
                && icmp[4..6] == self.id.to_be_bytes()
                && icmp[6..8] == self.seq.to_be_bytes()
            {
                return Ok(Some(start.elapsed()));
            }
        }
    }
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// Timing of one identity takeover.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AnnounceTiming {
    /// Sending the gratuitous ARP (all rounds).
    pub garp: Duration,
    /// Waiting for the confirming ping (all rounds).
    pub ping: Duration,
    /// Rounds needed (1 = the first ping was answered); 0 = never confirmed.
    pub rounds: u32,
}

/// Gratuitous ARP, then ping `outside` from `vip`; repeat up to `rounds`
/// times while no reply comes within `timeout`. Blocking.
pub fn announce(
    sock: &PacketSocket,
    vip: Ipv4Addr,
    mac: [u8; 6],
    outside: Option<Ipv4Addr>,
    timeout: Duration,
    rounds: u32,
) -> io::Result<AnnounceTiming> {
    let mut t = AnnounceTiming::default();
    let mut pinger = match outside {
        Some(_) => Some(Pinger::new(vip)?),
        None => None,
    };
    for round in 1..=rounds.max(1) {
        let g = Instant::now();
        gratuitous_arp(sock, vip, mac)?;
        t.garp += g.elapsed();
        let (Some(p), Some(to)) = (pinger.as_mut(), outside) else {
            t.rounds = round;
            return Ok(t);
        };
        let q = Instant::now();
        let answered = p.ping(to, timeout)?.is_some();
        t.ping += q.elapsed();
        if answered {
            t.rounds = round;
            return Ok(t);
        }
    }
    t.rounds = 0;
    Ok(t)
}
