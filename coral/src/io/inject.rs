//! Client segments handed to the local stack as if they had arrived on the
//! LAN: a raw IPv4 socket (`IPPROTO_RAW`, so `IP_HDRINCL`) sends each bare
//! IPv4 packet to a local service address, and the kernel loops it through
//! `lo` with the output route attached (no reverse-path check). The
//! packets must carry correct checksums (they are built with
//! `coral_core::wire::build_ipv4_tcp_packet`).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A raw IPv4 socket for re-injecting client segments into the local stack.
pub fn raw_inject_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); IPPROTO_RAW implies IP_HDRINCL.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn sockaddr(dst: Ipv4Addr) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst.octets()),
        },
        sin_zero: [0; 8],
    }
}

/// Send the bare IPv4 `packet` to `dst` through the local stack.
pub fn inject(fd: &OwnedFd, packet: &[u8], dst: Ipv4Addr) -> io::Result<()> {
    let sa = sockaddr(dst);
    // SAFETY: `packet` and `sa` are live for the call.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            packet.as_ptr() as *const libc::c_void,
            packet.len(),
            0,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Packets one `sendmmsg` takes at most (the kernel caps a call at
/// `UIO_MAXIOV`, 1024).
const BATCH: usize = 256;

/// Send every bare IPv4 packet of `packets` to its destination through the
/// local stack, up to [`BATCH`] per `sendmmsg` call instead of one `sendto`
/// each (a takeover re-injects one held client ACK per rebuilt socket).
/// A packet the kernel refuses is skipped, like a failed [`inject`].
/// Returns how many were sent.
pub fn inject_all(fd: &OwnedFd, packets: &[(Vec<u8>, Ipv4Addr)]) -> usize {
    inject_in_batches(fd, packets, BATCH)
}

fn inject_in_batches(fd: &OwnedFd, packets: &[(Vec<u8>, Ipv4Addr)], batch: usize) -> usize {
    let mut sent = 0;
    let mut rest = packets;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(batch)];
        let mut addrs: Vec<libc::sockaddr_in> = chunk.iter().map(|(_, d)| sockaddr(*d)).collect();
        let mut iovs: Vec<libc::iovec> = chunk
            .iter()
            .map(|(p, _)| libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .zip(addrs.iter_mut())
            .map(|(iov, sa)| {
                // SAFETY: an all-zero msghdr is a valid empty one.
                let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
                h.msg_name = sa as *mut libc::sockaddr_in as *mut libc::c_void;
                h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                h.msg_iov = iov;
                h.msg_iovlen = 1;
                libc::mmsghdr {
                    msg_hdr: h,
                    msg_len: 0,
                }
            })
            .collect();
        // SAFETY: every header points into `addrs`, `iovs` and `chunk`,
        // all live and unmoved for the call.
        let n = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                msgs.len() as libc::c_uint,
                0,
            )
        };
        // The kernel stops at the first packet it refuses (-1 when that is
        // the first): count what went, skip the refused one.
        let n = usize::try_from(n).unwrap_or(0);
        sent += n;
        rest = &rest[if n < chunk.len() { n + 1 } else { n }..];
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    /// A bare IPv4/UDP packet (the kernel fills in the IP checksum of a
    /// raw `IP_HDRINCL` packet; a UDP checksum of 0 means none).
    fn udp_packet(dst: Ipv4Addr, port: u16, payload: &[u8]) -> Vec<u8> {
        let len = 20 + 8 + payload.len();
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&Ipv4Addr::LOCALHOST.octets());
        p[16..20].copy_from_slice(&dst.octets());
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&port.to_be_bytes());
        p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p[28..].copy_from_slice(payload);
        p
    }

    #[test]
    fn a_batch_larger_than_one_call_arrives_whole_and_a_refused_packet_is_skipped() {
        let rx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let port = rx.local_addr().unwrap().port();
        // Three calls of 16 (the receiver's buffer holds a few dozen).
        let n = 40;
        let mut packets: Vec<(Vec<u8>, Ipv4Addr)> = (0..n as u32)
            .map(|i| {
                (
                    udp_packet(Ipv4Addr::LOCALHOST, port, &i.to_be_bytes()),
                    Ipv4Addr::LOCALHOST,
                )
            })
            .collect();
        // Shorter than an IPv4 header: the kernel refuses it.
        packets[5].0.truncate(10);
        let fd = raw_inject_socket().expect("a raw socket (root)");
        assert_eq!(inject_in_batches(&fd, &packets, 16), n - 1);
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        for _ in 0..n - 1 {
            let k = rx.recv(&mut buf).expect("every packet sent arrives");
            got.push(u32::from_be_bytes(buf[..k].try_into().unwrap()));
        }
        let want: Vec<u32> = (0..n as u32).filter(|i| *i != 5).collect();
        assert_eq!(got, want, "in order, the refused one missing");
    }
}
